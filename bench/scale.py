"""The coordinator's core at consortium scale: N assets taken in and matched, then a restart.

One fresh process per N (so its peak RSS is this N's alone) builds a coordinator exactly as
``dedup coordinator serve`` does (``build_core``: SQLite store, signed log, matcher) and
submits pre-signed batches of 1,000 assets from 4 members in turn through
``Coordinator.submit_batch`` — signature checks, validation, storage, candidate search,
the matching rule, clustering, proposals and the log all run; only gRPC is left out (its
throughput is measured by ``bench.intake``). Then it restarts as the server does: saves the
candidate index (``Coordinator.save_index``), closes the store and builds a new coordinator on
it, timing the start-up from the saved index; then, with the saved file removed (as after a
crash), once more, timing the rebuild of the index from every stored record. Last, in another
process, the sample check (``bench.samplecheck``): for ``--sample`` random indexed assets, the
saved index's cross-member candidates against a brute-force scan of every indexed record.

Assets: real fingerprint records from the accuracy corpus (read with the node's own
``read_image``): each picture's master and 1-3 of its variants, held by different members,
and the must-not-match and low-information images once each; then synthetic groups up to N. A group's base
is a real record whose hashes are XORed with a random mask of the group (a new picture with
real hashes' bit balance but no relation to the corpus); 70% of groups are one asset, the
rest two or three copies held by different members, each copy with about 4 of the 256 bits
of each dct256 hash flipped (8 draws, each kept with probability 1/2) and about half a bit
of each 64-bit hash (dct64 and every keypoint hash; keypoints keep their positions and
scales). Every asset has its own digests.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse
import hashlib
import uuid
import json
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from bench.common import CACHE, ROOT, asset_id, log, sources_digest

MEMBERS = ("records-office", "city-museum", "university-library", "film-archive")
BATCH = 1000
SCALE = CACHE / "scale"


def _read(job: tuple[str, str]) -> bytes | None:
    from dedup.node.imaging import ImageError, read_image
    from dedup.node.scan import to_record

    path, name = job
    try:
        return to_record(name, read_image(Path(path))).SerializeToString(deterministic=True)
    except ImageError:
        return None


def real_records() -> list[bytes]:
    """The corpus's fingerprint records, computed once and cached."""
    from bench import dataset

    key = sources_digest(ROOT / "node" / "imaging.py", *sorted((ROOT / "dedup" / "fingerprint").glob("*.py"))) \
        + dataset._generator_key()
    cache = SCALE / f"real-{hashlib.sha256(key.encode()).hexdigest()[:16]}.bin"
    if cache.exists():
        from dedup.v1 import asset_pb2

        return [a.SerializeToString(deterministic=True) for a in asset_pb2.AssetList.FromString(cache.read_bytes()).assets]
    corpus = dataset.build()
    # The asset id carries the corpus group and role: copies of one picture share a group.
    jobs = [(str(corpus.path(e)), f"{e.group}|{e.role}") for e in corpus.entries]
    log(f"scale: reading {len(jobs)} corpus images for real fingerprint records")
    with ProcessPoolExecutor(2) as pool:
        records = [r for r in pool.map(_read, jobs, chunksize=32) if r is not None]
    from dedup.v1 import asset_pb2

    SCALE.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(asset_pb2.AssetList(assets=[asset_pb2.Asset.FromString(r) for r in records])
                      .SerializeToString(deterministic=True))
    return records


def batches(n: int, seed: int = 1):
    """Yield (member, assets) batches of up to BATCH until N assets are made, generating as it
    goes so memory holds one chunk (see the module docstring for what the assets are)."""
    from dedup.v1 import asset_pb2

    rng = np.random.default_rng(seed)
    real = [asset_pb2.Asset.FromString(r) for r in real_records()]
    pending: dict[str, list] = {m: [] for m in MEMBERS}
    made = 0

    def put(member: str, a):
        nonlocal made
        a.asset_id = asset_id(0, made)
        made += 1
        pending[member].append(a)
        if len(pending[member]) == BATCH:
            out, pending[member] = pending[member], []
            return member, out
        return None

    # Real copies: each corpus picture's master and 1-3 of its variants, at different members;
    # the must-not-match and low-information images once each.
    groups: dict[str, list] = {}
    for a in real:
        group, role = a.asset_id.split("|")
        groups.setdefault(group if role in ("master", "variant") else a.asset_id + str(len(groups)), []).append(a)
    chosen = []
    for copies in groups.values():
        k = min(len(copies), int(rng.integers(2, 5)))
        picks = [copies[0]] + [copies[int(j)] for j in rng.choice(np.arange(1, len(copies)), size=k - 1, replace=False)] \
            if len(copies) > 1 else copies
        holders = rng.choice(len(MEMBERS), size=len(picks), replace=False)
        chosen += list(zip(picks, holders))
    for a, holder in chosen[:n]:
        b = asset_pb2.Asset()
        b.CopyFrom(a)
        b.sha256, b.pixel_digest = rng.bytes(32), rng.bytes(32)
        if (full := put(MEMBERS[int(holder)], b)) is not None:
            yield full
    # Synthetic groups, as 64-bit words: dct256 (8 x 4 words), dct64 (2), then the kp64 keypoint
    # hashes (up to 64; their positions and scales are kept). A group's mask is the XOR of two
    # rows of random tables (distinct for every group up to 2**24).
    with_hashes = [a for a in real if not a.low_information and len(a.fingerprints) == 3]
    fixed = np.stack([np.frombuffer(b"".join(fp.value for fp in _ordered(a)[:2]), dtype=np.uint64) for a in with_hashes])
    points = [_ordered(a)[2].value for a in with_hashes]
    words = np.zeros((len(with_hashes), fixed.shape[1] + 64), dtype=np.uint64)
    words[:, :fixed.shape[1]] = fixed
    for i, v in enumerate(points):
        hashes = _point_hashes(v)
        words[i, fixed.shape[1]:fixed.shape[1] + hashes.size] = hashes
    tables = rng.integers(0, 2**64 - 1, (2, 4096, words.shape[1]), dtype=np.uint64, endpoint=True)
    left = n - made
    sizes = np.where(rng.random(left) < 0.7, 1, rng.integers(2, 4, left))
    sizes = sizes[: int(np.searchsorted(np.cumsum(sizes), left)) + 1]
    group = np.repeat(np.arange(sizes.size), sizes)[:left]
    base = rng.integers(0, len(with_hashes), sizes.size)
    holder = np.concatenate([rng.permutation(len(MEMBERS))[:k] for k in sizes])[:left]
    for lo in range(0, left, 10_000):
        g = group[lo:lo + 10_000]
        k = g.size
        vals = words[base[g]] ^ tables[0][g % 4096] ^ tables[1][(g // 4096) % 4096]
        rows = np.arange(k)
        for _ in range(8):  # about 4 of each dct256 hash's 256 bits flipped per copy
            pos = rng.integers(0, 256, (k, 8))
            keep = (rng.random((k, 8)) < 0.5).astype(np.uint64)
            vals[rows[:, None], np.arange(8)[None, :] * 4 + pos // 64] ^= keep << (pos % 64).astype(np.uint64)
        pos = rng.integers(0, 64, (k, vals.shape[1] - 32)).astype(np.uint64)
        vals[:, 32:] ^= (rng.random((k, vals.shape[1] - 32)) < 0.5).astype(np.uint64) << pos  # ~0.5 bit per 64
        blob = vals[:, :34].tobytes()
        for i in range(k):
            t = int(base[g[i]])
            template = with_hashes[t]
            v = blob[i * 272:(i + 1) * 272]
            kp = _with_point_hashes(points[t], vals[i, 34:])
            b = asset_pb2.Asset(sha256=rng.bytes(32), pixel_digest=rng.bytes(32), evidence=template.evidence,
                                fingerprints=[asset_pb2.Fingerprint(algorithm=fp.algorithm, version=fp.version, value=part)
                                              for fp, part in zip(_ordered(template), (v[:256], v[256:272], kp))])
            if (full := put(MEMBERS[int(holder[lo + i])], b)) is not None:
                yield full
    for m in MEMBERS:
        if pending[m]:
            yield m, pending[m]


def _ordered(a):
    """The record's fingerprints as dct256, dct64, kp64."""
    by = {fp.algorithm: fp for fp in a.fingerprints}
    return [by["dct256"], by["dct64"], by["kp64"]]


def _point_hashes(value: bytes) -> np.ndarray:
    """The keypoint hashes of a kp64 value, as native uint64 words (their byte order does not
    matter to a mask XORed into them and back out)."""
    from dedup.fingerprint import points

    raw = np.frombuffer(value, dtype=np.uint8, offset=points.HEADER).reshape(-1, points.POINT_BYTES)
    return np.ascontiguousarray(raw[:, :8]).view(np.uint64)[:, 0]


def _with_point_hashes(value: bytes, words: np.ndarray) -> bytes:
    """``value`` with its keypoint hashes replaced by the first of ``words`` (positions and
    scales kept)."""
    from dedup.fingerprint import points

    raw = np.frombuffer(value, dtype=np.uint8, offset=points.HEADER).reshape(-1, points.POINT_BYTES).copy()
    raw[:, :8] = np.ascontiguousarray(words[:raw.shape[0]]).view(np.uint8).reshape(-1, 8)
    return value[:points.HEADER] + raw.tobytes()


def _one(n: int) -> dict:
    """Run in a fresh process: intake of N assets, then a restart."""
    from dedup import pki
    from dedup.coordinator.server import build_core
    from dedup.coordinator.settings import CoordinatorSettings
    from dedup.note import NoteSigner
    from dedup.signing import sign_statement
    from dedup.v1 import asset_pb2

    work = Path(tempfile.mkdtemp(prefix="dedup-scale-", dir=SCALE))
    signers = {m: NoteSigner.generate(m) for m in MEMBERS}
    ca = pki.write_ca(work, "bench CA")
    pki.write_server_tls(ca, work, "coordinator")
    pki.write_log_key(work, "bench.dedup.local/log")
    settings = CoordinatorSettings(
        database=str(work / "coordinator.sqlite"), log_key=work / pki.LOG_KEY, log_origin="bench.dedup.local/log",
        tls={"ca": work / pki.CA_CERT, "cert": work / pki.TLS_CERT, "key": work / pki.TLS_KEY},
        members=[{"id": m, "name": m, "public_key": signers[m].verifier().to_string(), "custodial_priority": 10 * i}
                 for i, m in enumerate(MEMBERS)],
        max_batch_assets=BATCH,
    )
    real_records()  # read (or load) the corpus before anything is measured
    rss_before = _rss_mib()
    core = build_core(settings)
    seq = {m: 0 for m in MEMBERS}
    intake = 0.0  # only Coordinator.submit_batch is timed; making and signing batches is the members' work
    matches = batches_sent = 0
    started = time.monotonic()
    for m, chunk in batches(n):
        seq[m] += 1
        payload = asset_pb2.AssetList(assets=chunk).SerializeToString(deterministic=True)
        manifest = asset_pb2.BatchManifest(member_id=m, batch_id=uuid.uuid4().hex, sequence=seq[m],
                                           asset_count=len(chunk), assets_sha256=hashlib.sha256(payload).digest())
        stmt = sign_statement(signers[m], manifest, origin=settings.log_origin)
        t0 = time.monotonic()
        matches += core.submit_batch(m, stmt, payload).new_matches
        intake += time.monotonic() - t0
        batches_sent += 1
        if batches_sent % 100 == 0:
            log(f"scale {n}: {batches_sent} batches, intake {intake:.0f} s of {time.monotonic() - started:.0f} s, "
                f"{matches} matches")
    counts = core.store.counts()
    index_mib = sum(getattr(core.matcher.index, name).memory_bytes() for name in core.matcher.index._names) / 2**20
    # Perceptual hash values indexed (an upright dct256, a dct64 and up to 32 keypoints per asset).
    hashes = sum(len(getattr(core.matcher.index, name)) for name in ("upright", "low", "points"))
    peak_intake = _rss_mib()
    search = _search_split(core.matcher.index)  # no reference to the index may outlive `del core`
    # A restart as the server makes one: the index saved on the way down, read on the way up.
    t0 = time.monotonic()
    saved_bytes = core.save_index()
    save = time.monotonic() - t0
    os.link(settings.snapshot_path(), work / "check.snapshot")  # for the sample check, after this process
    core.store.close()
    del core
    t0 = time.monotonic()
    core = build_core(settings)
    restart = time.monotonic() - t0
    assert len(core.matcher.index) == counts["assets"], "restart lost assets"
    core.store.close()
    del core
    # And after a crash (no saved index that stands for the store): rebuilt from every record.
    settings.snapshot_path().unlink()
    t0 = time.monotonic()
    core = build_core(settings)
    rebuild = time.monotonic() - t0
    assert len(core.matcher.index) == counts["assets"], "rebuild lost assets"
    core.store.close()
    return {
        "n": n, "assets": counts["assets"], "matches": counts.get("matches"), "clusters": counts.get("clusters"),
        "hash_values_indexed": hashes, "batches": batches_sent, "intake_seconds": round(intake, 1), "assets_per_second": round(n / intake, 1),
        "restart_seconds": round(restart, 1), "rebuild_seconds": round(rebuild, 1), "save_seconds": round(save, 1),
        "saved_index_mib": round(saved_bytes / 2**20, 1), "index_mib": round(index_mib, 1), "candidate_search": search,
        "peak_rss_mib_before_intake": round(rss_before, 1), "peak_rss_mib_intake": round(peak_intake, 1),
        "peak_rss_mib": round(max(peak_intake, _rss_mib()), 1),
        "database_mib": round((work / "coordinator.sqlite").stat().st_size / 2**20, 1), "workdir": str(work),
    }


def _search_split(index) -> dict:
    """Seconds and query rows of each candidate search during the intake, largest first."""
    return {kind: {"seconds": round(sec, 1), "queries": index.search_queries[kind]}
            for kind, sec in sorted(index.search_seconds.items(), key=lambda kv: -kv[1])}


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _check(n: int, work: Path, sample: int) -> dict:
    """Run in a fresh process: the saved index of ``_one(n)`` against brute force over the
    same records (``bench.samplecheck``), for ``sample`` random assets."""
    from bench import samplecheck

    records = {(m, a.asset_id): a for m, chunk in batches(n) for a in chunk}
    return samplecheck.check(work / "check.snapshot", records, sample)


def run(sizes=(10**4, 10**5, 10**6), sample: int = 1000) -> list[dict]:
    """Each N in a fresh process, then (unless ``sample`` is 0) the sample check in another."""
    out = []
    for n in sizes:
        proc = subprocess.run([sys.executable, "-m", "bench.scale", "--one", str(n)], cwd=ROOT,
                              capture_output=True, text=True)
        sys.stderr.write(proc.stderr[-4000:] if proc.returncode else "")
        if proc.returncode:
            out.append({"n": n, "error": f"exit {proc.returncode}"})
            continue
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        import shutil

        work = result.pop("workdir")
        if sample:
            check = subprocess.run([sys.executable, "-m", "bench.scale", "--check", str(n), work, str(sample)],
                                   cwd=ROOT, capture_output=True, text=True)
            sys.stderr.write(check.stderr[-4000:] if check.returncode else "")
            result["sample_check"] = json.loads(check.stdout.strip().splitlines()[-1]) if not check.returncode \
                else {"error": f"exit {check.returncode}"}
        shutil.rmtree(work, ignore_errors=True)
        log(f"scale {n}: {result}")
        out.append(result)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated N (default %(default)s)")
    p.add_argument("--sample", type=int, default=1000,
                   help="assets checked against brute force after each N (0: none; default %(default)s)")
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)
    p.add_argument("--check", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.check:
        n, work, sample = args.check
        print(json.dumps(_check(int(n), Path(work), int(sample))))
        return 0
    if args.one:
        SCALE.mkdir(parents=True, exist_ok=True)
        print(json.dumps(_one(args.one)))
        return 0
    print(json.dumps(run([int(s) for s in args.sizes.split(",")], args.sample), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
