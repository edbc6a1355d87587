"""A popular photograph: thousands of copies of one picture arriving at a coordinator that
already holds 10^5 other assets.

One fresh process builds a coordinator exactly as ``dedup coordinator serve`` does
(``build_core``: SQLite store, signed log, matcher) and takes in the 10^5 assets of
``bench.scale`` from four members. One member (``records-office``) then sends the picture's
master: a real corpus original. The store is copied and the coordinator restarted on it; then
the three other members send 10,000 copies of the picture in batches of 1,000 (each member in
turn). The copies are the corpus's variants of that original (re-encodes, resizes, crops,
rotations, tone and colour changes, borders, rescans: every kind the accuracy corpus makes),
taken in turn, each with its own asset id and digests and 0-3 bits of its dct256 and dct64
hashes flipped, so no two carry the same fingerprints. Meanwhile ``records-office`` sends
one-asset batches of unrelated pictures, one every 0.1 s, from another thread, and each one's
answer time is kept: what another member waits while a popular picture is taken in.

Then a second coordinator starts on the copy of the store and takes in the same 10,000
copies one per batch, in the same order: the clusters and masters must be the same.

Measured: each batch's intake time, every answer time of the other member, the process's
peak resident memory (overall, and from the restart on), log entries and matches per copy.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse
import hashlib
import uuid
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench.common import ROOT, asset_id, log

BASE = 100_000
COPIES = 10_000
BATCH = 1_000
#: Seconds between the other member's one-asset batches.
PROBE_EVERY = 0.1
#: Id spaces (bench.common.asset_id): the base assets are space 0 (bench.scale), then the
#: original, its copies, and the probing member's other pictures.
ORIGINAL, COPY_SPACE, OTHER_SPACE = asset_id(1, 0), 2, 3


def _peak_mib() -> float:
    """Peak resident memory since the last ``_reset_peak`` (VmHWM), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def picture_and_variants(records):
    """The corpus original with the most variants, and those variants (as records)."""
    from dedup.v1 import asset_pb2

    groups: dict[str, dict[str, list]] = {}
    for r in records:
        a = asset_pb2.Asset.FromString(r)
        group, role = a.asset_id.split("|")
        groups.setdefault(group, {}).setdefault(role, []).append(a)
    best = max((g for g in groups.values() if g.get("master") and not any(x.low_information for x in g["master"])),
               key=lambda g: (len(g.get("variant", ())), g["master"][0].asset_id))
    return best["master"][0], [v for v in best.get("variant", ()) if not v.low_information]


def copies(variants, n: int, seed: int = 7):
    """``n`` copies: the variants in turn, each with new digests and 0-3 bits of its dct256
    (one of the 2,048 bits of its eight orientations) and dct64 hashes flipped."""
    from dedup.v1 import asset_pb2

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a = asset_pb2.Asset()
        a.CopyFrom(variants[i % len(variants)])
        a.asset_id = asset_id(COPY_SPACE, i)
        a.sha256, a.pixel_digest = rng.bytes(32), rng.bytes(32)
        for fp in a.fingerprints:
            if fp.algorithm in ("dct256", "dct64"):
                value = bytearray(fp.value)
                for bit in rng.choice(len(value) * 8, size=int(rng.integers(0, 4)), replace=False):
                    value[bit // 8] ^= 1 << (bit % 8)
                fp.value = bytes(value)
        out.append(a)
    return out


class Members:
    """Signs and sends batches as the members would (sequence numbers go on from the store)."""

    def __init__(self, core, signers) -> None:
        self.core, self.signers = core, signers
        self.seq = {m: core.store.last_sequence(m) for m in signers}
        self.lock = threading.Lock()

    def send(self, member: str, assets) -> tuple[float, object]:
        from dedup.signing import sign_statement
        from dedup.v1 import asset_pb2

        with self.lock:
            self.seq[member] += 1
            seq = self.seq[member]
        payload = asset_pb2.AssetList(assets=assets).SerializeToString(deterministic=True)
        manifest = asset_pb2.BatchManifest(member_id=member, batch_id=uuid.uuid4().hex, sequence=seq,
                                           asset_count=len(assets), assets_sha256=hashlib.sha256(payload).digest())
        stmt = sign_statement(self.signers[member], manifest, origin=self.core.log.origin)
        t0 = time.perf_counter()
        r = self.core.submit_batch(member, stmt, payload)
        return time.perf_counter() - t0, r


def outcome(core, keys) -> dict:
    """The clusters of ``keys`` (as sets of keys) and each cluster's live proposal's master."""
    from dedup.coordinator.negotiation import LIVE

    m = core.matcher
    clusters: dict[str, set] = {}
    for k in keys:
        cid = m.cluster_of.get(k)
        clusters.setdefault(cid or f"none:{k}", set()).add(k)
    masters = {}
    for cid in clusters:
        row = core.store._db.execute(
            "SELECT p.master_member, p.master_asset FROM proposals p JOIN negotiations n ON n.proposal_id ="
            " p.proposal_id WHERE p.cluster_id=? AND n.status IN (?, ?, ?) ORDER BY p.log_index DESC LIMIT 1",
            (cid, *LIVE)).fetchone()
        masters[cid] = tuple(row) if row else None
    return {"clusters": sorted(sorted(c) for c in clusters.values()),
            "masters": sorted((sorted(clusters[cid])[0], v) for cid, v in masters.items())}


def _one(base: int, n_copies: int) -> dict:
    from bench import scale
    from dedup import pki
    from dedup.coordinator.server import build_core
    from dedup.coordinator.settings import CoordinatorSettings
    from dedup.note import NoteSigner
    from dedup.v1 import asset_pb2

    members = scale.MEMBERS
    holder, senders = members[0], members[1:]
    work = Path(tempfile.mkdtemp(prefix="dedup-popular-", dir=scale.SCALE))
    signers = {m: NoteSigner.generate(m) for m in members}
    ca = pki.write_ca(work, "bench CA")
    pki.write_server_tls(ca, work, "coordinator")
    pki.write_log_key(work, "bench.dedup.local/log")

    def settings(db: Path) -> CoordinatorSettings:
        return CoordinatorSettings(
            database=str(db), log_key=work / pki.LOG_KEY, log_origin="bench.dedup.local/log",
            tls={"ca": work / pki.CA_CERT, "cert": work / pki.TLS_CERT, "key": work / pki.TLS_KEY},
            members=[{"id": m, "name": m, "public_key": signers[m].verifier().to_string(), "custodial_priority": 10 * i}
                     for i, m in enumerate(members)],
            max_batch_assets=BATCH, intake_rate=1e9, intake_burst=10**9)  # one sender, as fast as it can

    records = scale.real_records()
    master, variants = picture_and_variants(records)
    made = copies(variants, n_copies)
    # The other member's pictures: real records of other pictures, new ids and digests.
    rng = np.random.default_rng(3)
    others = []
    picture = master.asset_id.split("|")[0]
    for i, r in enumerate([r for r in records[::7] if not asset_pb2.Asset.FromString(r).asset_id.startswith(picture + "|")][:2000]):
        a = asset_pb2.Asset.FromString(r)
        a.asset_id = asset_id(OTHER_SPACE, i)
        a.sha256, a.pixel_digest = rng.bytes(32), rng.bytes(32)
        others.append(a)

    db = work / "coordinator.sqlite"
    core = build_core(settings(db))
    t0 = time.monotonic()
    sender = Members(core, signers)
    for m, chunk in scale.batches(base):
        sender.send(m, chunk)
    base_seconds = time.monotonic() - t0
    original = asset_pb2.Asset()
    original.CopyFrom(master)
    original.asset_id = ORIGINAL
    original.sha256, original.pixel_digest = rng.bytes(32), rng.bytes(32)
    sender.send(holder, [original])
    log(f"popular: {base:,} assets and the original in {base_seconds:.0f} s")
    core.store.close()
    del core, sender
    snapshot = work / "snapshot.sqlite"
    shutil.copyfile(db, snapshot)

    # Batches of 1,000 from three members, while the fourth sends one-asset batches.
    t0 = time.monotonic()
    core = build_core(settings(db))
    restart_seconds = time.monotonic() - t0
    sender = Members(core, signers)
    _reset_peak()
    rss_after_restart = _peak_mib()
    probes: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        i = 0
        while not stop.is_set():
            seconds, _ = sender.send(holder, [others[i % len(others)]])
            probes.append(seconds)
            i += 1
            stop.wait(PROBE_EVERY)

    thread = threading.Thread(target=probe, daemon=True)
    batches = []
    thread.start()
    try:
        time.sleep(1.0)  # the other member's answers before the copies come, for comparison
        before_copies = len(probes)
        for j, lo in enumerate(range(0, n_copies, BATCH)):
            member = senders[j % len(senders)]
            seconds, r = sender.send(member, made[lo:lo + BATCH])
            batches.append({"member": member, "assets": r.accepted, "seconds": round(seconds, 3),
                            "new_matches": r.new_matches, "rss_mib": round(_peak_mib(), 1)})
            log(f"popular: batch {j + 1}: {r.accepted} copies from {member} in {seconds:.2f} s, "
                f"{r.new_matches} matches, peak {batches[-1]['rss_mib']:.0f} MiB")
        during = len(probes)
        time.sleep(1.0)
    finally:
        stop.set()
        thread.join()
    peak_copies = _peak_mib()
    keys = [(holder, ORIGINAL)] + [(senders[(i // BATCH) % len(senders)], a.asset_id) for i, a in enumerate(made)]
    batched = outcome(core, keys)
    m = core.matcher
    picture_versions = sum(1 for k in keys if k in m.index)
    # The log entries the copies made: their matches, and the proposals of their clusters.
    db = core.store._db
    copy_matches = db.execute("SELECT COUNT(*) FROM matches WHERE a_asset LIKE ? OR b_asset LIKE ?",
                              (asset_id(COPY_SPACE, 0)[:4] + "%",) * 2).fetchone()[0]
    copy_clusters = sorted({m.cluster_of[k] for k in keys if k in m.cluster_of})
    proposals = sum(db.execute("SELECT COUNT(*) FROM proposals WHERE cluster_id=?", (c,)).fetchone()[0] for c in copy_clusters)
    entries = copy_matches + proposals
    counts = core.store.counts()
    core.store.close()
    del core, sender, m

    # The same copies, one per batch, on the same starting store.
    core = build_core(settings(snapshot))
    sender = Members(core, signers)
    t0 = time.monotonic()
    for i, a in enumerate(made):
        sender.send(senders[(i // BATCH) % len(senders)], [a])
    single_seconds = time.monotonic() - t0
    single = outcome(core, keys)
    core.store.close()
    shutil.rmtree(work, ignore_errors=True)
    probes_during = probes[before_copies:during]
    return {
        "base_assets": base, "copies": n_copies, "batch": BATCH, "variants": len(variants),
        "picture": picture,
        "base_intake_seconds": round(base_seconds, 1), "restart_seconds": round(restart_seconds, 1),
        "batches": batches, "max_batch_seconds": max(b["seconds"] for b in batches),
        "other_member": {"every_seconds": PROBE_EVERY, "batches_during_copies": len(probes_during),
                         "max_seconds_during_copies": round(max(probes_during), 3),
                         "median_seconds_during_copies": round(statistics.median(probes_during), 4),
                         "median_seconds_before": round(statistics.median(probes[:before_copies]), 4)},
        "peak_rss_mib": round(max(_peak_mib(), peak_copies), 1),
        "peak_rss_mib_overall": round(_overall_peak_mib(), 1),
        "rss_mib_after_restart": round(rss_after_restart, 1), "peak_rss_mib_during_copies": round(peak_copies, 1),
        "copy_matches": copy_matches, "copy_cluster_proposals": proposals,
        "log_entries_per_copy": round(entries / n_copies, 3),
        "picture_versions_indexed": picture_versions,
        "clusters_of_copies": len(batched["clusters"]),
        "largest_cluster": max(len(c) for c in batched["clusters"]),
        "matches_total": counts["matches"],
        "one_by_one_seconds": round(single_seconds, 1),
        "same_as_one_by_one": batched == single,
    }


def _overall_peak_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(base: int = BASE, n_copies: int = COPIES) -> dict:
    proc = subprocess.run([sys.executable, "-m", "bench.popular", "--one", "--base", str(base), "--copies", str(n_copies)],
                          cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        sys.stderr.write(proc.stderr[-4000:])
        return {"error": f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.popular", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", type=int, default=BASE, help="other assets held first (default %(default)s)")
    p.add_argument("--copies", type=int, default=COPIES, help="copies of the picture (default %(default)s)")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        from bench import scale

        scale.SCALE.mkdir(parents=True, exist_ok=True)
        print(json.dumps(_one(args.base, args.copies)))
        return 0
    print(json.dumps(run(args.base, args.copies), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
