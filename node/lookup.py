"""`dedup node lookup`: is this picture a copy of one the consortium holds, and which copy is
the master? The files are fingerprinted here, exactly as a scan would, and only their
fingerprint records (with no asset id, path or name) are sent; the coordinator keeps none of
it. Without a coordinator, the node answers from its own catalogue and says so.
"""

from __future__ import annotations

import csv
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePath

import grpc

from dedup.candidates import CandidateIndex
from dedup.clusters import VERIFY_SLACK
from dedup.matching import DEFAULT_RULE, Link, link, relation_name
from dedup.rights import label as rights_label
from dedup.v1 import asset_pb2, lookup_pb2, lookup_pb2_grpc
from dedup.v1 import statements_pb2 as R

from . import wording
from .catalogue import Catalogue
from .duplicates import LocalLink, catalogue_rights, rank, ranked_clusters, rights_of
from .client import channel
from .negotiation import family_name
from .scan import _read, to_record, walk
from .settings import NodeSettings

UNREACHABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}

CSV_COLUMNS = ("file", "matched", "answered_by", "master_status", "master_member", "master_asset",
               "master_dimensions", "master_format_family", "master_capture_date", "master_rights", "relation",
               "distance", "kept_percent", "description", "cluster_id", "proposal_id", "copies", "holders",
               "outcome_log_index", "error")


@dataclass
class Queried:
    path: str
    record: asset_pb2.Asset | None  # None when the file could not be read
    error: str | None = None


def files_of(args: list[str], skipped: list[tuple[str, str]]) -> list[str]:
    """The files named, and every regular file under the folders named (walked as `scan` walks)."""
    out: list[str] = []
    for a in args:
        p = Path(a)
        if p.is_dir():
            out += [str(f) for f, _ in walk([p.resolve()], skipped)]
        else:
            out.append(str(p.resolve()))
    return out


def fingerprint(paths: list[str], workers: int = 0) -> list[Queried]:
    """Read each file as the scanner does; an unreadable file gets its reason, never an exception."""
    n = workers or os.cpu_count() or 1
    if len(paths) < 4 or n == 1:
        results = [_read(p) for p in paths]
    else:
        with ProcessPoolExecutor(max_workers=min(n, len(paths))) as pool:
            results = list(pool.map(_read, paths, chunksize=4))
    # No asset id: a lookup is never stored, so nothing in it should name the file.
    return [Queried(p, None, r) if isinstance(r, str) else Queried(p, to_record("", r)) for p, r in zip(paths, results)]


def _evidence(e: asset_pb2.Evidence) -> dict:
    return {"width": e.width, "height": e.height, "bit_depth": e.bit_depth, "channels": e.channels,
            "format_family": family_name(e.format_family), "jpeg_quality": e.jpeg_quality,
            "capture_date": e.capture_date, "rights": e.rights}


STATUS_NAMES = {lookup_pb2.MASTER_STATUS_AGREED: "agreed", lookup_pb2.MASTER_STATUS_PROPOSED: "proposed",
                lookup_pb2.MASTER_STATUS_DISPUTED: "disputed", lookup_pb2.MASTER_STATUS_NONE: "none"}


def _blank(path: str, source: str, error: str | None = None) -> dict:
    return {"file": path, "answered_by": source, "matched": False, "error": error, "master_status": None,
            "master": None, "master_evidence": None, "relation": None, "distance": None, "kept": None,
            "master_is_crop": False, "description": None, "cluster_id": None, "proposal_id": None, "copies": 0,
            "holders": 0, "outcome_log_index": None, "agreed_master": None, "inclusion_proof": None}


def result_dict(path: str, r: lookup_pb2.LookupResult) -> dict:
    d = _blank(path, "coordinator")
    if not r.matched:
        return d
    d.update(matched=True, master_status=STATUS_NAMES.get(r.master_status, "none"),
             master={"member_id": r.master.member_id, "asset_id": r.master.asset_id},
             master_evidence=_evidence(r.master_evidence),
             relation=relation_name(r.relation) if r.relation else None, distance=r.distance,
             kept=r.kept_permille / 1000 if r.kept_permille else None, master_is_crop=r.master_is_crop,
             description=r.description, cluster_id=r.cluster_id, proposal_id=r.proposal_id or None,
             copies=r.copies, holders=r.holders)
    if r.outcome_log_index or r.inclusion_proof:
        d.update(outcome_log_index=r.outcome_log_index, inclusion_proof=r.inclusion_proof or None,
                 agreed_master={"member_id": r.agreed_master.member_id, "asset_id": r.agreed_master.asset_id})
    return d


class LookupRefused(Exception):
    """The coordinator refused or could not be reached; ``answered`` holds what was answered before."""

    def __init__(self, code: grpc.StatusCode, details: str, answered: list[dict]) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code, self.details, self.answered = code, details, answered


def ask_coordinator(settings: NodeSettings, queried: list[Queried]) -> list[dict]:
    """Answers for the readable files, in calls of ``lookup_batch_size`` files."""
    readable = [q for q in queried if q.record is not None]
    out: list[dict] = []
    size = settings.lookup_batch_size
    with channel(settings) as ch:
        stub = lookup_pb2_grpc.LookupServiceStub(ch)
        for lo in range(0, len(readable), size):
            part = readable[lo:lo + size]
            try:
                resp = stub.Lookup(lookup_pb2.LookupRequest(files=[q.record for q in part]),
                                   timeout=settings.coordinator.timeout_seconds)
            except grpc.RpcError as err:
                raise LookupRefused(err.code(), err.details() or "", out) from err
            out += [result_dict(q.path, r) for q, r in zip(part, resp.results)]
    return out


#: Stands for the looked-up file among our copies when ranking them: sorts after every asset id,
#: so a fixed tie-break never prefers it to a copy we hold.
QUERY = "\uffffyour file"
_IDENTICAL = (R.RELATION_IDENTICAL_BYTES, R.RELATION_IDENTICAL_PIXELS)


def _pair_words(ours: asset_pb2.Asset, query: asset_pb2.Asset, lk: Link, ours_name: str,
                subject: str = "your file") -> str:
    """``wording.sentence`` for ``lk = link(ours, query)``: what ``query`` is relative to ``ours``."""
    return wording.sentence(lk.relation, query.evidence, ours.evidence, ours_name,
                            kept=lk.kept if lk.relation == R.RELATION_CROPPED else None,
                            query_is_crop=None if not lk.crop else lk.crop == 2,
                            turn=wording.turn_between(query, ours) if lk.relation == R.RELATION_ROTATED_MIRRORED
                            else None, subject=subject)


def _link(a: asset_pb2.Asset, b: asset_pb2.Asset, rule) -> Link:
    """The rule's link, else the loosened rule's (as a cluster's verification), else 'a copy of
    the same photograph' (unspecified): the two are joined through other copies only."""
    return (link(a, b, rule) or link(a, b, rule.loosened(VERIFY_SLACK))
            or Link(R.RELATION_UNSPECIFIED, "", 0))


def local_answer(catalogue: Catalogue, queried: list[Queried], rule=DEFAULT_RULE) -> list[dict]:
    """Answers from this node's catalogue alone: its own copies of each file, by the matching
    rule, and the consortium outcome last fetched for them (`dedup node decisions`).

    Each answer is relative to the copy a person would compare with: an identical copy (same
    bytes, else same pixels) where we hold one, else the copy of that picture the master policy
    suggests keeping (as `duplicates` and the report do), never merely the closest copy (a
    greyscale copy or a crop is as close to the original as the original itself)."""
    ranked, assets = ranked_clusters(catalogue, rule)
    rights = catalogue_rights(catalogue, assets)
    cluster_of = {p: c for c in ranked for p in c.paths}
    index = CandidateIndex(rule)
    path_of: dict[str, str] = {}
    for path, a in assets.items():
        path_of[a.asset_id] = path
        index.add(a.asset_id, a)
    outcomes = catalogue.outcomes()
    readable = [q for q in queried if q.record is not None]
    out = []
    for q, keys in zip(readable, index.candidates_many([q.record for q in readable])):
        d = _blank(q.path, "local catalogue")
        found: dict[str, Link] = {}
        for asset_id in sorted(keys):
            lk = link(assets[path_of[asset_id]], q.record, rule)
            if lk is not None:
                found[path_of[asset_id]] = lk
        d["local_matches"] = [
            {"path": p, "asset_id": assets[p].asset_id, "relation": relation_name(lk.relation), "distance": lk.distance,
             "kept": lk.kept if lk.kept < 1 else None,
             "description": _pair_words(assets[p], q.record, lk, f"our {PurePath(p).name}")}
            for p, lk in sorted(found.items(), key=lambda x: (x[1].distance, x[0]))]
        if found:
            _answer(d, q.record, found, assets, cluster_of, rights, rule)
            known = next((outcomes[assets[p].asset_id] for p in d["our_copies"] if assets[p].asset_id in outcomes),
                         None)
            if known is not None:
                d.update(master_status="agreed", cluster_id=known["cluster_id"], proposal_id=known["proposal_id"],
                         master={"member_id": known["master_member"], "asset_id": known["master_asset"]},
                         outcome_log_index=known["outcome_log_index"], copies=len(known["copies"]))
        out.append(d)
    return out


def _answer(d: dict, query: asset_pb2.Asset, found: dict[str, Link], assets: dict[str, asset_pb2.Asset],
            cluster_of: dict, rights: dict[str, str], rule) -> None:
    """Fill ``d`` with the answer for a file that matches our copies ``found`` (path -> link(ours, file))."""
    # Which of our pictures: the one holding an identical copy, else the one with the most matched
    # copies, then the closest match (as the coordinator picks among clusters).
    groups: dict[tuple[str, ...], list[str]] = {}
    for p in found:
        c = cluster_of.get(p)
        groups.setdefault(tuple(c.paths) if c else (p,), []).append(p)

    def weight(g):
        hits = groups[g]
        identical = min((found[p].relation for p in hits if found[p].relation in _IDENTICAL), default=99)
        return (identical, -len(hits), min(found[p].distance for p in hits), g)

    picture = min(groups, key=weight)
    ranked = cluster_of.get(picture[0]) if len(picture) > 1 else None
    keeper = ranked.keeper if ranked else picture[0]
    same = sorted((p for p in groups[picture] if found[p].relation in _IDENTICAL),
                  key=lambda p: (found[p].relation, p != keeper, p))
    reference = same[0] if same else keeper
    lk = found.get(reference) or _link(assets[reference], query, rule)
    name = PurePath(reference).name
    keeper_name = PurePath(keeper).name
    d.update(matched=True, relation=relation_name(lk.relation) if lk.relation else None,
             distance=lk.distance if lk.relation else None,
             kept=lk.kept if lk.relation == R.RELATION_CROPPED and lk.kept < 1 else None,
             master_is_crop=lk.relation == R.RELATION_CROPPED and lk.crop == 1,
             description=_pair_words(assets[reference], query, lk, f"our {name}"),
             our_copies=list(picture),
             reference={"path": reference, "asset_id": assets[reference].asset_id, "identical": bool(same)},
             keeper={"path": keeper, "asset_id": assets[keeper].asset_id,
                     "deciding_rule": ranked.decision.deciding_rule if ranked else "only_copy",
                     "reason": ranked.reason if ranked else "it is our only copy of this picture",
                     "facts": wording.facts(assets[keeper].evidence)})
    if reference != keeper:
        # What the identical copy is to the one we keep, so that nobody takes it for the best copy.
        d["reference"]["to_keeper"] = _pair_words(assets[keeper], assets[reference],
                                                  _link(assets[keeper], assets[reference], rule),
                                                  f"our {keeper_name}", subject=f"our {name}")
    # Would the file be the copy to keep, were it ours? Ranked by the same policy with our copies
    # of the picture; an identical file adds nothing a person would keep it for.
    d["would_be_keeper"] = False
    if not same:
        with_query = dict(assets)
        q = asset_pb2.Asset()
        q.CopyFrom(query)
        q.asset_id = QUERY
        with_query[QUERY] = q
        links = [lk for lk in (ranked.links if ranked else [])]
        links += [LocalLink(p, QUERY, found[p]) for p in picture if p in found]
        rights = {**rights, QUERY: rights_of(query)}
        r = rank([*picture, QUERY], with_query, links, rights)
        if r.keeper == QUERY:
            d["would_be_keeper"] = True
            d["would_be_keeper_reason"] = r.reason


def answers(queried: list[Queried], answered: list[dict], source: str, not_asked: str | None = None) -> list[dict]:
    """One row per queried file, in order: its answer, or why it has none."""
    by_path = {d["file"]: d for d in answered}
    rows = []
    for q in queried:
        if q.record is None:
            rows.append(_blank(q.path, source, q.error))
        else:
            rows.append(by_path.get(q.path) or _blank(q.path, source, f"not asked: {not_asked}"))
    return rows


def write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for d in rows:
            e = d["master_evidence"] or {}
            m = d["master"] or {}
            w.writerow([d["file"], "yes" if d["matched"] else "no", d["answered_by"], d["master_status"] or "",
                        m.get("member_id", ""), m.get("asset_id", ""),
                        f"{e['width']}x{e['height']}" if e else "", e.get("format_family", ""),
                        e.get("capture_date", ""), e.get("rights", ""), d["relation"] or "",
                        "" if d["distance"] is None else d["distance"],
                        "" if d["kept"] is None else round(d["kept"] * 100), d["description"] or "",
                        d["cluster_id"] or "", d["proposal_id"] or "", d["copies"] or "", d["holders"] or "",
                        "" if d["outcome_log_index"] is None else d["outcome_log_index"], d["error"] or ""])


def write_proofs(rows: list[dict], folder: Path) -> list[str]:
    """Each agreed decision's inclusion proof as entry-<index>.tlog-proof; the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for d in rows:
        if d.get("inclusion_proof"):
            p = folder / f"entry-{d['outcome_log_index']}.tlog-proof"
            p.write_text(d["inclusion_proof"], encoding="utf-8")
            d["proof_file"] = str(p)
            if str(p) not in written:
                written.append(str(p))
    return written


_STATUS_WORDS = {"agreed": "agreed", "proposed": "proposed, open to votes", "disputed": "disputed, awaiting a ruling",
                 "none": "none yet (one member's copies)"}


def print_table(rows: list[dict], source: str) -> None:
    def short(p: str) -> str:
        return Path(p).name

    local = source != "coordinator"
    # A local answer names our own copy to keep (a file name, not an asset id) and says what the
    # file is in a sentence of its own.
    table = [("FILE", "MATCH", "OUR COPY TO KEEP" if local else "MASTER (MEMBER / ASSET)", "STATUS",
              "ANSWER" if local else "THIS FILE IS")]
    for d in rows:
        if d["error"]:
            table.append((short(d["file"]), "?", "-", "-", d["error"]))
        elif not d["matched"]:
            table.append((short(d["file"]), "no", "-", "-", "no copy in our catalogue" if local
                          else "no copy of it is known"))
        elif local:
            k = d.get("keeper")
            table.append((short(d["file"]), "yes", short(k["path"]) if k else "-",
                          d["master_status"] or "-", d["description"] or "-"))
        else:
            m = d["master"]
            table.append((short(d["file"]), "yes", f"{m['member_id']} / {m['asset_id']}" if m else "not known here",
                          d["master_status"] or "-", d["description"] or "-"))
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])
    for d in rows:
        if not d["matched"]:
            continue
        lines = []
        k = d.get("keeper")
        if k:
            lines.append(f"our copy to keep: {k['path']} ({k['facts']}) \u2014 {k['reason']}")
            ref = d.get("reference") or {}
            if ref.get("to_keeper"):
                lines.append(ref["to_keeper"])
            if d.get("would_be_keeper"):
                lines.append(f"your file would be the better copy to keep: {d['would_be_keeper_reason']}")
        e = d["master_evidence"]
        if e:
            q = "lossless" if e["format_family"] == "lossless" else (
                f"JPEG quality {e['jpeg_quality']}" if e["jpeg_quality"] else e["format_family"])
            lines.append(f"master evidence: {e['width']}\u00d7{e['height']}, {q}, "
                         f"{'colour' if e['channels'] >= 3 else 'greyscale'}, captured {e['capture_date'] or 'unknown'}, "
                         f"rights {rights_label(e['rights'])}")
        if d["master_status"]:
            lines.append(f"master status: {_STATUS_WORDS.get(d['master_status'], d['master_status'])}"
                         + (f" (proposal {d['proposal_id']})" if d["proposal_id"] else "")
                         + (f"; {d['copies']} copies held by {d['holders']} members" if d["holders"] else ""))
        if d["outcome_log_index"] is not None:
            a = d["agreed_master"]
            proof = (f"proof in {d['proof_file']}" if d.get("proof_file")
                     else "proof included (--proofs DIR writes it; --json shows it)" if d["inclusion_proof"] else "")
            lines.append(f"agreed at log entry {d['outcome_log_index']}"
                         + (f" (master {a['member_id']} / {a['asset_id']}, in force until the open re-proposal is "
                            "agreed)" if a and d["master_status"] != "agreed" else "")
                         + (f"; {proof}" if proof else ""))
        for o in d.get("local_matches", []):
            lines.append(f"matches {o['path']}: {o['description']}")
        if lines:
            print(f"{short(d['file'])}:")
            for line in lines:
                print(f"  {line}")
