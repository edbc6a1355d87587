"""The local consortium demo: three member nodes and a coordinator on loopback, end to end.

Every role runs as its own process through the real `dedup` command line, over mutual TLS,
with SQLite files on disk, exactly as institutions would run them; the demo only prepares the
material, starts the processes and reads their JSON output.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from dedup.export import read_entries
from dedup.node.report.html import plural
from dedup.signing import parse_body, parse_entry
from dedup.v1 import statements_pb2

from . import setup
from .samples import build_member_folders

MEMBERS = {
    "records-office": "Public Records Office",
    "city-museum": "City Museum of History",
    "university-library": "University Library Special Collections",
}
#: Cosignatures the latest checkpoint must carry before the demo hands out a proof.
QUORUM = setup.WITNESS_QUORUM


class DemoFailure(Exception):
    def __init__(self, step: str, detail: str) -> None:
        super().__init__(f"{step}: {detail}")
        self.step = step


@dataclass
class MemberAudit:
    """What a member's own audit report says, in the figures a records officer reads first."""

    member: str
    files: int
    unreadable: int
    clusters: int
    duplicate_files: int
    reclaimable_bytes: int
    currency: str
    per_year: tuple[float, float]  # cost of the reclaimable storage, low and high price
    restricted: int
    rights: dict[str, int]  # rights label -> readable files
    report: Path


@dataclass
class Outcome:
    workdir: Path
    members: int
    assets: int
    unreadable: int
    clusters: int
    proposals: dict[str, str]  # cluster id -> "member/asset (rule)"
    agreed: int  # clusters whose latest proposal was agreed
    log_entries: int
    log_root: str
    expected_groups: int
    found_groups: int
    verify_command: str
    reports: list[Path]
    audits: list[MemberAudit]
    price_per_gb_month: tuple[float, float]
    witnessed_size: int
    cosigned_by: list[str]
    quorum: int
    proofs: int
    proof_check: str


def _dedup(*args: str, step: str, expect: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "dedup.cli.main", *args], capture_output=True, text=True)
    if proc.returncode not in expect:
        raise DemoFailure(step, f"exit {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-2000:]}")
    return proc


def _start_coordinator(layout: setup.Layout, log_path: Path) -> tuple[subprocess.Popen, int]:
    ready = layout.root / "coordinator" / "port"
    ready.unlink(missing_ok=True)
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "-m", "dedup.cli.main", "coordinator", "serve",
                             "--config", str(layout.coordinator_config), "--ready-file", str(ready)],
                            stdout=log, stderr=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DemoFailure("start coordinator", f"exited {proc.returncode}; see {log_path}")
        if ready.exists() and ready.read_text().strip():
            return proc, int(ready.read_text())
        time.sleep(0.1)
    proc.kill()
    raise DemoFailure("start coordinator", f"not serving after 60 s; see {log_path}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _catalogue_assets(config: Path, folder: Path) -> dict[str, str]:
    """asset id -> file path relative to the member's folder, from its node's catalogue."""
    import sqlite3

    db = sqlite3.connect(config.parent / "catalogue.sqlite")
    root = folder.resolve()
    try:
        return {a: Path(p).relative_to(root).as_posix()
                for p, a in db.execute("SELECT path, asset_id FROM files WHERE error IS NULL")}
    finally:
        db.close()


def _audit(member: str, config: Path) -> MemberAudit:
    """The member's report.json, with every readable file's rights from its catalogue."""
    import sqlite3

    from dedup.node.report.rights import label

    folder = config.parent / "report"
    report = json.loads((folder / "report.json").read_text())
    t = report["totals"]
    db = sqlite3.connect(config.parent / "catalogue.sqlite")
    try:
        rights: dict[str, int] = {}
        for (uri,) in db.execute("SELECT rights_uri FROM files WHERE error IS NULL"):
            rights[label(uri)] = rights.get(label(uri), 0) + 1
    finally:
        db.close()
    return MemberAudit(
        member=member, files=t["files"], unreadable=t["unreadable"], clusters=t["clusters"],
        duplicate_files=t["duplicate_files"], reclaimable_bytes=t["reclaimable_bytes"], currency=t["currency"],
        per_year=(t["cost_low"]["per_year"], t["cost_high"]["per_year"]), restricted=len(report["rights_restricted"]),
        rights=dict(sorted(rights.items(), key=lambda kv: (-kv[1], kv[0]))), report=folder / "report.html")


def run(workdir: Path, say=print) -> Outcome:
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    say(f"working folder: {workdir}")

    samples = build_member_folders(workdir / "collections")
    layout = setup.create(workdir, MEMBERS, samples.folders)
    say(f"created a throwaway consortium CA, TLS certificates and Ed25519 keys for {len(MEMBERS)} members")

    coordinator, port = _start_coordinator(layout, workdir / "coordinator" / "coordinator.log")
    try:
        setup.point_nodes_at(layout, port)
        say(f"coordinator serving on 127.0.0.1:{port} (mutual TLS)")
        assets = unreadable = 0
        for mid, cfg in layout.node_configs.items():
            scan = json.loads(_dedup("node", "scan", "--config", str(cfg), "--json", step=f"{mid}: scan",
                                     expect=(0, 1)).stdout)
            # A second scan must read nothing: the catalogue remembers what it saw.
            rescan = json.loads(_dedup("node", "scan", "--config", str(cfg), "--json", step=f"{mid}: rescan",
                                       expect=(0, 1)).stdout)
            if rescan["scan"]["read"] or rescan["scan"]["failed"]:
                raise DemoFailure(f"{mid}: rescan", "an unchanged folder was read again")
            push = json.loads(_dedup("node", "push", "--config", str(cfg), "--json", step=f"{mid}: push").stdout)
            assets += scan["scan"]["read"]
            unreadable += scan["scan"]["failed"]
            say(f"{mid}: {plural(scan['scan']['read'], 'image')} fingerprinted, {scan['scan']['failed']} unreadable "
                f"recorded; pushed {plural(push['assets_accepted'], 'signed fingerprint')} in "
                f"{plural(push['batches_sent'], 'batch', 'batches')}, "
                f"{plural(push['new_matches'], 'new cross-member match', 'new cross-member matches')}; witnessed "
                f"and cosigned the log at size {push['witness']['size']}")
        # Each member answers the master proposals by its node's local rule: accept what follows the
        # published policy, hold for a person what would take a master away from it.
        for mid, cfg in layout.node_configs.items():
            auto = json.loads(_dedup("node", "decisions", "--auto", "--config", str(cfg), "--json",
                                     step=f"{mid}: decisions --auto").stdout)["auto"]
            say(f"{mid}: answered the master proposals automatically: {len(auto['accepted'])} accepted, "
                f"{len(auto['held'])} held for a person")
        for mid, cfg in layout.node_configs.items():
            # Fetch the agreed outcomes into the catalogue, then write the audit report with them.
            _dedup("node", "decisions", "--config", str(cfg), "--json", step=f"{mid}: decisions")
            _dedup("node", "report", "--config", str(cfg), "--out", str(cfg.parent / "report"), step=f"{mid}: report")
        # The votes were the last entries logged. Every member now witnesses that final checkpoint,
        # so the proofs handed out from here on carry a quorum of cosignatures; nothing the demo
        # does afterwards is logged (lookup counts wait for their period to end).
        witnessed = set()
        for mid, cfg in layout.node_configs.items():
            w = json.loads(_dedup("node", "witness", "--config", str(cfg), "--json", step=f"{mid}: witness").stdout)
            witnessed.add(w["size"])
        if len(witnessed) != 1:
            raise DemoFailure("witness the final log", f"the members saw different sizes: {sorted(witnessed)}")
        size = witnessed.pop()
        # The last to witness sees the others' cosignatures: for it the checkpoint is final.
        if not w["quorum"]["final"]:
            raise DemoFailure(f"{mid}: witness", f"checkpoint {size} is not cosigned by {QUORUM} other members")
        say(f"all {len(MEMBERS)} members witnessed the final log at size {size} and cosigned its checkpoint; "
            f"for {mid} it is final (cosigned by {', '.join(w['quorum']['cosigned_by'])})")
        # Provenance lookup: one member asks about another's folder without sending a picture.
        (asker, cfg), (holder, _) = list(layout.node_configs.items())[:2]
        look = json.loads(_dedup("node", "lookup", str(samples.folders[holder]), "--config", str(cfg), "--json",
                                 "--proofs", str(workdir / "proofs"), step=f"{asker}: lookup", expect=(0, 1)).stdout)
        matched = [r for r in look["results"] if r["matched"]]
        say(f"{asker}: looked up {len(look['results'])} files of {holder}'s folder without sending them: "
            f"{len(matched)} matched, {sum(r['master_status'] == 'agreed' for r in matched)} with an agreed master "
            f"and its log inclusion proof")
        if not look["proofs"]:
            raise DemoFailure(f"{asker}: lookup", "no agreed master came with an inclusion proof")
        # Anyone holding the log key and the members' published witness keys can check a proof alone.
        witness_args = [a for k in layout.witness_keys.values() for a in ("--witness", str(k))]
        checked = json.loads(_dedup("audit", "check-proof", look["proofs"][0], "--key", str(layout.log_public_key),
                                    *witness_args, "--quorum", str(QUORUM), "--json",
                                    step=f"check a lookup's proof with quorum {QUORUM}").stdout)
        if checked["tree_size"] != size:
            raise DemoFailure("check a lookup's proof", f"it cites size {checked['tree_size']}, not the witnessed {size}")
        proof_check = (f"{Path(look['proofs'][0]).name}: entry {checked['index']} at size {checked['tree_size']}, "
                       f"cosigned by {', '.join(checked['cosigned_by'])}")
        say(f"checked {proof_check} (quorum {QUORUM})")
        _dedup("coordinator", "export-log", "--config", str(layout.coordinator_config), str(layout.export),
               step="export log")
    finally:
        _stop(coordinator)

    verify = json.loads(_dedup("audit", "verify", str(layout.export), "--key", str(layout.log_public_key),
                               "--quorum", str(QUORUM), "--witnesses-from-log", "--json", step="audit verify").stdout)
    if verify["entries"] != size:
        raise DemoFailure("audit verify", f"the log grew to {verify['entries']} entries after the witnesses cosigned "
                                          f"size {size}")

    # Read the outcome back from the verified log itself.
    proposals: dict[str, statements_pb2.MasterProposed] = {}
    agreed: dict[str, statements_pb2.MasterAgreed] = {}
    for entry in read_entries(layout.export):
        body = parse_body(parse_entry(entry))
        if isinstance(body, statements_pb2.MasterProposed):
            proposals[body.cluster_id] = body
        elif isinstance(body, statements_pb2.MasterAgreed):
            agreed[body.cluster_id] = body
    names = {mid: _catalogue_assets(cfg, samples.folders[mid]) for mid, cfg in layout.node_configs.items()}
    clusters = [{(c.ref.member_id, names[c.ref.member_id].get(c.ref.asset_id, "?")) for c in p.copies}
                for p in proposals.values()]
    found = sum(1 for g in samples.groups if any(set(g) <= c for c in clusters))
    if found < len(samples.groups):
        missing = [g for g in samples.groups if not any(set(g) <= c for c in clusters)]
        raise DemoFailure("cross-member matching", f"shared photographs not matched: {missing}")

    script = Path(sys.executable).parent / "dedup"
    exe = str(script) if script.exists() else (shutil.which("dedup") or "dedup")
    return Outcome(
        workdir=workdir, members=len(MEMBERS), assets=assets, unreadable=unreadable, clusters=len(proposals),
        proposals={cid: f"{p.master.member_id} {names[p.master.member_id].get(p.master.asset_id, '?')}"
                        f" ({p.deciding_rule})" for cid, p in sorted(proposals.items())},
        agreed=sum(1 for cid, p in proposals.items() if cid in agreed and agreed[cid].proposal_id == p.proposal_id),
        log_entries=verify["entries"], log_root=verify["root"], expected_groups=len(samples.groups),
        found_groups=found,
        verify_command=(f"{exe} audit verify {layout.export} --key {layout.log_public_key} --quorum {QUORUM} "
                        "--witnesses-from-log"),
        reports=[cfg.parent / "report" / "report.html" for cfg in layout.node_configs.values()],
        audits=[_audit(mid, cfg) for mid, cfg in layout.node_configs.items()],
        price_per_gb_month=setup.PRICE_PER_GB_MONTH, witnessed_size=size, cosigned_by=verify["cosigned_by"],
        quorum=QUORUM, proofs=len(look["proofs"]), proof_check=proof_check,
    )


def default_workdir() -> Path:
    return Path(os.environ.get("DEDUP_DEMO_DIR", "demo-work")).resolve()
