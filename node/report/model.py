"""The audit report as plain data, read from the catalogue alone.

Everything an archivist needs to decide is computed here once, so the HTML, CSV, JSON and
plan writers only format it and can never disagree with one another.
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import PurePath

from dedup.matching import link, relation_name
from dedup.policy import POLICY_VERSION
from dedup.v1 import asset_pb2
from dedup.v1 import statements_pb2 as R

from .. import wording
from ..catalogue import Catalogue
from ..duplicates import LocalLink, link_words, local_clusters, rank
from . import rights

SCHEMA = "dedup-node-report/1"
GB = 10**9
TOP = 20

_COLUMNS = ("path", "source", "size", "asset_id", "error", "width", "height", "bit_depth", "format",
            "format_family", "jpeg_quality", "capture_date", "low_information", "rights_uri", "rights_text",
            "record", "scanned_unix")


@dataclass(frozen=True)
class FileFacts:
    path: str
    name: str
    asset_id: str
    source: str
    size: int
    width: int | None
    height: int | None
    format: str | None
    format_family: str | None
    jpeg_quality: int | None
    bit_depth: int | None
    colour: bool | None
    capture_date: str | None
    rights: str                # the wire value (dedup.rights): a canonical URI, or 'unknown'
    rights_restricted: bool
    low_information: bool
    rights_label: str = ""     # 'In Copyright', 'CC BY 4.0'...
    rights_notice: str = ""    # the file's own notice, as found in it
    rights_shown: str = ""     # label and notice, as every table shows them

    @property
    def pixels(self) -> int:
        return (self.width or 0) * (self.height or 0)


@dataclass(frozen=True)
class Member:
    cluster: int
    file: FileFacts
    keeper: bool
    #: '' for the keeper; a relation name for a direct link; 'indirect: a, b' along the
    #: shortest chain of links otherwise.
    relation_to_keeper: str
    #: For a direct crop link to the keeper, the share of the larger picture kept.
    kept: float | None
    #: What this copy is relative to the keeper, in plain words ('' for the keeper).
    description: str = ""


@dataclass(frozen=True)
class LinkFacts:
    a: str
    b: str
    relation: str
    algorithm: str
    distance: int
    kept: float | None
    #: What one end (``copy``: the one the policy ranks lower) is relative to the other, in plain words.
    description: str = ""
    copy: str = ""


@dataclass(frozen=True)
class Cluster:
    number: int
    #: The keeper first, then the others in the policy's ranking.
    members: list[Member]
    links: list[LinkFacts]
    keeper: str
    deciding_rule: str
    reason: str
    runner_up: str
    reclaimable_bytes: int
    rights_statuses: list[str]
    mixed_rights: bool
    #: The keeper's size, encoding and colour in plain words.
    keeper_facts: str = ""


@dataclass(frozen=True)
class ExcludedLink:
    """A link the matching rule found but an archivist marked as not a duplicate."""

    a: str
    b: str
    relation: str
    note: str | None
    marked: str
    #: What the rule would call the pair, in plain words, from the copy the policy ranks lower.
    description: str = ""


@dataclass(frozen=True)
class FormatCount:
    format: str
    files: int
    bytes: int


@dataclass(frozen=True)
class SourceSummary:
    source: str
    files: int
    bytes: int
    formats: list[FormatCount]
    duplicate_files: int
    reclaimable_bytes: int


@dataclass(frozen=True)
class Cost:
    price_per_gb_month: float
    per_month: float
    per_year: float


@dataclass(frozen=True)
class Totals:
    files: int
    bytes: int
    unreadable: int
    low_information: int
    clusters: int
    duplicate_files: int
    reclaimable_bytes: int
    reclaimable_gb: float
    currency: str
    cost_low: Cost
    cost_high: Cost


@dataclass(frozen=True)
class Unreadable:
    path: str
    source: str
    size: int
    reason: str


@dataclass(frozen=True)
class MasterOutcome:
    """The consortium's agreed master for one of this node's copies (from `dedup node decisions`)."""

    path: str
    name: str
    asset_id: str
    cluster_id: str
    we_hold_master: bool
    master_member: str
    master_asset: str
    #: 'we hold the master', or 'master held by member X (asset id)'.
    statement: str
    basis: str
    proposal_id: str
    outcome_log_index: int
    #: An open or disputed re-proposal for the cluster, if any.
    pending_proposal: str | None


@dataclass(frozen=True)
class Report:
    schema: str
    member_id: str
    generated_at: str
    policy_version: str
    totals: Totals
    sources: list[SourceSummary]
    clusters: list[Cluster]
    oldest_duplicates: list[Member]
    lowest_quality: list[Member]
    rights_restricted: list[FileFacts]
    mixed_rights_clusters: list[int]
    unreadable: list[Unreadable]
    low_information: list[FileFacts]
    excluded_links: list[ExcludedLink]
    consortium_masters: list[MasterOutcome]


def _source_of(path: str, source: str | None) -> str:
    if source:
        return source
    if "://" in path:  # an object key: its prefix, not a mangled local path
        return posixpath.dirname(path)
    return str(PurePath(path).parent)


def _name_of(path: str) -> str:
    return posixpath.basename(path) if "://" in path else PurePath(path).name


def _rows(catalogue: Catalogue) -> list[dict]:
    # Older catalogues may lack the newer columns: read what exists, the rest is NULL.
    have = {r[1] for r in catalogue._db.execute("PRAGMA table_info(files)")}
    cols = ", ".join(c if c in have else f"NULL AS {c}" for c in _COLUMNS)
    cur = catalogue._db.execute(f"SELECT {cols} FROM files ORDER BY path")
    return [dict(zip(_COLUMNS, r)) for r in cur]


def _facts(row: dict, evidence: asset_pb2.Evidence | None) -> FileFacts:
    uri = row["rights_uri"] or (evidence.rights if evidence is not None else None)
    status = rights.status(uri)
    return FileFacts(
        path=row["path"], name=_name_of(row["path"]), asset_id=row["asset_id"],
        source=_source_of(row["path"], row["source"]), size=row["size"], width=row["width"],
        height=row["height"], format=row["format"], format_family=row["format_family"],
        jpeg_quality=row["jpeg_quality"], bit_depth=row["bit_depth"],
        colour=None if evidence is None else evidence.channels >= 3, capture_date=row["capture_date"],
        rights=status, rights_restricted=rights.restricted(status), low_information=bool(row["low_information"]),
        rights_label=rights.label(status), rights_notice=row["rights_text"] or "",
        rights_shown=rights.describe(status, row["rights_text"]))


def _find(parent: dict[str, str], x: str) -> str:
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


def components(paths: list[str], links: list[LinkFacts]) -> list[list[str]]:
    """Connected groups of two or more paths over ``links``, each sorted, ordered by first path."""
    parent = {p: p for p in paths}
    for lk in links:
        ra, rb = _find(parent, lk.a), _find(parent, lk.b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[str, list[str]] = defaultdict(list)
    for p in paths:
        groups[_find(parent, p)].append(p)
    return sorted((sorted(g) for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def _quality_rank(f: FileFacts) -> int:
    # As in the policy: lossless above any JPEG quality, unknown lossy quality lowest.
    return 101 if f.format_family == "lossless" else (f.jpeg_quality or 0)


def _cost(gb: float, price: float) -> Cost:
    return Cost(price_per_gb_month=price, per_month=gb * price, per_year=gb * price * 12)


def _marked(catalogue: Catalogue) -> dict[frozenset[str], tuple[str | None, int]]:
    rows = catalogue._db.execute("SELECT a_asset, b_asset, note, marked_unix FROM not_duplicates")
    return {frozenset((a, b)): (note, marked) for a, b, note, marked in rows}


def _excluded(marked: dict[frozenset[str], tuple[str | None, int]], assets: dict[str, asset_pb2.Asset],
              facts: dict[str, FileFacts]) -> list[ExcludedLink]:
    """Marked pairs whose files are both readable now, with what the rule would call them."""
    path_of = {facts[p].asset_id: p for p in assets}
    out = []
    for pair, (note, unix) in marked.items():
        if len(pair) != 2 or not all(a in path_of for a in pair):
            continue
        a, b = sorted(path_of[x] for x in pair)
        lk = link(assets[a], assets[b])
        words = "not linked by the rule"
        if lk:
            # Read from the copy the policy would rank lower, as in the clusters.
            pair = LocalLink(a, b, lk)
            other, copy = rank([a, b], assets, [pair]).ranking
            words = f"{facts[copy].name}: {link_words(pair, copy, assets, facts[other].name)}"
        out.append(ExcludedLink(a, b, relation_name(lk.relation) if lk else "not linked by the rule", note,
                                _iso(unix), words))
    return sorted(out, key=lambda x: (x.a, x.b))


def _iso(unix: int) -> str:
    return datetime.fromtimestamp(unix, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def build_report(catalogue: Catalogue, *, member_id: str, price_low: float = 0.08, price_high: float = 0.25,
                 currency: str = "HK$", now: datetime | None = None) -> Report:
    """Read the catalogue and compute the whole report; nothing is written anywhere."""
    if not 0 <= price_low <= price_high:
        raise ValueError(f"need 0 <= price_low <= price_high, got {price_low} and {price_high}")
    now = now or datetime.now(timezone.utc)
    rows = _rows(catalogue)
    assets: dict[str, asset_pb2.Asset] = {}
    for row in rows:
        if row["error"] is None and row["record"] is not None:
            asset = asset_pb2.Asset()
            asset.ParseFromString(row["record"])
            assets[row["path"]] = asset
    evidence = {p: a.evidence for p, a in assets.items()}
    facts = {row["path"]: _facts(row, evidence.get(row["path"])) for row in rows}

    marked = _marked(catalogue)
    _, found = local_clusters(catalogue)
    # local_clusters may already leave marked pairs out; filtering again is harmless.
    kept_local = [lk for lk in found if frozenset((facts[lk.a].asset_id, facts[lk.b].asset_id)) not in marked]
    kept_links = [LinkFacts(lk.a, lk.b, relation_name(lk.link.relation), lk.link.algorithm, lk.link.distance,
                            lk.link.kept if lk.link.relation == R.RELATION_CROPPED else None)
                  for lk in kept_local]
    excluded = _excluded(marked, assets, facts)

    groups = components(sorted(evidence), kept_links)
    where = {p: n for n, group in enumerate(groups) for p in group}
    links_of: list[list[LinkFacts]] = [[] for _ in groups]
    local_of: list[list[LocalLink]] = [[] for _ in groups]
    for lk, local in zip(kept_links, kept_local):
        links_of[where[lk.a]].append(lk)
        local_of[where[lk.a]].append(local)
    clusters = [_cluster(n + 1, group, links_of[n], local_of[n], facts, assets)
                for n, group in enumerate(groups)]
    members = [m for c in clusters for m in c.members]
    others = [m for m in members if not m.keeper]
    reclaimable = sum(m.file.size for m in others)
    gb = reclaimable / GB

    sources: dict[str, list[FileFacts]] = defaultdict(list)
    for f in facts.values():
        sources[f.source].append(f)
    formats_of = {row["path"]: row["format"] or ("(unreadable)" if row["error"] is not None else "(unknown)")
                  for row in rows}
    in_cluster = {m.file.path for m in members}
    reclaim_by_source: dict[str, int] = defaultdict(int)
    for m in others:
        reclaim_by_source[m.file.source] += m.file.size
    source_list = []
    for src in sorted(sources):
        files = sources[src]
        by_format: dict[str, list[int]] = defaultdict(list)
        for f in files:
            by_format[formats_of[f.path]].append(f.size)
        source_list.append(SourceSummary(
            source=src, files=len(files), bytes=sum(f.size for f in files),
            formats=[FormatCount(k, len(v), sum(v)) for k, v in sorted(by_format.items())],
            duplicate_files=sum(1 for f in files if f.path in in_cluster),
            reclaimable_bytes=reclaim_by_source[src]))

    unreadable = [Unreadable(r["path"], facts[r["path"]].source, r["size"], r["error"])
                  for r in rows if r["error"] is not None]
    low_info = [facts[p] for p in sorted(evidence) if facts[p].low_information]
    return Report(
        schema=SCHEMA, member_id=member_id, generated_at=now.isoformat(timespec="seconds"),
        policy_version=POLICY_VERSION,
        totals=Totals(
            files=len(rows), bytes=sum(r["size"] for r in rows), unreadable=len(unreadable),
            low_information=len(low_info), clusters=len(clusters), duplicate_files=len(members),
            reclaimable_bytes=reclaimable, reclaimable_gb=gb, currency=currency,
            cost_low=_cost(gb, price_low), cost_high=_cost(gb, price_high)),
        sources=source_list,
        clusters=clusters,
        oldest_duplicates=sorted((m for m in members if m.file.capture_date),
                                 key=lambda m: (m.file.capture_date, m.file.path))[:TOP],
        lowest_quality=sorted(others, key=lambda m: (m.file.pixels, _quality_rank(m.file), m.file.path))[:TOP],
        rights_restricted=[f for f in facts.values() if f.rights_restricted],
        mixed_rights_clusters=[c.number for c in clusters if c.mixed_rights],
        unreadable=unreadable,
        low_information=low_info,
        excluded_links=excluded,
        consortium_masters=_masters(catalogue, facts, member_id),
    )


def master_statement(member_id: str, own_asset: str, master_member: str, master_asset: str) -> str:
    if master_member != member_id:
        return f"master held by member {master_member} ({master_asset})"
    return "we hold the master" + ("" if master_asset == own_asset else f" (our {master_asset})")


def _masters(catalogue: Catalogue, facts: dict[str, FileFacts], member_id: str) -> list[MasterOutcome]:
    path_of = {f.asset_id: p for p, f in facts.items()}
    out = []
    for asset_id, o in catalogue.outcomes().items():
        path = path_of.get(asset_id)
        if path is None:  # withdrawn or forgotten since
            continue
        out.append(MasterOutcome(
            path=path, name=facts[path].name, asset_id=asset_id, cluster_id=o["cluster_id"],
            we_hold_master=o["master_member"] == member_id, master_member=o["master_member"],
            master_asset=o["master_asset"],
            statement=master_statement(member_id, asset_id, o["master_member"], o["master_asset"]),
            basis=o["basis"], proposal_id=o["proposal_id"], outcome_log_index=o["outcome_log_index"],
            pending_proposal=o["pending_proposal"]))
    return sorted(out, key=lambda m: m.path)


def _cluster(number: int, group: list[str], links: list[LinkFacts], local: list[LocalLink],
             facts: dict[str, FileFacts], assets: dict[str, asset_pb2.Asset]) -> Cluster:
    # The keeper as `duplicates` and a local lookup suggest it; the catalogue's rights column is
    # the node's latest word on a file's rights.
    ranked = rank(group, assets, local, {p: facts[p].rights for p in group})
    place = {p: n for n, p in enumerate(ranked.ranking)}
    links = sorted(links, key=lambda lk: (lk.a, lk.b))
    words = {}
    for lk in local:
        copy, other = sorted((lk.a, lk.b), key=place.__getitem__, reverse=True)
        words[lk.a, lk.b] = copy, link_words(lk, copy, assets, facts[other].name)
    links = [dataclasses.replace(lk, copy=words[lk.a, lk.b][0], description=words[lk.a, lk.b][1]) for lk in links]
    members = []
    for p in ranked.ranking:
        steps = ranked.chains[p]
        kept = steps[0].link.kept if len(steps) == 1 and steps[0].link.relation == R.RELATION_CROPPED else None
        members.append(Member(number, facts[p], p == ranked.keeper, ranked.relation_to_keeper(p), kept,
                              ranked.words_to_keeper(p, assets)))
    statuses = sorted({facts[p].rights for p in group})
    return Cluster(
        number=number, members=members, links=links, keeper=ranked.keeper,
        deciding_rule=ranked.decision.deciding_rule, reason=ranked.reason, runner_up=ranked.ranking[1],
        reclaimable_bytes=sum(m.file.size for m in members[1:]), rights_statuses=statuses,
        mixed_rights=len(statuses) > 1, keeper_facts=wording.facts(assets[ranked.keeper].evidence))
