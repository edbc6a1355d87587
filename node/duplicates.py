"""The node's own duplicate clusters, by the same matching rule the coordinator applies."""

from __future__ import annotations

from dataclasses import dataclass

from dedup.matching import DEFAULT_RULE, Link, Rule, find_links, relation_name
from dedup.v1 import asset_pb2
from dedup.v1 import statements_pb2 as R

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


def local_clusters(catalogue: Catalogue, rule: Rule = DEFAULT_RULE) -> tuple[list[list[str]], list[LocalLink]]:
    """Clusters of paths (each of two or more files) and the links that joined them."""
    rows = catalogue.readable()
    assets = []
    for _, record in rows:
        a = asset_pb2.Asset()
        a.ParseFromString(record)
        assets.append(a)
    parent = list(range(len(rows)))
    links: list[LocalLink] = []
    # A person's "not duplicates" decision removes the link, whatever the rule says.
    marked = catalogue.not_duplicate_pairs()
    for j, i, lk in find_links(assets, rule):
        if tuple(sorted((assets[i].asset_id, assets[j].asset_id))) in marked:
            continue
        links.append(LocalLink(rows[j][0], rows[i][0], lk))
        ri, rj = _find(parent, i), _find(parent, j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
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
        entry = {"a": lk.a, "b": lk.b, "relation": relation_name(lk.link.relation), "distance": lk.link.distance}
        if lk.link.relation == R.RELATION_CROPPED:
            entry["kept"] = lk.link.kept
        out[where[lk.a]]["links"].append(entry)
    return {"clusters": out}
