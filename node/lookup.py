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
from pathlib import Path

import grpc

from dedup.candidates import CandidateIndex
from dedup.matching import DEFAULT_RULE, link, relation_name
from dedup.rights import label as rights_label
from dedup.provenance import describe
from dedup.v1 import asset_pb2, lookup_pb2, lookup_pb2_grpc

from .catalogue import Catalogue
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


def local_answer(catalogue: Catalogue, queried: list[Queried], rule=DEFAULT_RULE) -> list[dict]:
    """Answers from this node's catalogue alone: its own copies of each file, by the matching
    rule, and the consortium outcome last fetched for them (`dedup node decisions`)."""
    index = CandidateIndex(rule)
    records: dict[str, tuple[str, asset_pb2.Asset]] = {}
    for path, blob in catalogue.readable():
        if blob is None:
            continue
        a = asset_pb2.Asset.FromString(bytes(blob))
        records[a.asset_id] = (path, a)
        index.add(a.asset_id, a)
    outcomes = catalogue.outcomes()
    readable = [q for q in queried if q.record is not None]
    out = []
    for q, keys in zip(readable, index.candidates_many([q.record for q in readable])):
        d = _blank(q.path, "local catalogue")
        own = []
        for asset_id in sorted(keys):
            path, rec = records[asset_id]
            lk = link(rec, q.record, rule)
            if lk is None:
                continue
            own.append({"path": path, "asset_id": asset_id, "relation": relation_name(lk.relation),
                        "distance": lk.distance, "kept": lk.kept if lk.kept < 1 else None,
                        "description": describe(lk.relation, q.record.evidence, rec.evidence, kept=lk.kept,
                                                master_is_crop=lk.crop == 1)})
        d["local_matches"] = own
        if own:
            # The closest of our copies stands in for the master unless an agreed one is known.
            best = min(own, key=lambda o: (o["distance"], o["path"]))
            known = next((outcomes[o["asset_id"]] for o in own if o["asset_id"] in outcomes), None)
            d.update(matched=True, relation=best["relation"], distance=best["distance"], kept=best["kept"],
                     description=best["description"] + f" (relative to our {Path(best['path']).name})")
            if known is not None:
                d.update(master_status="agreed", cluster_id=known["cluster_id"], proposal_id=known["proposal_id"],
                         master={"member_id": known["master_member"], "asset_id": known["master_asset"]},
                         outcome_log_index=known["outcome_log_index"], copies=len(known["copies"]))
        out.append(d)
    return out


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

    table = [("FILE", "MATCH", "MASTER (MEMBER / ASSET)", "STATUS", "THIS FILE IS")]
    for d in rows:
        if d["error"]:
            table.append((short(d["file"]), "?", "-", "-", d["error"]))
        elif not d["matched"]:
            table.append((short(d["file"]), "no", "-", "-", "no copy of it is known" if source == "coordinator"
                          else "no copy in our catalogue"))
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
            lines.append(f"our copy {o['path']}: {o['description']}")
        if lines:
            print(f"{short(d['file'])}:")
            for line in lines:
                print(f"  {line}")
