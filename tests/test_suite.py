"""The fingerprint set a node computes (``suite``) and its wire records (``wire``): pinned,
consistent with the ``dct256`` function, and exact under rotations and mirrors."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data

from dedup import alignment
from dedup.fingerprint import DIHEDRAL_ORDER, dct256, hamming, points
from dedup.fingerprint.frame import frame
from dedup.fingerprint.kinds import DCT64_V2, DCT256_V2, KP64_V1, validate
from dedup.fingerprint.points import Points, PointsError
from dedup.fingerprint.suite import (
    LOW_INFORMATION_THRESHOLD,
    Suite,
    area_matrix,
    compute,
    grid,
)
from dedup.fingerprint.wire import CURRENT, DCT64, DCT256, KP64, Hashes, from_wire, to_wire

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
#: kp64 v1 of the synthetic pattern, every byte (points.to_bytes): its 64 keypoints.
SYNTHETIC_POINTS = (
    "010b0140"
    "5fe8801f28d380ffc69ca937" "57e8801fa84ba74fbd613238" "c2ef15bf40aa15aa2fae5c2c"
    "9f4542171f074f0f9a7b172c" "c0eb1fba55a055aa351c872c" "e8ef95bec0e854a027a2b12c"
    "c8bbdbda9a1a5218cac89a34" "bf45c0159742ab2f9fc9c22c" "8042401ab5fef5fe7268c02b"
    "c897d0dff09c609cc30a2430" "cc13d0dfb0dec09ac5b9a430" "cf9f12dfb098e090c8292232"
    "661a12d525d527d7377dc22d" "ef40971782078f4fc3d5f52d" "8040d5b5ece9f0fc10e94938"
    "37952a7eb0f470708fecda2d" "80e055b5ef213f3518f6f438" "623f7ed5e05528543a3c982d"
    "329528d56dd5651708774c2c" "e0bf80ff90b590b4c9b2a42d" "9535807fe23722370c2e762c"
    "d54a001fbf0b2f0fb3d3d538" "ee1d3a753a703870c701d22d" "19154af5cab5cab40981a12d"
    "36b0477ff0747070929bb02d" "e4bf94f590f430b0c1a4d02d" "b115e15de017e11f0b26212c"
    "9815427547754f370c21212c" "e4b5b5603ef038f0bed5fd2b" "80e0f5be4be8fca01b45fc35"
    "4f3f1fec80f800f8c0b8a82b" "953fa0257e05ea1711cc442d" "eb3f182780970797b4a7042e"
    "e55d600a3f0a6f0fa1091d32" "ddc15f056a052f173bcad532" "886b4aaa1faa5daa8e6e9c32"
    "c197f18d2cacbca8b85d2e2e" "6f1b1f0703070f1fc72ed62c" "b72a4ac46a556ad52725192b"
    "8bc06aa01fa07fb7991bc732" "df6a3f0a420a2e1f30fdaa32" "3f91c06ae0fec0f8302c992c"
    "953f8a656ab44ab4099ef02b" "0fc1e02a5f6a7a6a1227f038" "d06a0f15e4a7a70f13d1ff2b"
    "874ae01f1b87874fc156f32b" "4a6ab58007953f9fad76d737" "f2803f603f3c3e70a844d92c"
    "b52a6acaea156a951c881a2c" "352ab5d5f0c4e8c59e0a4f37" "6000e07fa56ead7e2c2f2337"
    "6280f05fb57a947a29722436" "a0803f6f3efc3870a047822d" "17c07870e66f382f276ed530"
    "f52a6ac56ad468d42c83702d" "7fc0f038cd3e303a2471cc34" "054aa0833b8fbf8fb959492c"
    "25b63a6097f0c6f4c0fe3144" "0a6a259bb2956d97a2daa232" "2935b66082f7c1e7b9c23c3f"
    "ffe5003a20c780ffb4f29b2e" "3f15c0eac0fac0fa2282cd31" "aa4a559555a597952fe1d92e"
    "98c2278b47874f8f0998fe2c"
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
#: kp64 v1 of camera: how many keypoints, and the strongest one's hash and quantised position
#: (x, y as 12-bit fractions of the long side) and scale byte.
CAMERA_POINTS = (64, "9eced995c5ccc0c4", 1445, 1602, 54)


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
    ("make", "dihedral", "low"),
    [(synthetic, SYNTHETIC_DIHEDRAL, SYNTHETIC_LOW), (camera, CAMERA_DIHEDRAL, CAMERA_LOW)],
    ids=["synthetic", "camera"],
)
def test_pinned_fingerprints(make, dihedral: tuple[str, ...], low: str) -> None:
    s = compute(make())
    assert tuple(d.hex() for d in s.dihedral) == dihedral
    assert s.low.hex() == low
    # Neither picture has a border: the untrimmed picture's hash is the frame's.
    assert s.low_whole.hex() == low


def test_pinned_keypoints() -> None:
    """Any change to the scale space, the selection or the patch hash changes these."""
    assert points.to_bytes(compute(synthetic()).points).hex() == "".join(SYNTHETIC_POINTS)
    count, first, x, y, scale = CAMERA_POINTS
    value = points.to_bytes(compute(camera()).points)
    assert len(value) == points.HEADER + points.POINT_BYTES * count
    assert value[:4] == bytes.fromhex("01400140")  # 320 x 320: camera is square
    head = value[4:16]
    pos = int.from_bytes(head[8:11], "big")
    assert (head[:8].hex(), pos >> 12, pos & 0xFFF, head[11]) == (first, x, y, scale)


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
    # Keypoints are of the whole picture, matte included, so a crop of either copy is found.
    assert s.low_whole != original.low_whole
    assert points.to_bytes(s.points) != points.to_bytes(original.points)
    assert original.low_whole == original.low
    assert s.frame_shape == (512, 512)
    assert s.content_fraction == pytest.approx((512 * 512) / (560 * 560))
    # The matte shrinks the picture to 512/560 of the long side and moves it 24/560 in.
    al = alignment.align(original.points, s.points, KP64_V1.threshold, 0.025)
    assert al is not None and al.inliers >= 20
    assert al.scale == pytest.approx(512 / 560, abs=0.005) and abs(al.angle) < 0.2
    assert (al.tx, al.ty) == (pytest.approx(24 / 560, abs=0.003), pytest.approx(24 / 560, abs=0.003))
    # The matte is flat on every edge, 24 lines of 560 deep; the bare picture on none.
    assert s.flat_edges == (24 / 560,) * 4
    assert original.flat_edges == (38 / 512, 0.0, 0.0, 0.0)  # camera's own plain sky at the top


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


# --- keypoints (kp64) -----------------------------------------------------------------


def test_keypoints_lie_in_the_picture_in_long_side_units() -> None:
    s = compute(grey(skimage.data.coffee()))  # 600 x 400: long side 1.0, height 2/3
    p = s.points
    assert (p.width, p.height) == (1.0, pytest.approx(2 / 3, abs=1 / 256))
    assert 0 < len(p) <= points.COUNT
    assert (p.x >= 0).all() and (p.x <= p.width).all() and (p.y >= 0).all() and (p.y <= p.height).all()
    # A patch of radius 4 sigma stays inside the picture, and sigma is at least 2 working pixels.
    r = points.RADIUS * p.sigma
    assert (p.x - r >= -1e-9).all() and (p.x + r <= p.width + 1e-9).all()
    assert (p.sigma >= points.MIN_SIGMA / points.WORK - 1e-12).all()
    assert p.hashes.dtype == np.uint64 and p.x.size == p.y.size == p.sigma.size == len(p)


def test_a_flat_picture_has_no_keypoints() -> None:
    p = compute(np.full((100, 80), 128.0, dtype=np.float32)).points
    assert len(p) == 0
    assert points.to_bytes(p) == bytes.fromhex("01000140")  # 256 x 320: 80/100 of the long side
    points.check(points.to_bytes(p))


@pytest.mark.parametrize("name", ["camera", "coffee"])
def test_points_wire_round_trip_within_quantisation(name: str) -> None:
    """Hashes and extent exactly; x and y within half a 12-bit step of the long side; sigma
    within half a step of 1/16 octave."""
    p = compute(camera() if name == "camera" else grey(skimage.data.coffee())).points
    value = points.to_bytes(p)
    q = points.from_bytes(value)
    assert len(q) == len(p) and q.hashes.tolist() == p.hashes.tolist()
    assert (q.width, q.height) == (pytest.approx(p.width, abs=0.5 / 256), pytest.approx(p.height, abs=0.5 / 256))
    np.testing.assert_allclose(q.x, p.x, atol=0.5 / 4095 + 1e-12)
    np.testing.assert_allclose(q.y, p.y, atol=0.5 / 4095 + 1e-12)
    np.testing.assert_array_less(np.abs(np.log2(q.sigma / p.sigma)), 0.5 / 16 + 1e-9)
    # Bytes back to bytes exactly.
    assert points.to_bytes(q) == value


def _points(n: int, width: float = 1.0, height: float = 0.75) -> Points:
    rng = np.random.default_rng(n)
    return Points(width, height, rng.random(n) * width, rng.random(n) * height, np.full(n, 0.02),
                  rng.integers(0, 2**63, n, dtype=np.uint64))


def test_to_bytes_layout() -> None:
    """12 bytes a point: the hash, x and y packed into 3 bytes, the scale byte."""
    p = Points(1.0, 0.5, np.array([0.0, 1.0]), np.array([0.5, 0.25]), np.array([1 / 1024, 1 / 64]),
               np.array([0x0123456789ABCDEF, 2**64 - 1], dtype=np.uint64))
    assert points.to_bytes(p).hex() == (
        "014000a0"  # 320 x 160
        "0123456789abcdef" "000800" "00"  # x 0, y 0.5 * 4095 = 2047.5 -> 2048; sigma 1/1024 -> 0
        "ffffffffffffffff" "fff400" "40"  # x 4095, y 0.25 * 4095 = 1023.75 -> 1024; 16 * log2(16)
    )


def test_points_check_accepts_a_computed_value() -> None:
    for n in (0, 1, points.COUNT):
        points.check(points.to_bytes(_points(n)))
    assert len(points.to_bytes(_points(points.COUNT))) == KP64_V1.size


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"", "must be 4 \\+ 12 x n bytes, got 0"),
        (b"\x01\x00\x01", "must be 4 \\+ 12 x n bytes, got 3"),
        (bytes.fromhex("01400140") + bytes(13), "must be 4 \\+ 12 x n bytes, got 17"),
        (bytes.fromhex("01400140") + bytes(12 * 65), "holds 65 points; at most 64"),
        (bytes.fromhex("00ff00c0") + bytes(12), "extent 255 x 192 is not a picture's"),
        (bytes.fromhex("01000000") + bytes(12), "extent 256 x 0 is not a picture's"),
        (bytes.fromhex("01010100"), "extent 257 x 256 is not a picture's"),
    ],
    ids=["empty", "short header", "part of a point", "too many points", "long side not 256", "no height",
         "too wide"],
)
def test_points_check_refusals(value: bytes, message: str) -> None:
    with pytest.raises(PointsError, match=message):
        points.check(value)
    with pytest.raises(PointsError):
        points.from_bytes(value)
    # The coordinator's validation refuses it with the same reason.
    with pytest.raises(ValueError, match=message):
        validate("kp64", 1, value)


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
    assert [(n, v) for n, v, _ in records] == list(CURRENT) == [DCT256, DCT64, KP64] == [
        ("dct256", 2), ("dct64", 2), ("kp64", 1)]
    assert [len(value) for _, _, value in records] == [DCT256_V2.size, DCT64_V2.size, 4 + 12 * len(s.points)]
    assert [validate(n, v, value) for n, v, value in records] == [DCT256_V2, DCT64_V2, KP64_V1]
    assert records[0][2] == b"".join(s.dihedral)
    assert records[1][2] == s.low + s.low_whole
    assert records[2][2] == points.to_bytes(s.points)


def test_wire_round_trip() -> None:
    s = compute(camera())
    h = from_wire(to_wire(s))
    assert h == Hashes(s.dihedral, s.low, s.low_whole, points.to_bytes(s.points))
    assert h.upright == s.dihedral[0]
    assert len(h.dihedral) == 8 and len(h.keypoints) == len(s.points) == 64
    assert h.keypoints.hashes.tolist() == s.points.hashes.tolist()
    np.testing.assert_allclose(h.keypoints.x, s.points.x, atol=0.5 / 4095 + 1e-12)
    # Record order and unknown kinds do not matter.
    assert from_wire(list(reversed(to_wire(s))) + [("phash64", 1, b"\0" * 8)]) == h


def test_from_wire_refuses_a_malformed_keypoint_value() -> None:
    """A record the coordinator would refuse is no fingerprint set to compare."""
    records = to_wire(compute(camera()))
    assert from_wire(records[:2] + [("kp64", 1, records[2][2] + b"\0")]) is None
    assert from_wire(records[:2] + [("kp64", 1, bytes.fromhex("00800080"))]) is None


@pytest.mark.parametrize("missing", [DCT256, DCT64, KP64])
def test_from_wire_refuses_an_incomplete_set(missing: tuple[str, int]) -> None:
    records = [r for r in to_wire(compute(camera())) if (r[0], r[1]) != missing]
    assert len(records) == 2
    assert from_wire(records) is None


def test_from_wire_of_nothing_or_of_old_kinds() -> None:
    assert from_wire([]) is None
    value = dct256(camera())
    assert from_wire([("dct256", 1, value), ("dct64", 2, value[:8]), ("win64", 2, value * 9)]) is None
    # A record from before keypoints: the win64 windows instead of kp64.
    s = compute(camera())
    old = [r for r in to_wire(s) if r[0] != "kp64"] + [("win64", 2, bytes(range(8)) * 36)]
    assert from_wire(old) is None


def test_suite_is_deterministic() -> None:
    """The same picture gives the same fingerprints, field by field."""
    s, again = compute(camera()), compute(camera())
    assert isinstance(s, Suite)
    assert to_wire(again) == to_wire(s)
    for name in ("information", "few_flat_areas", "content_fraction", "skew_degrees", "frame_shape",
                 "flat_edges"):
        assert getattr(again, name) == getattr(s, name), name
    for name in ("x", "y", "sigma", "hashes"):
        assert getattr(again.points, name).tolist() == getattr(s.points, name).tolist(), name
