"""The fingerprint set a node computes (``suite``) and its wire records (``wire``): pinned,
consistent with the ``dct256`` function, and exact under rotations and mirrors."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
from PIL import Image

from dedup.fingerprint import DIHEDRAL_ORDER, dct256, hamming
from dedup.fingerprint.frame import frame
from dedup.fingerprint.kinds import DCT64_V2, DCT256_V2, WIN64_V2, validate
from dedup.fingerprint.suite import (
    LOW_INFORMATION_THRESHOLD,
    WINDOWS,
    Suite,
    area_matrix,
    compute,
    grid,
    low_hash,
)
from dedup.fingerprint.wire import DCT64, DCT256, WIN64, Hashes, from_wire, to_wire

# The same inputs as the dct256 tests: a 96x80 pattern (its grid weights are fractional) and camera.
from test_fingerprint import DIHEDRAL_OPS, camera, grey, synthetic  # noqa: E402

# Pinned so that any change in numpy, Pillow, scikit-image or this code that alters a
# fingerprint fails loudly: stored fingerprints from other parties would stop matching.
SYNTHETIC_DIHEDRAL = (
    "eaaaaaaa60733a7aaaaaf06a513189154400596fe755540effff01087eafbb51",
    "32f6a2faa7d4165b26b400ba37d5036d77fd346989b5332923e9017a0ba5236b",
    "bfff0000353692d0ffff3ac0046422bf5555f3c9b200eea0ae2aaba22bfa01fb",
    "67a388d0f681bcf073e1aa987281a9c762a89ee3dce0b98376f4abd256f0a9c1",
    "60200080ead992d000223ac0fb9b23bfeeaaf3cdcdfffea455ddaba2d40513fb",
    "7575aaaabf9d3a7a5575b06aaece8915ffff596f98ea540e048001088154ab51",
    "cd29a6fafc2b165bd94b00bad82b036dc80a3469fe4a3329dc5e017afc5a236b",
    "987c08d0ad7ebce08c1eaa989d7ea8c79d579ec3ab1fb983894bab80a90f89c1",
)
SYNTHETIC_LOW = "eaaa603aaaf1518f"
SYNTHETIC_WINDOWS = (
    "caaa647caaaa51ab", "faaa783aaa53118e", "eaaa683aaab1518f", "507d687a94f153aa",
    "52aa647caaaa70bb", "faaa7caaaa551b04", "eaaa6e0baa99518d", "d1fa687a94b2239a",
    "51ab4555aaae50bb", "eaaa7caaaa51af40", "aaaa6f0baa99518d", "d1fa707c94b2079a",
    "53ab45554aae40fb", "aaaa7eaae2518e58", "2aaa6f0baa9d5d81", "f07c6175a0f5263c",
    "d1ab855507ae44f9", "aaaa58aa51bf047d", "eaaa7309aadd5c81", "f07561f9a0f5063c",
    "d2aaa35557be0658", "aaa87aaa510e587f", "eaaa2189aa9d5cad", "e0f5e3f9a8a10535",
    "51aba35555bf0658", "aa68baaa55065d67", "eaaa20a8aacc5eed", "e0fb43fb00eb0539",
    "f961747aaad111aa", "d967285e9c7431aa", "5d617c6e9ce031a6", "55295c0eddf431a5",
    "d1e17e0e8ef031a5", "d3216e078e722ba7", "c1e86e47c47863e5", "c1fa6e07445e62e5",
)
CAMERA_DIHEDRAL = (
    "e307821480cf87f99d3919b17846664ef0efc3a767302f111f1e962f5cb93931",
    "073983e27c460e8ff1e4193e2e838c79cb3d3380e3181c3bc671e3cc5c33bcd7",
    "b65228bed59a2d53c86cb31b2d13cce4a5ba690d326585bb6a4b3c8589ec939b",
    "526e2948291ba4a5a4b1b3947bd636db9e68992ab64df695932549660b67167d",
    "49ad28ae2a652c533793b31bd2eccce45a45690dcd9a85bb95b43c857613939b",
    "1cf882147f3087f962c619b187bb664e1f10c3a798cf2f11e1e1963fa346393b",
    "f8c483e283b10e8f0e1b193ed17c9c7934c233801ce75c3b398ee3cca3ccbcd7",
    "ad932948d6eca4255b4eb394842936d36197992a49b2f6916cdb4966f699167d",
)
CAMERA_LOW = "f38280c79d197ce6"
CAMERA_WINDOWS = (
    "f38280879f9d3c66", "e382808f9d3976e6", "f38380c09f1d7e66", "e382808f9f3978e6",
    "f38380c28f9d1d3e", "e382848f9d3966f2", "f18386c08f1c3ef6", "e786808d9f3978e4",
    "f3e380c2c79b190f", "e382049f9d7866f1", "f99186c28d0c3f73", "e684018f9a3b79e5",
    "f3e2b062c683998f", "e382049f1d74e6e3", "78d186e6840e3f73", "e684018bba3379ed",
    "f3f3b06066c2d1c3", "e382079d3966f2c3", "7cd983e3c48f0333", "e684038fbe3279c9",
    "7bfbb83062e690d0", "e380079d3866f1e7", "7fd8c3f3c4860139", "ec89029f343771cb",
    "7fffb93860663010", "e3800f9d7866c367", "3fdcc1f1e6c20139", "cc89029f3d3772ca",
    "f38280c49f1d7ce6", "f38280c49f1d3e76", "f39380c09f193f3c", "f3b3a0c08b191f3e",
    "f3b3e0e08b190f1e", "f3b3e4e28399030f", "72b3f4e6839b4305", "72b374e4d1dbc301",
)


def arrays() -> dict[str, np.ndarray]:
    return {
        "synthetic": synthetic(),
        "camera": camera(),
        "coffee": grey(skimage.data.coffee()),
        "chelsea": grey(skimage.data.chelsea()),
        "noise": (np.random.default_rng(3).random((150, 97)) * 255).astype(np.float32),
    }


# --- pinned outputs --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "dihedral", "low", "windows"),
    [
        (synthetic, SYNTHETIC_DIHEDRAL, SYNTHETIC_LOW, SYNTHETIC_WINDOWS),
        (camera, CAMERA_DIHEDRAL, CAMERA_LOW, CAMERA_WINDOWS),
    ],
    ids=["synthetic", "camera"],
)
def test_pinned_fingerprints(make, dihedral: tuple[str, ...], low: str, windows: tuple[str, ...]) -> None:
    s = compute(make())
    assert tuple(d.hex() for d in s.dihedral) == dihedral
    assert s.low.hex() == low
    assert tuple(w.hex() for w in s.windows) == windows


# --- consistency with dct256 and the frame ---------------------------------------------------


@pytest.mark.parametrize("name", list(arrays()))
def test_upright_hash_is_dct256_of_the_frame(name: str) -> None:
    """Without a border the frame is the whole array, so dct256 v2's upright part is the
    pinned dct256 function of the image: the 128-grid shortcut changes nothing."""
    a = arrays()[name]
    s = compute(a)
    fr = frame(a)
    assert fr.gray.shape == a.shape
    assert s.dihedral[0] == dct256(fr.gray) == dct256(a)
    assert (s.content_fraction, s.skew_degrees, s.frame_shape) == (1.0, 0.0, a.shape)


def test_bordered_image_hashes_like_its_frame() -> None:
    """A matte is trimmed before hashing: the bordered copy gets the original's fingerprints."""
    a = camera()
    bordered = np.pad(a, 24, constant_values=255.0)
    s, original = compute(bordered), compute(a)
    assert s.dihedral == original.dihedral and s.low == original.low
    # Windows are cut from the whole picture, matte included, so a crop of either copy is found.
    assert s.low_whole != original.low_whole and s.windows != original.windows
    assert original.low_whole == original.low
    assert s.frame_shape == (512, 512)
    assert s.content_fraction == pytest.approx((512 * 512) / (560 * 560))


@pytest.mark.parametrize("name", list(arrays()))
def test_dihedral_variants_equal_computing_on_the_transformed_array(name: str) -> None:
    """A rotated or mirrored copy's upright hash is exactly the original's variant."""
    a = arrays()[name]
    s = compute(a)
    assert len(s.dihedral) == len(DIHEDRAL_ORDER) == 8
    assert len(set(s.dihedral)) == 8
    for k, op in enumerate(DIHEDRAL_ORDER):
        turned = compute(np.ascontiguousarray(DIHEDRAL_OPS[op](a)))
        assert turned.dihedral[0] == s.dihedral[k], op
        # Every orientation of a picture carries the same eight hashes.
        assert set(turned.dihedral) == set(s.dihedral), op


def test_low_hash_survives_noise() -> None:
    """dct64 of a slightly noisy copy stays within the kind's threshold."""
    a = camera()
    noisy = a + np.random.default_rng(1).normal(0, 4.0, a.shape).astype(np.float32)
    assert hamming(compute(a).low, compute(noisy).low) <= DCT64_V2.threshold


# --- windows --------------------------------------------------------------------------


def test_windows_table() -> None:
    """28 one-side crops (4%..28% from each side) then 8 centred crops (2%..16% a side)."""
    assert len(WINDOWS) == 36 == WIN64_V2.parts
    names = [w[0] for w in WINDOWS]
    assert len(set(names)) == len(names)
    assert names[:4] == ["t04", "b04", "l04", "r04"] and names[24:28] == ["t28", "b28", "l28", "r28"]
    assert names[28:] == [f"c{k:02d}" for k in range(2, 17, 2)]
    for name, top, bottom, left, right in WINDOWS:
        assert 0.0 <= top < bottom <= 1.0 and 0.0 <= left < right <= 1.0, name
        cut = int(name[1:]) / 100
        expected = {
            "t": (cut, 1.0, 0.0, 1.0), "b": (0.0, 1.0 - cut, 0.0, 1.0),
            "l": (0.0, 1.0, cut, 1.0), "r": (0.0, 1.0, 0.0, 1.0 - cut),
            "c": (cut, 1.0 - cut, cut, 1.0 - cut),
        }[name[0]]
        assert (top, bottom, left, right) == pytest.approx(expected), name


def whole_low(crop: np.ndarray) -> bytes:
    """dct64 of a whole array, as ``compute`` takes it of a frame (the 128x128 grid first)."""
    g = grid(crop)
    return low_hash(g, 0.0, 1.0, 0.0, 1.0, float(np.max(np.abs(g))))


@pytest.mark.parametrize("name", ["camera", "coffee"])
def test_each_window_hashes_like_the_crop_it_names(name: str) -> None:
    """Window k is the dct64 of the crop WINDOWS[k] describes, and no other window is as close:
    the windows come in WINDOWS order. An 800x800 image puts every window edge on a pixel."""
    src = skimage.data.camera() if name == "camera" else grey(skimage.data.coffee()).astype(np.uint8)
    a = np.asarray(Image.fromarray(src).resize((800, 800), Image.Resampling.LANCZOS), dtype=np.float32)
    s = compute(a)
    assert len(s.windows) == len(WINDOWS)
    for k, (wname, top, bottom, left, right) in enumerate(WINDOWS):
        crop = a[round(top * 800):round(bottom * 800), round(left * 800):round(right * 800)]
        value = whole_low(crop)
        distances = [hamming(value, w) for w in s.windows]
        assert distances[k] <= 2, (wname, distances[k])
        assert all(d > distances[k] for i, d in enumerate(distances) if i != k), wname


def test_a_crop_file_is_found_through_its_window() -> None:
    """End to end through ``compute``: a 16% one-side crop's dct64 is within win64's threshold
    of the original's l16 window."""
    a = camera()
    crop = a[:, round(0.16 * 512):]
    k = [w[0] for w in WINDOWS].index("l16")
    assert hamming(compute(crop).low, compute(a).windows[k]) <= WIN64_V2.threshold


def test_area_matrix_is_an_exact_average() -> None:
    m = area_matrix(128, 200)
    np.testing.assert_allclose(m.sum(axis=1), 1.0)
    np.testing.assert_allclose(m @ np.full(200, 7.5), 7.5)
    sub = area_matrix(4, 10, 2.5, 6.5)  # one-pixel cells straddling two pixels each
    np.testing.assert_allclose(sub @ np.arange(10.0), [2.5, 3.5, 4.5, 5.5])
    np.testing.assert_allclose(grid(np.full((97, 301), 3.0)), 3.0)


# --- information ---------------------------------------------------------------------


def test_information_and_low_information() -> None:
    assert compute(camera()).information > 20
    assert not compute(camera()).low_information
    flat = compute(np.full((100, 100), 128.0, dtype=np.float32))
    assert flat.information == pytest.approx(0.0, abs=1e-9) and flat.low_information
    near_blank = 245.0 + np.random.default_rng(4).normal(0, 1.0, (300, 200))
    assert compute(near_blank.astype(np.float32)).information < LOW_INFORMATION_THRESHOLD


# --- wire ------------------------------------------------------------------------------


def test_to_wire_records() -> None:
    s = compute(camera())
    records = to_wire(s)
    assert [(n, v, len(value)) for n, v, value in records] == [
        (*DCT256, DCT256_V2.size), (*DCT64, DCT64_V2.size), (*WIN64, WIN64_V2.size)]
    assert [validate(n, v, value) for n, v, value in records] == [DCT256_V2, DCT64_V2, WIN64_V2]
    assert records[0][2] == b"".join(s.dihedral)
    assert records[2][2] == b"".join(s.windows)


def test_wire_round_trip() -> None:
    s = compute(camera())
    h = from_wire(to_wire(s))
    assert h == Hashes(s.dihedral, s.low, s.low_whole, s.windows)
    assert h.upright == s.dihedral[0]
    assert len(h.dihedral) == 8 and len(h.windows) == len(WINDOWS)
    # Record order and unknown kinds do not matter.
    assert from_wire(list(reversed(to_wire(s))) + [("phash64", 1, b"\0" * 8)]) == h


@pytest.mark.parametrize("missing", [DCT256, DCT64, WIN64])
def test_from_wire_refuses_an_incomplete_set(missing: tuple[str, int]) -> None:
    records = [r for r in to_wire(compute(camera())) if (r[0], r[1]) != missing]
    assert len(records) == 2
    assert from_wire(records) is None


def test_from_wire_of_nothing_or_of_old_kinds() -> None:
    assert from_wire([]) is None
    value = dct256(camera())
    assert from_wire([("dct256", 1, value), ("dct64", 2, value[:8]), ("win64", 2, value * 9)]) is None


def test_suite_is_a_value() -> None:
    s = compute(camera())
    assert isinstance(s, Suite)
    assert compute(camera()) == s
