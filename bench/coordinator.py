"""`make bench-coordinator`: the coordinator at consortium scale, in one run.

Three parts, each its own module (run alone with ``python -m bench.<part> --help``):

* ``bench.intake`` — intake throughput over real gRPC with mutual TLS on loopback, from 2 and
  8 concurrent node processes into a coordinator process;
* ``bench.matching`` — cross-member matching of N fingerprints (10^4, 10^5, 10^6) with the
  project's Hamming index against FAISS's IndexBinaryFlat and IndexBinaryMultiHash, on the
  same rows and radius, results compared pair for pair;
* ``bench.scale`` — the coordinator's core taking in and matching N assets (each with its
  whole fingerprint set) from four members, then restarting: time, peak memory, restart;
* ``bench.popular`` — 10,000 copies of one picture arriving in batches of 1,000 from three
  members on top of 10^5 other assets, while a fourth member sends one-asset batches: each
  batch's time, the other member's wait, peak memory, and the outcome against one by one.

Writes bench/results/coordinator.json and the coordinator tables in bench/README.md.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse
import json
import sys
import time

from bench.common import RESULTS, code_label, code_state, log, machine, now_iso, publish, versions

COMMAND = ".venv/bin/python -m bench.coordinator"
ALL = {"intake", "matching", "scale", "popular"}


def _ints(text: str) -> list[int]:
    return [int(float(x)) for x in text.split(",") if x.strip()]


def _million_targets(s: dict) -> str:
    def verdict(ok: bool) -> str:
        return "met" if ok else "**not met**"

    check = s.get("sample_check", {})
    limit = 3e9 / 2**20  # 3 GB in MiB
    return "; ".join([
        f"taken in and matched in ≤ 15 minutes: {verdict(s['intake_seconds'] <= 900)} ({s['intake_seconds']:.0f} s)",
        f"peak RSS ≤ 3 GB ({limit:,.0f} MiB) while taking in: {verdict(s['peak_rss_mib_intake'] <= limit)} "
        f"({s['peak_rss_mib_intake']:,.0f} MiB)",
        f"restart ≤ 30 s: {verdict(s['restart_seconds'] <= 30)} ({s['restart_seconds']:.1f} s)",
        f"1,000 random assets' cross-member matches equal to brute force: "
        f"{verdict(check.get('equal') is True and check.get('sample', 0) >= 1000)}"])


def _sample_check(s: dict) -> str:
    c = s["sample_check"]
    if "error" in c:
        return f"{s['n']:,} assets: the check failed ({c['error']})"
    verdict = "equal" if c["equal"] else f"NOT equal for {len(c['mismatched'])} or more"
    return (f"{s['assets']:,} assets: {c['sample']:,} sampled, {verdict}, {c['cross_member_candidates']:,} "
            f"cross-member candidates, {c['cross_member_matches']:,} of them linked by the rule "
            f"(brute force {c['brute_force_seconds']:.0f} s)")


def render(r: dict) -> str:
    m = r["machine"]
    lines = [f"Run {r['date']} on {code_label(r['code'])} with `{r['command']}` ({r['duration_seconds']:.0f} s), "
             f"on {m['cpu']}, {m['cores']} cores, {m['memory']}.", ""]
    def when(part: str) -> list[str]:
        run = r.get(f"{part}_run")
        return [f"({part}: finished {run['date']} on {code_label(run['code'])})", ""] if run else []

    if "intake" in r:
        lines += ["**Intake over gRPC + mutual TLS on loopback** (coordinator process on SQLite; node processes "
                  "sending signed batches concurrently):", "",
                  "| nodes | assets | fingerprint records | batches | seconds | assets/s | fingerprint records/s | "
                  "median batch latency s | coordinator peak RSS MiB | stored = sent |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for lv in r["intake"]["levels"]:
            lines.append(f"| {lv['nodes']} | {lv['assets_sent']:,} | {lv['fingerprints_sent']:,} | {lv['batches']} | "
                         f"{lv['wall_seconds']:.1f} | {lv['assets_per_second']:,.0f} | {lv['fingerprints_per_second']:,.0f} | "
                         f"{lv['batch_latency_seconds']['median']:.2f} | {lv['coordinator_peak_rss_mib']:.0f} | "
                         f"{'yes' if lv['stored_ok'] else 'NO'} |")
        lines += [""] + when("intake")
    if "matching" in r:
        from bench import matching

        lines += ["**Cross-member matching, one fingerprint kind at a time** (rows arrive in batches of 1,000; "
                  "each batch is searched against all earlier rows, then added; one thread unless the method "
                  "names more; a run that reached the time limit is compared on the rows it did):", "",
                  matching.table(r["matching"]), ""] + when("matching") + _matching_targets(r["matching"])
    if "scale" in r:
        lines += ["**The coordinator's core at scale** (`Coordinator.submit_batch`: signature checks, validation, "
                  "SQLite store, candidate search, the matching rule, clustering, proposals, signed log; "
                  "1,000-asset batches from 4 members; each asset carries 8 dct256 hashes, 2 dct64 and up to 64 keypoints, of which up to 34 values are indexed: the upright dct256, the frame's dct64 and 32 keypoints):", "",
                  "| assets | hash values indexed | matches | clusters | intake s | assets/s | peak RSS MiB "
                  "(intake / whole run) | index MiB | restart s (saved index) | restart s (rebuilt) | database MiB |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for s in r["scale"]:
            if "error" in s:
                lines.append(f"| {s['n']:,} | {s['error']} | | | | | | | | | |")
                continue
            rebuilt = f"{s['rebuild_seconds']:.1f}" if "rebuild_seconds" in s else "—"
            lines.append(f"| {s['assets']:,} | {s['hash_values_indexed']:,} | {s['matches']:,} | {s['clusters']:,} | "
                         f"{s['intake_seconds']:.1f} | {s['assets_per_second']:,.0f} | "
                         f"{s.get('peak_rss_mib_intake', s['peak_rss_mib']):,.0f} / {s['peak_rss_mib']:,.0f} | "
                         f"{s['index_mib']:,.0f} | {s['restart_seconds']:.1f} | {rebuilt} | {s['database_mib']:,.0f} |")
        saved = [s for s in r["scale"] if "saved_index_mib" in s]
        if saved:
            lines += ["", "A restart saves the candidate index on the way down and reads it on the way up "
                          "(`index_snapshot`); the rebuild is the start-up after a crash, from every stored record. "
                          + "; ".join(f"{s['assets']:,} assets: saved in {s['save_seconds']:.1f} s, "
                                      f"{s['saved_index_mib']:,.0f} MiB" for s in saved) + "."]
        checked = [s for s in r["scale"] if "sample_check" in s]
        if checked:
            lines += ["", "Against brute force (`bench/samplecheck.py`, after each N, from the index the intake "
                          "saved): a random sample of indexed assets, each one's candidates among other members' "
                          "assets compared with a scan of every indexed record. "
                          + "; ".join(_sample_check(s) for s in checked) + "."]
        million = next((s for s in r["scale"] if s.get("n") == 10**6 and "error" not in s), None)
        if million:
            lines += ["", "Targets at 10^6 (2 cores): " + _million_targets(million) + "."]
        searched = [s for s in r["scale"] if s.get("candidate_search")]
        if searched:
            lines += ["", "Candidate search within the intake time (seconds, and query rows asked, by search: "
                          "`upright` is the new asset's 8 orientations against stored upright hashes, `low` its "
                          "frame's dct64 against stored "
                          "ones, `points` its 32 strongest keypoint hashes against stored ones, `exact` its "
                          "digests):", ""]
            for s in searched:
                parts = ", ".join(f"{kind} {v['seconds']:.1f} s ({v['queries']:,})"
                                  for kind, v in s["candidate_search"].items())
                total = sum(v["seconds"] for v in s["candidate_search"].values())
                lines.append(f"- {s['assets']:,} assets: {total:.1f} s of {s['intake_seconds']:.1f} s: {parts}.")
        lines += [""] + when("scale")
    if "popular" in r:
        lines += _popular(r["popular"]) + when("popular")
    return "\n".join(lines)


def _popular(p: dict) -> list[str]:
    """The popular-photograph part and its targets."""
    if "error" in p:
        return [f"**A popular photograph**: the run failed ({p['error']}).", ""]
    o = p["other_member"]
    lines = [f"**A popular photograph** (`--parts popular`, `bench/popular.py`): {p['copies']:,} copies of one picture "
             f"(`{p['picture']}`: its {p['variants']} corpus variants in turn, each copy with its own digests and 0-3 "
             f"bits of its hashes flipped) in batches of {p['batch']:,} from three members, on top of "
             f"{p['base_assets']:,} other assets; a fourth member sends a one-asset batch every {o['every_seconds']} s "
             "throughout:", "",
             "| batch | member | seconds | matches | peak RSS MiB |", "|---|---|---|---|---|"]
    for n, b in enumerate(p["batches"], 1):
        lines.append(f"| {n} | {b['member']} | {b['seconds']:.2f} | {b['new_matches']:,} | {b['rss_mib']:,.0f} |")
    met = lambda ok: "met" if ok else "**not met**"  # noqa: E731
    lines += ["",
              f"- Each batch taken in within 2 s: slowest {p['max_batch_seconds']:.2f} s: {met(p['max_batch_seconds'] < 2)}.",
              f"- Coordinator peak RSS under 1 GB: {p['peak_rss_mib_overall']:,.0f} MiB over the whole run (10^5 assets "
              f"taken in first), {p['peak_rss_mib_during_copies']:,.0f} MiB while the copies came (from "
              f"{p['rss_mib_after_restart']:,.0f} MiB after the restart): {met(p['peak_rss_mib_overall'] < 1024)}.",
              f"- The other member's one-asset batch answered within 1 s: {o['batches_during_copies']} answered while the "
              f"copies came, slowest {o['max_seconds_during_copies']:.2f} s, median {o['median_seconds_during_copies']:.2f} s "
              f"(median {o['median_seconds_before']:.3f} s before): {met(o['max_seconds_during_copies'] < 1)}.",
              f"- Clusters and masters the same as the copies sent one by one (a second coordinator on the same store, "
              f"{p['one_by_one_seconds']:.0f} s): {met(p['same_as_one_by_one'])}.",
              f"- Cost per copy: {p['log_entries_per_copy']:.2f} log entries ({p['copy_matches']:,} matches and "
              f"{p['copy_cluster_proposals']} proposals for {p['copies']:,} copies); the index holds "
              f"{p['picture_versions_indexed']} versions of the picture; the copies fall into {p['clusters_of_copies']} "
              f"clusters, the largest of {p['largest_cluster']:,}.", ""]
    return lines


def _matching_targets(m: dict) -> list[str]:
    """The issue's matching targets, judged from the figures: at least as fast as the faster
    FAISS index (rows per second, since a FAISS run may stop at the time limit) with identical
    pairs; at 10^6 rows, all taken in and matched within 5 minutes and under 2 GB."""
    out = ["Targets:", ""]
    for kind, wl in m["workloads"].items():
        for n, entry in wl["sizes"].items():
            ms = entry["methods"]
            if "project" not in ms:
                continue
            mine = ms["project"]
            faiss = {k: v for k, v in ms.items() if k.startswith("faiss")}
            best = max(faiss, key=lambda k: faiss[k]["rows_per_second"] or 0) if faiss else None
            verdict = []
            if best:
                ratio = mine["rows_per_second"] / faiss[best]["rows_per_second"]
                verdict.append(f"{ratio:.2f}x the rows/s of the faster FAISS index ({best}): "
                               f"{'met' if ratio >= 1 else '**not met**'}")
            verdict.append("identical pairs" if mine["identical"] is not False else "**pairs differ**")
            if int(n) >= 10**6:
                ok_t = mine["complete"] and mine["seconds"] <= 300
                ok_m = mine["peak_rss_mib"] < 2048
                verdict.append(f"{mine['seconds']:.0f} s for all rows: {'met' if ok_t else '**not met**'} (< 300 s)")
                verdict.append(f"peak {mine['peak_rss_mib']:.0f} MiB: {'met' if ok_m else '**not met**'} (< 2 GB)")
            out.append(f"- {kind} r={wl['radius']}, N = {int(n):,}: " + "; ".join(verdict) + ".")
    return out + [""]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.coordinator", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="intake,matching,scale,popular", help="which parts to run (default %(default)s)")
    ap.add_argument("--sizes", default="10000,100000,1000000", help="N for matching and scale (default %(default)s)")
    ap.add_argument("--no-readme", action="store_true", help="do not rewrite the tables in bench/README.md")
    ap.add_argument("--render", action="store_true",
                    help="only rewrite the README section from bench/results/coordinator.json")
    args = ap.parse_args(argv)
    if args.render:
        from bench.common import replace_section

        replace_section("coordinator", render(json.loads((RESULTS / "coordinator.json").read_text())))
        return 0
    parts = {p.strip() for p in args.parts.split(",")}
    if not parts <= ALL:
        ap.error(f"unknown parts: {sorted(parts - ALL)}")
    sizes = _ints(args.sizes)
    started = time.monotonic()
    report: dict = {"benchmark": "coordinator", "date": now_iso(), "command": COMMAND,
                    "code": code_state(entries=("bench.coordinator", "dedup.cli.main")),
                    "machine": machine(), "versions": versions("numpy", "numba", "grpcio", "faiss-cpu")}
    earlier = RESULTS / "coordinator.json"
    if parts != ALL and earlier.exists():
        # Running some parts keeps the others' last figures, each with its own date and code.
        old = json.loads(earlier.read_text())
        report.update({k: old[k] for p in ALL - parts for k in (p, f"{p}_run") if k in old})
    command = COMMAND if parts == ALL else f"{COMMAND} --parts {','.join(sorted(parts))}"
    report["command"] = command
    if "intake" in parts:
        from bench import intake

        log("coordinator: intake throughput")
        report["intake"] = intake.run()
    if "matching" in parts:
        from bench import matching

        log("coordinator: matching against FAISS")
        report["matching"] = matching.run(sizes)
    if "scale" in parts:
        from bench import scale

        log("coordinator: the core at scale")
        report["scale"] = scale.run(sizes)
    if "popular" in parts:
        from bench import popular

        log("coordinator: a popular photograph")
        report["popular"] = popular.run()
    for p in parts:
        # Each part's own scope: the intake part also runs `dedup coordinator serve`.
        entries = (f"bench.{p}", "dedup.cli.main") if p == "intake" else (f"bench.{p}",)
        report[f"{p}_run"] = {"date": now_iso(), "code": code_state(entries=entries), "sizes": sizes}
    report["duration_seconds"] = round(time.monotonic() - started, 1)
    publish("coordinator", report, render(report), not args.no_readme)
    print(render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
