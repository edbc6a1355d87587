"""The matching rule (``dedup.matching.link``) on hand-built records, and the candidate
index behind ``find_links`` checked against comparing every pair of real images."""

from __future__ import annotations

import hashlib
import itertools
import random
from pathlib import Path

import pytest
import skimage.data
from PIL import Image

from dedup.candidates import CandidateIndex
from dedup.fingerprint.suite import WINDOWS
from dedup.matching import DEFAULT_RULE, Link, Rule, find_links, label, link, relation_name
from dedup.node.imaging import read_image
from dedup.node.scan import to_record
from dedup.v1 import asset_pb2, statements_pb2

R = statements_pb2
RULE = DEFAULT_RULE
WINDOW = {name: k for k, (name, *_) in enumerate(WINDOWS)}


def flip(value: bytes, bits: int, seed: int = 0) -> bytes:
    """``value`` with exactly ``bits`` distinct bits flipped."""
    out = bytearray(value)
    for bit in random.Random(seed).sample(range(8 * len(value)), bits):
        out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def make(
    asset_id: str,
    *,
    dihedral: list[bytes] | None = None,
    low: bytes | None = None,
    windows: list[bytes] | None = None,
    width: int = 1000,
    height: int = 800,
    frame: tuple[int, int] | None = None,
    skew_centidegrees: int = 0,
    channels: int = 3,
    quality: int = 80,
    luma_mean: int = 120,
    luma_spread: int = 50,
    saturation: int = 40,
    sha256: bytes | None = None,
    pixel_digest: bytes | None = None,
    low_information: bool = False,
    drop: str | None = None,
) -> asset_pb2.Asset:
    """An asset whose unspecified hash parts are random (seeded by its id), so two assets
    only match through the parts a test sets."""
    rng = random.Random(asset_id)
    dihedral = list(dihedral) if dihedral else [rng.randbytes(32) for _ in range(8)]
    dihedral += [rng.randbytes(32) for _ in range(8 - len(dihedral))]
    low = low if low is not None else rng.randbytes(8)
    windows = list(windows) if windows else [rng.randbytes(8) for _ in WINDOWS]
    low_whole = rng.randbytes(8)
    records = {"dct256": (2, b"".join(dihedral)), "dct64": (2, low + low_whole), "win64": (2, b"".join(windows))}
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
            saturation=saturation),
        low_information=low_information,
    )


def parts(a: asset_pb2.Asset) -> tuple[list[bytes], bytes, list[bytes]]:
    values = {fp.algorithm: fp.value for fp in a.fingerprints}
    d, w = values["dct256"], values["win64"]
    return [d[i:i + 32] for i in range(0, 256, 32)], values["dct64"][:8], [w[i:i + 8] for i in range(0, len(w), 8)]


def copy_of(a: asset_pb2.Asset, asset_id: str, *, up_bits: int = 0, **kw) -> asset_pb2.Asset:
    """A copy whose upright dct256 is ``up_bits`` from ``a``'s; all else random unless given."""
    d, _, _ = parts(a)
    return make(asset_id, dihedral=[flip(d[0], up_bits, seed=1)], **kw)


def rel(found: Link | None) -> str | None:
    return None if found is None else relation_name(found.relation)


def both(a: asset_pb2.Asset, b: asset_pb2.Asset, rule: Rule = RULE) -> Link | None:
    """The link, checked to be the same whichever asset comes first."""
    ab, ba = link(a, b, rule), link(b, a, rule)
    assert ab == ba
    return ab


# --- exact tiers and refusals --------------------------------------------------------------------


def test_identical_bytes_win_over_everything() -> None:
    a = make("a", low_information=True, drop="win64")
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
    d, low, windows = parts(a)
    b = make("b", dihedral=d, low=low, windows=windows, low_information=flagged in ("b", "both"))
    assert both(a, b) is None
    assert rel(both(unflagged(a), unflagged(b))) == "similar"


@pytest.mark.parametrize("drop", ["dct256", "dct64", "win64"])
def test_incomplete_fingerprint_set_is_not_matched(drop: str) -> None:
    a = make("a")
    d, low, windows = parts(a)
    assert both(a, make("b", dihedral=d, low=low, windows=windows, drop=drop)) is None


# --- whole picture -----------------------------------------------------------------------------------


def test_whole_picture_within_the_threshold() -> None:
    a = make("a")
    found = both(a, copy_of(a, "b", up_bits=RULE.whole))
    assert found == Link(R.RELATION_SIMILAR, "dct256", RULE.whole)
    assert both(a, copy_of(a, "c", up_bits=RULE.whole + 1)) is None


@pytest.mark.parametrize("k", range(1, 8))
def test_rotated_or_mirrored_copy(k: int) -> None:
    """One side's variant k near the other's upright hash: labelled rotated_mirrored, in either order."""
    a = make("a")
    d, _, _ = parts(a)
    b = make("b", dihedral=[flip(d[k], RULE.whole, seed=k)])
    assert link(a, b) == Link(R.RELATION_ROTATED_MIRRORED, "dct256", RULE.whole)
    assert link(b, a) == link(a, b)
    assert both(a, make("c", dihedral=[flip(d[k], RULE.whole + 1, seed=k)])) is None


def test_upright_match_takes_precedence_over_a_variant() -> None:
    """A symmetric picture matches both ways; it is a copy, not a rotation."""
    a = make("a")
    d, _, _ = parts(a)
    b = make("b", dihedral=[flip(d[0], 10)] + [flip(v, 1) for v in d[1:]])
    assert both(a, b) == Link(R.RELATION_SIMILAR, "dct256", 10)


# --- local edits -----------------------------------------------------------------------------------


def test_local_edit_through_the_low_frequency_hash() -> None:
    a = make("a")
    _, low, _ = parts(a)
    b = copy_of(a, "b", up_bits=RULE.whole_loose, low=flip(low, RULE.low))
    assert both(a, b) == Link(R.RELATION_EDITED, "dct64", RULE.low)
    assert both(a, copy_of(a, "c", up_bits=RULE.whole_loose, low=flip(low, RULE.low + 1))) is None
    assert both(a, copy_of(a, "d", up_bits=RULE.whole_loose + 1, low=low)) is None


def _edited_windows(windows: list[bytes], agreeing: int) -> list[bytes]:
    """``agreeing`` windows (chosen at random) within Rule.same_window, the rest 20 bits away."""
    order = random.Random(2).sample(range(len(windows)), len(windows))
    near = set(order[:agreeing])
    return [flip(w, RULE.same_window if k in near else 20, seed=k) for k, w in enumerate(windows)]


def test_local_edit_through_untouched_windows() -> None:
    """An overlay spoils dct64, but the windows that leave it out still agree."""
    a = make("a")
    _, _, windows = parts(a)
    b = copy_of(a, "b", up_bits=50, windows=_edited_windows(windows, RULE.same_windows))
    assert both(a, b) == Link(R.RELATION_EDITED, "win64", RULE.same_window)
    # One agreeing window fewer is not enough.
    c = copy_of(a, "c", up_bits=50, windows=_edited_windows(windows, RULE.same_windows - 1))
    assert both(a, c) is None
    # Beyond the loose whole-picture distance, agreeing windows do not make a copy.
    d = copy_of(a, "d", up_bits=RULE.whole_loose + 1, windows=_edited_windows(windows, len(WINDOWS)))
    assert both(a, d) is None


def test_degenerate_windows_do_not_count_as_agreeing() -> None:
    """Flat strips hash to all 0s in every picture, so they are no evidence of a copy."""
    flat = [bytes(8)] * len(WINDOWS)
    a = make("a", windows=flat)
    b = copy_of(a, "b", up_bits=50, windows=flat)
    assert both(a, b) is None


# --- crops ---------------------------------------------------------------------------------------------


def test_crop_found_through_a_window_of_matching_shape() -> None:
    """A 20% right-hand crop of a 1000x800 picture is 800x800: window r20 has that shape."""
    large = make("large", width=1000, height=800)
    _, _, windows = parts(large)
    small = make("small", width=800, height=800, low=flip(windows[WINDOW["r20"]], RULE.window))
    found = both(small, large)
    assert found == Link(R.RELATION_CROPPED, "win64", RULE.window, 0.8)
    too_far = make("far", width=800, height=800, low=flip(windows[WINDOW["r20"]], RULE.window + 1))
    assert both(too_far, large) is None


@pytest.mark.parametrize(
    ("width", "matches"),
    [(800, True), (900, True), (920, False), (1000, False), (720, True), (700, False)],
)
def test_crop_needs_the_window_aspect_ratio(width: int, matches: bool) -> None:
    """The crop's frame shape must be within Rule.aspect (12%, relative to the wider shape) of the
    window's (1.0 for r20)."""
    large = make("large", width=1000, height=800)
    _, _, windows = parts(large)
    small = make("small", width=width, height=800, low=windows[WINDOW["r20"]])
    assert rel(both(small, large)) == ("cropped" if matches else None)
    assert rel(both(small, large, Rule(aspect=0.3))) == "cropped"


def test_crop_aspect_uses_the_frames() -> None:
    """A bordered original's windows are shaped by its frame, not the bordered image."""
    large = make("large", width=1100, height=880, frame=(1000, 800))
    _, _, windows = parts(large)
    small = make("small", width=900, height=900, frame=(800, 800), low=windows[WINDOW["r20"]])
    assert rel(both(small, large)) == "cropped"


def test_closest_fitting_window_is_reported() -> None:
    """Of two windows that fit, the closer one gives the distance and the share kept."""
    _, _, windows = parts(make("base"))
    # c08 keeps 84% of each side (square), c10 80%: both fit a square crop.
    shared = flip(windows[WINDOW["c10"]], 1)
    kept = list(windows)
    kept[WINDOW["c08"]] = flip(shared, 3, seed=5)
    large = make("large", width=1000, height=1000, windows=kept)
    small = make("small", width=820, height=820, low=shared)
    found = both(small, large)
    assert found == Link(R.RELATION_CROPPED, "win64", 1, 0.64)


def test_degenerate_windows_never_find_crops() -> None:
    """A flat strip's window would match every flat crop."""
    flat = [bytes(8)] * len(WINDOWS)
    large = make("large", width=1000, height=800, windows=flat)
    small = make("small", width=800, height=800, low=bytes(8))
    assert both(small, large) is None


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
    a = make("a", width=1000, height=800)
    d, low, windows = parts(a)
    records = [
        a,
        make("bytes", sha256=a.sha256),
        make("pixels", pixel_digest=a.pixel_digest),
        copy_of(a, "whole", up_bits=RULE.whole),
        # A copy turned upside down: its flip_ud variant (self-inverse) is the original's upright.
        make("variant", dihedral=[flip(d[5], RULE.whole), *parts(make("v"))[0][1:5], flip(d[0], RULE.whole)]),
        copy_of(a, "low", up_bits=RULE.whole_loose, low=flip(low, RULE.low)),
        copy_of(a, "windows", up_bits=RULE.whole_loose,
                windows=[flip(w, RULE.same_window, seed=k) if k < RULE.same_windows else bytes(8)
                         for k, w in enumerate(windows)]),
        make("crop", width=800, height=800, low=flip(windows[WINDOW["r20"]], RULE.window)),
        make("unrelated"),
    ]
    expected = all_pairs(records)
    assert {(i, j) for i, j in expected if i == 0} == {(0, k) for k in range(1, 8)}
    assert {(i, j): lk for i, j, lk in find_links(records)} == expected
    big_last = records[1:] + records[:1]
    assert {(i, j): lk for i, j, lk in find_links(big_last)} == all_pairs(big_last)


def test_find_links_finds_variants_whichever_comes_first() -> None:
    """The rule accepts 'a's variant k near b's upright'; the index must find it in either order."""
    a = make("a")
    d, _, _ = parts(a)
    b = make("b", dihedral=[d[3]])  # b's own variants are unrelated to a's upright
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


def test_link_is_symmetric_when_windows_are_flat_on_one_side() -> None:
    """A flat strip hashes to all 0s in one copy and to a few noisy bits in the other: such a
    window says nothing, whichever side is flat, so it is skipped both ways."""
    a = make("a", windows=[bytes(8)] * 3 + [bytes([k]) * 8 for k in range(1, len(WINDOWS) - 2)])
    b = copy_of(a, "b", up_bits=50,
                windows=[flip(bytes(8), 1, seed=k) for k in range(3)] + [bytes([200]) * 8] * (len(WINDOWS) - 3))
    assert link(b, a) is None
    assert link(a, b) is None


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
    for j, name in enumerate(names):
        if "-" in name:
            i = names.index(f"{photo[j]}.png")
            assert (i, j) in expected, name
