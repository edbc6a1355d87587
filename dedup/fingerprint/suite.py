"""The fingerprint set a node computes for every image, from one luminance array.

All of it is taken of the picture's frame (mattes trimmed, scanner skew undone, see
``frame``), on one 128x128 exact area-average grid of that frame:

* ``dct256`` v2 — the 256-bit DCT hash (``dct``) of the frame and its seven other
  dihedral variants (rotations by 90/180/270 degrees, mirror images) from the same DCT:
  8 x 32 bytes, upright first. Stored copies are indexed by the upright hash; a new
  copy is looked up with all eight, which finds rotated and mirrored copies.
* ``dct64`` v2 — 64-bit hashes of frequencies 1..8 only, of the frame and of the whole
  picture before trimming (2 x 8 bytes): less detail, but far steadier under local edits
  (watermarks, overlays, grain) and small misalignment.
* ``win64`` v2 — the 64-bit low-frequency hash of each sub-window in ``WINDOWS`` of the
  whole picture (36 x 8 bytes): a crop of the picture hashes (as a whole) like one of these
  windows of the original. Windows are cut before trimming because whether a flat strip at
  an edge is trimmed depends on where a crop cut it; the crop is compared with both of its
  own 64-bit hashes.

Low-frequency hashes use the same quantisation and median rule as ``dct256``; each is
computed as ``D8 @ A_rows @ G @ A_cols.T @ D8.T`` where ``A`` averages the window's
share of the grid into 64 cells exactly (fractional overlaps weighted by length) and
``D8`` holds rows 1..8 of the orthonormal 64-point DCT-II.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import dct
from .frame import Frame, frame
from .information import LOW_INFORMATION_THRESHOLD, band_energy

GRID = 128
LOW_BAND = 8

#: (name, top, bottom, left, right) as fractions of the frame: single-side crops of 4% to
#: 28% in 4% steps from each side, then centred crops of 2% to 16% in 2% steps from every
#: side (finer, since a centred crop changes both axes; they also find an original inside
#: a bordered copy whose border could not be trimmed).
WINDOWS: tuple[tuple[str, float, float, float, float], ...] = tuple(
    [(f"{side}{k * 4:02d}", *box)
     for k in range(1, 8)
     for side, box in (("t", (k * 0.04, 1.0, 0.0, 1.0)), ("b", (0.0, 1.0 - k * 0.04, 0.0, 1.0)),
                       ("l", (0.0, 1.0, k * 0.04, 1.0)), ("r", (0.0, 1.0, 0.0, 1.0 - k * 0.04)))]
    + [(f"c{k * 2:02d}", k * 0.02, 1.0 - k * 0.02, k * 0.02, 1.0 - k * 0.02) for k in range(1, 9)]
)


@dataclass(frozen=True)
class Suite:
    dihedral: tuple[bytes, ...]  # dct256 v2: 8 x 32 bytes, upright first
    low: bytes  # dct64 v2, first part: the frame
    low_whole: bytes  # dct64 v2, second part: the whole picture before trimming
    windows: tuple[bytes, ...]  # win64 v2, in WINDOWS order, cut from the whole picture
    information: float
    flatness: float  # share of the grid where neighbouring cells differ by under one grey level
    content_fraction: float
    skew_degrees: float
    frame_shape: tuple[int, int]  # (height, width) of the frame in the input array's pixels

    @property
    def low_information(self) -> bool:
        return self.information < LOW_INFORMATION_THRESHOLD or self.flatness > FLATNESS_THRESHOLD


#: Above this share of flat grid cells an image is a few flat areas and their edges (a colour
#: target, a shape on a plain ground, a blank page): its hash describes only the layout of
#: the areas, which unrelated images of the same kind share. Measured: such images 0.94-1.0;
#: the benchmark's 200 photographs and paintings at most 0.80 (median 0.43).
FLATNESS_THRESHOLD = 0.9


@lru_cache(maxsize=256)
def area_matrix(n_out: int, n_in: int, lo: float = 0.0, hi: float | None = None) -> np.ndarray:
    """n_out x n_in matrix averaging the source interval [lo, hi) into n_out equal cells."""
    hi = float(n_in) if hi is None else hi
    edges = lo + (hi - lo) * np.arange(n_out + 1, dtype=np.float64) / n_out
    a, b = edges[:-1, None], edges[1:, None]
    r = np.arange(n_in, dtype=np.float64)[None, :]
    overlap = np.clip(np.minimum(b, r + 1.0) - np.maximum(a, r), 0.0, None)
    out = overlap / (b - a)
    out.setflags(write=False)
    return out


@lru_cache(maxsize=1)
def _low_rows() -> np.ndarray:
    k = np.arange(1, LOW_BAND + 1, dtype=np.float64)[:, None]
    n = np.arange(dct.GRID, dtype=np.float64)[None, :]
    return np.sqrt(2.0 / dct.GRID) * np.cos(np.pi * k * (2.0 * n + 1.0) / (2.0 * dct.GRID))


@lru_cache(maxsize=64)
def _window_rows(lo: float, hi: float) -> np.ndarray:
    """D8 @ A for one window extent over the 128-cell grid axis (8 x 128)."""
    return _low_rows() @ area_matrix(dct.GRID, GRID, lo * GRID, hi * GRID)


def _quantise(block: np.ndarray, grid_max: float) -> np.ndarray:
    floor = dct.GRID * grid_max * 2.0**-12
    scale = max(float(np.max(np.abs(block))), floor)
    if scale == 0.0:
        return np.zeros(block.shape, dtype=np.int64)
    return np.rint(block * (2.0**20 / scale)).astype(np.int64)


def grid(gray: np.ndarray) -> np.ndarray:
    """Exact area average of a 2-D array onto GRID x GRID cells (float64)."""
    h, w = gray.shape
    return area_matrix(GRID, h) @ np.asarray(gray, dtype=np.float64) @ area_matrix(GRID, w).T


def low_hash(g: np.ndarray, top: float, bottom: float, left: float, right: float, grid_max: float) -> bytes:
    """The 64-bit low-frequency hash of one window of the grid."""
    block = _window_rows(top, bottom) @ g @ _window_rows(left, right).T
    return _block_bits(block[None], grid_max)[0]


def _block_bits(blocks: np.ndarray, grid_max: float) -> list[bytes]:
    """Quantise each (8 x 8) block as ``_quantise`` does and threshold it at its median."""
    floor = dct.GRID * grid_max * 2.0**-12
    scale = np.maximum(np.abs(blocks).max(axis=(1, 2)), floor)
    safe = np.where(scale == 0.0, 1.0, scale)
    q = np.rint(blocks * (2.0**20 / safe)[:, None, None]).astype(np.int64)
    q[scale == 0.0] = 0
    flat = q.reshape(q.shape[0], -1)
    bits = flat > np.median(flat, axis=1)[:, None]
    return [b.tobytes() for b in np.packbits(bits, axis=1)]


@lru_cache(maxsize=1)
def _all_window_rows() -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) stacks: for every window of the full frame then WINDOWS, D8 @ A (8 x 128)."""
    boxes = [(0.0, 1.0, 0.0, 1.0)] + [w[1:] for w in WINDOWS]
    rows = np.stack([_window_rows(t, b) for t, b, _, _ in boxes])
    cols = np.stack([_window_rows(l, r) for _, _, l, r in boxes])
    return rows, cols


def _low_hashes(g: np.ndarray, grid_max: float) -> list[bytes]:
    """low_hash of the whole frame and of every window, computed together."""
    rows, cols = _all_window_rows()
    return _block_bits((rows @ g) @ cols.transpose(0, 2, 1), grid_max)


def _grid_and_max(gray: np.ndarray) -> tuple[np.ndarray, float]:
    g = grid(gray)
    return g, float(np.max(np.abs(g)))


def compute(gray: np.ndarray) -> Suite:
    """Every fingerprint of one image from its luminance array (0-255 scale, >= 32x32)."""
    fr: Frame = frame(gray)
    g = grid(fr.gray)
    grid_max = float(np.max(np.abs(g)))
    # 128 -> 64 cells by 2x2 means is the exact area average dct256 defines.
    g64 = g.reshape(dct.GRID, 2, dct.GRID, 2).mean(axis=(1, 3))
    rows = dct._dct_rows()
    band = rows @ g64 @ rows.T
    info = band_energy(band)
    q = _quantise(band, float(np.max(np.abs(g64))))
    dihedral = tuple(dct.bits_from_block(b) for b in dct.dihedral_blocks(q))
    if fr.whole is fr.gray:
        low_whole, *windows = _low_hashes(g, grid_max)
        low = low_whole
    else:
        low = low_hash(g, 0.0, 1.0, 0.0, 1.0, grid_max)
        low_whole, *windows = _low_hashes(*_grid_and_max(fr.whole))
    step = np.maximum(np.abs(np.diff(g, axis=1))[:-1, :], np.abs(np.diff(g, axis=0))[:, :-1])
    flatness = float(np.mean(step < 1.0))
    return Suite(dihedral, low, low_whole, tuple(windows), info, flatness, fr.content_fraction, fr.skew_degrees, fr.gray.shape)
