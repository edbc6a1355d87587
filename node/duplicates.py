"""The node's own duplicate clusters, by the same matching rule the coordinator applies, and the
copy in each that the master policy suggests keeping."""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import PurePath

from dedup.clusters import VERIFY_SLACK, cluster
from dedup.matching import DEFAULT_RULE, Link, Rule, compared_hashes, find_links, link, relation_name
from dedup.policy import Candidate, Decision, choose_master, derived_copies
from dedup.v1 import asset_pb2
from dedup.v1 import statements_pb2 as R

from . import wording
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


def crop_of(lk: LocalLink) -> str | None:
    """The path of the link's crop, when the match says which side it is."""
    return lk.a if lk.link.crop == 1 else lk.b if lk.link.crop == 2 else None


def link_words(lk: LocalLink, this: str, assets: dict[str, asset_pb2.Asset], ref_name: str) -> str:
    """What ``this`` end of the link is relative to the other end, in plain words."""
    ref = lk.b if this == lk.a else lk.a
    crop = crop_of(lk)
    return wording.copy_words(
        lk.link.relation, assets[this].evidence, assets[ref].evidence,
        kept=lk.link.kept if lk.link.relation == R.RELATION_CROPPED else None,
        this_is_crop=None if crop is None else crop == this,
        turn=wording.turn_between(assets[this], assets[ref]) if lk.link.relation == R.RELATION_ROTATED_MIRRORED
        else None, ref_name=ref_name)


@dataclass(frozen=True)
class Ranked:
    """One cluster with the copy the master policy suggests keeping, and how every other copy
    relates to it (along the shortest chain of links when no link joins them directly)."""

    paths: list[str]
    decision: Decision
    #: Keeper first, then the others in the policy's ranking.
    ranking: list[str]
    links: list[LocalLink]
    chains: dict[str, list[LocalLink]]
    #: Why the keeper, in one plain sentence.
    reason: str

    @property
    def keeper(self) -> str:
        return self.ranking[0]

    def relation_to_keeper(self, path: str) -> str:
        """The machine name: '' for the keeper, a relation name for a direct link, 'indirect: a, b'."""
        steps = self.chains.get(path, [])
        if not steps:
            return ""
        if len(steps) == 1:
            return relation_name(steps[0].link.relation)
        return "indirect: " + ", ".join(relation_name(s.link.relation) for s in steps)

    def words_to_keeper(self, path: str, assets: dict[str, asset_pb2.Asset]) -> str:
        """Plain words: 'smaller copy (1024 px of 6000)'; along a chain, each step from the one before."""
        steps = self.chains.get(path, [])
        if not steps:
            return "" if path == self.keeper else "a copy of the same photograph"
        if len(steps) == 1:
            return link_words(steps[0], path, assets, "the keeper")
        here, said, via = self.keeper, [], []
        for s in steps:
            there = s.b if here == s.a else s.a
            said.append(link_words(s, there, assets, "the keeper" if here == self.keeper else PurePath(here).name))
            via.append(PurePath(there).name)
            here = there
        return f"via {', '.join(via[:-1])}: " + "; then ".join(said)


def _chains(keeper: str, links: list[LocalLink]) -> dict[str, list[LocalLink]]:
    """Shortest chain of links from the keeper to every copy (breadth first, links in path order)."""
    adjacent: dict[str, list[tuple[str, LocalLink]]] = defaultdict(list)
    for lk in sorted(links, key=lambda lk: (lk.a, lk.b)):
        adjacent[lk.a].append((lk.b, lk))
        adjacent[lk.b].append((lk.a, lk))
    chain: dict[str, list[LocalLink]] = {keeper: []}
    queue = deque([keeper])
    while queue:
        here = queue.popleft()
        for there, lk in adjacent[here]:
            if there not in chain:
                chain[there] = chain[here] + [lk]
                queue.append(there)
    return chain


def rank(paths: list[str], assets: dict[str, asset_pb2.Asset], links: list[LocalLink],
         rights: dict[str, str] | None = None) -> Ranked:
    """The copy to keep among ``paths``, by the published master policy as the coordinator
    applies it to a cluster: a crop, or the bordered copy, of another copy ranks last
    (``derived_copies``), then pixels, lossless, bit depth, colour, quality, date, rights.
    ``rights``: path -> the node's latest word on its rights, where it overrides the record's."""
    key = {p: ("", assets[p].asset_id) for p in paths}
    inside = [lk for lk in links if lk.a in key and lk.b in key]
    derived = derived_copies({key[p]: assets[p].evidence for p in paths},
                             [(key[lk.a], key[lk.b], lk.link.relation, key.get(crop_of(lk) or "")) for lk in inside])
    candidates = []
    for p in paths:
        e = asset_pb2.Evidence()
        e.CopyFrom(assets[p].evidence)
        if rights is not None and p in rights:
            e.rights = rights[p]
        candidates.append(Candidate("", assets[p].asset_id, e, 0, derived=key[p] in derived))
    decision = choose_master(candidates)
    path_of = {assets[p].asset_id: p for p in paths}
    ranking = [path_of[c.asset_id] for c in decision.ranking]
    reason = wording.keep_reason(decision, {assets[p].asset_id: PurePath(p).name for p in paths})
    return Ranked(sorted(paths), decision, ranking, sorted(inside, key=lambda lk: (lk.a, lk.b)),
                  _chains(ranking[0], inside), reason)


def rights_of(asset: asset_pb2.Asset, column: str | None = None) -> str:
    """Rights as the policy compares them: the catalogue's column (imported catalogue rights
    override embedded ones), else the record's; blank or 'unknown' is unknown."""
    text = (column or asset.evidence.rights or "").strip()
    return "unknown" if text.lower() in ("", "unknown") else text


def catalogue_rights(catalogue: Catalogue, assets: dict[str, asset_pb2.Asset]) -> dict[str, str]:
    """path -> ``rights_of`` each readable file."""
    have = {r[1] for r in catalogue._db.execute("PRAGMA table_info(files)")}
    column = dict(catalogue._db.execute("SELECT path, rights_uri FROM files")) if "rights_uri" in have else {}
    return {p: rights_of(a, column.get(p)) for p, a in assets.items()}


def ranked_clusters(catalogue: Catalogue, rule: Rule = DEFAULT_RULE) -> tuple[list[Ranked], dict[str, asset_pb2.Asset]]:
    """Every cluster with its suggested keeper, and the records of every readable file by path."""
    assets = {p: asset_pb2.Asset.FromString(bytes(r)) for p, r in catalogue.readable() if r is not None}
    clusters, links = local_clusters(catalogue, rule)
    rights = catalogue_rights(catalogue, assets)
    return [rank(c, assets, links, rights) for c in clusters], assets


def duplicates_json(catalogue: Catalogue) -> dict:
    """{"clusters": [{"assets": [{"path"}], "links": [{"a", "b", "relation", "distance"}]}]}, as
    ever, and beside them the suggested keeper, its reason and each copy's words."""
    ranked, assets = ranked_clusters(catalogue)
    out = []
    for c in ranked:
        place = {p: n for n, p in enumerate(c.ranking)}
        entry = {"assets": [{"path": p, "keeper": p == c.keeper, "relation_to_keeper": c.relation_to_keeper(p),
                             "description": c.words_to_keeper(p, assets),
                             "facts": wording.facts(assets[p].evidence)} for p in c.paths],
                 "links": [], "keeper": c.keeper, "deciding_rule": c.decision.deciding_rule, "keeper_reason": c.reason,
                 "ranking": c.ranking}
        for lk in c.links:
            one = {"a": lk.a, "b": lk.b, "relation": relation_name(lk.link.relation), "distance": lk.link.distance}
            if lk.link.relation == R.RELATION_CROPPED:
                one["kept"] = lk.link.kept
            # Read from the copy the policy ranks lower: 'small.jpg against master.tif: smaller copy ...'.
            copy, other = sorted((lk.a, lk.b), key=place.__getitem__, reverse=True)
            name = PurePath(other).name
            one["description"] = f"{PurePath(copy).name} against {name}: {link_words(lk, copy, assets, name)}"
            entry["links"].append(one)
        out.append(entry)
    return {"clusters": out}


def duplicates_text(data: dict) -> list[str]:
    """``duplicates_json`` for a terminal: which copy to keep and why, then every copy, the
    keeper first, each other one in plain words relative to it."""
    lines = []
    for n, c in enumerate(data["clusters"], 1):
        by_path = {a["path"]: a for a in c["assets"]}
        lines.append(f"cluster {n}: {len(c['assets'])} copies; keep: {PurePath(c['keeper']).name} \u2014 "
                     f"{c['keeper_reason']}")
        width = max(len(p) for p in by_path)
        for p in c["ranking"]:
            a = by_path[p]
            lines.append(f"  {'keep' if a['keeper'] else 'copy'}  {p.ljust(width)}  "
                         + (a["facts"] if a["keeper"] else a["description"]))
    n = len(data["clusters"])
    lines.append(f"{n} duplicate cluster{'' if n == 1 else 's'}")
    return lines
