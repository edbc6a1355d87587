"""The node's own duplicate clusters, by the same matching rule the coordinator applies."""

from __future__ import annotations

from dataclasses import dataclass

from dedup.clusters import VERIFY_SLACK, cluster
from dedup.matching import DEFAULT_RULE, Link, Rule, compared_hashes, find_links, link, relation_name
from dedup.v1 import asset_pb2
from dedup.v1 import statements_pb2 as R

from .catalogue import Catalogue


@dataclass(frozen=True)
class LocalLink:
    a: str
    b: str
    link: Link


def local_clusters(catalogue: Catalogue, rule: Rule = DEFAULT_RULE) -> tuple[list[list[str]], list[LocalLink]]:
    """Clusters of paths (each of two or more files) and the links within them, grown as the
    coordinator grows its clusters (``dedup.clusters``): one weak link does not join two
    photographs' clusters."""
    rows = catalogue.readable()
    assets = []
    for _, record in rows:
        a = asset_pb2.Asset()
        a.ParseFromString(record)
        assets.append(a)
    parsed = [compared_hashes(a) for a in assets]
    # A person's "not duplicates" decision removes the link, whatever the rule says.
    marked = catalogue.not_duplicate_pairs()
    found = [(j, i, lk) for j, i, lk in find_links(assets, rule, parsed)
             if tuple(sorted((assets[i].asset_id, assets[j].asset_id))) not in marked]
    loose = rule.loosened(VERIFY_SLACK)

    def agrees(x: int, y: int) -> bool:
        if tuple(sorted((assets[x].asset_id, assets[y].asset_id))) in marked:
            return False
        return link(assets[x], assets[y], loose, ha=parsed[x], hb=parsed[y]) is not None

    groups = cluster(len(assets), found, agrees)
    where = {i: n for n, g in enumerate(groups) for i in g}
    clusters = sorted((sorted(rows[i][0] for i in g) for g in groups), key=lambda g: g[0])
    links = [LocalLink(rows[j][0], rows[i][0], lk) for j, i, lk in found
             if where.get(i) is not None and where.get(i) == where.get(j)]
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
