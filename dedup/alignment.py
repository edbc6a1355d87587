"""How one picture sits inside another, from the keypoints two copies share (``kp64``).

Pairs of keypoints whose hashes are within ``radius`` bits are possible correspondences. Any
two correspondences fix a similarity (scale, rotation, translation) taking the first picture's
coordinates to the second's; the one that most correspondences agree with (within ``tolerance``
of the second picture's long side, at a consistent keypoint scale) is refined by least squares
over them and kept. Rotation is limited to what a scanner bed or a straightening leaves
(``MAX_ANGLE``): quarter turns and mirror images are the whole-picture hash's business.

The result says where each picture's rectangle falls in the other's coordinates, so a caller
can tell a crop (one inside the other), the same framing (each inside the other), and two
overlapping but different pictures (neither inside the other: neighbouring frames, a stereo
pair), and how widely the agreeing points cover the smaller picture (a shared logo or sprite
agrees only over a small part of it).

Everything is deterministic: ties go to the first hypothesis in a fixed order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dedup.fingerprint.points import Points

#: Largest rotation taken as the same picture turned on a scanner bed (degrees).
MAX_ANGLE = 10.0
#: Keypoint scales agree when their ratio (after the fitted scale) is within this factor.
SCALE_AGREEMENT = 1.35
#: Hypotheses are made from the closest correspondences only: enough to find the transform
#: when it exists, bounded work when it does not.
HYPOTHESIS_POINTS = 24
#: Two correspondences closer than this (long-side units) fix the transform too loosely.
MIN_BASELINE = 0.04


@dataclass(frozen=True)
class Alignment:
    """``b = scale * R(angle) * a + (tx, ty)``, in each picture's long-side units."""

    scale: float
    angle: float  # degrees, counter-clockwise in image coordinates (y down)
    tx: float
    ty: float
    inliers_a: np.ndarray  # indices into a's points that agree
    inliers_b: np.ndarray
    distance: int  # median hash distance (bits) of the agreeing correspondences

    @property
    def inliers(self) -> int:
        return int(min(self.inliers_a.size, self.inliers_b.size))

    def to_b(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c, s = math.cos(math.radians(self.angle)), math.sin(math.radians(self.angle))
        return self.scale * (c * x - s * y) + self.tx, self.scale * (s * x + c * y) + self.ty

    def to_a(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c, s = math.cos(math.radians(self.angle)), math.sin(math.radians(self.angle))
        u, v = (x - self.tx) / self.scale, (y - self.ty) / self.scale
        return c * u + s * v, -s * u + c * v


def correspondences(a: Points, b: Points, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, distance) of every pair of keypoints with hashes within ``radius``, closest first."""
    if not len(a) or not len(b):
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    d = np.bitwise_count(a.hashes[:, None] ^ b.hashes[None, :]).astype(np.int64)
    i, j = np.nonzero(d <= radius)
    dist = d[i, j]
    order = np.lexsort((j, i, dist))
    return i[order], j[order], dist[order]


def align(a: Points, b: Points, radius: int, tolerance: float) -> Alignment | None:
    """The best similarity taking ``a`` to ``b``, or None when fewer than two correspondences
    agree on one."""
    i, j, dist = correspondences(a, b, radius)
    if i.size < 2:
        return None
    ax, ay, asg = a.x[i], a.y[i], a.sigma[i]
    bx, by, bsg = b.x[j], b.y[j], b.sigma[j]
    h = min(i.size, HYPOTHESIS_POINTS)
    p, q = np.triu_indices(h, 1)
    ok = (i[p] != i[q]) & (j[p] != j[q])
    p, q = p[ok], q[ok]
    vax, vay = ax[p] - ax[q], ay[p] - ay[q]
    vbx, vby = bx[p] - bx[q], by[p] - by[q]
    la, lb = np.hypot(vax, vay), np.hypot(vbx, vby)
    ok = (la >= MIN_BASELINE) & (lb >= MIN_BASELINE * 0.5)
    p, q, vax, vay, vbx, vby, la, lb = (v[ok] for v in (p, q, vax, vay, vbx, vby, la, lb))
    if not p.size:
        return None
    scale = lb / la
    angle = np.arctan2(vby, vbx) - np.arctan2(vay, vax)
    angle = (angle + np.pi) % (2 * np.pi) - np.pi
    ok = np.abs(angle) <= math.radians(MAX_ANGLE)
    if not ok.any():
        return None
    p, scale, angle = p[ok], scale[ok], angle[ok]
    c, s = np.cos(angle), np.sin(angle)
    tx = bx[p] - scale * (c * ax[p] - s * ay[p])
    ty = by[p] - scale * (s * ax[p] + c * ay[p])
    # Every hypothesis against every correspondence.
    px = scale[:, None] * (c[:, None] * ax[None] - s[:, None] * ay[None]) + tx[:, None]
    py = scale[:, None] * (s[:, None] * ax[None] + c[:, None] * ay[None]) + ty[:, None]
    agree = _agree(px, py, bx[None], by[None], bsg[None] / (scale[:, None] * asg[None]), tolerance)
    best = int(np.argmax(agree.sum(axis=1)))
    keep = agree[best]
    if keep.sum() < 2:
        return None
    fit = _fit(ax[keep], ay[keep], bx[keep], by[keep])
    if fit is None:
        return None
    sc, an, fx, fy = fit
    cr, sr = math.cos(math.radians(an)), math.sin(math.radians(an))
    keep = _agree(sc * (cr * ax - sr * ay) + fx, sc * (sr * ax + cr * ay) + fy, bx, by, bsg / (sc * asg), tolerance)
    if keep.sum() < 2 or abs(an) > MAX_ANGLE:
        return None
    return Alignment(sc, an, fx, fy, np.unique(i[keep]), np.unique(j[keep]), int(np.median(dist[keep])))


def _agree(px, py, bx, by, ratio, tolerance: float) -> np.ndarray:
    return ((np.hypot(px - bx, py - by) <= tolerance)
            & (ratio < SCALE_AGREEMENT) & (ratio > 1.0 / SCALE_AGREEMENT))


def _fit(ax, ay, bx, by) -> tuple[float, float, float, float] | None:
    """Least-squares similarity (scale, angle in degrees, tx, ty) taking a to b."""
    n = ax.size
    m = np.zeros((2 * n, 4))
    m[:n, 0], m[:n, 1], m[:n, 2] = ax, -ay, 1.0
    m[n:, 0], m[n:, 1], m[n:, 3] = ay, ax, 1.0
    (pc, ps, tx, ty), *_ = np.linalg.lstsq(m, np.concatenate([bx, by]), rcond=None)
    scale = math.hypot(pc, ps)
    if not scale > 0:
        return None
    return scale, math.degrees(math.atan2(ps, pc)), float(tx), float(ty)


@dataclass(frozen=True)
class Placement:
    """Where one picture (the inner) lies in the other (the outer), and how well the points
    that agree cover it."""

    inner: int  # 1: the first picture of ``place`` lies in the second; 2: the other way
    kept: float  # the inner picture's share of the outer picture's area
    coverage: float  # the agreeing points' extent over that of all the inner picture's points (smaller axis)
    support: float  # agreeing points / inner points that fall inside the outer picture
    inliers: int
    scale: float  # outer units per inner unit
    angle: float  # degrees
    #: The inner picture's bounding box in the outer one: (left, top, right, bottom) as shares
    #: of the outer picture's width and height, clipped to it.
    box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)
    inside: int = 0  # the inner picture's keypoints that fall inside the outer one


def placement(al: Alignment, a: Points, b: Points, margin: float) -> Placement | None:
    """How ``a`` and ``b`` fit one inside the other under ``al`` (taking ``a`` to ``b``), or
    None when neither rectangle falls inside the other within ``margin`` (of the outer
    picture's long side). When each falls inside the other (the same framing), the smaller is
    the inner one."""
    bx, by = al.to_a(np.array([0.0, b.width, 0.0, b.width]), np.array([0.0, 0.0, b.height, b.height]))
    ax, ay = al.to_b(np.array([0.0, a.width, 0.0, a.width]), np.array([0.0, 0.0, a.height, a.height]))
    b_in_a = _inside(bx, by, a.width, a.height, margin)
    a_in_b = _inside(ax, ay, b.width, b.height, margin)
    if not (a_in_b or b_in_a):
        return None
    area_a, area_b = a.width * a.height, b.width * b.height
    if b_in_a and (not a_in_b or area_b / al.scale ** 2 <= area_a):
        inner, outer_area, inner_area, pts, idx = 2, area_a, area_b / al.scale ** 2, b, al.inliers_b
        ix, iy = al.to_a(b.x, b.y)
        inside = (ix >= 0) & (ix <= a.width) & (iy >= 0) & (iy <= a.height)
        scale, angle = 1.0 / al.scale, -al.angle
        box = _box(bx, by, a)
    else:
        inner, outer_area, inner_area, pts, idx = 1, area_b, area_a * al.scale ** 2, a, al.inliers_a
        ix, iy = al.to_b(a.x, a.y)
        inside = (ix >= 0) & (ix <= b.width) & (iy >= 0) & (iy <= b.height)
        scale, angle = al.scale, al.angle
        box = _box(ax, ay, b)
    # How widely the agreeing points spread over where the inner picture has points at all (a
    # picture's detail may sit in one part of it: an object on plain ground).
    ext_x, ext_y = (float(np.ptp(pts.x[inside])), float(np.ptp(pts.y[inside]))) if inside.any() else (0.0, 0.0)
    cov = min(np.ptp(pts.x[idx]) / ext_x if ext_x > 0 else 0.0, np.ptp(pts.y[idx]) / ext_y if ext_y > 0 else 0.0)
    support = idx.size / max(1, int(inside.sum()))
    return Placement(inner, min(1.0, inner_area / outer_area), float(cov), float(support), al.inliers,
                     float(scale), float(angle), box, int(inside.sum()))


def _box(x: np.ndarray, y: np.ndarray, outer: Points) -> tuple[float, float, float, float]:
    def share(v: float, extent: float) -> float:
        return float(min(1.0, max(0.0, v / extent)))
    return (share(x.min(), outer.width), share(y.min(), outer.height),
            share(x.max(), outer.width), share(y.max(), outer.height))


def _inside(x: np.ndarray, y: np.ndarray, w: float, h: float, margin: float) -> bool:
    return bool((x >= -margin).all() and (x <= w + margin).all() and (y >= -margin).all() and (y <= h + margin).all())
