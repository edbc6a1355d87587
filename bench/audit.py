"""`make bench-audit`: `dedup audit verify` on an export of 10^6 entries.

The export is what a coordinator would write for a consortium of eight members: each member
admitted by a coordinator-signed entry, then batches in turn, each a member-signed
BatchManifest followed by the MatchRecorded and MasterProposed entries it caused (every
proposal the policy's true choice on its evidence, so the audit must pass; the coordinator's
own statements are vouched for by the checkpoints, SPEC 3.1), the sending member's signed
ballot accepting some of those proposals, the other holders' signed votes on them and the
MasterAgreed outcome on each, a LookupsCounted entry, and a signed checkpoint after every
batch, as the coordinator publishes one per commit.
Generating it is done by a process pool once and cached under bench/.cache/ (keyed by size
and GENERATOR).

Then the real command runs as a subprocess, `dedup audit verify EXPORT --key log.pub --json`,
timed; peak RSS is the largest single process of its tree (the auditor or one of its
workers), from getrusage. Writes bench/results/audit.json and the audit section of
bench/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from bench.common import CACHE, ROOT, code_label, code_state, log, machine, now_iso, publish, versions

COMMAND = ".venv/bin/python -m bench.audit"
MEMBERS = [f"member-{k}" for k in range(8)]
ORIGIN = "bench.dedup.local/log"
GENERATOR = "g4"  # g2: proposals cite policy 2; g3: statements bound to the log (PAE v2); g4: ballots, checkpointed coordinator statements
PAIRS_PER_BATCH = 24  # matches and proposals per batch
VOTED_PER_BATCH = 4  # of those proposals, each accepted by its two holders and agreed unanimously
#: Entries per batch: a manifest, the matches and proposals, the sender's ballot, the other
#: holder's vote and an outcome per voted proposal, a lookup count. Fixed, so a batch's entries
#: know their own log indexes.
PER_BATCH = 1 + 2 * PAIRS_PER_BATCH + 1 + 2 * VOTED_PER_BATCH + 1


def _signer(name: str):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from dedup.note import NoteSigner

    seed = hashlib.sha256(b"bench-audit/" + name.encode()).digest()
    return NoteSigner(name, Ed25519PrivateKey.from_private_bytes(seed))


def _evidence(rng: random.Random):
    from dedup.v1 import asset_pb2

    w = rng.choice([800, 1000, 2000, 3000, 4000])
    lossless = rng.random() < 0.3
    return asset_pb2.Evidence(
        width=w, height=w * 3 // 4, bit_depth=rng.choice([8, 8, 16]), channels=rng.choice([1, 3, 3]),
        format_family=asset_pb2.FORMAT_FAMILY_LOSSLESS if lossless else asset_pb2.FORMAT_FAMILY_LOSSY,
        jpeg_quality=0 if lossless else rng.randint(60, 95), capture_date=rng.choice(["", "1998-05-01T10:00:00"]),
        rights=rng.choice(["unknown", "http://rightsstatements.org/vocab/InC/1.0/"]), frame_width=w,
        frame_height=w * 3 // 4, luma_mean=rng.randint(40, 200), luma_spread=rng.randint(10, 80),
        saturation=rng.randint(0, 90))


def _batch_entries(b: int) -> list[bytes]:
    """Entries of batch ``b``: its manifest, then the matches and proposals it caused."""
    from dedup.policy import POLICY_VERSION, Candidate, choose_master
    from dedup.signing import checkpointed_statement, sign_statement
    from dedup.v1 import asset_pb2, statements_pb2

    rng = random.Random(b)
    key = _signers()[ORIGIN]

    def coordinator(message):
        return checkpointed_statement(key.name, key.key_id, message)

    member = MEMBERS[b % len(MEMBERS)]
    seq = b // len(MEMBERS) + 1
    out = [sign_statement(_signers()[member], asset_pb2.BatchManifest(
        member_id=member, batch_id=hashlib.sha256(f"{member}-{seq}".encode()).hexdigest()[:32], sequence=seq, asset_count=500,
        assets_sha256=hashlib.sha256(str(b).encode()).digest(), created_unix=1_700_000_000 + b), origin=ORIGIN)]
    voted = []  # (proposal, holders, master) of the proposals the holders vote on
    for k in range(PAIRS_PER_BATCH):
        other = rng.choice([m for m in MEMBERS if m != member])
        mine = f"a-{rng.getrandbits(96):024x}"
        theirs = f"a-{rng.getrandbits(96):024x}"
        cluster = f"c{b}-{k}"
        out.append(coordinator(statements_pb2.MatchRecorded(
            match_id=f"m{b}-{k}", cluster_id=cluster, a=statements_pb2.AssetRef(member_id=other, asset_id=theirs),
            b=statements_pb2.AssetRef(member_id=member, asset_id=mine), relation=statements_pb2.RELATION_REENCODED,
            algorithm="dct256", distance=rng.randint(0, 32), recorded_unix=1_700_000_000 + b)))
        copies = sorted([(other, theirs, _evidence(rng)), (member, mine, _evidence(rng))])
        if k >= VOTED_PER_BATCH and rng.random() < 0.3:  # some clusters have a third copy
            third = rng.choice([m for m in MEMBERS if m not in (member, other)])
            copies = sorted(copies + [(third, f"a-{rng.getrandbits(96):024x}", _evidence(rng))])
        cands = [Candidate(m, a, e, 10 * (MEMBERS.index(m) + 1)) for m, a, e in copies]
        d = choose_master(cands)
        out.append(coordinator(statements_pb2.MasterProposed(
            proposal_id=f"{cluster}/p1", cluster_id=cluster,
            copies=[statements_pb2.Copy(ref=statements_pb2.AssetRef(member_id=m, asset_id=a), evidence=e)
                    for m, a, e in copies],
            master=statements_pb2.AssetRef(member_id=d.master.member_id, asset_id=d.master.asset_id),
            policy_version=POLICY_VERSION, deciding_rule=d.deciding_rule, proposed_unix=1_700_000_000 + b,
            deadline_unix=1_700_000_000 + b + 14 * 86400)))
        if k < VOTED_PER_BATCH:
            voted.append((cluster, other, d.master))

    def accept(m: str, cluster: str):
        return statements_pb2.MasterVote(proposal_id=f"{cluster}/p1", cluster_id=cluster, member_id=m,
                                         choice=statements_pb2.VOTE_CHOICE_ACCEPT, voted_unix=1_700_000_100 + b)

    start = len(MEMBERS) + b * PER_BATCH  # this batch's first entry in the log
    # The sending member answers all of them in one ballot; each other holder votes on its own.
    ballot = start + len(out)
    out.append(sign_statement(_signers()[member], statements_pb2.MasterBallot(
        member_id=member, votes=[accept(member, c) for c, _, _ in voted], cast_unix=1_700_000_100 + b), origin=ORIGIN))
    for cluster, other, master in voted:
        indexes = sorted([ballot, start + len(out)])
        out.append(sign_statement(_signers()[other], accept(other, cluster), origin=ORIGIN))
        out.append(coordinator(statements_pb2.MasterAgreed(
            proposal_id=f"{cluster}/p1", cluster_id=cluster,
            master=statements_pb2.AssetRef(member_id=master.member_id, asset_id=master.asset_id),
            basis=statements_pb2.AGREEMENT_BASIS_UNANIMOUS, vote_indexes=indexes, agreed_unix=1_700_000_200 + b)))
    out.append(coordinator(statements_pb2.LookupsCounted(
        member_id=MEMBERS[(b + 3) % len(MEMBERS)], calls=1 + b % 5, files=10 + b % 90,
        period_start_unix=1_700_000_000 + b, period_end_unix=1_700_000_300 + b)))
    assert len(out) == PER_BATCH
    return [s.SerializeToString(deterministic=True) for s in out]


_SIGNERS: dict = {}


def _signers() -> dict:
    if not _SIGNERS:
        for name in [ORIGIN] + MEMBERS:
            _SIGNERS[name] = _signer(name)
    return _SIGNERS


def _batches(lo: int, hi: int) -> list[list[bytes]]:
    return [_batch_entries(b) for b in range(lo, hi)]


def generate(out: Path, n: int, workers: int) -> None:
    """Write an export of exactly ``n`` entries to ``out`` (via a temporary folder)."""
    from dedup.checkpoint import Checkpoint
    from dedup.export import PUBLIC_KEY, write_checkpoint, write_entries
    from dedup.merkle import Tree, leaf_hash
    from dedup.note import sign_note
    from dedup.signing import sign_statement
    from dedup.v1 import statements_pb2

    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    coord = _signers()[ORIGIN]
    tree = Tree()
    checkpoints = 0

    def commit(f, entries: list[bytes]) -> None:
        nonlocal checkpoints
        write_entries(f, entries)
        for e in entries:
            tree.append_leaf_hash(leaf_hash(e))
        write_checkpoint(tmp, tree.size, sign_note(Checkpoint(ORIGIN, tree.size, tree.root()).to_text(), [coord]))
        checkpoints += 1

    per_batch = PER_BATCH
    with open(tmp / "entries", "wb") as f:
        commit(f, [sign_statement(coord, statements_pb2.MemberAdmitted(
            member_id=m, display_name=m.title(), public_key=_signers()[m].verifier().public_bytes(),
            custodial_priority=10 * (k + 1), admitted_unix=1_700_000_000), origin=ORIGIN).SerializeToString(deterministic=True)
            for k, m in enumerate(MEMBERS)])
        batches = (n - len(MEMBERS) + per_batch - 1) // per_batch
        step = 200
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_batches, lo, min(batches, lo + step)) for lo in range(0, batches, step)]
            for k, fut in enumerate(futures):
                for entries in fut.result():
                    commit(f, entries[: n - tree.size])
                    if tree.size >= n:
                        break
                futures[k] = None  # drop results as they are written
                if k % 20 == 0:
                    log(f"  generated {tree.size:,} of {n:,} entries")
    (tmp / PUBLIC_KEY).write_text(coord.verifier().to_string() + "\n")
    (tmp / "meta.json").write_text(json.dumps({"entries": tree.size, "checkpoints": checkpoints,
                                               "root": tree.root().hex()}))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)


def run_verify(export: Path, workers: int | None) -> dict:
    cmd = [sys.executable, "-m", "dedup.cli.main", "audit", "verify", str(export), "--key", str(export / "log.pub"),
           "--json"]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    before = r0.ru_maxrss
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak = r1.ru_maxrss
    # CPU time of the auditor and its workers: with other work on the machine, the wall time
    # alone says little, and CPU seconds / cores is what an idle machine would take at best.
    cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    load = os.getloadavg()[0]
    result = json.loads(proc.stdout) if proc.stdout.strip() else {}
    return {"exit": proc.returncode, "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 1),
            "load_average_before": round(load_before, 2), "load_average_after": round(load, 2),
            "peak_rss_mib": round(max(peak, before) / 1024, 1), "ok": result.get("ok", False),
            "stderr": proc.stderr[-500:], "result": result}


def signature_floor(export: Path, sample: int = 20_000) -> dict:
    """The auditor's unavoidable cost, measured in the same run: one process verifying
    ``sample`` of the export's signatures the way the auditor's workers do
    (``dedup.ed25519.verify_many``: libsodium, OpenSSL for what it refuses). Every signed entry
    and every checkpoint needs one, so ``floor_seconds`` (all of them, spread over every core)
    is what the audit would take if nothing else cost anything; seconds / floor holds on a
    machine whose speed varies from run to run, where seconds alone do not. The same signatures
    are also timed one by one with OpenSSL (cryptography), the verifier whose verdict is the
    reference, for comparison."""
    from dedup.ed25519 import openssl_verify, verify_many
    from dedup.export import read_entries
    from dedup.note import NoteVerifier
    from dedup.signing import pae
    from dedup.v1 import statement_pb2

    keys = {name: signer.verifier().public_bytes() for name, signer in _signers().items()}
    assert keys[ORIGIN] == NoteVerifier.from_string((export / "log.pub").read_text().strip()).public_bytes()
    jobs = []
    signed = 0
    for entry in read_entries(export):
        s = statement_pb2.SignedStatement.FromString(entry)
        if s.signature:
            signed += 1
            if len(jobs) < sample:
                jobs.append((keys[s.signer], pae(ORIGIN, s.type, s.body), s.signature))
    t0 = time.process_time()
    ok = verify_many(jobs)
    per = (time.process_time() - t0) / len(jobs)
    assert all(ok), "the sample's signatures must all verify"
    part = jobs[: sample // 4]
    t0 = time.process_time()
    assert all(openssl_verify(*job) for job in part)
    reference = {"openssl": round((time.process_time() - t0) / len(part) * 1e6, 1)}
    meta = json.loads((export / "meta.json").read_text())
    cores = os.cpu_count() or 1
    return {"sample": len(jobs), "us_per_signature": round(per * 1e6, 1), "signed_entries": signed,
            "floor_seconds": round((signed + meta["checkpoints"]) * per / cores, 1),
            "reference_us_per_signature": reference}


def render(r: dict) -> str:
    m = r["machine"]
    lines = [f"Run {r['date']} on {code_label(r['code'])} with `{r['command']}`, on {m['cpu']}, {m['cores']} cores "
             f"({r['versions'].get('pynacl', '?')} PyNaCl).", "",
             f"Export: {r['entries']:,} entries ({r['mix']}), {r['checkpoints']:,} checkpoints, "
             f"{r['export_mib']:.0f} MiB; generated in {r['generate_seconds']:.0f} s (cached afterwards).", "",
             "| workers | seconds | entries/s | CPU seconds (all processes) | load average before / after | "
             "peak RSS of one process (MiB) | exit |", "|---|---|---|---|---|---|---|"]
    for run in r["runs"]:
        lines.append(f"| {run['workers']} | {run['seconds']:.1f} | {run['entries_per_second']:,.0f} | "
                     f"{run['cpu_seconds']:.0f} | {run.get('load_average_before', float('nan')):.1f} / "
                     f"{run['load_average_after']:.1f} | {run['peak_rss_mib']:.0f} | "
                     f"{run['exit']} |")
    auto = sorted(run["seconds"] for run in r["runs"] if run["workers"] == "auto") or \
        sorted(run["seconds"] for run in r["runs"])
    median = auto[len(auto) // 2]
    floor = r.get("signature_floor")
    if floor:
        lines += ["", f"Signature floor, measured in the same run: {floor['us_per_signature']:.1f} us per Ed25519 "
                      f"verification (libsodium, one process, {floor['sample']:,} of the export's signatures), so "
                      f"{floor['floor_seconds']:.1f} s for the {floor.get('signed_entries', r['entries']):,} signed "
                      f"entries and every checkpoint on all cores; the median "
                      f"audit takes **{median / floor['floor_seconds']:.2f}x** that."]
        ref = floor.get("reference_us_per_signature")
        if ref:
            lines += ["", f"The same signatures checked by OpenSSL alone: {ref['openssl']:.1f} us per check; libsodium "
                          f"is **{ref['openssl'] / floor['us_per_signature']:.1f}x** faster."]
    runs = f"median of {len(auto)} run{'s' if len(auto) > 1 else ''}: {median:.1f} s"
    if r["entries"] == 1_000_000:
        lines += ["", f"Target: 10^6 entries in under 60 s: **{'met' if median < 60 else 'not met'}** ({runs})."]
    else:
        lines += ["", f"({runs}; the target is set for 10^6 entries.)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.audit", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--workers", default="auto", help="comma-separated worker counts to time, 'auto' = the default")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs per worker count (default %(default)s); the target is judged on the median, as "
                         "a shared machine's speed varies from run to run")
    ap.add_argument("--no-readme", action="store_true", help="do not rewrite bench/README.md")
    args = ap.parse_args(argv)
    started = time.monotonic()
    # Bump GENERATOR when the generated export changes, so the cached one is not reused.
    export = CACHE / f"audit-{args.entries}-{GENERATOR}"
    gen_seconds = 0.0
    if not (export / "meta.json").exists():
        log(f"generating an export of {args.entries:,} entries in {export.relative_to(ROOT)}")
        t0 = time.perf_counter()
        generate(export, args.entries, os.cpu_count() or 1)
        gen_seconds = time.perf_counter() - t0
        meta = json.loads((export / "meta.json").read_text())
        meta["generate_seconds"] = round(gen_seconds, 1)
        (export / "meta.json").write_text(json.dumps(meta))
    meta = json.loads((export / "meta.json").read_text())
    runs = []
    floor = signature_floor(export)
    log(f"signature floor: {floor}")
    for w in [w for w in args.workers.split(",") for _ in range(max(1, args.repeat))]:
        workers = None if w == "auto" else int(w)
        log(f"dedup audit verify, workers={w}")
        run = run_verify(export, workers)
        run["workers"] = w
        run["entries_per_second"] = round(meta["entries"] / run["seconds"], 0)
        log(f"  exit {run['exit']} in {run['seconds']} s, peak RSS {run['peak_rss_mib']} MiB")
        if run["exit"] != 0:
            log(run["stderr"])
        runs.append(run)
    report = {"date": now_iso(), "command": COMMAND, "code": code_state(entries=("bench.audit", "dedup.cli.main")),
              "machine": machine(),
              "versions": versions("cryptography", "pynacl", "protobuf"), "entries": meta["entries"],
              "checkpoints": meta["checkpoints"], "generate_seconds": meta.get("generate_seconds", gen_seconds),
              "export_mib": round(sum(p.stat().st_size for p in export.rglob("*") if p.is_file()) / 2**20, 1),
              "mix": f"8 coordinator-signed member admissions; per batch of {PER_BATCH} entries: 1 member-signed "
                     f"manifest, the coordinator's {PAIRS_PER_BATCH} matches and {PAIRS_PER_BATCH} master proposals, "
                     f"1 member-signed ballot accepting {VOTED_PER_BATCH} of the proposals, {VOTED_PER_BATCH} "
                     f"member-signed votes by their other holders, the coordinator's {VOTED_PER_BATCH} unanimous "
                     f"outcomes on them and 1 lookup count (the coordinator's statements vouched for by the "
                     f"checkpoints, SPEC 3.1); a signed checkpoint after every batch",
              "signature_floor": floor,
              "runs": [{k: v for k, v in run.items() if k != "stderr"} for run in runs],
              "duration_seconds": round(time.monotonic() - started, 1)}
    publish("audit", report, render(report), not args.no_readme)
    return 0 if all(r["exit"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
