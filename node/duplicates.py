"""The node's own duplicate clusters, by the same matching rule the coordinator applies."""

from __future__ import annotations

from dataclasses import dataclass

from dedup.index import HammingIndex
from dedup.matching import DEFAULT_THRESHOLD, Link, link, perceptual_value, relation_name
from dedup.v1 import asset_pb2

from .catalogue import Catalogue


@dataclass(frozen=True)
class LocalLink:
    a: str
    b: str
    link: Link


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def local_clusters(catalogue: Catalogue, threshold: int = DEFAULT_THRESHOLD) -> tuple[list[list[str]], list[LocalLink]]:
    """Clusters of paths (each of two or more files) and the links that joined them."""
    rows = catalogue.readable()
    assets = []
    for _, record in rows:
        a = asset_pb2.Asset()
        a.ParseFromString(record)
        assets.append(a)
    index = HammingIndex(32, capacity=max(len(rows), 1))
    row_to_i: list[int] = []
    by_exact: dict[bytes, int] = {}
    parent = list(range(len(rows)))
    links: list[LocalLink] = []

    def join(i: int, j: int, lk: Link) -> None:
        links.append(LocalLink(rows[j][0], rows[i][0], lk))
        ri, rj = _find(parent, i), _find(parent, j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)

    for i, a in enumerate(assets):
        cands: set[int] = set()
        for digest in (a.sha256, a.pixel_digest):
            if digest in by_exact:
                cands.add(by_exact[digest])
        value = perceptual_value(a)
        if value is not None and not a.low_information:
            cands.update(row_to_i[r] for r, _ in index.search(value, threshold))
            index.add(value)
            row_to_i.append(i)
        for j in sorted(cands):
            lk = link(assets[j], a, threshold)
            if lk is not None:
                join(i, j, lk)
        by_exact.setdefault(a.sha256, i)
        by_exact.setdefault(a.pixel_digest, i)

    groups: dict[int, list[str]] = {}
    for i, (path, _) in enumerate(rows):
        groups.setdefault(_find(parent, i), []).append(path)
    clusters = sorted((sorted(g) for g in groups.values() if len(g) > 1), key=lambda g: g[0])
    return clusters, links


def duplicates_json(catalogue: Catalogue) -> dict:
    clusters, links = local_clusters(catalogue)
    where = {p: n for n, c in enumerate(clusters) for p in c}
    out = [{"assets": [{"path": p} for p in c], "links": []} for c in clusters]
    for lk in links:
        out[where[lk.a]]["links"].append({"a": lk.a, "b": lk.b, "relation": relation_name(lk.link.relation),
                                          "distance": lk.link.distance})
    return {"clusters": out}
