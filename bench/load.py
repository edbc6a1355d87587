"""`python -m bench.load`: N member nodes pushing at once, for a bounded time, to one coordinator.

For each level (2, 8 and 32 nodes by default) a fresh consortium is set up as ``bench.intake``
sets one up (the demo's ``create``: a CA, a TLS certificate and an Ed25519 key per member), a
real ``dedup coordinator serve`` process is started (mutual TLS on 127.0.0.1, SQLite), and
each node is a process of its own with its own mutual-TLS channel. Once every node is
connected, all of them send signed batches back to back for ``--seconds``: each batch is
made when it is sent (``bench.intake.AssetMaker``'s assets, a manifest signed with the node's
key, a new batch id and the next sequence), as a node pushing a growing catalogue does. The
parent samples the coordinator's resident memory every half second.

Reported per level: batches and assets acknowledged per second, the latency of each
SubmitBatch (p50, p99, max), errors by status, the coordinator's RSS over the run (and its
growth over the second half, against the assets stored meanwhile), and a check that the store
holds exactly the assets acknowledged. Results go to bench/results/load.json and the
"load" section of bench/README.md.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse
import hashlib
import multiprocessing as mp
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from bench.common import code_label, code_state, log, machine, now_iso, publish, versions
from bench.intake import (SEED, AssetMaker, CoordinatorProcess, _collect, _stop_all, _pct, _stored, base_records,
                          fresh_consortium)

COMMAND = ".venv/bin/python -m bench.load"
LEVELS = (2, 8, 32)
SECONDS = 30.0
#: Then this long resending batches already stored: the full request path, with no new data.
STEADY = 15.0
#: The coordinator keeps up to this many parsed asset records in an LRU cache (coordinator/matcher.py);
#: until it is full, resident memory grows with every asset stored by design.
CACHE = 20_000
BATCH = 50


def _node_main(n, config, templates, members, seconds, steady, batch_size, seed, go, results) -> None:
    try:
        results.put(("done", n, _node(n, Path(config), templates, members, seconds, steady, batch_size, seed, go,
                                      results)))
    except BaseException as exc:  # report anything, so the parent never waits blindly
        import traceback

        results.put(("failed", n, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


def _node(n, config, templates, members, seconds, steady, batch_size, seed, go, results) -> dict:
    import grpc

    from dedup.config import load
    from dedup.node.client import channel
    from dedup.node.push import load_signer
    from dedup.node.settings import NodeSettings
    from dedup.signing import sign_statement
    from dedup.v1 import asset_pb2, intake_pb2, intake_pb2_grpc

    settings = load(config, NodeSettings)
    signer = load_signer(settings)
    maker = AssetMaker(templates, members, seed, copy_share=0.05)
    ch = channel(settings)
    grpc.channel_ready_future(ch).result(timeout=120)
    stub = intake_pb2_grpc.IntakeServiceStub(ch)
    results.put(("ready", n, None))
    go.wait()
    acks, errors, sent = [], {}, []
    i, seq = 0, 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assets = [maker.asset(n, i + k, 1 << 30) for k in range(batch_size)]
        i += batch_size
        seq += 1
        payload = asset_pb2.AssetList(assets=assets).SerializeToString(deterministic=True)
        manifest = asset_pb2.BatchManifest(member_id=settings.member_id, batch_id=uuid.uuid4().hex, sequence=seq,
                                           asset_count=len(assets), assets_sha256=hashlib.sha256(payload).digest(),
                                           created_unix=int(time.time()))
        req = intake_pb2.SubmitBatchRequest(manifest=sign_statement(signer, manifest, origin=settings.origin()),
                                            assets=payload)
        t0 = time.monotonic()
        try:
            resp = stub.SubmitBatch(req, timeout=settings.coordinator.timeout_seconds)
        except grpc.RpcError as err:
            errors[err.code().name] = errors.get(err.code().name, 0) + 1
            continue
        t1 = time.monotonic()
        acks.append((t1, t1 - t0, resp.accepted))
        sent = (sent + [req])[-20:]
    # Steady state: the same requests again, each acknowledged as already stored.
    resends, end = 0, time.monotonic() + steady
    while sent and time.monotonic() < end:
        try:
            resp = stub.SubmitBatch(sent[resends % len(sent)], timeout=settings.coordinator.timeout_seconds)
            resends += 1 if resp.already_stored else 0
        except grpc.RpcError as err:
            errors[err.code().name] = errors.get(err.code().name, 0) + 1
    ch.close()
    return {"member": settings.member_id, "acks": acks, "errors": errors, "resends": resends}


def _sample(coord: CoordinatorProcess, stop: threading.Event, out: list, t0: float) -> None:
    while not stop.wait(0.5):
        try:
            out.append((round(time.monotonic() - t0, 1), round(coord.status()["VmRSS"] / 1024, 1)))
        except (OSError, KeyError):
            return


def run_level(nodes: int, seconds: float, steady: float, batch_size: int, templates: list[bytes], folder: Path,
              seed: int) -> dict:
    from dedup.demo.setup import point_nodes_at

    # The per-member intake limit would refuse the steady phase's resends (it counts every
    # request, stored or not): lifted, so the coordinator itself is measured.
    members, layout, database = fresh_consortium(folder, nodes, "intake_rate = 1000000.0\nintake_burst = 1000000\n")
    coord = CoordinatorProcess(layout.coordinator_config, layout.coordinator_config.parent)
    procs = []
    rss: list[tuple[float, float]] = []
    try:
        point_nodes_at(layout, coord.port)
        ctx = mp.get_context("spawn")
        go, results = ctx.Event(), ctx.Queue()
        ids = list(members)
        for n, m in enumerate(ids):
            p = ctx.Process(target=_node_main, name=f"node-{m}",
                            args=(n, str(layout.node_configs[m]), templates, ids, seconds, steady, batch_size, seed,
                                  go, results))
            p.start()
            procs.append(p)
        _collect(results, procs, "ready", 600)
        log(f"{nodes} nodes connected; pushing for {seconds:.0f} s")
        idle = coord.status()["VmRSS"] / 1024
        stop = threading.Event()
        t0 = time.monotonic()
        sampler = threading.Thread(target=_sample, args=(coord, stop, rss, t0), daemon=True)
        sampler.start()
        go.set()
        done = _collect(results, procs, "done", seconds + steady + 600)
        stop.set()
        sampler.join()
        peak = coord.status()["VmHWM"] / 1024
    finally:
        code = _stop_all(coord, procs)
    if code != 0:
        raise RuntimeError(f"the coordinator did not stop cleanly (exit {code}); see {coord.log_path}")
    acks = [a for d in done.values() for a in d["acks"]]
    lat = [a[1] for a in acks]
    errors: dict[str, int] = {}
    for d in done.values():
        for k, v in d["errors"].items():
            errors[k] = errors.get(k, 0) + v
    first = t0
    last = max((a[0] for a in acks), default=t0 + seconds)
    # The steady phase: from a second after the last new batch to the end of the sampling.
    quiet = [r for t, r in rss if t >= last - first + 1]
    resends = sum(d["resends"] for d in done.values())
    wall = last - first
    accepted = sum(a[2] for a in acks)
    stored = _stored(database)
    # Memory once the record cache is full: what is left to grow is the index (tens of bytes per
    # asset); growth per request or per connection would show here as a leak.
    running, full_at = 0, None
    for t, _, k in sorted(acks):
        running += k
        if running >= CACHE:
            full_at = t - first
            break
    after = [(t, r) for t, r in rss if full_at is not None and t >= full_at + 1]
    stored_after = sum(a[2] for a in acks if full_at is not None and a[0] - first >= full_at + 1)
    growth = after[-1][1] - after[0][1] if len(after) >= 2 else None
    report = {
        "nodes": nodes,
        "seconds": round(wall, 1),
        "batch_size": batch_size,
        "batches": len(acks),
        "assets_acknowledged": accepted,
        "batches_per_second": round(len(acks) / wall, 1),
        "assets_per_second": round(accepted / wall, 1),
        "latency_seconds": {"p50": round(_pct(lat, 0.5), 4), "p99": round(_pct(lat, 0.99), 4),
                            "max": round(max(lat, default=0), 4)},
        "errors": errors,
        "stored_assets": stored["assets"],
        "stored_ok": stored["assets"] == accepted,
        "coordinator_rss_mib": {"idle": round(idle, 1), "start": rss[0][1] if rss else None,
                                "end": rss[-1][1] if rss else None, "peak": round(peak, 1)},
        "record_cache_full_at_seconds": round(full_at, 1) if full_at is not None else None,
        "rss_growth_after_cache_full_mib": round(growth, 1) if growth is not None else None,
        "assets_stored_after_cache_full": stored_after,
        "rss_growth_per_1000_assets_after_cache_full_mib": round(1000 * growth / stored_after, 2)
        if growth is not None and stored_after else None,
        "steady_resends": resends,
        "steady_resends_per_second": round(resends / steady, 1) if steady else None,
        "rss_steady_mib": {"start": quiet[0], "end": quiet[-1], "min": min(quiet), "max": max(quiet)} if quiet else None,
        "rss_samples": rss,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    log(f"{nodes} nodes: {report['batches_per_second']} batches/s, {report['assets_per_second']} assets/s, "
        f"p50 {report['latency_seconds']['p50']} s, p99 {report['latency_seconds']['p99']} s, errors {errors}, "
        f"RSS {report['coordinator_rss_mib']}, stored_ok {report['stored_ok']}")
    return report


def render(report: dict) -> str:
    rows = ["## Load: many nodes pushing at once (`make bench-load`)", "",
            f"{report['setup']}", "",
            "| nodes | seconds | batches/s | assets/s | p50 latency | p99 latency | errors | coordinator RSS start → end (peak) | steady state: resends/s, RSS start → end | stored = acknowledged |",
            "|---:|---:|---:|---:|---:|---:|---|---|---|---|"]
    for lv in report["levels"]:
        r = lv["coordinator_rss_mib"]
        errs = ", ".join(f"{k} {v}" for k, v in lv["errors"].items()) or "0"
        rows.append(f"| {lv['nodes']} | {lv['seconds']} | {lv['batches_per_second']} | {lv['assets_per_second']} | "
                    f"{lv['latency_seconds']['p50'] * 1000:.0f} ms | {lv['latency_seconds']['p99'] * 1000:.0f} ms | "
                    f"{errs} | {r['start']} → {r['end']} MiB ({r['peak']}) | "
                    f"{_steady(lv)} | "
                    f"{'yes' if lv['stored_ok'] else 'NO'} |")
    rows += ["", f"Measured {report['date']} on {report['machine']['cores']} cores ({report['machine']['cpu']}); "
             f"code {code_label(report['code'])}; `{report['command']}`. The nodes and the coordinator share the "
             "machine's cores, so the figures are a floor for a coordinator with a machine to itself. Resident "
             "memory grows while new assets are stored: the index, and a cache of parsed records bounded at "
             f"{CACHE:,} (coordinator/matcher.py). In the steady phase, thousands of requests with no new data, "
             "it stays flat: requests and connections leave nothing behind. Latency grows with the number of "
             "nodes because intake is serialised (one writer): the throughput is shared, not lost. The RSS "
             "samples (every 0.5 s) are in `bench/results/load.json`."]
    return "\n".join(rows)


def _steady(lv: dict) -> str:
    q = lv["rss_steady_mib"]
    if not q:
        return "—"
    return f"{lv['steady_resends_per_second']}/s, {q['start']} → {q['end']} MiB (range {q['min']}–{q['max']})"


def _growth(lv: dict) -> str:
    if lv["rss_growth_after_cache_full_mib"] is None:
        return "cache not filled in the run"
    return (f"{lv['rss_growth_after_cache_full_mib']} MiB over {lv['assets_stored_after_cache_full']:,} assets "
            f"({lv['rss_growth_per_1000_assets_after_cache_full_mib']} MiB per 1000)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, nargs="+", default=list(LEVELS), metavar="N")
    ap.add_argument("--seconds", type=float, default=SECONDS, help=f"push time per level (default {SECONDS:.0f})")
    ap.add_argument("--steady", type=float, default=STEADY, help="then resend stored batches this long, to "
                    f"watch memory with no new data (default {STEADY:.0f})")
    ap.add_argument("--batch-size", type=int, default=BATCH, help=f"assets per batch (default {BATCH})")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--no-readme", action="store_true", help="do not rewrite bench/README.md's section")
    args = ap.parse_args(argv)
    started = time.monotonic()
    own = args.workdir is None
    root = Path(tempfile.mkdtemp(prefix="dedup-load-")) if own else args.workdir
    try:
        templates = base_records(root / "base-images", args.seed)
        levels = [run_level(n, args.seconds, args.steady, args.batch_size, templates, root / f"nodes-{n}", args.seed)
                  for n in args.nodes]
    finally:
        if own:
            shutil.rmtree(root, ignore_errors=True)
    report = {
        "benchmark": "load", "date": now_iso(), "command": COMMAND,
        "duration_seconds": round(time.monotonic() - started, 1), "machine": machine(),
        "versions": versions("grpcio", "protobuf", "numpy"),
        "code": code_state(entries=("bench.load", "dedup.cli.main")),
        "setup": (f"One `dedup coordinator serve` process (SQLite, mutual TLS on 127.0.0.1) and N node processes, "
                  f"each sending signed batches of {args.batch_size} assets back to back for {args.seconds:.0f} s "
                  "(each batch made and signed when sent, as a node pushing a growing catalogue does), then "
                  f"resending its last 20 batches for {args.steady:.0f} s (each acknowledged as already stored: "
                  "the whole request path, TLS to store, with no new data). The per-member intake limit is lifted "
                  "for the run."),
        "levels": levels,
    }
    publish("load", report, render(report), not args.no_readme)
    bad = [lv["nodes"] for lv in levels if lv["errors"] or not lv["stored_ok"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
