"""Clusters that one weak link cannot chain (``dedup.clusters``): two established clusters
merge only on more than one linking pair through two copies on each side, a single copy joins
only when it agrees with at least half of a cluster's
representatives, links are taken strongest first, and the input's order does not matter."""

from __future__ import annotations

import itertools
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from dedup.clusters import REPRESENTATIVES, cluster, majority, strength
from dedup.matching import Link
from dedup.v1 import statements_pb2 as R

BYTES = Link(R.RELATION_IDENTICAL_BYTES, "sha256", 0)
PIXELS = Link(R.RELATION_IDENTICAL_PIXELS, "pixel-sha256", 0)
WHOLE = Link(R.RELATION_REENCODED, "dct256", 4)
EDIT = Link(R.RELATION_EDITED, "dct64", 3)
PLACED = Link(R.RELATION_CROPPED, "kp64", 2, 0.7, 1)


def clique(members: list[int], lk: Link = WHOLE) -> list[tuple[int, int, Link]]:
    return [(i, j, lk) for i, j in itertools.combinations(members, 2)]


def agree_within(*groups: list[int]):
    """``agrees``: two copies agree when they belong to one of ``groups``."""
    where = {i: g for g, members in enumerate(groups) for i in members}
    return lambda x, y: x in where and where.get(x) == where.get(y)


def test_one_link_does_not_chain_two_clusters() -> None:
    links = clique([0, 1, 2]) + clique([3, 4, 5]) + [(2, 3, PLACED)]
    assert cluster(6, links, agree_within([0, 1, 2], [3, 4, 5])) == [[0, 1, 2], [3, 4, 5]]


def test_two_linking_pairs_merge_two_clusters() -> None:
    links = clique([0, 1, 2]) + clique([3, 4, 5]) + [(2, 3, PLACED), (1, 4, PLACED)]
    assert cluster(6, links, agree_within([0, 1, 2], [3, 4, 5])) == [[0, 1, 2, 3, 4, 5]]


def test_links_all_through_one_copy_do_not_merge_two_clusters() -> None:
    """A matte that looks like part of another picture links to every copy of that picture: many
    pairs, one link. Two copies on each side must take part."""
    links = clique([0, 1, 2]) + clique([3, 4, 5]) + [(2, 3, PLACED), (2, 4, PLACED), (2, 5, PLACED)]
    assert cluster(6, links, agree_within([0, 1, 2], [3, 4, 5])) == [[0, 1, 2], [3, 4, 5]]
    links = clique([0, 1, 2]) + clique([3, 4, 5]) + [(0, 3, PLACED), (1, 3, PLACED), (2, 3, PLACED)]
    assert cluster(6, links, agree_within([0, 1, 2], [3, 4, 5])) == [[0, 1, 2], [3, 4, 5]]


def test_two_single_copies_join_on_their_link() -> None:
    """No one to outvote: the link alone decides (agrees is not asked)."""
    def never(x: int, y: int) -> bool:
        raise AssertionError("two single copies need no verification")

    assert cluster(3, [(0, 2, PLACED)], never) == [[0, 2]]


def test_a_single_copy_joins_only_when_it_agrees_with_half_the_cluster() -> None:
    """Linked to copy 0 of a five-copy cluster, copy 5 must agree with three of the five."""
    links = clique([0, 1, 2, 3, 4]) + [(0, 5, PLACED)]
    inside = {0, 1, 2, 3, 4}
    assert cluster(6, links, lambda x, y: {x, y} in ({5, 0}, {5, 1}) or {x, y} <= inside) == [[0, 1, 2, 3, 4]]
    assert cluster(6, links, lambda x, y: {x, y} in ({5, 0}, {5, 1}, {5, 2}) or {x, y} <= inside) == [
        [0, 1, 2, 3, 4, 5]]


def test_a_copy_of_the_picture_joins_a_picture_and_its_crop() -> None:
    """A picture and a crop of it; a greyscale copy of the picture matches the picture but not
    the crop (too little of the crop's part survives): half of two is enough."""
    links = [(0, 1, PLACED), (0, 2, WHOLE)]
    assert cluster(3, links, lambda x, y: {x, y} != {1, 2}) == [[0, 1, 2]]


def test_only_the_first_representatives_are_asked() -> None:
    """A cluster of 20: the newcomer is checked against its first 16 members only, and must
    agree with at least 8 of them (agreeing with members 9..19, 11 of 20, is not enough)."""
    assert REPRESENTATIVES == 16
    big = list(range(20))
    links = clique(big) + [(19, 20, PLACED)]
    asked: list[int] = []

    def agrees_from(first: int):
        def agrees(x: int, y: int) -> bool:
            if x == 20:
                asked.append(y)
                return y >= first
            return True
        return agrees

    assert cluster(21, links, agrees_from(9)) == [big]
    assert max(asked) < 16  # never beyond the representatives
    assert cluster(21, links, agrees_from(8)) == [big + [20]]


def test_majority_stops_once_the_answer_is_known() -> None:
    asked: list[int] = []

    def agrees(x: int, y: int) -> bool:
        asked.append(y)
        return y % 2 == 0

    assert majority("new", range(11), agrees) is True  # 6 of 11
    assert asked == list(range(11))
    asked.clear()
    assert majority("new", range(1, 12), agrees) is False  # 5 of 11 is under half
    asked.clear()
    # Six disagreeing first: the other five cannot make six.
    assert majority("new", [1, 3, 5, 7, 9, 11, 0, 2, 4, 6, 8], agrees) is False
    assert asked == [1, 3, 5, 7, 9, 11]
    asked.clear()
    assert majority("new", [0, 2, 4, 1, 3, 5], agrees) is True  # 3 of 6 is half
    assert asked == [0, 2, 4]
    assert majority("new", [], agrees) is False


def test_strongest_links_first() -> None:
    """Copies 1, 2 and 3 are identical bytes, and 1 is linked by keypoints to 0, which 2 and 3
    do not resemble. The identical trio forms first, so 0 cannot join it (one of three)."""
    def agrees(x: int, y: int) -> bool:
        return 0 not in (x, y) or {x, y} == {0, 1}

    identical = [(1, 2, BYTES), (2, 3, BYTES), (1, 3, BYTES)]
    assert cluster(4, [(0, 1, PLACED)] + identical, agrees) == [[1, 2, 3]]
    # Were the links equally strong, the first pair in index order would form first.
    assert cluster(4, [(0, 1, PLACED), (1, 2, PLACED), (2, 3, PLACED), (1, 3, PLACED)], agrees) == [[0, 1, 2, 3]]


def test_strength_order() -> None:
    """Identical files and pixels, then dct256, then dct64, then kp64; closer first in each."""
    ordered = [BYTES, PIXELS, Link(R.RELATION_SIMILAR, "dct256", 0), WHOLE, EDIT,
               Link(R.RELATION_EDITED, "dct64", 6), Link(R.RELATION_CROPPED, "kp64", 0, 0.5, 2), PLACED]
    assert sorted(ordered, key=strength) == ordered
    assert strength(BYTES) == strength(PIXELS) == (0, 0)
    assert strength(PLACED) == (3, 2)


LINKS = [BYTES, PIXELS, WHOLE, Link(R.RELATION_GREYSCALE, "dct256", 9), EDIT, PLACED,
         Link(R.RELATION_BORDERED, "kp64", 5), Link(R.RELATION_RESCANNED, "kp64", 7, 0.8, 2)]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 14), seed=st.integers(0, 2**32 - 1), order=st.randoms(use_true_random=False))
def test_clusters_do_not_depend_on_the_order_of_the_links(n: int, seed: int, order: random.Random) -> None:
    rng = random.Random(seed)
    pairs = [p for p in itertools.combinations(range(n), 2) if rng.random() < 0.4]
    links = [(i, j, rng.choice(LINKS)) for i, j in pairs]
    agreeing = {p for p in itertools.combinations(range(n), 2) if rng.random() < 0.6} | set(pairs)

    def agrees(x: int, y: int) -> bool:
        return (min(x, y), max(x, y)) in agreeing

    expected = cluster(n, links, agrees)
    shuffled = list(links)
    order.shuffle(shuffled)
    assert cluster(n, shuffled, agrees) == expected
    # Clusters are disjoint, sorted, each of two or more, in order of their first member.
    flat = [i for g in expected for i in g]
    assert len(flat) == len(set(flat))
    assert all(g == sorted(g) and len(g) >= 2 for g in expected)
    assert [g[0] for g in expected] == sorted(g[0] for g in expected)
