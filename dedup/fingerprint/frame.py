"""The picture's own frame: what remains after removing mattes and undoing scanner skew.

Copies of one photograph differ in what surrounds it — a uniform border or matte, or the
scanner bed showing around a print laid down slightly askew. Fingerprints are taken of the
frame, so such copies hash like the original. Both steps work on the luminance array and
are deterministic; each returns what it did so the relation can be labelled.

Trim: from each side, remove lines (rows or columns) that are flat (standard deviation
at most ``FLAT``) and of the same tone as that side's outermost line (mean within
``FLAT``), when there are at least two such lines, fewer than ``MAX_TRIM`` of the side, and
one of the next ``STEP_SEARCH`` lines steps away (mean or deviation beyond ``3 x FLAT``; the
lines before it, a resampling or compression transition, go with the border); sides are
trimmed in opposite pairs only (top and bottom, left and right), both or neither, their outer
tones within ``PAIR_TONE``; kept only if at least half the area remains. Repeated so a matte
around a bordered print is removed too.

Deskew: when all four corners of the trimmed array share one background tone and the
non-background region touches the four edges at single vertices (a rectangle rotated in
an expanded canvas), the angle is read off the vertices, the array is rotated back and cut
to the rectangle's original size. Angles under ``MIN_SKEW`` or over ``MAX_SKEW`` degrees
are left alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

FLAT = 6.0
MAX_TRIM = 0.3
STEP_SEARCH = 3
MIN_SKEW = 0.4
MAX_SKEW = 8.0
BACKGROUND_TOL = 12.0
#: Opposite borders of one added surround differ in tone by at most this (a scanner lid's
#: shadow, a mat lit from one side).
PAIR_TONE = 24.0


@dataclass(frozen=True)
class Frame:
    gray: np.ndarray  # float32 luminance of the frame
    whole: np.ndarray  # the picture before trimming (after undoing skew): where windows are cut
    content_fraction: float  # share of the input area the frame covers (1.0 = no trim)
    skew_degrees: float  # rotation undone (0.0 = none); positive = the copy was turned clockwise


def _flat_run(means: np.ndarray, stds: np.ndarray, limit: int) -> int:
    """How many outer lines form an added border: flat, one tone, and ending in a step.

    A border a person added ends abruptly where the picture begins; a flat region of the
    picture itself (a dark sky, a plain wall) fades into the rest. Requiring the step keeps
    such regions, so every copy of a picture gets the same frame whatever its noise.
    """
    ref = means[0]
    k = 0
    while k < limit and stds[k] <= FLAT and abs(means[k] - ref) <= FLAT:
        k += 1
    if k < 2 or k >= limit:
        return 0
    # The step may follow a line or two of transition (resampling, JPEG ringing).
    for j in range(k, min(k + STEP_SEARCH, limit, means.size)):
        if abs(means[j] - ref) > 3 * FLAT or stds[j] > 3 * FLAT:
            return j
    return 0


def flat_edges(gray: np.ndarray) -> tuple[float, float, float, float]:
    """How far in from each edge (top, bottom, left, right; a share of the height or width,
    at most a half) the lines are flat and of the edge line's tone, step or no step: a border
    a trim removed or left (one that meets plain ground of its own tone), or plain ground."""
    h, w = gray.shape
    rm, rs = _line_stats(gray, 1)
    cm, cs = _line_stats(gray, 0)

    def run(means: np.ndarray, stds: np.ndarray) -> int:
        k, limit = 0, means.size // 2
        while k < limit and stds[k] <= FLAT and abs(means[k] - means[0]) <= FLAT:
            k += 1
        return k if k >= 2 else 0

    return (run(rm, rs) / h, run(rm[::-1], rs[::-1]) / h, run(cm, cs) / w, run(cm[::-1], cs[::-1]) / w)


def _line_stats(gray: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of every line along ``axis``, from sums of x and x^2 in
    float64 (one pass each, instead of numpy's several for ``std``)."""
    x = np.asarray(gray, dtype=np.float64)
    n = x.shape[axis]
    mean = x.sum(axis=axis) / n
    var = np.maximum(np.einsum("ij,ij->i" if axis == 1 else "ij,ij->j", x, x) / n - mean * mean, 0.0)
    return mean, np.sqrt(var)


def trim_box(gray: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) counts of border lines to remove.

    Borders are removed in opposite pairs: top with bottom, left with right, each pair only
    when both of its sides are flat runs of one tone. What people add (a border, a matte, a
    scanner bed, letterbox or pillarbox bars) surrounds the picture on opposite sides; a flat
    area of the picture itself (a sky, the plain ground behind a portrait) rarely reaches two
    opposite edges in one tone, and trimming it would depend on each copy's resampling."""
    h, w = gray.shape
    rm, rs = _line_stats(gray, 1)
    cm, cs = _line_stats(gray, 0)
    lh, lw = int(h * MAX_TRIM), int(w * MAX_TRIM)
    t, b = _pair(_flat_run(rm, rs, lh), _flat_run(rm[::-1], rs[::-1], lh), rm[0], rm[-1])
    left, r = _pair(_flat_run(cm, cs, lw), _flat_run(cm[::-1], cs[::-1], lw), cm[0], cm[-1])
    if (h - t - b) * (w - left - r) < 0.5 * h * w:
        return 0, 0, 0, 0
    return t, b, left, r


def _pair(a: int, b: int, tone_a: float, tone_b: float) -> tuple[int, int]:
    """Both runs of opposite sides, or neither: they must both exist and share a tone."""
    if a and b and abs(tone_a - tone_b) <= PAIR_TONE:
        return a, b
    return 0, 0


def trim(gray: np.ndarray) -> tuple[np.ndarray, float]:
    """Remove borders, repeatedly: a matte around a picture whose own edge is flat must end
    where the bare picture's trim ends, whatever the matte's tone."""
    h, w = gray.shape
    out = gray
    for _ in range(4):
        t, b, left, r = trim_box(out)
        if not (t or b or left or r):
            break
        oh, ow = out.shape
        nxt = out[t:oh - b, left:ow - r]
        if nxt.shape[0] * nxt.shape[1] < 0.5 * h * w:
            break
        out = nxt
    return out, (out.shape[0] * out.shape[1]) / (h * w)


def _first(mask: np.ndarray) -> np.ndarray:
    """Per column, the first row holding content (the array height where none does)."""
    any_ = mask.any(axis=0)
    return np.where(any_, mask.argmax(axis=0), mask.shape[0])


def _edge_slope(profile: np.ndarray, lo: int, hi: int) -> float | None:
    """Slope of the straight line most of profile[lo:hi] lies on, or None.

    Robust to content that touches the background tone along part of the edge (a pale
    sky reaching the print's border): points off the first fit are dropped and the line
    refitted; at least 60% of the points must lie within 1.5 px of it.
    """
    n = hi - lo
    if n < 24:
        return None
    a, b = lo + n // 8, hi - n // 8
    x = np.arange(a, b, dtype=np.float64)
    y = profile[a:b].astype(np.float64)
    keep = np.ones(x.size, dtype=bool)
    for _ in range(3):
        if keep.sum() < 0.6 * x.size:
            return None
        slope, intercept = np.polyfit(x[keep], y[keep], 1)
        keep = np.abs(y - (slope * x + intercept)) <= 1.5
    return float(slope) if keep.sum() >= 0.6 * x.size else None


def _edges(mask: np.ndarray) -> list[float]:
    """Angle estimates (degrees, positive = turned clockwise) from each fittable edge."""
    h, w = mask.shape
    out = []
    for m, sign in ((mask, 1.0), (mask.T, -1.0)):
        hh, ww = m.shape
        top = _first(m)
        bottom = (hh - 1) - _first(m[::-1])
        if np.any(top >= hh):
            return []
        xt, xb = int(np.argmin(top)), int(np.argmax(bottom))
        if xt >= ww / 2:
            spans = ((top, 0, xt), (bottom, xb, ww))
        else:
            spans = ((top, xt, ww), (bottom, 0, xb))
        for profile, lo, hi in spans:
            slope = _edge_slope(profile, lo, hi)
            if slope is not None:
                out.append(sign * math.degrees(math.atan(slope)))
    return out


def skew_angle(gray: np.ndarray) -> tuple[float, float] | None:
    """(angle in degrees, background tone) of a rotated rectangle on a uniform background.

    Positive angles mean the rectangle was turned clockwise. Each of the four edges whose
    boundary is straight gives an estimate; at least two must exist and agree within 0.5°.
    """
    h, w = gray.shape
    if h < 32 or w < 32:
        return None
    corners = [gray[:3, :3], gray[:3, -3:], gray[-3:, :3], gray[-3:, -3:]]
    tones = [float(np.median(c)) for c in corners]
    bg = float(np.median(tones))
    if any(abs(t - bg) > BACKGROUND_TOL / 2 for t in tones):
        return None
    mask = np.abs(gray - bg) > BACKGROUND_TOL
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size < 32 or cols.size < 32:
        return None
    # Resampling can leave a line or two of pure background outside the rectangle.
    estimates = _edges(mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1])
    if len(estimates) < 2 or max(estimates) - min(estimates) > 0.5:
        return None
    angle = float(np.median(estimates))
    if not MIN_SKEW <= abs(angle) <= MAX_SKEW:
        return None
    return angle, bg


def deskew(gray: np.ndarray) -> tuple[np.ndarray, float]:
    found = skew_angle(gray)
    if found is None:
        return gray, 0.0
    angle, bg = found
    h, w = gray.shape
    th = math.radians(abs(angle))
    c, s = math.cos(th), math.sin(th)
    # The canvas holds the rotated rectangle exactly: w = W c + H s, h = W s + H c.
    det = c * c - s * s
    W = (w * c - h * s) / det
    H = (h * c - w * s) / det
    if W < 16 or H < 16:
        return gray, 0.0
    # A clockwise turn is undone by a counter-clockwise rotation (Pillow's positive angle).
    back = Image.fromarray(gray.astype(np.float32), mode="F").rotate(
        angle, resample=Image.BILINEAR, expand=True, fillcolor=bg)
    arr = np.asarray(back, dtype=np.float32)
    bh, bw = arr.shape
    # Cut the original rectangle, less a one-pixel seam of interpolated background.
    y0 = int(round((bh - H) / 2)) + 1
    x0 = int(round((bw - W) / 2)) + 1
    y1 = int(round((bh + H) / 2)) - 1
    x1 = int(round((bw + W) / 2)) - 1
    return np.ascontiguousarray(arr[y0:y1, x0:x1]), angle


def frame(gray: np.ndarray) -> Frame:
    """Trim mattes, undo skew, and trim again what the rotation left."""
    g = np.asarray(gray, dtype=np.float32)
    h, w = g.shape
    t, frac1 = trim(g)
    d, angle = deskew(t)
    if angle:
        whole = d
        d, _ = trim(d)
        return Frame(d, whole, frac1, angle)
    return Frame(d, g, (d.shape[0] * d.shape[1]) / (h * w), angle)
