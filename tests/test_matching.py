"""The matching rule (``dedup.matching.link``) on hand-built records and on real pictures
(placements by keypoints), and the candidate index behind ``find_links`` checked against
comparing every pair of real images."""

from __future__ import annotations

import hashlib
import itertools
import math
import random
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image, ImageDraw, ImageEnhance, ImageFont

from dedup import alignment
from dedup.candidates import CandidateIndex
from dedup.fingerprint import points as kp
from dedup.fingerprint.points import Points
from dedup.matching import (
    DEFAULT_RULE,
    EDIT_DISTANCE,
    EDIT_DISTANCE_SMALL,
    FAINT_COLOUR,
    MIN_TURN,
    Link,
    Rule,
    find_links,
    hashes,
    indexed_agreement,
    label,
    link,
    relation_name,
)
from dedup.node.imaging import read_image
from dedup.node.scan import to_record
from dedup.v1 import asset_pb2, statements_pb2

R = statements_pb2
RULE = DEFAULT_RULE


def flip(value: bytes, bits: int, seed: int = 0) -> bytes:
    """``value`` with exactly ``bits`` distinct bits flipped."""
    out = bytearray(value)
    for bit in random.Random(seed).sample(range(8 * len(value)), bits):
        out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def flip_kp(value: bytes, bits: int, seed: int = 0) -> bytes:
    """A keypoint hash (8 bytes) with exactly ``bits`` distinct bits flipped, none in its first
    16-bit quarter: a correspondence the candidate index finds by that band."""
    return value[:2] + flip(value[2:], bits, seed)


def spread(value: bytes, bits: int) -> bytes:
    """A hash with ``bits`` bits flipped, some in each aligned 16-bit piece once ``bits`` is at
    least the number of pieces (4 in a keypoint hash, 16 in a dct256 hash)."""
    out = bytearray(value)
    pieces = len(value) // 2
    for k in range(bits):
        bit = 16 * (k % pieces) + k // pieces
        out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


#: A keypoint: (64-bit hash, x, y) in units of the picture's long side; all share one scale.
Point = tuple[int, float, float]
SIGMA = 0.02


def keypoints(pts: list[Point], width: float = 1.0, height: float = 0.8) -> bytes:
    """A kp64 v1 value holding ``pts`` in the given order (strongest first)."""
    return kp.to_bytes(Points(width, height, np.array([p[1] for p in pts]), np.array([p[2] for p in pts]),
                              np.full(len(pts), SIGMA), np.array([p[0] for p in pts], dtype=np.uint64)))


def random_points(rng: random.Random, n: int, width: float = 1.0, height: float = 0.8) -> list[Point]:
    return [(rng.getrandbits(64), rng.uniform(0.05, width - 0.05), rng.uniform(0.05, height - 0.05))
            for _ in range(n)]


def make(
    asset_id: str,
    *,
    dihedral: list[bytes] | None = None,
    low: bytes | None = None,
    low_whole: bytes | None = None,
    points: bytes | None = None,
    width: int = 1000,
    height: int = 800,
    frame: tuple[int, int] | None = None,
    skew_centidegrees: int = 0,
    channels: int = 3,
    quality: int = 80,
    luma_mean: int = 120,
    luma_spread: int = 50,
    saturation: int = 40,
    cast: tuple[int, int] = (-4, 6),
    sha256: bytes | None = None,
    pixel_digest: bytes | None = None,
    low_information: bool = False,
    drop: str | None = None,
) -> asset_pb2.Asset:
    """An asset whose unspecified hash parts are random (seeded by its id), so two assets
    only match through the parts a test sets. Its keypoints are eight random ones."""
    rng = random.Random(asset_id)
    dihedral = list(dihedral) if dihedral else [rng.randbytes(32) for _ in range(8)]
    dihedral += [rng.randbytes(32) for _ in range(8 - len(dihedral))]
    low = low if low is not None else rng.randbytes(8)
    low_whole = low_whole if low_whole is not None else rng.randbytes(8)
    points = points if points is not None else keypoints(random_points(rng, 8))
    records = {"dct256": (2, b"".join(dihedral)), "dct64": (2, low + low_whole), "kp64": (1, points)}
    fw, fh = frame or (width, height)
    return asset_pb2.Asset(
        asset_id=asset_id,
        sha256=sha256 or hashlib.sha256(b"file " + asset_id.encode()).digest(),
        pixel_digest=pixel_digest if pixel_digest is not None else hashlib.sha256(b"px " + asset_id.encode()).digest(),
        fingerprints=[asset_pb2.Fingerprint(algorithm=n, version=v, value=val)
                      for n, (v, val) in records.items() if n != drop],
        evidence=asset_pb2.Evidence(
            width=width, height=height, frame_width=fw, frame_height=fh, bit_depth=8, channels=channels,
            format_family=asset_pb2.FORMAT_FAMILY_LOSSY, jpeg_quality=quality,
            skew_centidegrees=skew_centidegrees, luma_mean=luma_mean, luma_spread=luma_spread,
            saturation=saturation, cast_blue=cast[0], cast_red=cast[1]),
        low_information=low_information,
    )


def parts(a: asset_pb2.Asset) -> tuple[list[bytes], bytes, bytes]:
    """(the eight dct256 hashes, the frame's dct64, the kp64 value)."""
    values = {fp.algorithm: fp.value for fp in a.fingerprints}
    d = values["dct256"]
    return [d[i:i + 32] for i in range(0, 256, 32)], values["dct64"][:8], values["kp64"]


def copy_of(a: asset_pb2.Asset, asset_id: str, *, up_bits: int = 0, **kw) -> asset_pb2.Asset:
    """A copy whose upright dct256 is ``up_bits`` from ``a``'s; all else random unless given."""
    d, _, _ = parts(a)
    return make(asset_id, dihedral=[flip(d[0], up_bits, seed=1)], **kw)


#: The variant that turns a picture's variant k back upright (DIHEDRAL_ORDER: the quarter
#: turns undo each other, every other variant undoes itself).
UNDO = (0, 3, 2, 1, 4, 5, 6, 7)


def turned_copy(a: asset_pb2.Asset, asset_id: str, k: int, bits: int, back: int) -> asset_pb2.Asset:
    """A copy of ``a`` turned by its variant k: the copy's upright hash ``bits`` from ``a``'s
    variant k and its variant undoing k ``back`` bits from ``a``'s upright hash (the two ways
    round differ by the bits a turn moves across the median). Each keeps its first 16-bit piece."""
    d, _, _ = parts(a)
    dihedral = parts(make(asset_id + "/other"))[0]
    dihedral[0] = flip_kp(d[k], bits, seed=k)
    dihedral[UNDO[k]] = flip_kp(d[0], back, seed=k + 8)
    return make(asset_id, dihedral=dihedral)


def rel(found: Link | None) -> str | None:
    return None if found is None else relation_name(found.relation)


def both(a: asset_pb2.Asset, b: asset_pb2.Asset, rule: Rule = RULE) -> Link | None:
    """The link, checked to be the same whichever asset comes first."""
    ab, ba = link(a, b, rule), link(b, a, rule)
    assert ab == ba
    return ab


# --- exact tiers and refusals --------------------------------------------------------------------


def test_identical_bytes_win_over_everything() -> None:
    a = make("a", low_information=True, drop="kp64")
    b = make("b", sha256=a.sha256, low_information=True)
    assert both(a, b) == Link(R.RELATION_IDENTICAL_BYTES, "sha256", 0)


def test_identical_pixels() -> None:
    a = make("a", low_information=True)
    b = make("b", pixel_digest=a.pixel_digest, low_information=True)
    assert both(a, b) == Link(R.RELATION_IDENTICAL_PIXELS, "pixel-sha256", 0)


def test_missing_pixel_digests_are_not_equal_pixels() -> None:
    a, b = make("a", pixel_digest=b""), make("b", pixel_digest=b"")
    assert both(a, b) is None


def unflagged(a: asset_pb2.Asset) -> asset_pb2.Asset:
    """A copy of ``a`` not marked low-information."""
    out = asset_pb2.Asset()
    out.CopyFrom(a)
    out.low_information = False
    return out


@pytest.mark.parametrize("flagged", ["a", "b", "both"])
def test_low_information_is_never_matched_perceptually(flagged: str) -> None:
    """Blank pages collide under every hash, so even equal fingerprints do not link them."""
    a = make("a", low_information=flagged in ("a", "both"))
    d, low, points = parts(a)
    b = make("b", dihedral=d, low=low, points=points, low_information=flagged in ("b", "both"))
    assert both(a, b) is None
    assert rel(both(unflagged(a), unflagged(b))) == "similar"


@pytest.mark.parametrize("drop", ["dct256", "dct64", "kp64"])
def test_incomplete_fingerprint_set_is_not_matched(drop: str) -> None:
    a = make("a")
    d, low, points = parts(a)
    assert both(a, make("b", dihedral=d, low=low, points=points, drop=drop)) is None


@pytest.mark.parametrize("points", [b"\x01\x00\x00\xcd" + bytes(5), bytes.fromhex("00ff00cd")],
                         ids=["part of a point", "bad extent"])
def test_malformed_keypoints_are_an_incomplete_set(points: bytes) -> None:
    """A kp64 value of the wrong shape is no fingerprint set: not even equal global hashes link."""
    a = make("a")
    d, low, _ = parts(a)
    assert both(a, make("b", dihedral=d, low=low, points=points)) is None


# --- whole picture -----------------------------------------------------------------------------------


def test_whole_picture_within_the_threshold() -> None:
    a = make("a")
    assert both(a, copy_of(a, "b", up_bits=EDIT_DISTANCE - 1)) == Link(R.RELATION_SIMILAR, "dct256", EDIT_DISTANCE - 1)
    # Farther apart with no change of tone or framing to explain it: an edit in one place.
    assert both(a, copy_of(a, "c", up_bits=RULE.whole)) == Link(R.RELATION_EDITED, "dct256", RULE.whole)
    assert both(a, copy_of(a, "d", up_bits=RULE.whole + 1)) is None


def test_a_whole_picture_match_shares_a_band() -> None:
    """Within the distance, the two hashes must also be equal on one of their sixteen 16-bit
    pieces, upright or turned; a copy unlike in every piece is left to the other rules."""
    a = make("a")
    d, _, _ = parts(a)
    assert both(a, make("b", dihedral=[spread(d[0], 16)])) is None
    kept = bytearray(spread(d[0], 17))
    kept[0:2] = d[0][0:2]  # the first piece equal again: 15 pieces differ, by 16 bits in all
    found = both(a, make("c", dihedral=[bytes(kept)]))
    assert (found.algorithm, found.distance) == ("dct256", 15)
    back = flip_kp(d[0], 4)  # the copy's variant undoing the turn, near a's upright hash
    assert both(a, make("e", dihedral=[spread(d[3], RULE.whole), back])) is None
    kept = bytearray(spread(d[3], RULE.whole))
    kept[30:32] = d[3][30:32]
    assert rel(both(a, make("f", dihedral=[bytes(kept), back]))) == "rotated_mirrored"


@pytest.mark.parametrize("k", range(1, 8))
def test_rotated_or_mirrored_copy(k: int) -> None:
    """One side's variant k within ``whole`` of the other's upright hash, and the other way
    round within ``whole_turned_back``: labelled rotated_mirrored at the nearer distance, in
    either order. Farther either way, or near one way only, it is no match."""
    a = make("a")
    b = turned_copy(a, "b", k, RULE.whole, RULE.whole_turned_back)
    assert link(a, b) == Link(R.RELATION_ROTATED_MIRRORED, "dct256", RULE.whole)
    assert link(b, a) == link(a, b)
    assert both(a, turned_copy(a, "c", k, RULE.whole_turned_back, RULE.whole)) == link(a, b)
    assert both(a, turned_copy(a, "d", k, RULE.whole + 1, RULE.whole + 1)) is None
    assert both(a, turned_copy(a, "e", k, RULE.whole, RULE.whole_turned_back + 1)) is None
    d, _, _ = parts(a)
    assert both(a, make("f", dihedral=[flip_kp(d[k], 2)])) is None  # near one way round only


def test_upright_match_takes_precedence_over_a_variant() -> None:
    """A symmetric picture matches both ways; it is a copy, not a rotation."""
    a = make("a")
    d, _, _ = parts(a)
    b = make("b", dihedral=[flip(d[0], 4)] + [flip(v, 1) for v in d[1:]])
    assert both(a, b) == Link(R.RELATION_SIMILAR, "dct256", 4)


# --- local edits -----------------------------------------------------------------------------------


def test_local_edit_through_the_low_frequency_hash() -> None:
    a = make("a")
    _, low, _ = parts(a)
    b = copy_of(a, "b", up_bits=RULE.whole_loose, low=flip(low, RULE.low))
    assert both(a, b) == Link(R.RELATION_EDITED, "dct64", RULE.low)
    assert both(a, copy_of(a, "c", up_bits=RULE.whole_loose, low=flip(low, RULE.low + 1))) is None
    assert both(a, copy_of(a, "d", up_bits=RULE.whole_loose + 1, low=low)) is None


# --- keypoints on hand-built values: the same framing ----------------------------------------------
#
# Two records whose global hashes are far apart and whose keypoints agree where they are: what
# a box or heavy damage leaves. No appearance check applies (both frame the same picture), so
# the placement's conditions can be met exactly.

#: Spread over the picture (1.0 x 0.8), strongest first.
SPREAD = [(0.12, 0.10), (0.85, 0.15), (0.50, 0.40), (0.20, 0.70), (0.80, 0.66), (0.35, 0.25), (0.65, 0.55),
          (0.45, 0.72)]
#: Within a fifth of the width and a quarter of the height (under points_coverage, 0.3).
CLUSTERED = [(0.30, 0.30), (0.50, 0.32), (0.40, 0.41), (0.33, 0.50), (0.48, 0.49), (0.41, 0.36)]


def framed_pair(agree: int, others: int, flips: int | list[int] = 0, where=SPREAD, seed: int = 0,
                degrees: float = 0.0, lows: tuple[bytes | None, bytes | None] = (None, None)):
    """Records a and b: ``agree`` keypoints at the same places with hashes ``flips`` bits apart
    (one count, or one per point), then ``others`` unrelated ones each; upright dct256 100 bits
    apart, dct64 unrelated unless ``lows`` gives their whole-picture dct64, so only the keypoints
    can link them. ``degrees`` turns b's shared keypoints about the picture's centre (a print
    rescanned askew, its corners cut to keep no scanner bed)."""
    rng = random.Random(seed)
    flips = [flips] * agree if isinstance(flips, int) else flips
    shared = [(rng.getrandbits(64), x, y) for x, y in where[:agree]]
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))

    def turned(x: float, y: float) -> tuple[float, float]:
        return (x, y) if not degrees else (0.5 + c * (x - 0.5) - s * (y - 0.4), 0.4 + s * (x - 0.5) + c * (y - 0.4))

    moved = [(int.from_bytes(flip_kp(h.to_bytes(8, "big"), f, seed=k), "big"), *turned(x, y))
             for k, ((h, x, y), f) in enumerate(zip(shared, flips))]
    a = make("a", points=keypoints(shared + random_points(rng, others)), low_whole=lows[0])
    return a, copy_of(a, "b", up_bits=100, points=keypoints(moved + random_points(rng, others)), low_whole=lows[1])


def test_same_framing_by_keypoints_is_an_edit() -> None:
    """The link's distance is the agreeing keypoints' median hash distance."""
    a, b = framed_pair(5, 5, flips=3)
    assert both(a, b) == Link(R.RELATION_EDITED, "kp64", 3)
    a, b = framed_pair(7, 0, flips=[0, 1, 2, 4, 6, 6, 7])
    assert both(a, b) == Link(R.RELATION_EDITED, "kp64", 4)


def test_a_placement_needs_points_inliers_agreeing_keypoints() -> None:
    """Four agreeing keypoints of four are under points_inliers; a picture of few keypoints
    may place with fewer, but only when its appearance agrees (here it does not)."""
    a, b = framed_pair(RULE.points_inliers - 1, 0)
    assert both(a, b) is None
    assert rel(both(a, b, Rule(points_inliers=RULE.points_inliers - 1))) == "edited"


#: Points along a band: across the picture, within 0.175 of its 0.8 height.
BAND = [(0.05 + 0.12 * k, 0.40 + 0.025 * k) for k in range(8)]
#: Points above and below the band, so that the inner picture's keypoints spread over 0.71 of it.
ABOVE_BELOW = [(0.10, 0.05), (0.90, 0.75), (0.50, 0.06), (0.30, 0.74), (0.70, 0.05), (0.55, 0.76),
               (0.20, 0.07), (0.80, 0.73)]


def band_pair(agree: int):
    """Records a and b framing the same picture: ``agree`` keypoints along BAND agree, the
    eight of ABOVE_BELOW are at the same places with unrelated hashes."""
    rng = random.Random(3)
    shared = [(rng.getrandbits(64), x, y) for x, y in BAND[:agree]]
    a = make("a", points=keypoints(shared + [(rng.getrandbits(64), x, y) for x, y in ABOVE_BELOW]))
    return a, copy_of(a, "b", up_bits=100,
                      points=keypoints(shared + [(rng.getrandbits(64), x, y) for x, y in ABOVE_BELOW]))


def _coverage(a, b) -> float:
    ha, hb = hashes(a), hashes(b)
    al = alignment.align(ha.keypoints, hb.keypoints, RULE.points, RULE.points_tolerance)
    return alignment.placement(al, ha.keypoints, hb.keypoints, RULE.points_margin).coverage


def test_many_agreeing_keypoints_along_a_band_place_a_picture() -> None:
    """A horizon or a street: the agreeing keypoints span the picture's width but little of its
    height. points_band_inliers (7) of them need only points_band_coverage (0.18) of it; fewer
    need points_coverage (0.3), as a shared stamp of a few points never spans a picture."""
    agree = RULE.points_band_inliers
    a, b = band_pair(agree)
    assert RULE.points_band_coverage <= _coverage(a, b) < RULE.points_coverage
    assert both(a, b) == Link(R.RELATION_EDITED, "kp64", 0)
    assert both(a, b, Rule(points_band_inliers=agree + 1)) is None
    assert both(a, b, Rule(points_band_coverage=RULE.points_coverage)) is None
    a, b = band_pair(agree - 1)
    assert _coverage(a, b) < RULE.points_band_coverage and both(a, b) is None


#: Three points spread over most of the picture's width and height.
FEW_SPREAD = [(0.10, 0.08), (0.90, 0.40), (0.45, 0.74)]


def test_a_picture_of_few_keypoints_places_with_fewer_when_its_appearance_agrees() -> None:
    """A map or a flat graphic makes few blobs: three agreeing keypoints of at most points_few
    (16) place it, when they are a third of them, spread over half of it, and its appearance
    agrees; never on the keypoints alone."""
    whole = bytes(range(8))
    alike, unlike = (whole, whole), (whole, bytes(v ^ 0xFF for v in whole))
    n = RULE.points_few_inliers
    a, b = framed_pair(n, RULE.points_few - n, lows=alike)
    assert n / RULE.points_few < RULE.points_few_support  # so the share decides below
    assert both(a, b) is None
    a, b = framed_pair(n, 6, where=FEW_SPREAD, lows=alike)  # 3 of 9 agree: a third
    assert both(a, b) == Link(R.RELATION_EDITED, "kp64", 0)
    assert both(a, b, Rule(points_few=8)) is None  # 9 keypoints are not few
    assert both(a, b, Rule(points_few_coverage=1.01)) is None
    assert both(*framed_pair(n, 6, where=FEW_SPREAD, lows=unlike)) is None
    assert both(*framed_pair(n - 1, 4, where=FEW_SPREAD, lows=alike)) is None


def test_the_same_framing_needs_most_keypoints_to_agree() -> None:
    """5 of 16 keypoints (0.31) agree: enough; 5 of 17 (0.29) are under points_same_support."""
    assert 5 / 17 < RULE.points_same_support <= 5 / 16
    a, b = framed_pair(5, 11)
    assert rel(both(a, b)) == "edited"
    a, b = framed_pair(5, 12)
    assert both(a, b) is None


def test_a_turned_copy_of_the_same_framing_is_judged_as_a_crop() -> None:
    """A rescan turns the picture, which moves many keypoints' hashes: 5 agreeing of 21 (0.24,
    under points_same_support) links as rescanned when the pictures' appearance agrees where
    they are placed, as for a crop; unturned, or with unrelated appearance, it does not."""
    assert RULE.points_support <= 5 / 21 < RULE.points_same_support
    whole = random.Random(7).randbytes(8)
    alike, unlike = (whole, whole), (whole, bytes(v ^ 0xFF for v in whole))  # a negative: nothing alike
    a, b = framed_pair(5, 16, degrees=2.0, lows=alike)
    found = both(a, b)
    assert rel(found) == "rescanned" and found.algorithm == "kp64"
    a, b = framed_pair(5, 16, degrees=2.0, lows=unlike)
    assert both(a, b) is None
    a, b = framed_pair(5, 16, degrees=0.0, lows=alike)
    assert both(a, b) is None
    # Turned less than MIN_TURN is no turn: the same framing's own condition holds.
    a, b = framed_pair(5, 16, degrees=MIN_TURN / 2, lows=alike)
    assert both(a, b) is None


def test_agreeing_keypoints_must_spread_over_the_picture() -> None:
    """Six keypoints within a fifth of the picture's width (a logo, a stamp), where its other
    keypoints spread over the whole picture, place nothing. Coverage is measured against the
    extent of the inner picture's own keypoints (an object on plain ground has them in one part)."""
    a, b = framed_pair(6, 6, where=CLUSTERED)
    assert both(a, b) is None
    assert rel(both(a, b, Rule(points_coverage=0.15))) == "edited"
    # The same six alone: they are all the detail the picture has, and they cover it.
    a, b = framed_pair(6, 0, where=CLUSTERED)
    assert rel(both(a, b)) == "edited"


def test_keypoint_hashes_within_the_index_distance_are_the_precondition() -> None:
    """Two correspondences within points_index (8) are needed before any placement; the rest
    may be as far as points (10)."""
    a, b = framed_pair(6, 0, flips=[RULE.points_index] * 2 + [RULE.points] * 4)
    assert both(a, b) == Link(R.RELATION_EDITED, "kp64", RULE.points)
    a, b = framed_pair(6, 0, flips=[RULE.points_index] + [RULE.points_index + 1] * 5)
    assert both(a, b) is None
    # Beyond points, a pair of keypoints is no correspondence: four are left, one too few.
    a, b = framed_pair(6, 0, flips=[0, 0, 0, 0, RULE.points + 1, RULE.points + 1])
    assert both(a, b) is None


#: The part of a 1.0 x 0.8 picture that ``cropped_pair``'s crop keeps: (left, top, right, bottom).
WINDOW = (0.1, 0.05, 0.85, 0.75)


def cropped_pair(agree: int):
    """Records a and b, b a crop of a (``WINDOW``): ``agree`` keypoints of a on a grid over the
    window, found in b at their places; global hashes and dct64 unrelated, so only the
    keypoints can link them."""
    rng = random.Random(3)
    left, top, right, bottom = WINDOW
    grid = [(left + (right - left) * (i + 0.5) / 4, top + (bottom - top) * (j + 0.5) / 4) for j in range(4) for i in range(4)]
    shared = [(rng.getrandbits(64), x, y) for x, y in grid[:agree]]
    side = right - left
    a = make("a", points=keypoints(shared))
    inner = [(h, (x - left) / side, (y - top) / side) for h, x, y in shared]
    b = make("b", points=keypoints(inner, 1.0, (bottom - top) / side), width=750, height=700)
    return a, b


def test_a_firm_placement_needs_no_appearance_check() -> None:
    """The appearance check (rebuilt from 64 sign bits a picture) is waived when the keypoints
    alone are beyond doubt: points_firm agreeing, spread over the crop. With fewer, a crop whose
    appearance does not agree is no crop."""
    never = Rule(points_appearance=1.01)  # no appearance passes
    a, b = cropped_pair(RULE.points_firm)
    found = both(a, b, never)
    assert (rel(found), found.algorithm, found.crop) == ("cropped", "kp64", 2)
    assert found.kept == pytest.approx(0.75 * 0.7 / 0.8, abs=0.01)
    assert both(a, b, Rule(points_appearance=1.01, points_firm=RULE.points_firm + 1)) is None
    a, b = cropped_pair(RULE.points_firm - 1)
    assert both(a, b, never) is None
    assert rel(both(a, b, Rule(points_appearance=-1.0))) == "cropped"


def test_one_shared_keypoint_is_no_evidence() -> None:
    a, b = framed_pair(1, 8)
    assert both(a, b) is None


def test_trimmed_differently_is_not_an_edit() -> None:
    """The same framing by keypoints, frames trimmed differently (4 points of content apart) and
    the untrimmed pictures' dct64 within RETRIM_LOW (0: a faint watermark moves it by 2): the
    whole-picture label, not an edit."""
    a, b0 = framed_pair(6, 2)
    whole = random.Random(3).randbytes(8)
    a = make("a", points=parts(a)[2], low_whole=whole, frame=(1000, 800))
    copies = {bits: copy_of(a, f"b{bits}", up_bits=100, points=parts(b0)[2], low_whole=flip(whole, bits),
                            frame=(960, 800)) for bits in (0, 1)}
    assert rel(both(a, copies[0])) == "similar"
    assert rel(both(a, copies[1])) == "edited"
    # Trimmed alike, the untrimmed pictures' agreement does not matter: an edit.
    same_trim = copy_of(a, "c", up_bits=100, points=parts(b0)[2], low_whole=whole)
    assert rel(both(a, same_trim)) == "edited"


def test_indexed_agreement() -> None:
    """Two keypoints of each side among the 32 strongest, within points_index of one another,
    one of those pairs equal on one of their four 16-bit quarters."""
    rng = random.Random(5)
    h = [rng.getrandbits(64) for _ in range(80)]

    def pts(hs: list[int]) -> Points:
        return kp.from_bytes(keypoints([(v, 0.5, 0.4) for v in hs]))

    def moved(v: int, bits: int, how=flip_kp) -> int:
        return int.from_bytes(how(v.to_bytes(8, "big"), bits), "big")

    assert indexed_agreement(pts(h[:10]), pts([h[0], moved(h[1], RULE.points_index)] + h[20:28]), RULE)
    # One keypoint of a close to two of b: only one on a's side.
    assert not indexed_agreement(pts(h[:10]), pts([h[0], h[0] ^ 1] + h[20:28]), RULE)
    far = moved(h[1], RULE.points_index + 1)
    assert not indexed_agreement(pts(h[:10]), pts([h[0], far] + h[20:28]), RULE)
    # Both correspondences within points_index, neither equal on a quarter: no band in common.
    for bits in (4, RULE.points_index):
        apart = [moved(h[0], bits, spread), moved(h[1], bits, spread)]
        assert not indexed_agreement(pts(h[:10]), pts(apart + h[20:28]), RULE)
        # One of the two equal on a quarter is enough.
        assert indexed_agreement(pts(h[:10]), pts([h[0], apart[1]] + h[20:28]), RULE)
    # Whichever quarter is the one kept: two bits differ in each of the other three.
    apart = moved(h[0], RULE.points_index, spread)
    for quarter in range(4):
        mask = sum(0b101 << (16 * q + 3) for q in range(4) if q != quarter)
        assert indexed_agreement(pts(h[:10]), pts([apart, h[1] ^ mask] + h[20:28]), RULE)
        assert not indexed_agreement(pts(h[:10]), pts([apart, h[1] ^ mask ^ (1 << 16 * quarter)] + h[20:28]), RULE)


# --- placements on real pictures ---------------------------------------------------------------------
#
# Small (384 px) copies of scikit-image's photographs, written and read as a node does.


def small(name: str, side: int = 384) -> Image.Image:
    im = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
    return im.resize((im.width * side // max(im.size), im.height * side // max(im.size)), Image.Resampling.LANCZOS)


@pytest.fixture
def record(tmp_path: Path):
    """``record(name, image, **save options)``: the record of the file a node would read."""
    def make_record(name: str, im: Image.Image, **options) -> asset_pb2.Asset:
        path = tmp_path / (name + (".jpg" if "quality" in options else ".png"))
        im.save(path, **options)
        return to_record(name, read_image(path))

    return make_record


#: (left, top, right, bottom) of the part kept, as shares of the width and height.
CROPS = {
    "one side": (0.3, 0.0, 1.0, 1.0),
    "two sides": (0.25, 0.25, 1.0, 1.0),
    "a corner": (0.0, 0.0, 0.6, 0.6),
    "off centre": (0.1, 0.2, 0.7, 0.85),
}


@pytest.mark.parametrize("crop", list(CROPS))
@pytest.mark.parametrize("photo", ["astronaut", "chelsea"])
def test_a_crop_is_placed_in_its_original(record, photo: str, crop: str) -> None:
    """However it was cut, a crop is linked as cropped by its keypoints, with the share of the
    original it keeps and which of the two is the crop."""
    im = small(photo)
    w, h = im.size
    left, top, right, bottom = CROPS[crop]
    box = (round(w * left), round(h * top), round(w * right), round(h * bottom))
    kept = (box[2] - box[0]) * (box[3] - box[1]) / (w * h)
    original = record(photo, im)
    cut = record(f"{photo}-{crop}", im.crop(box), quality=90)
    found = both(cut, original)
    assert (rel(found), found.algorithm) == ("cropped", "kp64")
    assert found.kept == pytest.approx(kept, abs=0.02)
    assert found.distance <= RULE.points
    assert link(cut, original).crop == 1 and link(original, cut).crop == 2


def with_border(im: Image.Image, width: int, tone: int) -> Image.Image:
    out = Image.new("RGB", (im.width + 2 * width, im.height + 2 * width), (tone,) * 3)
    out.paste(im, (width, width))
    return out


@pytest.mark.parametrize(("photo", "tone", "ground"), [
    ("chelsea", 255, (0.0, 0.0, 0.15, 1.0)),  # plain white ground down the left side
    ("astronaut", 0, (0.0, 0.8, 1.0, 1.0)),  # plain black ground along the bottom
])
def test_a_border_meeting_plain_ground_of_its_tone_is_a_border(record, photo: str, tone: int, ground) -> None:
    """The trim cannot tell the border from the picture's own plain ground there, so the frames
    differ and the keypoints decide: the outer picture is flat all around the inner one."""
    im = small(photo)
    w, h = im.size
    im.paste((tone,) * 3, (round(w * ground[0]), round(h * ground[1]), round(w * ground[2]), round(h * ground[3])))
    plain = record(photo, im)
    bordered = record(f"{photo}-bordered", with_border(im, 20, tone), quality=92)
    assert (plain.evidence.frame_width, plain.evidence.frame_height) == (w, h)
    assert (bordered.evidence.frame_width, bordered.evidence.frame_height) != (w, h)
    found = both(bordered, plain)
    assert (rel(found), found.algorithm, found.kept) == ("bordered", "kp64", 1.0)


@pytest.mark.parametrize("border_tone", [0, 128])
def test_a_border_of_another_tone_around_plain_ground_is_a_border(record, border_tone: int) -> None:
    """A picture on plain white ground all round, framed by a band of another tone: the outer
    copy's flat ground ends where the inner begins although the inner starts with flat ground
    there, so the band is a border, not more of the inner's ground cut away."""
    im = small("astronaut")
    w, h = im.size
    grounded = Image.new("RGB", (round(w * 1.3), round(h * 1.3)), (255, 255, 255))
    grounded.paste(im.resize((w, h)), (round(w * 0.15), round(h * 0.15)))
    gw, gh = grounded.size
    plain = record("grounded", grounded)
    assert min(plain.evidence.flat_top, plain.evidence.flat_left) > 50  # its own plain ground
    bordered = record("banded", with_border(grounded, round(gw * 0.05), border_tone), quality=92)
    found = both(bordered, plain)
    assert (rel(found), found.algorithm) == ("bordered", "kp64")
    flat = bordered.evidence
    assert max(flat.flat_top, flat.flat_bottom, flat.flat_left, flat.flat_right) < 60  # the band alone


@pytest.mark.parametrize("degrees", [2.5, -2.0])
def test_a_turned_copy_cropped_to_no_background_is_a_rescan(record, degrees: float) -> None:
    """Turned on the scanner bed and cut inside the picture, so the frame's deskew sees no bed."""
    im = small("astronaut")
    w, h = im.size
    turned = im.rotate(degrees, resample=Image.Resampling.BICUBIC).crop(
        (round(w * 0.08), round(h * 0.08), round(w * 0.92), round(h * 0.92)))
    original, rescan = record("astronaut", im), record("rescan", turned, quality=90)
    assert rescan.evidence.skew_centidegrees == 0
    found = both(rescan, original)
    assert (rel(found), found.algorithm) == ("rescanned", "kp64")
    assert found.kept == pytest.approx(0.84 * 0.84, abs=0.02)


@pytest.mark.parametrize("photo", ["camera", "astronaut", "chelsea"])
def test_side_by_side_parts_of_one_picture_are_not_copies(record, photo: str) -> None:
    """Two frames of one scene, each 30% of its width shared with the other (neighbouring
    shots, a stereo pair): their keypoints agree, but neither picture lies inside the other."""
    im = small(photo)
    w, h = im.size
    part = round(w / 1.7)  # 2 part - w = 0.3 part
    left, right = record("left", im.crop((0, 0, part, h))), record("right", im.crop((w - part, 0, w, h)))
    pl, pr = hashes(left).keypoints, hashes(right).keypoints
    al = alignment.align(pl, pr, RULE.points, RULE.points_tolerance)
    assert al is not None and al.inliers >= RULE.points_inliers
    # Right's x is left's less the offset between them (in the parts' long-side units).
    assert (al.scale, al.tx) == (pytest.approx(1.0, abs=0.01), pytest.approx(-(w - part) / max(part, h), abs=0.01))
    assert alignment.placement(al, pl, pr, RULE.points_margin) is None
    assert both(left, right) is None


def test_a_shared_element_is_no_copy(record) -> None:
    """The same sprite (a fifth of each picture) pasted at one place into two different pictures
    of one shape: its keypoints agree on a placement, but they cover too little of either."""
    sprite = Image.fromarray(skimage.data.astronaut()).crop((150, 20, 400, 270))
    hosts = []
    for photo in ("chelsea", "coffee"):
        im = small(photo)
        w, h = im.size
        side = round((0.2 * w * h) ** 0.5)
        im.paste(sprite.resize((side, side), Image.Resampling.LANCZOS), (round(w * 0.1), round(h * 0.1)))
        hosts.append(record(photo, im, quality=90))
    a, b = (hashes(r).keypoints for r in hosts)
    assert (a.width, a.height) == (b.width, pytest.approx(b.height, abs=0.01))
    al = alignment.align(a, b, RULE.points, RULE.points_tolerance)
    assert al is not None and al.inliers >= RULE.points_inliers and al.scale == pytest.approx(1.0, abs=0.02)
    assert both(*hosts) is None


@pytest.mark.parametrize("photo", ["camera", "astronaut"])
def test_a_dark_picture_with_a_bright_caption_box_is_an_edit(record, photo: str) -> None:
    """The box moves the global hashes of a dark picture beyond rules 4 and 5; the keypoints
    elsewhere stay where they were."""
    dark = ImageEnhance.Brightness(small(photo)).enhance(0.3)
    w, h = dark.size
    captioned = dark.copy()
    draw = ImageDraw.Draw(captioned)
    bw, bh = round(w * 0.6), round(h * 0.13)
    x, y = (w - bw) // 2, h - bh - round(h * 0.04)
    draw.rectangle((x, y, x + bw, y + bh), fill=(250, 250, 250))
    draw.text((x + bw // 2, y + bh // 2), "Harbour, 1932", fill=(10, 10, 10),
              font=ImageFont.load_default(size=int(bh * 0.6)), anchor="mm")
    original, edited = record(photo, dark), record(f"{photo}-caption", captioned, quality=90)
    ha, hb = hashes(original).ints, hashes(edited).ints
    assert (ha.dihedral[0] ^ hb.dihedral[0]).bit_count() > RULE.whole and (ha.low ^ hb.low).bit_count() > RULE.low
    found = both(edited, original)
    assert (rel(found), found.algorithm) == ("edited", "kp64")
    assert found.distance <= 4


# --- labels ----------------------------------------------------------------------------------------------

#: Evidence differences in precedence order; each one given alone decides the label.
DIFFERENCES: list[tuple[str, dict]] = [
    ("rescanned", {"skew_centidegrees": 250}),
    ("bordered", {"frame": (900, 720)}),
    ("greyscale", {"channels": 1}),
    ("cropped", {"width": 900}),
    ("tone_variant", {"luma_mean": 140}),
    ("reencoded", {"quality": 60}),
]


def _with(changes: list[dict]) -> dict:
    out: dict = {}
    for c in changes:
        out.update(c)
    return out


@pytest.mark.parametrize("first", range(len(DIFFERENCES)))
def test_label_precedence_for_whole_picture_matches(first: int) -> None:
    """With every difference from ``first`` on present, the first one names the relation."""
    a = make("a")
    changes = _with([c for _, c in DIFFERENCES[first:]])
    b = copy_of(a, "b", up_bits=4, **changes)
    assert rel(both(a, b)) == DIFFERENCES[first][0]


def test_label_similar_when_nothing_differs() -> None:
    a = make("a")
    assert rel(both(a, copy_of(a, "b", up_bits=4))) == "similar"


@pytest.mark.parametrize(("first", "expected"), [(0, "rescanned"), (1, "bordered"), (2, "greyscale"), (3, "edited")])
def test_edited_ranks_below_greyscale_and_above_crop_tone_and_encoding(first: int, expected: str) -> None:
    a = make("a")
    _, low, _ = parts(a)
    changes = _with([c for _, c in DIFFERENCES[first:]])
    b = copy_of(a, "b", up_bits=60, low=low, **changes)
    found = both(a, b)
    assert (rel(found), found.algorithm) == (expected, "dct64")


def test_label_tone_and_encoding_details() -> None:
    base = make("a").evidence

    def ev(**changes) -> asset_pb2.Evidence:
        return make("b", **changes).evidence

    assert label(base, ev()) == R.RELATION_SIMILAR
    assert label(base, ev(luma_mean=128)) == R.RELATION_SIMILAR  # 8 levels: within tolerance
    assert label(base, ev(luma_mean=129)) == R.RELATION_TONE_VARIANT
    assert label(base, ev(luma_spread=57)) == R.RELATION_TONE_VARIANT  # 7/57 > 12%
    assert label(base, ev(saturation=49)) == R.RELATION_TONE_VARIANT
    # Saturation of a grey copy says nothing about tone; its channel count decides.
    assert label(base, ev(channels=1, saturation=0)) == R.RELATION_GREYSCALE
    assert label(base, ev(width=500, height=400, frame=(500, 400))) == R.RELATION_REENCODED
    assert label(base, ev(width=1020, frame=(1020, 800))) == R.RELATION_REENCODED  # 2% aspect change
    assert label(base, ev(quality=81)) == R.RELATION_REENCODED


def test_label_saturation_compares_relatively() -> None:
    """Saturation differs when apart by more than 15% of the larger, and by 2 levels at least;
    by more than 30%, clearly: only a clear change explains hashes 16 or more apart."""
    def sat(a: int, b: int, distance: int = 0) -> int:
        return label(make("a", saturation=a).evidence, make("b", saturation=b).evidence, distance=distance)

    assert sat(40, 46) == R.RELATION_SIMILAR  # 6 <= 6.9
    assert sat(40, 48) == R.RELATION_TONE_VARIANT  # 8 > 7.2
    assert sat(100, 117) == R.RELATION_SIMILAR  # 17 <= 17.55: a saturated picture moves more
    assert sat(100, 118) == R.RELATION_TONE_VARIANT
    assert sat(2, 3) == R.RELATION_SIMILAR  # at least 2 levels, however pale
    assert sat(2, 4) == R.RELATION_TONE_VARIANT
    # A slight change and hashes far apart: an edit (a coloured mark) moved both.
    assert sat(40, 48, distance=16) == R.RELATION_EDITED
    assert sat(40, 48, distance=15) == R.RELATION_TONE_VARIANT
    assert sat(40, 60, distance=16) == R.RELATION_TONE_VARIANT  # 20 > 30% of 60: clear


@pytest.mark.parametrize(("cast", "expected"), [
    ((-4, 6), "similar"), ((-2, 8), "similar"), ((-6, 4), "similar"),
    ((-1, 6), "tone_variant"), ((-4, 9), "tone_variant"), ((-7, 3), "tone_variant"),
])
def test_label_a_colour_cast_is_a_tone_variant(cast: tuple[int, int], expected: str) -> None:
    """Re-encoding moves the mean cast by a level or two; a white balance or toning by 3 or more
    on either axis (base: blue -4, red 6)."""
    base = make("a").evidence
    assert relation_name(label(base, make("b", cast=cast).evidence)) == expected
    # A greyscale copy has no cast to compare: its channel count decides.
    assert label(base, make("g", cast=(0, 0), channels=1, saturation=0).evidence) == R.RELATION_GREYSCALE
    assert label(make("g1", cast=(0, 0), channels=1).evidence, make("g2", cast=(9, 9), channels=1).evidence) == (
        R.RELATION_SIMILAR)


def test_label_edit_distance() -> None:
    """A whole-picture match this far apart with nothing else changed is an edit; a copy under
    40% of the other's size needs EDIT_DISTANCE_SMALL."""
    base = make("a").evidence
    same, small_copy = make("b").evidence, make("s", width=390, height=312).evidence
    assert label(base, same, distance=EDIT_DISTANCE - 1) == R.RELATION_SIMILAR
    assert label(base, same, distance=EDIT_DISTANCE) == R.RELATION_EDITED
    assert label(base, small_copy, distance=EDIT_DISTANCE_SMALL - 1) == R.RELATION_REENCODED
    assert label(base, small_copy, distance=EDIT_DISTANCE_SMALL) == R.RELATION_EDITED
    # 40% exactly is not small.
    assert label(base, make("f", width=400, height=320).evidence, distance=EDIT_DISTANCE) == R.RELATION_EDITED
    # A change of tone explains the distance: a tone variant, not an edit.
    assert label(base, make("t", luma_mean=140).evidence, distance=20) == R.RELATION_TONE_VARIANT
    assert label(base, make("c", cast=(-4, 10)).evidence, distance=20) == R.RELATION_TONE_VARIANT


def test_faint_colour_that_came_with_an_edit_is_the_edit() -> None:
    """A small coloured mark put on a black-and-white picture leaves its copy faintly colour
    (mean saturation 3 or less) and far from it: an edit. A conversion keeps the luma, so the
    hashes stay close: greyscale, however pale the colour picture was."""
    grey = make("g", channels=1, saturation=0, cast=(0, 0)).evidence
    marked = make("m", saturation=FAINT_COLOUR, cast=(0, 0)).evidence
    assert label(grey, marked, edited=True) == label(marked, grey, edited=True) == R.RELATION_EDITED
    assert label(grey, marked, distance=EDIT_DISTANCE) == R.RELATION_EDITED
    assert label(grey, marked, distance=EDIT_DISTANCE - 1) == R.RELATION_GREYSCALE
    assert label(grey, marked) == R.RELATION_GREYSCALE
    colour = make("c", saturation=FAINT_COLOUR + 1, cast=(0, 0)).evidence
    assert label(grey, colour, edited=True) == label(grey, colour, distance=20) == R.RELATION_GREYSCALE


def test_a_small_change_of_both_mean_and_spread_is_a_tone_change() -> None:
    """A gamma on a mostly bright picture moves its mean and its spread a little each (base:
    mean 120, limit 8; spread 50, limit 12%): together past 0.9 of their limits, each past 0.3,
    they tell a tone change that neither tells alone."""
    base = make("a").evidence

    def tone(mean: int, spread: int) -> str:
        return relation_name(label(base, make("b", luma_mean=mean, luma_spread=spread).evidence))

    assert tone(125, 50) == tone(120, 53) == "similar"  # 0.625 and 0.47 of their limits, alone
    assert tone(125, 53) == "tone_variant"  # together 1.1
    assert tone(124, 53) == "tone_variant"  # 0.5 + 0.47 = 0.97
    assert tone(123, 53) == "similar"  # 0.375 + 0.47 = 0.85
    assert tone(127, 51) == "similar"  # 0.875 + 0.16: the spread barely moved
    far = make("c", luma_mean=125, luma_spread=53).evidence
    assert label(base, far, distance=16) == R.RELATION_EDITED  # too slight to explain the distance
    assert label(base, make("d", luma_mean=129).evidence, distance=16) == R.RELATION_TONE_VARIANT


def test_label_precedence_of_greyscale_and_border_over_an_edit() -> None:
    base = make("a").evidence
    grey, bordered = make("g", channels=1).evidence, make("b", frame=(900, 720)).evidence
    assert label(base, grey, edited=True) == R.RELATION_GREYSCALE
    assert label(base, grey, distance=20) == R.RELATION_GREYSCALE
    assert label(base, bordered, edited=True) == R.RELATION_BORDERED
    assert label(base, bordered, distance=20) == R.RELATION_BORDERED
    # Keypoints showed the same framing: the frames' shares and shapes say nothing then.
    assert label(base, bordered, edited=True, same_framing=True) == R.RELATION_EDITED
    assert label(base, make("w", width=900, frame=(900, 800)).evidence, same_framing=True) == R.RELATION_REENCODED
    assert label(base, make("w", width=900, frame=(900, 800)).evidence) == R.RELATION_CROPPED
    # Skew still comes first.
    assert label(base, make("s", skew_centidegrees=120, channels=1).evidence, edited=True) == R.RELATION_RESCANNED


# --- candidate index -------------------------------------------------------------------------------------


def all_pairs(records: list[asset_pb2.Asset]) -> dict[tuple[int, int], Link]:
    out = {}
    for i, j in itertools.combinations(range(len(records)), 2):
        found = link(records[i], records[j])
        if found is not None:
            out[(i, j)] = found
    return out


def test_find_links_on_hand_built_tiers() -> None:
    """Every tier at its exact threshold is found without comparing all pairs."""
    a, framed = framed_pair(RULE.points_inliers, 3, flips=[RULE.points_index] * 2 + [RULE.points] * 3)
    d, low, _ = parts(a)
    records = [
        a,
        make("bytes", sha256=a.sha256),
        make("pixels", pixel_digest=a.pixel_digest),
        copy_of(a, "whole", up_bits=RULE.whole),
        # A copy turned upside down: its flip_ud variant (self-inverse) is the original's upright.
        make("variant", dihedral=[flip(d[5], RULE.whole), *parts(make("v"))[0][1:5], flip(d[0], RULE.whole)]),
        copy_of(a, "low", up_bits=RULE.whole_loose, low=flip(low, RULE.low)),
        # The same framing by keypoints: two of them within points_index, the rest within points.
        framed,
        make("unrelated"),
    ]
    expected = all_pairs(records)
    assert {(i, j) for i, j in expected if i == 0} == {(0, k) for k in range(1, 7)}
    assert expected[(0, 6)] == Link(R.RELATION_EDITED, "kp64", RULE.points)
    assert {(i, j): lk for i, j, lk in find_links(records)} == expected
    big_last = records[1:] + records[:1]
    assert {(i, j): lk for i, j, lk in find_links(big_last)} == all_pairs(big_last)


def test_find_links_finds_variants_whichever_comes_first() -> None:
    """The rule accepts 'a's variant k near b's upright' (and b's undoing k not far from a's);
    the index must find it in either order."""
    a = make("a")
    b = turned_copy(a, "b", 3, 0, RULE.whole_turned_back)
    assert rel(link(a, b)) == "rotated_mirrored"
    assert [(i, j) for i, j, _ in find_links([b, a])] == [(0, 1)]
    assert [(i, j) for i, j, _ in find_links([a, b])] == [(0, 1)]


def test_find_links_finds_a_turned_copy_listed_first(tmp_path: Path) -> None:
    """Real files: a 128 px JPEG q20 of skimage's brick turned 180 degrees. The copy's variant is
    26 bits from the original's upright hash, the original's variant 34 from the copy's."""
    brick = Image.fromarray(skimage.data.brick())
    brick.save(tmp_path / "brick.png")
    turned = brick.transpose(Image.Transpose.ROTATE_180).resize((128, 128), Image.Resampling.LANCZOS)
    turned.save(tmp_path / "turned.jpg", quality=20)
    original, copy = (to_record(p.name, read_image(p)) for p in (tmp_path / "brick.png", tmp_path / "turned.jpg"))
    assert link(copy, original) == Link(R.RELATION_ROTATED_MIRRORED, "dct256", 26)
    assert len(find_links([original, copy])) == 1
    assert len(find_links([copy, original])) == 1


def test_candidate_index_remove_and_replace() -> None:
    a = make("a")
    b = copy_of(a, "b", up_bits=2)
    index = CandidateIndex()
    index.add("a", a)
    assert index.candidates(b) == {"a"} and len(index) == 1
    index.remove("a")
    assert index.candidates(b) == set() and len(index) == 0
    index.add("a", make("other"))
    index.add("a", a)  # replaces the earlier record under the same key
    assert index.candidates(b) == {"a"} and len(index) == 1


def test_candidate_index_after_removals_and_replacements_equals_a_fresh_one() -> None:
    """Rows map back to assets through each asset's first row; after removals, replacements
    (also of the newest asset, and within one batch) and low-information assets, which have
    no rows in most indexes, the answers are those of an index built from the survivors."""
    rng = random.Random(7)
    originals = [make(f"o{k}") for k in range(12)]
    pool = originals + [copy_of(originals[k % 12], f"c{k}", up_bits=rng.randrange(0, 40)) for k in range(24)]
    flat = asset_pb2.Asset(asset_id="flat", sha256=bytes(32), pixel_digest=bytes(32), low_information=True)
    live: dict[str, asset_pb2.Asset] = {}
    index = CandidateIndex()
    for step in range(30):
        batch = {}
        for _ in range(rng.randrange(1, 5)):
            key = f"k{rng.randrange(20)}"
            batch[key] = flat if rng.random() < 0.15 else rng.choice(pool)
        index.add_many(list(batch.items()))
        live.update(batch)
        if step % 3 == 2 and live:
            gone = rng.choice(sorted(live))
            index.remove(gone)
            del live[gone]
    fresh = CandidateIndex()
    fresh.add_many(sorted(live.items()))
    queries = pool + [flat]
    assert index.candidates_many(queries) == fresh.candidates_many(queries)
    assert len(index) == len(live)
    assert [getattr(index, n).live for n in index._names] == [getattr(fresh, n).live for n in fresh._names]
    assert any(index.candidates_many(pool))  # the comparison is not between empty answers


def _real_copies(tmp: Path) -> list[Path]:
    """~40 files: bundled photographs and the copies archives hold of them."""
    out: list[Path] = []
    photos = ("camera", "astronaut", "coffee", "chelsea", "rocket", "coins", "moon", "immunohistochemistry")
    makers = [
        ("q50.jpg", lambda im: im.convert("RGB"), {"quality": 50}),
        ("half.png", lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS), {}),
        ("grey.jpg", lambda im: im.convert("L"), {"quality": 80}),
        ("cropl.png", lambda im: im.crop((round(im.width * 0.15), 0, im.width, im.height)), {}),
        ("cropc.jpg", lambda im: im.convert("RGB").crop((round(im.width * 0.08), round(im.height * 0.08),
                                                         round(im.width * 0.92), round(im.height * 0.92))),
         {"quality": 90}),
        ("rot90.png", lambda im: im.transpose(Image.Transpose.ROTATE_90), {}),
        ("mirror.jpg", lambda im: im.convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT), {"quality": 85}),
        ("border.png", lambda im: _bordered(im), {}),
    ]
    for n, name in enumerate(photos):
        im = Image.fromarray(getattr(skimage.data, name)())
        out.append(tmp / f"{name}.png")
        im.save(out[-1])
        # Four copies each, taking turns through the kinds of copy.
        for suffix, change, options in (makers[(n + k) % len(makers)] for k in range(4)):
            out.append(tmp / f"{name}-{suffix}")
            change(im).save(out[-1], **options)
    return out


def _bordered(im: Image.Image) -> Image.Image:
    b = round(0.05 * max(im.size))
    out = Image.new("RGB", (im.width + 2 * b, im.height + 2 * b), "white")
    out.paste(im.convert("RGB"), (b, b))
    return out


@pytest.fixture(scope="module")
def real_records(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], list[asset_pb2.Asset]]:
    paths = _real_copies(tmp_path_factory.mktemp("copies"))
    return [p.name for p in paths], [to_record(p.name, read_image(p)) for p in paths]


def test_find_links_equals_checking_every_pair_on_real_images(real_records) -> None:
    """The candidate index loses nothing: same pairs and links as the quadratic check,
    in the given order and reversed."""
    names, records = real_records
    assert len(records) == 40
    expected = all_pairs(records)
    assert {(i, j): lk for i, j, lk in find_links(records)} == expected
    backwards = records[::-1]
    assert {(i, j): lk for i, j, lk in find_links(backwards)} == all_pairs(backwards)
    # Every copy is linked to its original, and no link joins two photographs.
    photo = [n.split("-")[0].removesuffix(".png") for n in names]
    for i, j in expected:
        assert photo[i] == photo[j], (names[i], names[j])
    unlinked = {name for j, name in enumerate(names)
                if "-" in name and (names.index(f"{photo[j]}.png"), j) not in expected}
    # Every copy, the smooth rocket's centre crop (8% off each side) included, is linked.
    assert unlinked == set()
