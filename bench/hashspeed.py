"""`make bench-hash`: how fast the project fingerprints large masters, and how much memory a scan takes.

Throughput is measured in one process on one core (BLAS and OpenMP pools limited to one
thread), on the same files for every method, interleaved file by file so a noisy machine
slows all methods alike: a warm-up pass, then 3 timed passes, median reported. Then the
whole `dedup node scan` over the large files with one worker and with the default (one per
core), and the scan's memory over 1,000 to 20,000 small files. Writes bench/results/hash.json
and the speed table in bench/README.md.
"""

from __future__ import annotations

import os

# Before numpy is imported anywhere: one thread, so images per second is per core.
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

from PIL import Image

from bench.speedfiles import SMALL_SIDE, TIFF_KINDS, build_files, tiff_kind
from bench.common import CACHE, ROOT, code_label as _code, code_state, log, machine, now_iso, publish, versions

REPEATS = 3
SCAN_SIZES = (1000, 5000, 20000)
#: Each large file is linked this many times into the folder the scaling scan reads: about
#: 35 s on one core, so the process's start-up (imports, the workers' first compiled call,
#: about 1.5 s whatever the number of workers) weighs in it as little as in a real scan of
#: masters; the start-up is timed on its own over an empty folder.
SCAN_COPIES = 10
COMMAND = ".venv/bin/python -m bench.hashspeed"


# --- the methods timed, each exactly as described in the report ----------------------------

def m_project(p: Path) -> None:
    from dedup.node.imaging import read_image

    read_image(p)


def m_phash(p: Path) -> None:
    import imagehash

    imagehash.phash(Image.open(p))


def m_reduced(p: Path) -> None:
    im = Image.open(p)
    if im.format == "JPEG":
        im.draft("RGB", (im.width // 8, im.height // 8))
        im.load()
    else:
        im.load()
        im.reduce(max(1, max(im.size) // 512))


def m_full(p: Path) -> None:
    Image.open(p).load()


def m_sha256(p: Path) -> None:
    import hashlib

    h = hashlib.sha256()
    with open(p, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)


METHODS: dict[str, Callable[[Path], None]] = {
    "project": m_project, "phash": m_phash, "reduced_decode": m_reduced, "full_decode": m_full,
    "read_sha256": m_sha256}
DESCRIPTIONS = {
    "project": "dedup.node.imaging.read_image(path): read bytes + SHA-256, one decode, pixel digest, fingerprints, evidence",
    "phash": "imagehash.phash(Image.open(path))",
    "reduced_decode": "JPEG: im = Image.open(p); im.draft('RGB', (im.width // 8, im.height // 8)); im.load(). "
                      "TIFF: Image.open(p).load() then im.reduce(max(1, long_side // 512)) (about 512 px)",
    "full_decode": "Image.open(p).load()",
    "read_sha256": "reading the file in 1 MiB chunks into hashlib.sha256 (the part of read_image no decode can avoid)",
}


def time_methods(files: list[Path], per_file: dict[str, dict[str, list[float]]]) -> dict[str, list[float]]:
    """Seconds per pass for each method: warm-up, then REPEATS interleaved passes.
    Each call's time is also kept in ``per_file`` (file name -> method -> seconds)."""
    names = list(METHODS)
    for p in files:  # warm-up: imports, page cache, first-call costs
        for n in names:
            METHODS[n](p)
    totals = {n: [] for n in names}
    for rep in range(REPEATS):
        acc = {n: 0.0 for n in names}
        for k, p in enumerate(files):
            # Rotate the order per file so no method always runs right after another.
            for n in names[k % len(names):] + names[:k % len(names)]:
                t = time.perf_counter()
                METHODS[n](p)
                dt = time.perf_counter() - t
                acc[n] += dt
                per_file.setdefault(p.name, {}).setdefault(n, []).append(dt)
        for n in names:
            totals[n].append(acc[n])
        log(f"  pass {rep + 1}/{REPEATS}: " + ", ".join(f"{n} {len(files) / acc[n]:.2f}/s" for n in names))
    return totals


#: Targets of the issue "Speed at archive scale", judged in the report.
JPEG_OVER_FLOOR = 1.25   # read_image time <= 1.25 x (reduced decode + read and SHA-256)
TIFF_OVER_PHASH = 1.5    # read_image throughput >= 1.5 x phash's
TIFF_OVER_FLOOR = 1.5    # read_image time <= 1.5 x (full decode + read and SHA-256)
SCAN_SCALING = 1.8       # dedup node scan on 2 workers >= 1.8 x its throughput on 1


def _ratios(ms: dict[str, float]) -> dict[str, float]:
    return {
        "project_over_phash_throughput": round(ms["phash"] / ms["project"], 3),
        "project_over_reduced_decode_time": round(ms["project"] / ms["reduced_decode"], 3),
        "project_over_full_decode_time": round(ms["project"] / ms["full_decode"], 3),
        "project_over_reduced_decode_plus_read_sha256_time": round(ms["project"] / (ms["reduced_decode"] + ms["read_sha256"]), 3),
        "project_over_full_decode_plus_read_sha256_time": round(ms["project"] / (ms["full_decode"] + ms["read_sha256"]), 3),
    }


def summarise(files: list[Path], totals: dict[str, list[float]]) -> dict:
    out = {}
    for n, secs in totals.items():
        med = statistics.median(secs)
        out[n] = {"images_per_second": round(len(files) / med, 3), "ms_per_image": round(1000 * med / len(files), 1),
                  "pass_seconds": [round(s, 3) for s in secs]}
    out["ratios"] = _ratios({n: 1000 * statistics.median(totals[n]) / len(files) for n in totals})
    return out


def by_kind(per_file_ms: dict[str, dict[str, float]]) -> dict[str, dict]:
    """Mean of the per-file medians for each TIFF kind, and that kind's ratios."""
    out = {}
    for kind in TIFF_KINDS:
        rows = [ms for name, ms in per_file_ms.items() if tiff_kind(Path(name)) == kind]
        if rows:
            ms = {n: statistics.fmean(r[n] for r in rows) for n in METHODS}
            out[kind] = {"files": len(rows), "ms_per_image": {n: round(v, 1) for n, v in ms.items()}, "ratios": _ratios(ms)}
    return out


def _tree_rss_kib(pid: int) -> int:
    """Summed RSS of a process and all its descendants, from /proc."""
    total = 0
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d.name))
    stack = [pid]
    while stack:
        q = stack.pop()
        try:
            for line in (Path("/proc") / str(q) / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
        stack += children.get(q, [])
    return total


def scan_memory(small: list[Path], n: int) -> dict:
    """Peak memory of the real `dedup node scan` over n small files, in a fresh catalogue."""
    CACHE.mkdir(parents=True, exist_ok=True)
    # Inside the cache, so the photos can be hard links to the generated files.
    with tempfile.TemporaryDirectory(prefix="scan-", dir=CACHE) as tmp:
        t = Path(tmp)
        photos = t / "photos"
        for i, p in enumerate(small[:n]):
            d = photos / f"{i // 500:02d}"
            d.mkdir(parents=True, exist_ok=True)
            os.link(p, d / p.name)
        cfg = t / "node.toml"
        cfg.write_text('member_id = "bench"\ncatalogue = "catalogue.sqlite"\nsigning_key = "signer.key"\n')
        cmd = ["/usr/bin/time", "-v", str(ROOT / ".venv/bin/dedup"), "node", "scan", "--config", str(cfg), str(photos), "--json", "--quiet"]
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        peak = 0
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, _tree_rss_kib(proc.pid))
                stop.wait(0.05)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        out, err = proc.communicate()
        stop.set()
        th.join()
        secs = time.monotonic() - t0
        max_rss = None
        for line in err.splitlines():
            if "Maximum resident set size" in line:
                max_rss = int(line.rsplit(":", 1)[1])
        try:
            summary = json.loads(out)
        except json.JSONDecodeError:
            summary = {"stdout": out[-2000:]}
        return {"files": n, "exit_code": proc.returncode, "seconds": round(secs, 1),
                "files_per_second": round(n / secs, 1),
                "max_rss_single_process_mib": round(max_rss / 1024, 1) if max_rss else None,
                "peak_rss_process_tree_mib": round(peak / 1024, 1),
                "summary": summary,
                "stderr_tail": err.splitlines()[-25:] if proc.returncode not in (0, 1) else []}


def _scan_once(folder: Path, workers: int | None) -> dict:
    """One whole-process `dedup node scan` of ``folder`` into a fresh catalogue."""
    with tempfile.TemporaryDirectory(prefix="scan-", dir=CACHE) as tmp:
        cfg = Path(tmp) / "node.toml"
        cfg.write_text('member_id = "bench"\ncatalogue = "catalogue.sqlite"\nsigning_key = "signer.key"\n')
        cmd = [str(ROOT / ".venv/bin/dedup"), "node", "scan", "--config", str(cfg), str(folder), "--json", "--quiet"]
        if workers is not None:
            cmd += ["--workers", str(workers)]
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        secs = time.monotonic() - t0
        try:
            read = json.loads(proc.stdout).get("read")
        except (json.JSONDecodeError, AttributeError):
            read = None
        return {"seconds": round(secs, 2), "exit_code": proc.returncode, "read": read}


def scan_scaling(large: list[Path]) -> dict:
    """Whole-process `dedup node scan` over the large files, one worker against the default
    (one per core): wall time from start to exit, median of REPEATS runs, interleaved."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="scaling-", dir=CACHE) as tmp:
        folder = Path(tmp) / "masters"
        n = 0
        for copy in range(SCAN_COPIES):
            d = folder / f"copy{copy}"
            d.mkdir(parents=True)
            for p in large:
                os.link(p, d / p.name)
                n += 1
        nbytes = SCAN_COPIES * sum(p.stat().st_size for p in large)
        empty = Path(tmp) / "empty"
        empty.mkdir()
        runs: dict[str, list[dict]] = {"1": [], "default": []}
        _scan_once(folder, None)  # warm-up: page cache, imports
        for rep in range(REPEATS):
            for key, workers in (("1", 1), ("default", None)):
                res = _scan_once(folder, workers)
                runs[key].append(res)
                log(f"  scan of {n} large files, workers {key}: {res['seconds']} s, exit {res['exit_code']}")
        # The start-up alone: the same command over an empty folder, then over one large file
        # (the workers' first call loads the compiled code).
        startup = {"empty": statistics.median(_scan_once(empty, None)["seconds"] for _ in range(REPEATS))}
        one = Path(tmp) / "one"
        one.mkdir()
        os.link(large[0], one / large[0].name)
        startup["one_file"] = statistics.median(_scan_once(one, None)["seconds"] for _ in range(REPEATS))
    out: dict = {"files": n, "bytes": nbytes, "copies": SCAN_COPIES, "default_workers": os.cpu_count(), "runs": runs,
                 "startup_seconds": startup}
    for key, rs in runs.items():
        med = statistics.median(r["seconds"] for r in rs)
        out[key] = {"seconds": med, "files_per_second": round(n / med, 2), "mib_per_second": round(nbytes / med / 2**20, 1)}
    out["ratio"] = round(out["1"]["seconds"] / out["default"]["seconds"], 3)
    return out


def _judge(ok: bool) -> str:
    return "met" if ok else "**not met**"


def render(r: dict) -> str:
    m = r["machine"]
    lines = [f"Run {r['date']} on {_code(r['code'])} with `{r['command']}` ({r['duration_seconds']:.0f} s), "
             f"on {m['cpu']}, {m['cores']} cores; one process, one thread, median of {REPEATS} interleaved passes after a warm-up.", ""]
    for label, key in (("JPEG q90, 3000-4000 px", "jpeg"), ("TIFF 3000 px, 8- and 16-bit, uncompressed and LZW", "tiff")):
        s = r["throughput"][key]
        lines += [f"**{label}** ({s['files']} files)", "",
                  "| method | images/s per core | ms per image |", "|---|---|---|"]
        for n in METHODS:
            lines.append(f"| {n} | {s[n]['images_per_second']:.2f} | {s[n]['ms_per_image']:.1f} |")
        ra = s["ratios"]
        lines += ["", f"project/phash throughput **{ra['project_over_phash_throughput']:.2f}**; "
                  f"project/(reduced decode + read and SHA-256) time **{ra['project_over_reduced_decode_plus_read_sha256_time']:.2f}**; "
                  f"project/(full decode + read and SHA-256) time **{ra['project_over_full_decode_plus_read_sha256_time']:.2f}**; "
                  f"project/reduced-decode time {ra['project_over_reduced_decode_time']:.2f}; "
                  f"project/full-decode time {ra['project_over_full_decode_time']:.2f}.", ""]
    kinds = r["throughput"]["tiff"]["by_kind"]
    lines += ["TIFFs by kind (mean of the per-file medians, ms per image):", "",
              "| kind | files | " + " | ".join(METHODS) + " | project/phash throughput | project/(full decode + read and SHA-256) |",
              "|---" * (len(METHODS) + 4) + "|"]
    for kind, k in kinds.items():
        lines.append(f"| {kind} | {k['files']} | " + " | ".join(f"{k['ms_per_image'][n]:.1f}" for n in METHODS)
                     + f" | {k['ratios']['project_over_phash_throughput']:.2f}"
                     f" | {k['ratios']['project_over_full_decode_plus_read_sha256_time']:.2f} |")
    j = r["throughput"]["jpeg"]["ratios"]
    t = r["throughput"]["tiff"]["ratios"]
    sc = r["scan_scaling"]
    jr = j["project_over_reduced_decode_plus_read_sha256_time"]
    tp = t["project_over_phash_throughput"]
    tf = t["project_over_full_decode_plus_read_sha256_time"]
    lines += ["", f"Whole-process `dedup node scan --json --quiet` over the large files ({sc['files']} files: "
              f"{SCAN_COPIES} links to each, {sc['bytes'] / 2**20:.0f} MiB), fresh catalogue, median of {REPEATS} runs:", "",
              "| workers | seconds | files/s | MiB/s |", "|---|---|---|---|"]
    for key, label in (("1", "1"), ("default", f"default ({sc['default_workers']})")):
        lines.append(f"| {label} | {sc[key]['seconds']:.2f} | {sc[key]['files_per_second']:.2f} | {sc[key]['mib_per_second']:.1f} |")
    st = sc.get("startup_seconds")
    if st:
        lines += ["", f"The same command's start-up, default workers, median of {REPEATS}: {st['empty']:.2f} s over an "
                  f"empty folder, {st['one_file']:.2f} s over one of the large files."]
    lines += ["", "Targets: "
              f"JPEG project/(reduced decode + read and SHA-256) time ≤ {JPEG_OVER_FLOOR}: {_judge(jr <= JPEG_OVER_FLOOR)} ({jr:.2f}); "
              f"TIFF project/phash throughput ≥ {TIFF_OVER_PHASH}: {_judge(tp >= TIFF_OVER_PHASH)} ({tp:.2f}); "
              f"TIFF project/(full decode + read and SHA-256) time ≤ {TIFF_OVER_FLOOR}: {_judge(tf <= TIFF_OVER_FLOOR)} ({tf:.2f}); "
              f"scan on {sc['default_workers']} workers/on 1 ≥ {SCAN_SCALING}: {_judge(sc['ratio'] >= SCAN_SCALING)} ({sc['ratio']:.2f}).", "",
              f"`dedup node scan --json --quiet` over {SMALL_SIDE} px JPEGs, fresh catalogue, default workers:", "",
              "| files | seconds | files/s | max RSS of one process (MiB) | peak RSS of the process tree (MiB) | exit |",
              "|---|---|---|---|---|---|"]
    for s in r["scan_memory"]:
        lines.append(f"| {s['files']} | {s['seconds']} | {s['files_per_second']} | {s['max_rss_single_process_mib']} | "
                     f"{s['peak_rss_process_tree_mib']} | {s['exit_code']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--no-readme", action="store_true", help="do not rewrite the table in bench/README.md")
    args = ap.parse_args(argv)
    started = time.monotonic()
    jpegs, tiffs, small = build_files()
    report: dict = {"command": COMMAND, "date": now_iso(),
                    "code": code_state(entries=("bench.hashspeed", "dedup.cli.main")), "machine": machine(),
                    "versions": versions("dedup-consortium", "pillow", "imagehash", "numpy", "tifffile"),
                    "threads": {v: os.environ.get(v) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
                    "methods": DESCRIPTIONS, "repeats": REPEATS, "throughput": {}}
    for key, files in (("jpeg", jpegs), ("tiff", tiffs)):
        sizes = [Image.open(p).size for p in files]
        log(f"timing {len(files)} {key.upper()} files")
        per_file: dict[str, dict[str, list[float]]] = {}
        s = summarise(files, time_methods(files, per_file))
        s["files"] = len(files)
        s["per_file_median_ms"] = {f: {n: round(1000 * statistics.median(v), 1) for n, v in ms.items()}
                                   for f, ms in per_file.items()}
        s["sizes"] = {"min_long_side": min(max(x) for x in sizes), "max_long_side": max(max(x) for x in sizes),
                      "megapixels_mean": round(sum(w * h for w, h in sizes) / len(sizes) / 1e6, 2),
                      "bytes_mean": int(sum(p.stat().st_size for p in files) / len(files))}
        if key == "tiff":
            s["by_kind"] = by_kind(s["per_file_median_ms"])
        report["throughput"][key] = s
    log(f"scan scaling: dedup node scan over the {len(jpegs) + len(tiffs)} large files x {SCAN_COPIES}, 1 worker and default")
    report["scan_scaling"] = scan_scaling(jpegs + tiffs)
    report["scan_memory"] = []
    for n in SCAN_SIZES:
        log(f"scan memory: dedup node scan over {n} files")
        res = scan_memory(small, n)
        log(f"  {res['seconds']}s, max RSS one process {res['max_rss_single_process_mib']} MiB, "
            f"tree peak {res['peak_rss_process_tree_mib']} MiB, exit {res['exit_code']}")
        report["scan_memory"].append(res)
    report["duration_seconds"] = round(time.monotonic() - started, 1)
    publish("hash", report, render(report), not args.no_readme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
