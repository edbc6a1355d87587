"""``kp64`` v1: local keypoints of the whole picture, each with a 64-bit hash of its patch.

A crop keeps part of the picture at its own position and scale; windows fixed in advance
cannot cover every way archives crop (two sides, corners, off centre). Keypoints can: each is a
blob found at its own scale, so the same blob is found in a crop, a resized copy or a rescan,
and the positions of the blobs two copies share say how one sits inside the other
(``dedup.alignment``).

Steps (every party that computes ``kp64`` v1 follows them; values differ across platforms
only by floating-point noise, which the matching tolerates):

1. Input: the luminance of the whole picture (after undoing skew, before trimming), any size
   at least 32 x 32. It is resampled (Pillow, float32: ``BOX`` to shrink, ``BILINEAR`` to
   enlarge a smaller picture) so its long side is ``WORK`` = 320 px, the luminance's own size
   for pictures of that size or more, then standardised (mean 0, standard deviation 1; a flat
   image has none).
2. Scale space: the image is blurred to sigma 1.6 (assuming 0.5 already present), then for
   each octave six Gaussian levels sigma 1.6 * 2^(i/3), i = 0..5 (``scipy.ndimage``
   ``gaussian_filter``, mode ``reflect``, truncated at 3 sigma, each level blurred from the
   previous one); differences of neighbouring levels give five DoG layers. The next octave
   starts from level 3 taken every second pixel; octaves continue while the short side is at
   least 12 px (at most 5).
3. Candidates: DoG samples whose magnitude exceeds ``THRESHOLD`` and that are at least (maximum)
   or at most (minimum) all 26 neighbours in space and scale, in the inner DoG layers. Each is
   refined by one Newton step on the quadratic fit of its 3 x 3 x 3 neighbourhood (dropped if
   the step exceeds 0.6 of a sample); edge-like points, whose principal curvature ratio exceeds
   ``EDGE_RATIO``, are dropped. Scale: sigma = 1.6 * 2^((layer + step + 0.5) / 3) octave pixels.
   A point whose patch (radius ``RADIUS`` = 4 sigma) leaves the image, or whose sigma is under
   2 working pixels, is dropped.
4. Selection: by refined |DoG| (strongest first; ties by x, then y), skipping a point within
   0.7 x the smaller sigma of one already taken at a scale ratio in (0.6, 1.6); at most
   ``COUNT``.
5. Hash: the patch of radius 4 sigma around the point, sampled on a 16 x 16 grid of cell
   centres (bilinear) from the Gaussian level the point was found on; its DCT-II rows 1..8
   (unnormalised cosines) on both axes give 64 coefficients; bit ``8 (u - 1) + (v - 1)`` is 1
   when coefficient (u, v) is above their median; packed big-endian.
6. Wire value: 4 bytes (working width, height, big-endian uint16), then 12 bytes a point,
   strongest first: the 8-byte hash, x and y as 12-bit fractions of the long side
   (round(x / L * 4095); a position is the centre of a pixel counted from the top-left
   pixel's centre), and the scale byte round(16 * log2(1024 * sigma / L)) clipped to 0..255.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numba
import numpy as np
from PIL import Image
from scipy import ndimage

ALGORITHM = "kp64"
VERSION = 1
WORK = 320
SIGMA0 = 1.6
PER_OCTAVE = 3
MAX_OCTAVES = 5
MIN_OCTAVE_SIDE = 12
THRESHOLD = 0.003
EDGE_RATIO = 10.0
RADIUS = 4.0
MIN_SIGMA = 2.0
SEPARATION = 0.7
COUNT = 64
PATCH = 16
HEADER = 4
POINT_BYTES = 12
_POS = 4095


@dataclass(frozen=True, eq=False)
class Points:
    """Keypoints in units of the picture's long side: ``x``, ``y`` (0..width, 0..height of
    the picture's extent ``(width, height)``), ``sigma``, and their 64-bit hashes."""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Points):
            return NotImplemented
        return (self.width, self.height) == (other.width, other.height) and all(
            np.array_equal(getattr(self, f), getattr(other, f)) for f in ("x", "y", "sigma", "hashes"))

    __hash__ = None  # arrays: a value, not a key

    width: float  # the picture's extent, long side = 1.0
    height: float
    x: np.ndarray
    y: np.ndarray
    sigma: np.ndarray
    hashes: np.ndarray  # uint64

    def __len__(self) -> int:
        return int(self.hashes.size)


@lru_cache(maxsize=1)
def _dct_rows() -> np.ndarray:
    k = np.arange(1, 9, dtype=np.float64)[:, None]
    i = np.arange(PATCH, dtype=np.float64)[None, :]
    return np.cos(np.pi * k * (2.0 * i + 1.0) / (2.0 * PATCH))


@numba.njit(cache=True)
def _extrema(d, threshold):
    """(layer, y, x) of every DoG sample beyond the threshold that is a maximum or a minimum
    of its 26 neighbours (ties allowed), in the inner layers and away from the border."""
    layers, h, w = d.shape
    zs, ys, xs = [], [], []
    for z in range(1, layers - 1):
        for y in range(1, h - 1):
            for x in range(1, w - 1):
                v = d[z, y, x]
                if abs(v) <= threshold:
                    continue
                top = True
                bottom = True
                for dz in range(-1, 2):
                    for dy in range(-1, 2):
                        for dx in range(-1, 2):
                            if dz == 0 and dy == 0 and dx == 0:
                                continue
                            u = d[z + dz, y + dy, x + dx]
                            if u > v:
                                top = False
                            if u < v:
                                bottom = False
                    if not top and not bottom:
                        break
                if top or bottom:
                    zs.append(z)
                    ys.append(y)
                    xs.append(x)
    return np.array(zs, np.int64), np.array(ys, np.int64), np.array(xs, np.int64)


@numba.njit(cache=True)
def _select(x, y, sigma, count, separation):
    """Indices of the points kept, in order: each not too close to one already kept at a
    similar scale."""
    out = np.empty(min(count, x.size), np.int64)
    m = 0
    for i in range(x.size):
        ok = True
        for j in range(m):
            c = out[j]
            r = min(sigma[i], sigma[c]) * separation
            if (x[i] - x[c]) ** 2 + (y[i] - y[c]) ** 2 < r * r:
                q = sigma[i] / sigma[c]
                if 0.6 < q < 1.6:
                    ok = False
                    break
        if ok:
            out[m] = i
            m += 1
            if m == out.size:
                break
    return out[:m]


def _refine(d: np.ndarray, z: np.ndarray, y: np.ndarray, x: np.ndarray):
    """One Newton step on the 3 x 3 x 3 quadratic fit: (offset (n, 3) as x, y, layer, |value|,
    kept mask)."""
    d = d.astype(np.float64)
    c = d[z, y, x]
    gx = (d[z, y, x + 1] - d[z, y, x - 1]) / 2
    gy = (d[z, y + 1, x] - d[z, y - 1, x]) / 2
    gz = (d[z + 1, y, x] - d[z - 1, y, x]) / 2
    dxx = d[z, y, x + 1] + d[z, y, x - 1] - 2 * c
    dyy = d[z, y + 1, x] + d[z, y - 1, x] - 2 * c
    dzz = d[z + 1, y, x] + d[z - 1, y, x] - 2 * c
    dxy = (d[z, y + 1, x + 1] - d[z, y + 1, x - 1] - d[z, y - 1, x + 1] + d[z, y - 1, x - 1]) / 4
    dxz = (d[z + 1, y, x + 1] - d[z + 1, y, x - 1] - d[z - 1, y, x + 1] + d[z - 1, y, x - 1]) / 4
    dyz = (d[z + 1, y + 1, x] - d[z + 1, y - 1, x] - d[z - 1, y + 1, x] + d[z - 1, y - 1, x]) / 4
    hess = np.stack([np.stack([dxx, dxy, dxz], -1), np.stack([dxy, dyy, dyz], -1),
                     np.stack([dxz, dyz, dzz], -1)], -2)
    grad = np.stack([gx, gy, gz], -1)
    solvable = np.abs(np.linalg.det(hess)) > 1e-12
    step = np.zeros_like(grad)
    if solvable.any():
        step[solvable] = -np.linalg.solve(hess[solvable], grad[solvable][..., None])[..., 0]
    trace, det = dxx + dyy, dxx * dyy - dxy * dxy
    keep = (solvable & (np.abs(step).max(axis=-1) <= 0.6) & (det > 0)
            & (trace * trace * EDGE_RATIO < (EDGE_RATIO + 1) ** 2 * det))
    value = np.abs(c + 0.5 * (grad * step).sum(axis=-1))
    return step, value, keep


def compute(gray: np.ndarray) -> Points:
    """The keypoints of a picture's luminance (0-255 scale, at least 32 x 32)."""
    h0, w0 = gray.shape
    f = WORK / max(h0, w0)
    h, w = max(16, round(h0 * f)), max(16, round(w0 * f))
    resample = Image.BOX if w <= w0 and h <= h0 else Image.BILINEAR  # box averaging only shrinks
    img = np.asarray(Image.fromarray(np.asarray(gray, dtype=np.float32), mode="F").resize((w, h), resample),
                     dtype=np.float32)
    long = float(max(h, w))
    spread = float(img.std())
    if spread == 0.0:
        return _empty(w / long, h / long)
    img = (img - float(img.mean())) / spread
    img = ndimage.gaussian_filter(img, np.sqrt(SIGMA0 ** 2 - 0.25), mode="reflect", truncate=3.0)
    k = 2.0 ** (1.0 / PER_OCTAVE)
    sigmas = [SIGMA0 * k ** i for i in range(PER_OCTAVE + 3)]
    found, levels = [], []
    for octave in range(MAX_OCTAVES):
        scale = 2 ** octave
        gs = [img]
        for i in range(1, len(sigmas)):
            gs.append(ndimage.gaussian_filter(gs[-1], np.sqrt(sigmas[i] ** 2 - sigmas[i - 1] ** 2),
                                              mode="reflect", truncate=3.0))
        levels.append(gs)
        dog = np.stack([gs[i + 1] - gs[i] for i in range(len(gs) - 1)])
        z, y, x = _extrema(dog, THRESHOLD)
        if z.size:
            step, value, keep = _refine(dog, z, y, x)
            sig = SIGMA0 * k ** (z + np.clip(step[:, 2], -1.0, 1.0) + 0.5)  # octave pixels (wild steps are dropped below)
            xo, yo = x + step[:, 0], y + step[:, 1]
            xb, yb, sb = (xo + 0.5) * scale - 0.5, (yo + 0.5) * scale - 0.5, sig * scale
            r = RADIUS * sb
            keep &= (sb >= MIN_SIGMA) & (xb - r >= 0) & (yb - r >= 0) & (xb + r <= w - 1) & (yb + r <= h - 1)
            found.append(np.stack([value, xb, yb, sb, np.full(z.size, octave), z, xo, yo, sig], axis=1)[keep])
        img = gs[PER_OCTAVE][::2, ::2]
        if min(img.shape) < MIN_OCTAVE_SIDE:
            break
    cand = np.concatenate(found) if found else np.zeros((0, 9))
    if not cand.shape[0]:
        return _empty(w / long, h / long)
    cand = cand[np.lexsort((cand[:, 2], cand[:, 1], -cand[:, 0]))]
    cand = cand[_select(cand[:, 1].copy(), cand[:, 2].copy(), cand[:, 3].copy(), COUNT, SEPARATION)]
    return Points(w / long, h / long, cand[:, 1] / long, cand[:, 2] / long, cand[:, 3] / long,
                  _hashes(cand, levels))


def _hashes(cand: np.ndarray, levels: list[list[np.ndarray]]) -> np.ndarray:
    out = np.zeros(cand.shape[0], dtype=np.uint64)
    grid = (np.arange(PATCH, dtype=np.float64) + 0.5) / PATCH * 2.0 - 1.0
    d = _dct_rows()
    level = cand[:, 4].astype(np.int64) * 16 + cand[:, 5].astype(np.int64)
    for key in np.unique(level):
        idx = np.flatnonzero(level == key)
        src = levels[int(key) // 16][int(key) % 16]
        r = RADIUS * cand[idx, 8]
        ys = cand[idx, 7][:, None, None] + grid[None, :, None] * r[:, None, None]
        xs = cand[idx, 6][:, None, None] + grid[None, None, :] * r[:, None, None]
        ys, xs = np.broadcast_arrays(ys, xs)
        patch = ndimage.map_coordinates(src, [ys.ravel(), xs.ravel()], order=1, mode="nearest")
        block = np.einsum("ij,njk,lk->nil", d, patch.reshape(idx.size, PATCH, PATCH).astype(np.float64), d)
        block = block.reshape(idx.size, 64)
        bits = block > np.median(block, axis=1)[:, None]
        out[idx] = np.packbits(bits, axis=1).view(">u8")[:, 0]
    return out


def _empty(width: float, height: float) -> Points:
    z = np.zeros(0)
    return Points(width, height, z, z, z, np.zeros(0, dtype=np.uint64))


# -- the wire value ----------------------------------------------------------------------

def to_bytes(p: Points) -> bytes:
    long = max(p.width, p.height)
    w, h = round(p.width / long * WORK), round(p.height / long * WORK)
    out = bytearray(w.to_bytes(2, "big") + h.to_bytes(2, "big"))
    xs = np.clip(np.rint(p.x / long * _POS), 0, _POS).astype(np.int64)
    ys = np.clip(np.rint(p.y / long * _POS), 0, _POS).astype(np.int64)
    ss = np.clip(np.rint(16.0 * np.log2(1024.0 * p.sigma / long)), 0, 255).astype(np.int64)
    for hv, x, y, s in zip(p.hashes.tolist(), xs.tolist(), ys.tolist(), ss.tolist()):
        out += int(hv).to_bytes(8, "big") + ((x << 12) | y).to_bytes(3, "big") + bytes((s,))
    return bytes(out)


class PointsError(ValueError):
    """A ``kp64`` value that cannot be a set of keypoints (the message says why)."""


def check(value: bytes) -> None:
    """Refuse a value of the wrong shape (PointsError)."""
    if len(value) < HEADER or (len(value) - HEADER) % POINT_BYTES:
        raise PointsError(f"kp64 v1 value must be {HEADER} + {POINT_BYTES} x n bytes, got {len(value)}")
    n = (len(value) - HEADER) // POINT_BYTES
    if n > COUNT:
        raise PointsError(f"kp64 v1 value holds {n} points; at most {COUNT}")
    w, h = int.from_bytes(value[:2], "big"), int.from_bytes(value[2:4], "big")
    if not (1 <= w <= WORK and 1 <= h <= WORK and max(w, h) == WORK):
        raise PointsError(f"kp64 v1 extent {w} x {h} is not a picture's (long side {WORK})")


def from_bytes(value: bytes) -> Points:
    check(value)
    w, h = int.from_bytes(value[:2], "big") / WORK, int.from_bytes(value[2:4], "big") / WORK
    raw = np.frombuffer(value, dtype=np.uint8, offset=HEADER).reshape(-1, POINT_BYTES)
    hashes = raw[:, :8].copy().view(">u8")[:, 0].astype(np.uint64)
    pos = (raw[:, 8].astype(np.int64) << 16) | (raw[:, 9].astype(np.int64) << 8) | raw[:, 10]
    x = (pos >> 12) / _POS
    y = (pos & 0xFFF) / _POS
    sigma = 2.0 ** (raw[:, 11] / 16.0) / 1024.0
    return Points(w, h, x, y, sigma, hashes)
