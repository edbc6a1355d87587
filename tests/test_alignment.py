"""How one picture sits inside another (``dedup.alignment``), on keypoints with a known
similarity between them, correspondences that are wrong, and points only one side has."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dedup.alignment import MAX_ANGLE, SCALE_AGREEMENT, Alignment, align, correspondences, placement
from dedup.fingerprint.points import Points

RADIUS = 10  # the rule's keypoint distance
TOLERANCE = 0.025
MARGIN = 0.03


def flip_bits(rng: np.random.Generator, hashes: np.ndarray, bits: int) -> np.ndarray:
    """Each hash with ``bits`` distinct bits flipped."""
    out = hashes.copy()
    for k in range(out.size):
        for b in rng.choice(64, bits, replace=False):
            out[k] ^= np.uint64(1) << np.uint64(b)
    return out


def similarity(x: np.ndarray, y: np.ndarray, scale: float, degrees: float, tx: float, ty: float):
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return scale * (c * x - s * y) + tx, scale * (s * x + c * y) + ty


def scene(seed: int, scale: float = 0.6, degrees: float = 3.0, t: tuple[float, float] = (0.2, 0.1),
          shared: int = 20, outliers: int = 4, flips: int = 3, noise: float = 0.002):
    """Picture a (1.0 x 0.75) placed in picture b (1.0 x 0.8) by the given similarity.

    a has ``shared`` keypoints that b shows where the similarity puts them (hashes ``flips``
    bits apart, positions jittered by ``noise``), then 10 of its own. b has the shared ones,
    ``outliers`` keypoints carrying shared hashes at wrong places, and 10 of its own. Returns
    (a, b, the indices of a's and b's true correspondences)."""
    rng = np.random.default_rng(seed)
    ax, ay = rng.uniform(0.05, 0.95, shared + 10), rng.uniform(0.05, 0.70, shared + 10)
    asg = rng.uniform(0.01, 0.03, shared + 10)
    ah = rng.integers(0, 2**64, shared + 10, dtype=np.uint64)
    bx, by = similarity(ax[:shared], ay[:shared], scale, degrees, *t)
    bx, by = bx + rng.normal(0, noise, shared), by + rng.normal(0, noise, shared)
    bh = flip_bits(rng, ah[:shared], flips)
    # Wrong correspondences: a's hashes where the similarity does not put them.
    wrong = rng.choice(shared, outliers, replace=False)
    ox, oy = rng.uniform(0.05, 0.95, outliers), rng.uniform(0.05, 0.75, outliers)
    b = Points(1.0, 0.8,
               np.concatenate([bx, ox, rng.uniform(0, 1, 10)]),
               np.concatenate([by, oy, rng.uniform(0, 0.8, 10)]),
               np.concatenate([asg[:shared] * scale, asg[wrong] * scale, rng.uniform(0.01, 0.03, 10)]),
               np.concatenate([bh, ah[wrong], rng.integers(0, 2**64, 10, dtype=np.uint64)]))
    a = Points(1.0, 0.75, ax, ay, asg, ah)
    return a, b, np.arange(shared), np.arange(shared)


def test_a_known_similarity_is_recovered_with_its_inliers() -> None:
    a, b, ia, ib = scene(1)
    al = align(a, b, RADIUS, TOLERANCE)
    assert al is not None
    assert al.scale == pytest.approx(0.6, abs=0.005)
    assert al.angle == pytest.approx(3.0, abs=0.3)
    assert (al.tx, al.ty) == (pytest.approx(0.2, abs=0.005), pytest.approx(0.1, abs=0.005))
    # The true correspondences agree, the wrong ones and the unshared points do not.
    assert al.inliers_a.tolist() == ia.tolist() and al.inliers_b.tolist() == ib.tolist()
    assert al.inliers == 20
    assert al.distance == 3  # every shared hash is 3 bits from its partner
    # to_a undoes to_b.
    x, y = np.array([0.0, 0.4, 1.0]), np.array([0.75, 0.2, 0.0])
    np.testing.assert_allclose(al.to_a(*al.to_b(x, y)), (x, y), atol=1e-12)


def test_the_placement_says_which_is_inner_and_where() -> None:
    a, b, _, _ = scene(2)
    al = align(a, b, RADIUS, TOLERANCE)
    p = placement(al, a, b, MARGIN)
    assert p is not None and p.inner == 1
    # a's area (0.75) at scale 0.6, in b's (0.8).
    assert p.kept == pytest.approx(0.75 * 0.36 / 0.8, abs=0.01)
    assert (p.scale, p.angle, p.inliers) == (pytest.approx(0.6, abs=0.005), pytest.approx(3.0, abs=0.3), 20)
    # a's corners in b: the bounding box as shares of b's width and height.
    cx, cy = similarity(np.array([0.0, 1.0, 0.0, 1.0]), np.array([0.0, 0.0, 0.75, 0.75]), 0.6, 3.0, 0.2, 0.1)
    assert p.box == pytest.approx((cx.min(), cy.min() / 0.8, cx.max(), cy.max() / 0.8), abs=0.01)
    # Every one of a's points falls inside b; 20 of its 30 agree.
    assert p.support == pytest.approx(20 / 30)
    # Coverage: the agreeing points' spread over the spread of all of a's points inside b.
    ptp = min(np.ptp(a.x[:20]) / np.ptp(a.x), np.ptp(a.y[:20]) / np.ptp(a.y))
    assert p.coverage == pytest.approx(ptp)
    # Asked the other way round: the same placement, b's inner picture now the second.
    back = align(b, a, RADIUS, TOLERANCE)
    assert (back.scale, back.angle) == (pytest.approx(1 / 0.6, abs=0.01), pytest.approx(-3.0, abs=0.3))
    q = placement(back, b, a, MARGIN)
    assert (q.inner, q.kept, q.scale, q.angle) == (2, pytest.approx(p.kept, abs=0.01), pytest.approx(0.6, abs=0.005),
                                                    pytest.approx(3.0, abs=0.3))
    assert q.box == pytest.approx(p.box, abs=0.01)


def test_the_same_framing_places_the_smaller_inside() -> None:
    """Each rectangle falls inside the other within the margin (b is 2% shorter, a trim's
    difference): the smaller, b, is the inner one, whichever is asked first."""
    a, _, _, _ = scene(3)
    b = Points(1.0, 0.735, a.x + 0.001, a.y - 0.001, a.sigma, a.hashes)
    al = align(a, b, RADIUS, TOLERANCE)
    assert (al.scale, al.angle, al.inliers) == (pytest.approx(1.0, abs=1e-6), pytest.approx(0.0, abs=1e-6), 30)
    p = placement(al, a, b, MARGIN)
    assert (p.inner, p.kept, p.support) == (2, pytest.approx(0.735 / 0.75), 1.0)
    # b's corners in a: moved back by (-0.001, +0.001), clipped to a's rectangle.
    assert p.box == pytest.approx((0.0, 0.001 / 0.75, 0.999, 0.736 / 0.75), abs=1e-6)
    q = placement(align(b, a, RADIUS, TOLERANCE), b, a, MARGIN)
    assert (q.inner, q.kept) == (1, pytest.approx(0.735 / 0.75))


def test_neither_inside_the_other() -> None:
    """Side by side, overlapping by 40%: the points agree, the rectangles do not nest."""
    a, _, _, _ = scene(4)
    b = Points(1.0, 0.75, a.x - 0.6, a.y, a.sigma, a.hashes)
    al = align(a, b, RADIUS, TOLERANCE)
    assert al is not None and (al.tx, al.ty) == (pytest.approx(-0.6), pytest.approx(0.0, abs=1e-9))
    assert placement(al, a, b, MARGIN) is None


def test_unrelated_points_give_no_alignment() -> None:
    a, _, _, _ = scene(5)
    rng = np.random.default_rng(6)
    b = Points(1.0, 0.75, rng.uniform(0, 1, 30), rng.uniform(0, 0.75, 30), rng.uniform(0.01, 0.03, 30),
               rng.integers(0, 2**64, 30, dtype=np.uint64))
    assert correspondences(a, b, RADIUS)[0].size == 0  # random 64-bit hashes sit ~32 bits apart
    assert align(a, b, RADIUS, TOLERANCE) is None
    empty = Points(1.0, 0.75, np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.uint64))
    assert align(a, empty, RADIUS, TOLERANCE) is None and align(empty, a, RADIUS, TOLERANCE) is None


def test_hashes_beyond_the_radius_do_not_correspond() -> None:
    a, b, _, _ = scene(7, flips=RADIUS + 1, outliers=0)
    assert align(a, b, RADIUS, TOLERANCE) is None
    assert align(a, b, RADIUS + 1, TOLERANCE) is not None


@pytest.mark.parametrize(("degrees", "found"), [(MAX_ANGLE - 1, True), (-(MAX_ANGLE - 1), True),
                                                (MAX_ANGLE + 3, False), (-(MAX_ANGLE + 3), False), (90.0, False)])
def test_turns_beyond_max_angle_are_refused(degrees: float, found: bool) -> None:
    """A scanner bed or a straightening turns a picture a few degrees; quarter turns and mirror
    images are the whole-picture hash's business."""
    a, b, _, _ = scene(8, scale=0.5, degrees=degrees, t=(0.45, 0.2), outliers=0, noise=0.0)
    al = align(a, b, RADIUS, TOLERANCE)
    assert (al is not None) is found
    if found:
        assert al.angle == pytest.approx(degrees, abs=0.05) and al.inliers == 20


def test_keypoint_scales_must_agree() -> None:
    """At the right place but at twice the scale the transform implies: not the same blob."""
    a, b, _, _ = scene(9, outliers=0, noise=0.0)
    sigma = b.sigma.copy()
    sigma[:8] *= SCALE_AGREEMENT * 1.1
    al = align(a, Points(b.width, b.height, b.x, b.y, sigma, b.hashes), RADIUS, TOLERANCE)
    assert al.inliers_a.tolist() == list(range(8, 20))


def test_alignment_is_deterministic() -> None:
    a, b, _, _ = scene(10)
    first, again = align(a, b, RADIUS, TOLERANCE), align(a, b, RADIUS, TOLERANCE)
    assert isinstance(first, Alignment)
    assert (first.scale, first.angle, first.tx, first.ty, first.distance) == (
        again.scale, again.angle, again.tx, again.ty, again.distance)
    assert first.inliers_a.tolist() == again.inliers_a.tolist()
