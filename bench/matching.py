"""Coordinator matching benchmark: cross-member matching of N fingerprints, the project's
``HammingIndex`` against FAISS's exact binary indexes.

Workloads: (a) ``dct256`` rows searched at radius ``DEFAULT_RULE.whole`` (32 of 256 bits);
(b) ``dct64`` rows at radius ``DEFAULT_RULE.low`` (6 of 64); (c) ``kp64`` keypoint hashes at
radius ``DEFAULT_RULE.points_index`` (8 of 64), what the candidate index searches for crops.
Rows come from ``bench.fingerprints.realistic`` (real corpus hashes, perturbed copies of
them, random fill; generated once and cached in ``bench/.cache/fingerprints``).

Protocol, the same for every method: the N rows arrive in batches (``--batch``, default
1,000, as members push); each batch is first searched against every row already indexed,
then added. So every pair (i, j), j < i, within the radius is found exactly once, when row
i's batch arrives. Pairs inside one batch are not searched (the coordinator matches a
batch against the index, and the batch's own pairs when it is the next query; here they
are left out for every method alike). Time is the whole loop, search and add.

Methods (each (workload, N, method) runs in a fresh process, so its peak RSS is its own):

* ``project`` — ``dedup.index.HammingIndex(nbytes, radius=r)``: ``search_batch`` then
  ``add_many``. Single-threaded numpy.
* ``faiss_multihash`` — ``faiss.IndexBinaryMultiHash(bits, nhash, b)`` with ``nflip`` set
  so it is exact (a pair within r differs by at most r bits, so in at least one of the
  ``nhash`` b-bit substrings by at most ``nflip`` bits when r < nhash * (nflip + 1)),
  ``range_search`` then ``add``; one OpenMP thread, and again with all cores
  (``faiss_multihash_mt``).
* ``faiss_flat`` — ``faiss.IndexBinaryFlat(bits)``, brute force: the reference.

FAISS's binary ``range_search`` keeps distances *strictly below* its radius, so it is given
r + 1. Every method runs under a time limit (``--limit``): a run that reaches it stops after
the current batch and reports how many rows it processed; since the protocol is
incremental, the pairs among the first M rows are the same whatever N is, so such a run is
still compared with the others on that prefix (``compared_rows`` says on how many rows).

Output: JSON on stdout (per workload, N and method: seconds, rows/s, pairs, peak RSS,
index size, identical-to-reference), progress and a summary table on stderr.
"""

from __future__ import annotations

import os

# Before numpy is imported anywhere: one thread, so the comparison is per core.
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import ROOT, code_state, log, machine, now_iso, sources_digest, versions

DEFAULT_SIZES = (10**4, 10**5)
FULL_SIZES = (10**4, 10**5, 10**6)
BATCH = 1000
SEED = 20240611
LIMIT_SECONDS = 600.0
#: (nhash, b, nflip) of IndexBinaryMultiHash per workload; each is exact at the radius
#: (r < nhash * (nflip + 1)) and was the fastest of the exact settings tried at N = 10^5.
MULTIHASH = {"dct256": (11, 23, 2), "dct64": (4, 16, 1), "kp64": (4, 16, 2)}
COMMAND = ".venv/bin/python -m bench.matching"
TAIL = 4096  # rows of the warm-up index (beyond the project's tail, so a segment is probed)


def workloads() -> dict[str, dict]:
    from dedup.matching import DEFAULT_RULE

    return {
        "dct256": {"kind": "dct256", "bits": 256, "radius": DEFAULT_RULE.whole,
                   "what": "dct256 upright-style 256-bit rows at DEFAULT_RULE.whole"},
        "dct64": {"kind": "dct64", "bits": 64, "radius": DEFAULT_RULE.low,
                  "what": "dct64 64-bit rows at DEFAULT_RULE.low"},
        "kp64": {"kind": "kp64", "bits": 64, "radius": DEFAULT_RULE.points_index,
                 "what": "kp64 keypoint hashes (64-bit) at DEFAULT_RULE.points_index"},
    }


# -- one measurement, in its own process ---------------------------------------------------


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def measure_one(spec: dict) -> dict:
    """Run one method over the rows of ``spec["rows"]``; write the pairs (int64 keys
    i * n + j, i the later row) to ``spec["pairs"]``; return the figures."""
    rows = np.load(spec["rows"])
    n, nbytes = rows.shape
    bits = nbytes * 8
    r = spec["radius"]
    batch = spec["batch"]
    method = spec["method"]
    limit = spec["limit"]
    index_code = None
    if method == "project":
        from dedup import index as index_module
        from dedup.index import HammingIndex

        # The index's sources as this process loaded them (they change during development).
        srcs = sorted(Path(index_module.__file__).parent.glob("index*.py"))
        index_code = sources_digest(*srcs)

        # Warm-up outside the timing: loads (or compiles) the index's compiled kernels.
        warm = HammingIndex(nbytes, radius=r)
        warm.add_many(np.random.default_rng(0).integers(0, 256, (3 * TAIL, nbytes), dtype=np.uint8))
        warm.search_batch(rows[:batch], r)
        del warm
        index = HammingIndex(nbytes, radius=r)

        def search(q):
            qi, rr, _ = index.search_batch(q, r)
            return qi, rr

        add = index.add_many
        size = index.memory_bytes
        params = {"radius": r}
    else:
        import faiss

        faiss.omp_set_num_threads(spec["threads"])
        if method == "faiss_flat":
            index = faiss.IndexBinaryFlat(bits)
            params = {}
        else:
            nhash, b, nflip = spec["multihash"]
            index = faiss.IndexBinaryMultiHash(bits, nhash, b)
            index.nflip = nflip
            params = {"nhash": nhash, "b": b, "nflip": nflip}
        params["threads"] = spec["threads"]

        def search(q):
            lims, _, ii = index.range_search(q, r + 1)  # strict: keeps distances < r + 1
            return np.repeat(np.arange(q.shape[0], dtype=np.int64), np.diff(lims).astype(np.int64)), ii.astype(np.int64)

        add = index.add
        size = (lambda: index.ntotal * nbytes) if method == "faiss_flat" else (lambda: None)
    base_rss = _status_kib("VmRSS")
    done = 0
    found = 0
    seconds = cpu = 0.0
    with open(spec["pairs"], "wb") as out:
        for lo in range(0, n, batch):
            q = rows[lo:lo + batch]
            t0, c0 = time.perf_counter(), time.process_time()
            if done:
                qi, rr = search(q)
            else:
                qi, rr = np.zeros(0, np.int64), np.zeros(0, np.int64)
            add(q)
            seconds += time.perf_counter() - t0
            cpu += time.process_time() - c0
            keys = (qi + lo) * n + rr
            out.write(keys.astype(np.int64).tobytes())
            found += keys.size
            done = lo + q.shape[0]
            if seconds > limit and done < n:
                break
    idx_bytes = size()
    return {"method": method, "params": params, "rows": n, "rows_done": done, "complete": done == n,
            "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3), "rows_per_second": round(done / seconds, 1) if seconds else None,
            "pairs": int(found), "peak_rss_mib": round(_status_kib("VmHWM") / 1024, 1),
            "rss_before_index_mib": round(base_rss / 1024, 1),
            "index_mib": None if idx_bytes is None else round(idx_bytes / 2**20, 2),
            **({"index_code": index_code} if index_code else {})}


# -- the driver ----------------------------------------------------------------------------


def _spawn(spec: dict) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "bench.matching", "--one", json.dumps(spec)],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{spec['method']} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _load_pairs(path: Path, n: int, prefix: int) -> np.ndarray:
    """The sorted pair keys with both rows below ``prefix``."""
    keys = np.fromfile(path, dtype=np.int64)
    if prefix < n:
        keys = keys[keys // n < prefix]  # j < i, so i < prefix suffices
    return np.sort(keys)


def _compare(got: np.ndarray, ref: np.ndarray) -> dict:
    gu, ru = np.unique(got), np.unique(ref)
    dup = int(got.size - gu.size)
    missing = int(np.setdiff1d(ru, gu, assume_unique=True).size)
    extra = int(np.setdiff1d(gu, ru, assume_unique=True).size)
    return {"identical": missing == 0 and extra == 0 and dup == 0, "missing": missing, "extra": extra,
            "duplicates": dup}


METHODS = ("project", "faiss_multihash", "faiss_flat")


def _methods(threads: list[int], methods=METHODS) -> list[tuple[str, str, int]]:
    """(label, method, faiss threads) in run order."""
    out = [("project", "project", 1)] if "project" in methods else []
    if "faiss_multihash" in methods:
        for t in threads:
            out.append(("faiss_multihash" if t == 1 else f"faiss_multihash_{t}threads", "faiss_multihash", t))
    if "faiss_flat" in methods:
        out.append(("faiss_flat", "faiss_flat", 1))
    return out


def run(sizes=DEFAULT_SIZES, *, batch: int = BATCH, seed: int = SEED, limit: float = LIMIT_SECONDS,
        kinds=("dct256", "dct64"), faiss_threads=(1, os.cpu_count() or 1), multihash=None,
        methods=METHODS) -> dict:
    """Measure every (workload, N, method); see the module docstring."""
    from bench import fingerprints

    multihash = dict(MULTIHASH, **(multihash or {}))
    threads = sorted(set(int(t) for t in faiss_threads))
    t_start = time.monotonic()
    report: dict = {
        "benchmark": "coordinator matching (cross-member, incremental)",
        "date": now_iso(), "command": COMMAND, "code": code_state(entries=("bench.matching",)),
        "machine": machine(),
        "versions": versions("numpy", "faiss-cpu"),
        "protocol": {"batch": batch, "seed": seed, "limit_seconds_per_run": limit,
                     "rows": "bench.fingerprints.realistic: 10% real corpus hashes, 40% perturbed copies "
                             "(a quarter near: 0-40 / 0-8 bits flipped; the rest 41-128 / 9-32), 50% random",
                     "pairs": "each (i, j), j < i, within the radius, found when row i's batch is searched "
                              "before it is added; pairs inside one batch are not searched",
                     "faiss_radius": "range_search(q, r + 1): FAISS binary range search keeps d < radius"},
        "workloads": {},
    }
    for kind in kinds:
        wl = workloads()[kind]
        r = wl["radius"]
        res_kind = {"what": wl["what"], "radius": r, "bits": wl["bits"], "sizes": {}}
        report["workloads"][kind] = res_kind
        for n in sizes:
            log(f"{kind} r={r} N={n}: rows")
            rows_path = fingerprints.cached(n, wl["kind"], seed)
            entry: dict = {"methods": {}, "notes": []}
            res_kind["sizes"][str(n)] = entry
            with tempfile.TemporaryDirectory(prefix="bench-matching-") as tmp:
                pair_files = {}
                for label, method, t in _methods(threads, methods):
                    spec = {"method": method, "rows": str(rows_path), "radius": r, "batch": batch,
                            "limit": limit, "threads": t, "multihash": multihash[kind],
                            "pairs": str(Path(tmp) / f"{label}.bin")}
                    log(f"{kind} r={r} N={n}: {label} ...")
                    load = os.getloadavg()[0]
                    res = _spawn(spec)
                    res["load_before"], res["load_after"] = round(load, 2), round(os.getloadavg()[0], 2)
                    pair_files[label] = (Path(spec["pairs"]), res["rows_done"])
                    entry["methods"][label] = res
                    log(f"{kind} r={r} N={n}: {label} {res['seconds']:.2f}s over {res['rows_done']} rows, "
                        f"{res['pairs']} pairs, peak RSS {res['peak_rss_mib']} MiB")
                    if not res["complete"]:
                        entry["notes"].append(f"{label} reached the {limit:.0f} s limit after {res['rows_done']} of "
                                              f"{n} rows; it is compared on those rows only")
                # Reference: the flat index; where it did not finish, the flat on its prefix and
                # the complete multihash run on all rows.
                refs = {}
                flat_rows = pair_files["faiss_flat"][1] if "faiss_flat" in pair_files else 0
                if flat_rows:
                    refs["faiss_flat"] = flat_rows
                full_mh = [lb for lb in pair_files if lb.startswith("faiss_multihash") and pair_files[lb][1] == n]
                if flat_rows < n and full_mh:
                    refs[full_mh[0]] = n
                for label, (path, done) in pair_files.items():
                    checks = {}
                    for ref, ref_rows in refs.items():
                        if ref == label:
                            continue
                        m = min(done, ref_rows)
                        c = _compare(_load_pairs(path, n, m), _load_pairs(pair_files[ref][0], n, m))
                        checks[f"vs_{ref}"] = dict(c, compared_rows=m)
                    entry["methods"][label]["checks"] = checks
                    entry["methods"][label]["identical"] = all(c["identical"] for c in checks.values()) if checks else None
        # Growth: time ratio between consecutive N per method (complete runs only).
        growth = {}
        done_sizes = [str(n) for n in sizes]
        for label in res_kind["sizes"][done_sizes[0]]["methods"]:
            g = {}
            for a, b in zip(done_sizes, done_sizes[1:]):
                ra, rb = res_kind["sizes"][a]["methods"][label], res_kind["sizes"][b]["methods"][label]
                if ra["complete"] and rb["complete"] and ra["seconds"]:
                    g[f"{a}->{b}"] = round(rb["seconds"] / ra["seconds"], 2)
            growth[label] = g
        res_kind["time_growth"] = growth
    digests = {m["index_code"] for wl in report["workloads"].values() for e in wl["sizes"].values()
               for m in e["methods"].values() if "index_code" in m}
    report["index_code_consistent"] = len(digests) <= 1
    if len(digests) > 1:
        log(f"WARNING: dedup/index*.py changed during the run ({len(digests)} versions measured)")
    report["duration_seconds"] = round(time.monotonic() - t_start, 1)
    return report


def table(report: dict) -> str:
    lines = ["| workload | N | method | s | rows/s | pairs | peak RSS MiB | index MiB | identical |",
             "|---|---|---|---|---|---|---|---|---|"]
    for kind, wl in report["workloads"].items():
        for n, entry in wl["sizes"].items():
            for label, m in entry["methods"].items():
                rows = "" if m["complete"] else f" ({m['rows_done']} rows)"
                ident = {True: "yes", False: "NO", None: "ref"}[m["identical"]]
                lines.append(f"| {kind} r={wl['radius']} | {int(n):,} | {label}{rows} | {m['seconds']:.2f} | "
                             f"{m['rows_per_second']:,.0f} | {m['pairs']:,} | {m['peak_rss_mib']:.0f} | "
                             f"{'—' if m['index_mib'] is None else m['index_mib']} | {ident} |")
    return "\n".join(lines)


def _ints(text: str) -> list[int]:
    return [int(float(x)) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.matching", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=_ints, default=list(DEFAULT_SIZES),
                    help="comma-separated N (default %(default)s; 1e6 is accepted)")
    ap.add_argument("--full", action="store_true", help=f"sizes {','.join(map(str, FULL_SIZES))} (about 25 min on 2 cores)")
    ap.add_argument("--workloads", default="dct256,dct64,kp64", help="comma-separated: dct256, dct64, kp64 (default %(default)s)")
    ap.add_argument("--batch", type=int, default=BATCH, help="rows per pushed batch (default %(default)s)")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--limit", type=float, default=LIMIT_SECONDS,
                    help="seconds one method may run before it stops after the current batch (default %(default)s)")
    ap.add_argument("--faiss-threads", type=_ints, default=[1, os.cpu_count() or 1],
                    help="OpenMP threads for the FAISS multihash runs (default %(default)s)")
    ap.add_argument("--multihash", action="append", default=[], metavar="KIND:NHASH,B,NFLIP",
                    help="IndexBinaryMultiHash setting for a workload, e.g. dct256:16,16,2")
    ap.add_argument("--methods", default=",".join(METHODS),
                    help="comma-separated subset of %(default)s")
    ap.add_argument("--out", type=Path, help="also write the JSON report to this file")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(measure_one(json.loads(args.one))))
        return 0
    mh = {}
    for item in args.multihash:
        kind, _, vals = item.partition(":")
        nhash, b, nflip = _ints(vals)
        bits = workloads()[kind]["bits"]
        if not (workloads()[kind]["radius"] < nhash * (nflip + 1) and nhash * b <= bits):
            ap.error(f"--multihash {item} is not exact at radius {workloads()[kind]['radius']}")
        mh[kind] = (nhash, b, nflip)
    sizes = list(FULL_SIZES) if args.full else args.sizes
    report = run(sizes, batch=args.batch, seed=args.seed, limit=args.limit,
                 kinds=[k.strip() for k in args.workloads.split(",") if k.strip()],
                 faiss_threads=args.faiss_threads, multihash=mh,
                 methods=[m.strip() for m in args.methods.split(",") if m.strip()])
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    log("summary:\n" + table(report))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
