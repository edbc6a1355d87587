"""Clusters of copies that one weak link cannot chain together.

Copies of one photograph link to one another many times over: a new scan matches the master,
its access copies and its other scans. Two different photographs are joined only through a
mistake, usually one pair (a matte that looks like part of another picture, a shared sprite).
So a cluster is grown the way the coordinator grows it (SPEC.md section 6), strongest links
first:

* two single copies join on their link;
* a single copy joins a cluster only if it also matches at least half of the cluster's
  representatives (its first ``REPRESENTATIVES`` members) by the rule loosened by
  ``VERIFY_SLACK``;
* two clusters of two or more copies merge only when more than one pair links them, through
  at least two copies on each side.

Pure: the caller gives the links and a way to compare two copies.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable, Hashable, Iterable, Sequence

from dedup.matching import Link
from dedup.v1 import statements_pb2 as R

#: A copy is checked against at most this many members of a cluster: enough to outvote one
#: bad link, bounded however many copies of a popular picture there are.
REPRESENTATIVES = 16
#: Distances loosened by half for the check (the rule's own distances decide links).
VERIFY_SLACK = 1.5

_TIER = {R.RELATION_IDENTICAL_BYTES: 0, R.RELATION_IDENTICAL_PIXELS: 0}


def strength(lk: Link) -> tuple[int, int]:
    """Sort key, strongest first: identical files and pixels, then whole-picture hashes, then
    local edits, then placements by keypoints; closer before farther within each."""
    if lk.relation in _TIER:
        return 0, 0
    return {"dct256": 1, "dct64": 2}.get(lk.algorithm, 3), lk.distance


def majority(candidate: Hashable, members: Iterable[Hashable], agrees: Callable[[Hashable, Hashable], bool]) -> bool:
    """Does ``candidate`` agree with at least half of the first ``REPRESENTATIVES`` members
    (in their given order)? Stops as soon as the answer is known. Half, not more: a cluster of
    a picture and one crop of it must take a copy of the picture that does not contain the
    crop's part well enough to match it."""
    reps = list(members)[:REPRESENTATIVES]
    if not reps:
        return False
    need = (len(reps) + 1) // 2
    agree = 0
    for left, m in enumerate(reps):
        if agree + (len(reps) - left) < need:
            return False
        if agrees(candidate, m):
            agree += 1
            if agree >= need:
                return True
    return agree >= need


def cluster(n: int, links: Sequence[tuple[int, int, Link]], agrees: Callable[[int, int], bool]) -> list[list[int]]:
    """Clusters (each of two or more of ``0..n-1``, sorted, in order of their first member)
    from ``links`` (i, j, link); ``agrees(i, j)`` compares two copies by the loosened rule."""
    parent = list(range(n))
    members: dict[int, list[int]] = {i: [i] for i in range(n)}
    adjacent: dict[int, set[int]] = defaultdict(set)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j, _ in links:
        adjacent[i].add(j)
        adjacent[j].add(i)
    for i, j, _ in sorted(links, key=lambda t: (strength(t[2]), t[0], t[1])):
        ri, rj = find(i), find(j)
        if ri == rj:
            continue
        a, b = members[ri], members[rj]
        if len(a) > 1 and len(b) > 1:
            # Two established clusters: more than one pair must link them, and not all through
            # one copy (a matte linked to every copy of another picture is still one link).
            small, big = (a, b) if len(a) <= len(b) else (b, a)
            big_root = find(big[0])
            pairs = [(x, y) for x in small for y in adjacent[x] if find(y) == big_root]
            if len({x for x, _ in pairs}) < 2 or len({y for _, y in pairs}) < 2:
                continue
        elif len(a) > 1 or len(b) > 1:
            single, group = (b, a) if len(a) > 1 else (a, b)
            if not majority(single[0], group, agrees):
                continue
        keep, gone = (ri, rj) if ri < rj else (rj, ri)
        parent[gone] = keep
        members[keep] = sorted(members[keep] + members.pop(gone))
    groups = [m for m in members.values() if len(m) > 1]
    return sorted(groups, key=lambda g: g[0])
