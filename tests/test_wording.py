"""The plain words the node prints and the report shows: every kind of copy the matching rule
names, in both directions, and the reasons for keeping a copy."""

from __future__ import annotations

import pytest

from dedup.policy import Candidate, choose_master
from dedup.v1 import asset_pb2
from dedup.v1 import statements_pb2 as R
from dedup.node import wording
from dedup.node.wording import copy_words, sentence

LOSSLESS, LOSSY = asset_pb2.FORMAT_FAMILY_LOSSLESS, asset_pb2.FORMAT_FAMILY_LOSSY


def ev(width=6000, height=4000, *, channels=3, lossless=True, quality=0, frame=None, skew=0, luma=120, spread=50,
       saturation=40, bit_depth=8, date="", rights="unknown") -> asset_pb2.Evidence:
    fw, fh = frame or (width, height)
    return asset_pb2.Evidence(width=width, height=height, channels=channels, bit_depth=bit_depth,
                              format_family=LOSSLESS if lossless else LOSSY, jpeg_quality=quality,
                              frame_width=fw, frame_height=fh, skew_centidegrees=skew, luma_mean=luma,
                              luma_spread=spread, saturation=saturation, capture_date=date, rights=rights)


MASTER = ev()
SMALL = ev(1024, 683, lossless=False, quality=85)
Q60 = ev(lossless=False, quality=60)
GREY = ev(channels=1, saturation=0)
CROP = ev(4800, 3200)
MATTED = ev(6400, 4400, frame=(6000, 4000))
SKEWED = ev(skew=-210)
BRIGHTER = ev(luma=140)

#: (relation, this copy, the other, keyword arguments) -> the short label and the sentence.
CASES = [
    (R.RELATION_IDENTICAL_BYTES, MASTER, MASTER, {}, "same file",
     "your file is the same file as our m.tif"),
    (R.RELATION_IDENTICAL_PIXELS, MASTER, MASTER, {}, "same pixels, other metadata",
     "your file has the same pixels as our m.tif, with other metadata"),
    (R.RELATION_REENCODED, SMALL, MASTER, {}, "smaller copy (1024 px of 6000)",
     "your file is a smaller copy of our m.tif (1024 px of 6000)"),
    (R.RELATION_REENCODED, MASTER, SMALL, {}, "larger copy (6000 px against 1024)",
     "your file is a larger copy of our m.tif (6000 px against 1024)"),
    (R.RELATION_REENCODED, Q60, MASTER, {}, "recompressed (JPEG quality 60; the keeper is lossless)",
     "your file is a recompressed copy of our m.tif (JPEG quality 60; ours is lossless)"),
    (R.RELATION_REENCODED, MASTER, Q60, {}, "better-quality copy (lossless; the keeper is JPEG quality 60)",
     "your file is a better-quality copy of our m.tif (lossless; ours is JPEG quality 60)"),
    (R.RELATION_REENCODED, MASTER, MASTER, {}, "recompressed",
     "your file is a recompressed copy of our m.tif"),
    (R.RELATION_TONE_VARIANT, BRIGHTER, MASTER, {}, "colour-corrected",
     "your file is a colour-corrected copy of our m.tif"),
    (R.RELATION_TONE_VARIANT, ev(channels=1, luma=140), GREY, {}, "tone-adjusted",
     "your file is a tone-adjusted copy of our m.tif"),
    (R.RELATION_GREYSCALE, GREY, MASTER, {}, "greyscale copy",
     "your file is a greyscale copy of our m.tif"),
    (R.RELATION_GREYSCALE, MASTER, GREY, {}, "colour copy (the keeper is greyscale)",
     "your file is in colour; our m.tif is a greyscale copy of it"),
    (R.RELATION_CROPPED, CROP, MASTER, {"kept": 0.64, "this_is_crop": True}, "cropped, keeps 64%",
     "your file is a crop of our m.tif, keeping 64% of it"),
    (R.RELATION_CROPPED, MASTER, CROP, {"kept": 0.64, "this_is_crop": False},
     "the full picture (the keeper is a crop keeping 64% of it)",
     "your file is the full picture; our m.tif is a crop keeping 64% of it"),
    (R.RELATION_CROPPED, ev(6000, 3000), MASTER, {}, "cropped differently (other proportions)",
     "your file is cropped differently from our m.tif (other proportions)"),
    (R.RELATION_ROTATED_MIRRORED, MASTER, MASTER, {"turn": "turned a quarter"}, "turned a quarter",
     "your file is a copy of our m.tif, turned a quarter"),
    (R.RELATION_ROTATED_MIRRORED, MASTER, MASTER, {"turn": "mirrored"}, "mirrored",
     "your file is a copy of our m.tif, mirrored"),
    (R.RELATION_ROTATED_MIRRORED, MASTER, MASTER, {}, "turned or mirrored",
     "your file is a copy of our m.tif, turned or mirrored"),
    (R.RELATION_BORDERED, MATTED, MASTER, {}, "in a mat/border, larger (6400 px against 6000)",
     "your file is a copy of our m.tif in a mat/border, larger (6400 px against 6000)"),
    (R.RELATION_BORDERED, MASTER, MATTED, {}, "without the mat/border (the keeper is in one), smaller (6000 px of 6400)",
     "your file is the picture without the mat/border our m.tif has, smaller (6000 px of 6400)"),
    (R.RELATION_EDITED, MASTER, MASTER, {}, "locally edited (watermark, caption or overlay)",
     "your file is a locally edited copy of our m.tif (watermark, caption or overlay)"),
    (R.RELATION_SIMILAR, MASTER, MASTER, {}, "looks the same",
     "your file is the same picture as our m.tif"),
    (R.RELATION_RESCANNED, SKEWED, MASTER, {}, "rescanned (skewed 2.1\u00b0)",
     "your file is a rescan of our m.tif (skewed 2.1\u00b0)"),
    (R.RELATION_RESCANNED, MASTER, MASTER, {}, "rescanned (slightly turned)",
     "your file is a rescan of our m.tif (slightly turned)"),
    (R.RELATION_UNSPECIFIED, SMALL, MASTER, {}, "a copy of the same photograph",
     "your file is a copy of the same photograph as our m.tif"),
    # What the evidence adds beside the relation.
    (R.RELATION_REENCODED, ev(1024, 683, channels=1, saturation=0, lossless=False, quality=85), MASTER, {},
     "smaller copy (1024 px of 6000), greyscale", "your file is a smaller copy of our m.tif (1024 px of 6000), in greyscale"),
    (R.RELATION_GREYSCALE, ev(1024, 683, channels=1, saturation=0), MASTER, {},
     "greyscale copy, smaller (1024 px of 6000)", "your file is a greyscale copy of our m.tif, smaller (1024 px of 6000)"),
    (R.RELATION_CROPPED, ev(4800, 3200, channels=1, saturation=0), MASTER, {"kept": 0.64, "this_is_crop": True},
     "cropped, keeps 64%, greyscale", "your file is a crop of our m.tif, keeping 64% of it, in greyscale"),
    (R.RELATION_CROPPED, MASTER, ev(4800, 3200, channels=1, saturation=0), {"kept": 0.64, "this_is_crop": False},
     "the full picture (the keeper is a crop keeping 64% of it), in colour",
     "your file is the full picture, in colour; our m.tif is a crop keeping 64% of it"),
    (R.RELATION_REENCODED, ev(1024, 683, luma=150, lossless=False, quality=85), MASTER, {},
     "smaller copy (1024 px of 6000), colour-corrected",
     "your file is a smaller copy of our m.tif (1024 px of 6000), colour-corrected"),
    # A crop holds other content: its tone summary says nothing of a colour correction.
    (R.RELATION_CROPPED, ev(4800, 3200, luma=150), MASTER, {"kept": 0.64, "this_is_crop": True},
     "cropped, keeps 64%", "your file is a crop of our m.tif, keeping 64% of it"),
]


@pytest.mark.parametrize("relation, this, other, kw, label, said", CASES)
def test_words_for_each_kind_of_copy(relation, this, other, kw, label, said):
    assert copy_words(relation, this, other, ref_name="the keeper", **kw) == label
    crop = kw.get("this_is_crop")
    assert sentence(relation, this, other, "our m.tif", kept=kw.get("kept"), query_is_crop=crop,
                    turn=kw.get("turn")) == said


def test_every_relation_has_words():
    """Every kind the wire protocol names is covered, in words with no enum name in them."""
    assert set(wording.LABELS) == set(R.Relation.values())
    assert {c[0] for c in CASES} == set(R.Relation.values())
    for value in R.Relation.values():
        for words in (copy_words(value, MASTER, MASTER), sentence(value, MASTER, MASTER, "our m.tif")):
            assert "_" not in words and "relation" not in words and "reencoded" not in words, words
    # A kind a newer coordinator might send still reads as words.
    assert copy_words(42, MASTER, MASTER) == "another kind of copy (relation 42)"
    assert sentence(42, MASTER, MASTER, "our m.tif") == "your file is another kind of copy of our m.tif (relation 42)"


def test_turns_are_told_apart(tmp_path):
    """The turn or mirror of a turned copy, read from the records' dihedral hashes."""
    from PIL import Image, ImageOps
    from skimage import data

    from conftest import record_of

    img = Image.fromarray(data.astronaut())
    up = record_of("up", img, tmp_path / "up.png")
    for name, copy, said in (("quarter", img.rotate(90, expand=True), "turned a quarter"),
                             ("other-quarter", img.rotate(270, expand=True), "turned a quarter"),
                             ("half", img.rotate(180), "turned upside down"),
                             ("mirror", ImageOps.mirror(img), "mirrored"),
                             ("flip", ImageOps.flip(img), "mirrored top to bottom")):
        assert wording.turn_between(record_of(name, copy, tmp_path / f"{name}.png"), up) == said, name


def test_keep_reasons():
    names = {"a": "master.tif", "b": "copy.jpg"}

    def reason(a: asset_pb2.Evidence, b: asset_pb2.Evidence, derived: bool = False) -> tuple[str, str]:
        d = choose_master([Candidate("m", "a", a, 0), Candidate("m", "b", b, 0, derived=derived)])
        assert d.master.asset_id == "a"
        return d.deciding_rule, wording.keep_reason(d, names)

    assert reason(MASTER, SMALL) == (
        "pixel_count", "it has the most pixels: 6000\u00d74000 against 1024\u00d7683 for the next best copy (copy.jpg)")
    assert reason(MASTER, Q60) == (
        "lossless", "it is stored losslessly; the next best copy (copy.jpg) has as many pixels but is lossy")
    assert reason(ev(bit_depth=16), MASTER) == (
        "bit_depth", "it has more bits per channel: 16 against 8 (copy.jpg)")
    assert reason(MASTER, GREY) == (
        "colour", "it is in colour; the next best copy (copy.jpg) is otherwise as good but greyscale")
    assert reason(ev(lossless=False, quality=90), Q60) == (
        "jpeg_quality", "it has the higher quality: JPEG quality 90 against JPEG quality 60 (copy.jpg)")
    assert reason(ev(date="1936-05-01"), MASTER) == (
        "capture_date", "it has the earliest known capture date: 1936-05-01 against unknown (copy.jpg)")
    assert reason(ev(rights="http://rightsstatements.org/vocab/InC/1.0/"), MASTER) == (
        "rights_known", "its rights statement is known; the next best copy's (copy.jpg) is unknown")
    assert reason(SMALL, MATTED, derived=True) == (
        "not_derived", "it is the full picture; the next best copy (copy.jpg) is a crop of another copy or in a "
                       "mat/border")
    assert reason(MASTER, MASTER) == (
        "tie_break", "it and the next best copy (copy.jpg) are equal on every count; a fixed tie-break picked it")
    d = choose_master([Candidate("m", "a", MASTER, 0), Candidate("n", "b", MASTER, 1)])
    assert (d.deciding_rule, wording.keep_reason(d, names)) == (
        "custodial_priority", "its holder has the higher custodial priority than the next best copy's (copy.jpg)")
    d = choose_master([Candidate("m", "a", MASTER, 0)])
    assert wording.keep_reason(d, names) == "it is the only copy"


def test_facts():
    assert wording.facts(MASTER) == "6000\u00d74000, lossless, colour"
    assert wording.facts(ev(bit_depth=16, channels=1)) == "6000\u00d74000, lossless, 16-bit, greyscale"
    assert wording.facts(SMALL) == "1024\u00d7683, JPEG quality 85, colour"
