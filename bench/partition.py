"""`make bench-partition`: the candidate index split across worker processes, and the log's append rate.

What SPEC.md section 12 ("Past one coordinator: partitioning") argues from. Nothing here ships:
it measures how the coordinator's candidate search would scale if its index were held by K
processes instead of one (as Ray actors or any other workers would hold it), on this machine.

For each N (stored assets), one set of records is generated and written to a temporary file,
then each layout is started as fresh worker processes (``spawn``: each one's memory is its
own), each building its part of a ``dedup.candidates.CandidateIndex`` in one ``add_many`` (as a
coordinator's restart does) from that file:

* ``single``: one worker holding every asset: the reference answers;
* ``shards`` K: asset i goes to shard i mod K; every batch of queries is sent to every shard
  over a pipe and the K answers are unioned, which must equal the single index's answers
  exactly (asserted: an asset's rows all live in one shard, so each of the rule's conditions,
  the two agreeing keypoints included, is decided within one shard);
* ``replicas`` R: every worker holds the whole index; each batch is split into R parts, one
  per worker, and the answers concatenated (asserted equal too).

Queries: a stream of new assets in batches of 1,000 (an intake batch), a third of them copies
of stored pictures; they are searched, never added. Per layout: queries per second (wall
time, one batch at a time as an intake would wait for its candidates), the CPU seconds every
worker spent (the work a query costs in all, whatever the cores), and per worker the index's
own MiB, resident MiB once built (and before: the interpreter and libraries) and peak RSS.

Records are generated here, not taken from ``bench.scale`` (whose records start from the
accuracy corpus's fingerprints, which a fresh machine does not have): pictures with random
dct256 orientations, dct64 and 40 keypoint hashes; 70% of pictures held once, the rest two or
three times, each copy with about 4 of each 256-bit hash's bits flipped and about half a bit
of each 64-bit hash. Their bits are uniformly random, where real records' are not; the cost of
a search on them is compared with the real-record figures of ``bench.scale`` in bench/README.md.

The log: ``TransparencyLog`` appends of ``MatchRecorded`` statements (the bulk of a large
intake's entries) on a SQLite store, in transactions of 100 and 1,000 entries, each followed
by its signed checkpoint, as the coordinator commits them.

Writes bench/results/partition.json and the "partition" section of bench/README.md.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse
import gc
import multiprocessing
import resource
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import asset_id, code_label, code_state, log, machine, now_iso, publish, versions

COMMAND = ".venv/bin/python -m bench.partition"
BATCH = 1000  # queries per intake batch
POINTS = 40  # keypoints per record (the strongest 32 are indexed)
WORDS = 32 + 2 + POINTS  # uint64 words of a record: dct256 x 8 orientations, dct64 (frame, whole), keypoints
COPY_SHARE = 1 / 3  # of the queries: copies of stored pictures
NEW_GROUPS = 1 << 23  # group numbers of the queries' new pictures start here


# -- records -------------------------------------------------------------------------------

def _tables(seed: int) -> np.ndarray:
    """A picture's words are the XOR of a row of each table: distinct for 2**24 groups."""
    return np.random.default_rng(seed).integers(0, 2**64 - 1, (2, 4096, WORDS), dtype=np.uint64, endpoint=True)


def _pictures(groups: np.ndarray, tables: np.ndarray) -> np.ndarray:
    return tables[0][groups % 4096] ^ tables[1][(groups // 4096) % 4096]


def _copies(vals: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each row a copy: about 4 bits of each dct256 orientation flipped, about half a bit of
    each 64-bit hash."""
    k = vals.shape[0]
    vals = vals.copy()
    rows = np.arange(k)[:, None]
    for _ in range(8):
        pos = rng.integers(0, 256, (k, 8))
        keep = (rng.random((k, 8)) < 0.5).astype(np.uint64)
        vals[rows, np.arange(8)[None, :] * 4 + pos // 64] ^= keep << (pos % 64).astype(np.uint64)
    pos = rng.integers(0, 64, (k, WORDS - 32)).astype(np.uint64)
    vals[:, 32:] ^= (rng.random((k, WORDS - 32)) < 0.5).astype(np.uint64) << pos
    return vals


def _assets(numbers: np.ndarray, vals: np.ndarray, rng: np.random.Generator, space: int) -> bytes:
    """Serialised AssetList of records with these words."""
    from dedup.fingerprint import wire
    from dedup.v1 import asset_pb2

    k = vals.shape[0]
    where = rng.integers(0, 256, (k, POINTS, 4), dtype=np.uint8)  # 3 bytes position, 1 byte scale
    points = np.concatenate([vals[:, 34:].astype(">u8").view(np.uint8).reshape(k, POINTS, 8), where], axis=2)
    header = (320).to_bytes(2, "big") + (240).to_bytes(2, "big")
    blob = vals[:, :34].tobytes()
    digests = rng.bytes(64 * k)
    out = asset_pb2.AssetList()
    for i in range(k):
        v = blob[i * 272:(i + 1) * 272]
        a = out.assets.add(asset_id=asset_id(space, int(numbers[i])), sha256=digests[64 * i:64 * i + 32],
                           pixel_digest=digests[64 * i + 32:64 * i + 64])
        for (alg, version), value in ((wire.DCT256, v[:256]), (wire.DCT64, v[256:]),
                                      (wire.KP64, header + points[i].tobytes())):
            a.fingerprints.add(algorithm=alg, version=version, value=value)
    return out.SerializeToString(deterministic=True)


def write_stored(path: Path, n: int, seed: int) -> int:
    """N stored assets, in chunks of BATCH: (first number, serialised AssetList). Returns the
    number of pictures (groups) they hold."""
    rng = np.random.default_rng(seed)
    tables = _tables(seed)
    sizes = np.where(rng.random(n) < 0.7, 1, rng.integers(2, 4, n))
    sizes = sizes[: int(np.searchsorted(np.cumsum(sizes), n)) + 1]
    group = np.repeat(np.arange(sizes.size), sizes)[:n]
    # A group's first asset is its picture; the others are copies of it.
    first = np.concatenate(([True], group[1:] != group[:-1]))
    with open(path, "wb") as f:
        for lo in range(0, n, BATCH):
            g = group[lo:lo + BATCH]
            vals = _pictures(g, tables)
            later = ~first[lo:lo + BATCH]
            vals[later] = _copies(vals[later], rng)
            _frame(f, lo, _assets(np.arange(lo, lo + g.size), vals, rng, 0))
    return int(sizes.size)


def write_queries(path: Path, q: int, groups: int, seed: int) -> None:
    """Q new assets: a third copies of stored pictures, the rest new pictures."""
    rng = np.random.default_rng(seed + 1)
    tables = _tables(seed)
    copy = rng.random(q) < COPY_SHARE
    g = np.where(copy, rng.integers(0, groups, q), NEW_GROUPS + np.arange(q))
    vals = _pictures(g, tables)
    vals[copy] = _copies(vals[copy], rng)
    with open(path, "wb") as f:
        for lo in range(0, q, BATCH):
            _frame(f, lo, _assets(np.arange(lo, min(q, lo + BATCH)), vals[lo:lo + BATCH], rng, 1))


def _frame(f, first: int, blob: bytes) -> None:
    f.write(struct.pack(">QI", first, len(blob)))
    f.write(blob)


def read_chunks(path: Path):
    """(first number, serialised AssetList) of each chunk of a records file."""
    with open(path, "rb") as f:
        while head := f.read(12):
            first, size = struct.unpack(">QI", head)
            yield first, f.read(size)


# -- a worker: one process holding an index, or a shard of one -----------------------------

def _resident_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _trim() -> None:
    """Hand the heap freed after a build back to the system (glibc), so resident memory is
    what the index holds rather than what building it needed at most (peak RSS has that)."""
    import ctypes

    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _warm_up() -> None:
    """Build and search a small index once, so the compiled search kernels (numba) are loaded
    before the worker's memory is measured: every process pays that once, whatever its index."""
    from dedup.candidates import CandidateIndex
    from dedup.v1 import asset_pb2

    rng = np.random.default_rng(0)
    n = 300
    assets = asset_pb2.AssetList.FromString(_assets(np.arange(n), _pictures(np.arange(n), _tables(0)), rng, 2)).assets
    index = CandidateIndex(tail=64)
    index.add_many(list(enumerate(assets)))
    index.candidates_many(assets[:50])
    del index, assets
    gc.collect()
    _trim()


def _serve(conn) -> None:
    """Answer the driver's requests until told to stop: ("build", path, K, k) holds the assets
    i with i mod K == k (K = 0: all of them); ("query", first, blob) answers candidates_many for
    the serialised AssetList (keys are stored asset numbers); ("stop",)."""
    from dedup.candidates import CandidateIndex
    from dedup.v1 import asset_pb2

    _warm_up()
    index = CandidateIndex()
    cpu = 0.0
    while True:
        msg = conn.recv()
        if msg[0] == "stop":
            conn.send({"query_cpu_seconds": round(cpu, 2), "peak_rss_mib": round(_peak_mib(), 1),
                       "search_seconds": {k: round(v, 2) for k, v in index.search_seconds.items()}})
            return
        if msg[0] == "build":
            _, path, k_all, k = msg
            before = _resident_mib()
            t0, c0 = time.perf_counter(), time.process_time()
            items = []
            for first, blob in read_chunks(Path(path)):
                for j, a in enumerate(asset_pb2.AssetList.FromString(blob).assets):
                    if k_all == 0 or (first + j) % k_all == k:
                        items.append((first + j, a))
            index.add_many(items)
            held = len(items)
            del items
            gc.collect()
            _trim()
            index_bytes = sum(getattr(index, name).memory_bytes() for name in index._names) + index._first.nbytes
            conn.send({"assets": held, "build_seconds": round(time.perf_counter() - t0, 2),
                       "build_cpu_seconds": round(time.process_time() - c0, 2),
                       "index_mib": round(index_bytes / 2**20, 1), "resident_mib_before": round(before, 1),
                       "resident_mib": round(_resident_mib(), 1), "peak_rss_mib": round(_peak_mib(), 1)})
        elif msg[0] == "query":
            _, blob = msg
            c0 = time.process_time()
            answers = index.candidates_many(asset_pb2.AssetList.FromString(blob).assets)
            cpu += time.process_time() - c0
            conn.send([sorted(a) for a in answers])


class Workers:
    def __init__(self, count: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conns, self.procs = [], []
        for _ in range(count):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_serve, args=(child,), daemon=True)
            p.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(p)

    def ask(self, messages: list) -> list:
        """Send each worker its message, then collect every answer (they work at once)."""
        for conn, msg in zip(self.conns, messages):
            conn.send(msg)
        return [conn.recv() for conn in self.conns]

    def stop(self) -> list[dict]:
        out = self.ask([("stop",)] * len(self.conns))
        for p in self.procs:
            p.join(timeout=30)
        return out


def _split(blob: bytes, parts: int) -> list[bytes]:
    """A serialised AssetList cut into ``parts`` consecutive ones."""
    from dedup.v1 import asset_pb2

    assets = asset_pb2.AssetList.FromString(blob).assets
    step = -(-len(assets) // parts)
    return [asset_pb2.AssetList(assets=assets[i * step:(i + 1) * step]).SerializeToString() for i in range(parts)]


def run_layout(kind: str, k: int, stored: Path, queries: Path, reference: list | None) -> tuple[dict, list]:
    """Build the layout, time its answers to every query batch, check them against the
    reference (the single index's), stop it. Returns (figures, answers)."""
    workers = Workers(k)
    try:
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        built = workers.ask([("build", str(stored), 0 if kind != "shards" else k, i) for i in range(k)])
        build_wall = time.perf_counter() - t0
        chunks = list(read_chunks(queries))
        if kind == "replicas":
            chunks = [(first, _split(blob, k)) for first, blob in chunks]
        # Warm up (not timed): the first answer of a fresh process pays for lazy set-up.
        first = chunks[0][1]
        workers.ask([("query", part) for part in first] if kind == "replicas" else [("query", first)] * k)
        answers: list[list[int]] = []
        t0 = time.perf_counter()
        for _, blob in chunks:
            if kind == "replicas":
                got = workers.ask([("query", part) for part in blob])
                for part in got:
                    answers += part
            else:
                got = workers.ask([("query", blob)] * k)
                answers += [sorted(set().union(*parts)) for parts in zip(*got)]
        seconds = time.perf_counter() - t0
        load1 = os.getloadavg()[0]
    finally:
        stopped = workers.stop()
    q = len(answers)
    warm = min(BATCH, q)  # the first batch, asked once more to warm up
    if reference is not None:
        assert answers == reference, f"{kind} {k}: answers differ from the single index's"
    cpu = sum(s["query_cpu_seconds"] for s in stopped)
    per_worker = [{**b, "peak_rss_mib": s["peak_rss_mib"], "query_cpu_seconds": s["query_cpu_seconds"],
                   "search_seconds": s["search_seconds"]} for b, s in zip(built, stopped)]
    figures = {
        "layout": kind, "workers": k, "queries": q, "query_seconds": round(seconds, 2),
        "queries_per_second": round(q / seconds, 1),
        # Includes the warm-up batch: the CPU every worker spent answering, over all queries asked.
        "cpu_seconds_all_workers": round(cpu, 2),
        "cpu_ms_per_query": round(1000 * cpu / (q + warm), 3),
        "build_seconds": round(build_wall, 1),
        "index_mib_per_worker": max(w["index_mib"] for w in per_worker),
        "index_mib_all_workers": round(sum(w["index_mib"] for w in per_worker), 1),
        "resident_mib_per_worker": max(w["resident_mib"] for w in per_worker),
        "resident_mib_all_workers": round(sum(w["resident_mib"] for w in per_worker), 1),
        "peak_rss_mib_per_worker": max(w["peak_rss_mib"] for w in per_worker),
        "candidates": sum(len(a) for a in answers),
        "identical": None if reference is None else True,
        "load_average_before": round(load0, 2), "load_average_after": round(load1, 2),
        "per_worker": per_worker,
    }
    return figures, answers


# -- the log -------------------------------------------------------------------------------

def log_append(entries: int, per_transaction: int, work: Path) -> dict:
    """Append ``entries`` MatchRecorded statements through TransparencyLog on a fresh SQLite
    store, ``per_transaction`` to a transaction (each commit followed by its signed checkpoint)."""
    from dedup.coordinator.log import TransparencyLog
    from dedup.coordinator.store import Store
    from dedup.note import NoteSigner
    from dedup.v1 import statements_pb2

    path = work / f"log-{per_transaction}.sqlite"
    store = Store(str(path))
    tlog = TransparencyLog(store, NoteSigner.generate("bench.dedup.local/log"), "bench.dedup.local/log")
    rng = np.random.default_rng(per_transaction)
    ids = [f"a-{v:024x}" for v in rng.integers(0, 2**62, 2 * entries).tolist()]
    t0, c0 = time.perf_counter(), time.process_time()
    for lo in range(0, entries, per_transaction):
        with tlog.transaction() as txn:
            for i in range(lo, min(entries, lo + per_transaction)):
                txn.append_statement(statements_pb2.MatchRecorded(
                    match_id=f"m{i}", cluster_id=f"c{i // 3}",
                    a=statements_pb2.AssetRef(member_id="city-museum", asset_id=ids[2 * i]),
                    b=statements_pb2.AssetRef(member_id="film-archive", asset_id=ids[2 * i + 1]),
                    relation=statements_pb2.RELATION_REENCODED, algorithm="dct256", distance=i % 33,
                    recorded_unix=1_700_000_000 + i))
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - c0
    assert tlog.size == entries
    store.close()
    return {"entries": entries, "entries_per_transaction": per_transaction, "seconds": round(seconds, 2),
            "cpu_seconds": round(cpu, 2), "entries_per_second": round(entries / seconds),
            "database_mib": round(path.stat().st_size / 2**20, 1)}


# -- the report ----------------------------------------------------------------------------

def render(r: dict) -> str:
    m = r["machine"]
    lines = [f"Run {r['date']} on {code_label(r['code'])} with `{r['command']}` ({r['duration_seconds']:.0f} s), "
             f"on {m['cpu']}, {m['cores']} cores, {m['memory']}.", "",
             f"**The candidate index split across worker processes** ({r['queries']:,} new assets searched in "
             f"batches of {BATCH:,}, a third of them copies of stored pictures; every layout's answers equal to "
             f"the single index's: {'yes' if all(x['identical'] in (None, True) for s in r['sizes'] for x in s['layouts']) else 'NO'}):", "",
             "| stored assets | layout | workers | queries/s | CPU ms per query, all workers | index MiB per worker | "
             "resident MiB per worker (all workers) | peak RSS MiB per worker | build s | load average before / after |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for s in r["sizes"]:
        for x in s["layouts"]:
            lines.append(f"| {s['stored']:,} | {x['layout']} | {x['workers']} | {x['queries_per_second']:,.0f} | "
                         f"{x['cpu_ms_per_query']:.2f} | {x['index_mib_per_worker']:.0f} | "
                         f"{x['resident_mib_per_worker']:.0f} ({x['resident_mib_all_workers']:.0f}) | "
                         f"{x['peak_rss_mib_per_worker']:.0f} | {x['build_seconds']:.1f} | "
                         f"{x['load_average_before']:.1f} / {x['load_average_after']:.1f} |")
    lines += ["", f"A worker holds {r['sizes'][0]['layouts'][0]['per_worker'][0]['resident_mib_before']:.0f} MiB "
                  "before its index (the interpreter, numpy, the project's modules and the compiled search kernels); "
                  "resident MiB are measured once the build's freed heap is handed back (malloc_trim). "
                  f"This machine has {m['cores']} cores: beyond 2 workers, queries per second cannot grow here; "
                  "the CPU per query and the memory per worker are what more machines would see.", "",
              "**The log's append rate** (`TransparencyLog` on a SQLite store, `MatchRecorded` entries, a signed "
              "checkpoint after each commit):", "",
              "| entries | per transaction | seconds | entries/s | CPU s |", "|---|---|---|---|---|"]
    for a in r["log_append"]:
        lines.append(f"| {a['entries']:,} | {a['entries_per_transaction']:,} | {a['seconds']:.1f} | "
                     f"{a['entries_per_second']:,} | {a['cpu_seconds']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.partition", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,200000", help="comma-separated stored assets N (default %(default)s)")
    ap.add_argument("--queries", type=int, default=10_000, help="new assets searched (default %(default)s)")
    ap.add_argument("--shards", default="2,4", help="comma-separated shard counts K (default %(default)s)")
    ap.add_argument("--replicas", default="2", help="comma-separated replica counts R (default %(default)s)")
    ap.add_argument("--log-entries", type=int, default=50_000, help="log entries appended per transaction size "
                    "(default %(default)s)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-readme", action="store_true", help="do not rewrite bench/README.md")
    ap.add_argument("--out", type=Path, help="write the results here instead of bench/results/partition.json "
                    "(and leave bench/README.md alone)")
    args = ap.parse_args(argv)
    started = time.monotonic()
    # Which code is measured is read before anything runs (workers import it as they start) and
    # checked again at the end: files edited during the run would make the figures a mixture.
    code = code_state(entries=("bench.partition",))
    work = Path(tempfile.mkdtemp(prefix="dedup-partition-"))
    sizes = []
    try:
        for n in [int(s) for s in args.sizes.split(",")]:
            stored, queries = work / f"stored-{n}.bin", work / f"queries-{n}.bin"
            t0 = time.perf_counter()
            groups = write_stored(stored, n, args.seed)
            write_queries(queries, args.queries, groups, args.seed)
            log(f"N={n:,}: {groups:,} pictures and {args.queries:,} queries generated in {time.perf_counter() - t0:.0f} s")
            layouts = []
            single, reference = run_layout("single", 1, stored, queries, None)
            log(f"N={n:,} single: {single['queries_per_second']:,.0f} queries/s, {single['cpu_ms_per_query']} ms CPU "
                f"per query, index {single['index_mib_per_worker']} MiB, resident {single['resident_mib_per_worker']} MiB")
            layouts.append(single)
            for kind, counts in (("shards", args.shards), ("replicas", args.replicas)):
                for k in [int(c) for c in counts.split(",") if c]:
                    fig, _ = run_layout(kind, k, stored, queries, reference)
                    log(f"N={n:,} {kind} {k}: {fig['queries_per_second']:,.0f} queries/s, {fig['cpu_ms_per_query']} ms "
                        f"CPU per query, index {fig['index_mib_per_worker']} MiB per worker, resident "
                        f"{fig['resident_mib_per_worker']} MiB per worker; identical answers")
                    layouts.append(fig)
            del reference
            sizes.append({"stored": n, "pictures": groups, "layouts": layouts})
            stored.unlink()
            queries.unlink()
        appends = []
        for per in (100, 1000):
            a = log_append(args.log_entries, per, work)
            log(f"log: {a}")
            appends.append(a)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    changed = sorted(f for f, d in code_state(entries=("bench.partition",))["sources"].items()
                     if code["sources"].get(f) != d)
    if changed:
        log(f"project files changed during the run: {', '.join(changed)}; the figures are not kept")
        return 1
    report = {"benchmark": "bench.partition", "date": now_iso(), "command": " ".join([COMMAND] + (argv if argv is not None else sys.argv[1:])),
              "code": code, "machine": machine(),
              "versions": versions("numpy", "protobuf"), "queries": args.queries,
              "records": "generated by bench/partition.py (see its docstring): 70% of pictures held once, the rest "
                         f"2-3 times; {POINTS} keypoints each", "sizes": sizes, "log_append": appends,
              "duration_seconds": round(time.monotonic() - started, 1)}
    if args.out:
        from bench.common import write_json

        write_json(args.out, report)
        print(render(report))
    else:
        publish("partition", report, render(report), not args.no_readme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
