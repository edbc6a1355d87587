"""The shared fingerprint code: pinned outputs, symmetries, distances, validation."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
from hypothesis import given, settings
from hypothesis import strategies as st

from dedup.fingerprint import (
    DCT64_V2,
    DCT256_V2,
    DIHEDRAL_ORDER,
    KINDS,
    KP64_V1,
    FingerprintError,
    as_matrix,
    dct256,
    dihedral_hashes,
    get_kind,
    hamming,
    hamming_many,
    hamming_matrix,
    information_score,
    is_low_information,
    validate,
)
from dedup.fingerprint import points
from dedup.fingerprint.dct import downsample
from dedup.fingerprint.suite import compute
from dedup.fingerprint.wire import to_wire

# Pinned so that any change in numpy, scikit-image or this code that alters a
# hash fails loudly: stored fingerprints from other parties would stop matching.
SYNTHETIC_HEX = "eaaaaaaa60733a7aaaaaf06a513189154400596fe755540effff01087eafbb51"
CAMERA_HEX = "e307821480cf87f99d3919b17846664ef0efc3a767302f111f1e962f5cb93931"

DIHEDRAL_OPS = {
    "identity": lambda a: a,
    "rot90": lambda a: np.rot90(a, 1),
    "rot180": lambda a: np.rot90(a, 2),
    "rot270": lambda a: np.rot90(a, 3),
    "flip_lr": lambda a: a[:, ::-1],
    "flip_ud": lambda a: a[::-1, :],
    "transpose": lambda a: a.T,
    "transverse": lambda a: np.rot90(a, 2).T,
}


def synthetic() -> np.ndarray:
    """Deterministic 96x80 pattern (not a multiple of 64, so area weights are fractional)."""
    y, x = np.mgrid[0:96, 0:80].astype(np.int64)
    return ((x * x * 7 + y * 13 + x * y * 3) % 251).astype(np.float32)


def camera() -> np.ndarray:
    return skimage.data.camera().astype(np.float32)


def grey(rgb: np.ndarray) -> np.ndarray:
    return (rgb[..., :3].astype(np.float64) @ [0.299, 0.587, 0.114]).astype(np.float32)


def test_pinned_hashes() -> None:
    assert dct256(synthetic()).hex() == SYNTHETIC_HEX
    assert dct256(camera()).hex() == CAMERA_HEX


def test_hash_is_32_bytes_with_half_the_bits_set() -> None:
    value = dct256(camera())
    assert len(value) == 32
    assert sum(bin(b).count("1") for b in value) == 128


def test_dtype_and_scale_do_not_matter() -> None:
    a = camera()
    assert dct256(a.astype(np.float64)) == dct256(a)
    assert dct256(a.astype(np.uint8)) == dct256(a)
    assert dct256(a / 255.0) == dct256(a)


def test_downsample_is_exact_area_average() -> None:
    a = synthetic().astype(np.float64)
    big = np.kron(np.arange(64 * 64, dtype=np.float64).reshape(64, 64), np.ones((2, 3)))
    np.testing.assert_allclose(downsample(big), np.arange(64 * 64).reshape(64, 64))
    np.testing.assert_allclose(downsample(np.full((97, 33), 7.5)), 7.5)
    assert downsample(a).mean() == pytest.approx(a.mean())


def test_dihedral_order_is_documented() -> None:
    assert tuple(DIHEDRAL_OPS) == DIHEDRAL_ORDER


@pytest.mark.parametrize("make", [synthetic, camera])
def test_dihedral_variants_equal_hashing_the_transformed_array(make) -> None:
    a = make()
    variants = dihedral_hashes(a)
    assert variants[0] == dct256(a)
    for name, value in zip(DIHEDRAL_ORDER, variants):
        assert value == dct256(np.ascontiguousarray(DIHEDRAL_OPS[name](a))), name
    assert len(set(variants)) == 8


@settings(max_examples=25, deadline=None)
@given(h=st.integers(32, 150), w=st.integers(32, 150), seed=st.integers(0, 2**32 - 1))
def test_dihedral_variants_hold_for_any_shape(h: int, w: int, seed: int) -> None:
    a = np.random.default_rng(seed).random((h, w)).astype(np.float32) * 255
    for name, value in zip(DIHEDRAL_ORDER, dihedral_hashes(a)):
        assert value == dct256(np.ascontiguousarray(DIHEDRAL_OPS[name](a))), name


@pytest.mark.parametrize("bad", [np.zeros((31, 64)), np.zeros((64, 31)), np.zeros((64, 64, 3))])
def test_rejects_unusable_arrays(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        dct256(bad)


def test_rejects_non_finite() -> None:
    a = camera()
    a[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        dct256(a)


def test_flat_and_ramp_images_hash_to_all_zeros() -> None:
    y, x = np.mgrid[0:120, 0:90].astype(np.float64)
    for a in (np.full((100, 100), 128.0), x * 2.0, x + y):
        assert dct256(a) == bytes(32)


def test_hamming() -> None:
    assert hamming(b"\x00\x00", b"\x00\x00") == 0
    assert hamming(b"\xff\x00", b"\x00\x00") == 8
    assert hamming(b"\x01\x80", b"\x00\x00") == 2
    assert hamming(bytes(32), b"\xff" * 32) == 256
    with pytest.raises(ValueError):
        hamming(b"\x00", b"\x00\x00")


def test_hamming_many_and_matrix_agree_with_hamming() -> None:
    rng = np.random.default_rng(5)
    values = [rng.bytes(32) for _ in range(20)]
    query = rng.bytes(32)
    m = as_matrix(values)
    assert m.shape == (20, 32) and m.dtype == np.uint8
    expected = [hamming(v, query) for v in values]
    assert hamming_many(m, query).tolist() == expected
    assert hamming_many(m, np.frombuffer(query, dtype=np.uint8)).tolist() == expected
    full = hamming_matrix(m, m[:5])
    assert full.shape == (20, 5)
    assert full[7, 3] == hamming(values[7], values[3])
    assert np.all(np.diag(full[:5]) == 0)
    assert as_matrix([], size=32).shape == (0, 32)
    with pytest.raises(ValueError):
        hamming_many(m, b"\x00" * 31)
    with pytest.raises(ValueError):
        as_matrix([b"\x00" * 32, b"\x00" * 31])


def test_registry_holds_exactly_the_new_kinds() -> None:
    """dct256 v1 (one 32-byte hash) is no longer exchanged; v2 carries all 8 dihedral hashes."""
    assert set(KINDS) == {("dct256", 2), ("dct64", 2), ("kp64", 1)}
    assert KINDS[("dct256", 2)] is DCT256_V2 and get_kind("dct256", 2) is DCT256_V2
    assert KINDS[("dct64", 2)] is DCT64_V2 and KINDS[("kp64", 1)] is KP64_V1
    assert (DCT256_V2.size, DCT256_V2.parts, DCT256_V2.bits) == (256, 8, 2048)
    assert (DCT64_V2.size, DCT64_V2.parts, DCT64_V2.bits) == (16, 2, 128)
    # kp64's size is its largest: the header and 64 points of 12 bytes.
    assert (KP64_V1.size, KP64_V1.parts) == (4 + 12 * 64, 64)
    assert KP64_V1.shape_check is points.check
    assert DCT256_V2.refuse_degenerate and DCT64_V2.refuse_degenerate
    assert not KP64_V1.refuse_degenerate
    # Thresholds are per part: below half of a part's bits, where unrelated hashes sit.
    assert 0 < DCT256_V2.threshold < 64
    assert 0 < DCT64_V2.threshold < 16 and 0 < KP64_V1.threshold < 16


def test_validate_accepts_a_real_fingerprint_set() -> None:
    """What a node computes from a photograph passes the coordinator's validation."""
    records = to_wire(compute(camera()))
    assert [(n, v) for n, v, _ in records] == [("dct256", 2), ("dct64", 2), ("kp64", 1)]
    kinds = [validate(n, v, value) for n, v, value in records]
    assert kinds == [DCT256_V2, DCT64_V2, KP64_V1]


def _dihedral_with_part(index: int, part: bytes) -> bytes:
    """A valid-looking dct256 v2 value whose part ``index`` is replaced by ``part``."""
    parts = [bytes(range(k, k + 32)) for k in range(8)]
    parts[index] = part
    return b"".join(parts)


@pytest.mark.parametrize("index", range(8))
@pytest.mark.parametrize(("part", "message"), [(bytes(32), "all bits are 0"), (b"\xff" * 32, "all bits are 1")])
def test_dct256_v2_refuses_any_degenerate_part(index: int, part: bytes, message: str) -> None:
    """One flat dihedral variant is as unusable as a flat upright hash."""
    with pytest.raises(FingerprintError, match=rf"part {index}\): {message}"):
        validate("dct256", 2, _dihedral_with_part(index, part))


def test_dct256_v2_accepts_parts_that_are_only_partly_flat() -> None:
    """Refusal is per 32-byte part: zero bytes spanning two parts are fine."""
    value = bytearray(_dihedral_with_part(0, bytes(range(32))))
    value[16:48] = bytes(32)  # second half of part 0, first half of part 1
    assert validate("dct256", 2, bytes(value)) is DCT256_V2


def _kp64(count: int, width: int = 320, height: int = 213) -> bytes:
    """A kp64 v1 value: the header, then ``count`` points of distinct bytes."""
    head = width.to_bytes(2, "big") + height.to_bytes(2, "big")
    return head + b"".join(bytes((k + i) % 256 for i in range(12)) for k in range(count))


@pytest.mark.parametrize("count", [0, 1, 64])
def test_kp64_accepts_any_number_of_points_up_to_64(count: int) -> None:
    """A flat picture has no keypoints, a busy one 64; any count between is a valid value."""
    assert validate("kp64", 1, _kp64(count)) is KP64_V1
    assert validate("kp64", 1, bytearray(_kp64(count, 125, 320))) is KP64_V1


def test_kp64_accepts_degenerate_point_hashes() -> None:
    """A patch of flat ground may hash to all 0s or all 1s; the other points still count."""
    value = _kp64(0) + bytes(8) + b"\x10\x00\x20\x40" + b"\xff" * 8 + b"\x20\x00\x30\x40"
    assert validate("kp64", 1, value) is KP64_V1


@pytest.mark.parametrize(
    ("name", "version", "value", "message"),
    [
        ("phash64", 1, bytes(range(32)), "unknown fingerprint algorithm 'phash64'"),
        ("dct256", 1, bytes(range(32)), "unknown version 1 of fingerprint algorithm 'dct256' \\(known: 2\\)"),
        ("dct64", 1, bytes(range(8)), "unknown version 1 of fingerprint algorithm 'dct64' \\(known: 2\\)"),
        ("dct256", 2, bytes(range(32)), "must be 256 bytes, got 32"),
        ("dct256", 2, bytes(range(255)), "must be 256 bytes, got 255"),
        ("dct64", 2, bytes(range(9)), "must be 16 bytes, got 9"),
        ("win64", 2, bytes(range(8)), "unknown fingerprint algorithm 'win64' \\(known: dct256, dct64, kp64\\)"),
        ("kp64", 2, _kp64(3), "unknown version 2 of fingerprint algorithm 'kp64' \\(known: 1\\)"),
        ("kp64", 1, b"\x01\x00", "must be 4 \\+ 12 x n bytes, got 2"),
        ("kp64", 1, _kp64(2) + b"\0", "must be 4 \\+ 12 x n bytes, got 29"),
        ("kp64", 1, _kp64(65), "holds 65 points; at most 64"),
        ("kp64", 1, _kp64(2, 319, 213), "extent 319 x 213 is not a picture's \\(long side 320\\)"),
        ("kp64", 1, _kp64(2, 320, 0), "extent 320 x 0 is not a picture's"),
        ("kp64", 1, _kp64(2, 640, 320), "extent 640 x 320 is not a picture's"),
        ("dct64", 2, bytes(8) + bytes(range(1, 9)), "degenerate dct64 v2 fingerprint \\(part 0\\): all bits are 0"),
        ("dct64", 2, bytes(range(1, 9)) + b"\xff" * 8, "degenerate dct64 v2 fingerprint \\(part 1\\): all bits are 1"),
        ("dct256", 2, "ab" * 128, "must be bytes"),
        ("kp64", 1, [0] * 16, "must be bytes"),
    ],
)
def test_validate_errors(name: str, version: int, value: bytes, message: str) -> None:
    with pytest.raises(FingerprintError, match=message):
        validate(name, version, value)


def test_validate_accepts_bytearray_and_memoryview() -> None:
    value = bytes(range(1, 17))
    assert validate("dct64", 2, bytearray(value)) is DCT64_V2
    assert validate("dct64", 2, memoryview(value)) is DCT64_V2


def test_fingerprint_error_is_a_value_error() -> None:
    assert issubclass(FingerprintError, ValueError)


def _low_information_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    y, x = np.mgrid[0:600, 0:400] / 600.0
    radius = np.sqrt((y - 0.5) ** 2 + (x - 0.33) ** 2)
    radius /= radius.max()
    return {
        "black": np.zeros((300, 300)),
        "flat grey card": np.full((600, 400), 128.0),
        "uniform colour as luminance": np.full((200, 300), 0.299 * 200 + 0.587 * 40 + 0.114 * 90),
        "horizontal ramp": x * 380.0,
        "diagonal ramp": (x + y) * 150.0,
        "grey card with vignette": 200.0 - 20.0 * radius,
        "noise-free blank page": 245.0 - 8.0 * radius,
        "blank page with scanner noise": np.clip(245.0 - 8.0 * radius + rng.normal(0, 1.5, x.shape), 0, 255),
        "flat with sensor noise": 128.0 + rng.normal(0, 2.0, x.shape),
    }


@pytest.mark.parametrize("name", list(_low_information_arrays()))
def test_low_information_detected(name: str) -> None:
    a = _low_information_arrays()[name]
    assert is_low_information(a), (name, information_score(a))


@pytest.mark.parametrize(
    "name", ["camera", "astronaut", "coffee", "moon", "coins", "hubble_deep_field", "page", "text", "clock"]
)
def test_real_images_carry_information(name: str) -> None:
    img = getattr(skimage.data, name)()
    a = grey(img) if img.ndim == 3 else img.astype(np.float32)
    assert not is_low_information(a), information_score(a)


def test_information_score_is_resolution_independent() -> None:
    a = camera()
    assert information_score(a[::2, ::2]) == pytest.approx(information_score(a), rel=0.05)
    assert information_score(np.full((64, 64), 9.0)) == pytest.approx(0.0, abs=1e-9)


def _patches(cols: int, rows: int) -> np.ndarray:
    """A 600 x 400 chart of ``cols`` x ``rows`` flat patches of contrasting tones."""
    tones = [20, 200, 90, 240, 140, 60, 170, 10, 110, 220]
    ys, xs = np.mgrid[0:400, 0:600]
    k = (ys * rows // 400) * cols + xs * cols // 600
    return np.asarray(tones, dtype=np.float32)[k % len(tones)]


def _shape_on_plain_ground() -> np.ndarray:
    ys, xs = np.mgrid[0:400, 0:600]
    return np.where((ys - 200) ** 2 + (xs - 300) ** 2 < 100**2, 60.0, 230.0).astype(np.float32)


def _textured_object_on_plain_ground() -> np.ndarray:
    """A small disc (5% of the picture) of texture on a plain ground, as a nebula on black: the
    ground covers 95%, yet the disc is a picture of its own, not the ground's edge."""
    ys, xs = np.mgrid[0:400, 0:600]
    texture = np.random.default_rng(7).uniform(40, 200, (400, 600))
    return np.where((ys - 200) ** 2 + (xs - 300) ** 2 < 60**2, texture, 230.0).astype(np.float32)


@pytest.mark.parametrize(("name", "make", "few"), [
    ("6 patches", lambda: _patches(3, 2), True),
    ("a textured object on plain ground", _textured_object_on_plain_ground, False),
    ("8 patches", lambda: _patches(4, 2), True),
    ("9 patches", lambda: _patches(3, 3), False),  # more than FEW_AREAS: a picture of areas
    ("one shape on a plain ground", _shape_on_plain_ground, True),
    ("camera", camera, False),
    ("smooth ramp with a soft disc", lambda: np.clip(
        np.linspace(40, 220, 600)[None, :] + 0 * np.arange(400)[:, None]
        + 30 * np.exp(-((np.arange(400)[:, None] - 200) ** 2 + (np.arange(600)[None, :] - 300) ** 2) / 5000.0),
        0, 255).astype(np.float32), False),
])
def test_a_few_flat_areas_are_low_information(name: str, make, few: bool) -> None:
    """Charts and single shapes carry plenty of DCT energy, all of it where their few areas
    meet, which unrelated charts share: they are low-information all the same."""
    a = make()
    s = compute(a)
    assert s.few_flat_areas is few, name
    assert s.low_information is few, name
    if few:
        assert not is_low_information(a), name  # the DCT band alone would let it match
