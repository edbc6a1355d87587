"""`make bench-hash`: how fast the project fingerprints large masters, and how much memory a scan takes.

Throughput is measured in one process on one core (BLAS and OpenMP pools limited to one
thread), on the same files for every method, interleaved file by file so a noisy machine
slows all methods alike: a warm-up pass, then 3 timed passes, median reported.
Writes bench/results/hash.json and the speed table in bench/README.md.
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

import numpy as np
from PIL import Image

from bench import dataset
from bench.common import CACHE, ROOT, code_label as _code, code_state, log, machine, now_iso, publish, sources_digest, versions

SPEED = CACHE / "speed"
N_JPEG = 40
N_TIFF = 10
REPEATS = 3
SMALL_SIDE = 400
SCAN_SIZES = (1000, 5000, 20000)
SEED = 7321
COMMAND = ".venv/bin/python -m bench.hashspeed"


def _masters() -> list[Path]:
    """The corpus masters, largest first (building the corpus if needed)."""
    corpus = dataset.build()
    ms = [corpus.path(e) for e in corpus.entries if e.role == "master"]
    sizes = {p: Image.open(p).size for p in ms}
    return sorted(ms, key=lambda p: (-(sizes[p][0] * sizes[p][1]), str(p)))


def _upscale(src: Path, long_side: int, rng: np.random.Generator) -> Image.Image:
    """Lanczos upscale plus slight noise, so the file is not trivially compressible."""
    with Image.open(src) as im:
        im = im.convert("RGB")
        s = long_side / max(im.size)
        big = im.resize((round(im.width * s), round(im.height * s)), Image.Resampling.LANCZOS)
    arr = np.asarray(big, dtype=np.int16) + rng.normal(0, 3.0, (big.height, big.width, 1)).astype(np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def build_files() -> tuple[list[Path], list[Path], list[Path]]:
    """(large JPEGs, large TIFFs, small JPEGs for the scan), cached."""
    key = sources_digest(Path(__file__)) + dataset._generator_key()
    stamp = SPEED / "generator"
    jpegs = [SPEED / "large" / f"large_{i:02d}.jpg" for i in range(N_JPEG)]
    tiffs = [SPEED / "large" / f"large_{i:02d}_{8 if i % 2 == 0 else 16}bit.tif" for i in range(N_TIFF)]
    small = [SPEED / "small" / f"{i // 500:02d}" / f"s{i:05d}.jpg" for i in range(max(SCAN_SIZES))]
    if stamp.exists() and stamp.read_text() == key and all(p.exists() for p in jpegs + tiffs + small):
        log(f"speed files: reusing {SPEED}")
        return jpegs, tiffs, small
    import shutil

    import tifffile

    shutil.rmtree(SPEED, ignore_errors=True)
    (SPEED / "large").mkdir(parents=True)
    masters = _masters()
    rng = np.random.default_rng(SEED)
    log(f"speed files: {N_JPEG} JPEGs of 3000-4000 px from the largest originals")
    for i, p in enumerate(jpegs):
        _upscale(masters[i % len(masters)], int(rng.integers(3000, 4001)), rng).save(p, "JPEG", quality=90)
    log(f"speed files: {N_TIFF} TIFFs of 3000 px (8-bit and 16-bit)")
    for i, p in enumerate(tiffs):
        im = _upscale(masters[(N_JPEG + i) % len(masters)], 3000, rng)
        if "16bit" in p.name:
            # 16-bit with real low bits: x257 plus noise below one 8-bit step.
            arr = np.asarray(im, dtype=np.uint16) * 257 + rng.integers(0, 257, (im.height, im.width, 3), dtype=np.uint16)
            tifffile.imwrite(p, arr, photometric="rgb")
        else:
            im.save(p, "TIFF")
    log(f"speed files: {len(small)} JPEGs of {SMALL_SIDE} px for the scan")
    for i, p in enumerate(small):
        p.parent.mkdir(parents=True, exist_ok=True)
        src = masters[i % len(masters)]
        with Image.open(src) as im:
            w, h = im.size
            # A different window of the master for every file, so no two files are alike.
            f = rng.uniform(0.6, 1.0)
            cw, ch = int(w * f), int(h * f)
            x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            t = im.convert("RGB").crop((x, y, x + cw, y + ch))
        t.thumbnail((SMALL_SIDE, SMALL_SIDE), Image.Resampling.LANCZOS)
        t.save(p, "JPEG", quality=85)
    stamp.write_text(key)
    return jpegs, tiffs, small


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


def summarise(files: list[Path], totals: dict[str, list[float]]) -> dict:
    out = {}
    for n, secs in totals.items():
        med = statistics.median(secs)
        out[n] = {"images_per_second": round(len(files) / med, 3), "ms_per_image": round(1000 * med / len(files), 1),
                  "pass_seconds": [round(s, 3) for s in secs]}
    out["ratios"] = {
        "project_over_phash_throughput": round(out["project"]["images_per_second"] / out["phash"]["images_per_second"], 3),
        "project_over_reduced_decode_time": round(out["project"]["ms_per_image"] / out["reduced_decode"]["ms_per_image"], 3),
        "project_over_full_decode_time": round(out["project"]["ms_per_image"] / out["full_decode"]["ms_per_image"], 3),
    }
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


def render(r: dict) -> str:
    m = r["machine"]
    lines = [f"Run {r['date']} on {_code(r['code'])} with `{r['command']}` ({r['duration_seconds']:.0f} s), "
             f"on {m['cpu']}, {m['cores']} cores; one process, one thread, median of {REPEATS} interleaved passes after a warm-up.", ""]
    for label, key in (("JPEG q90, 3000-4000 px", "jpeg"), ("TIFF 3000 px, 8- and 16-bit", "tiff")):
        s = r["throughput"][key]
        lines += [f"**{label}** ({s['files']} files)", "",
                  "| method | images/s per core | ms per image |", "|---|---|---|"]
        for n in METHODS:
            lines.append(f"| {n} | {s[n]['images_per_second']:.2f} | {s[n]['ms_per_image']:.1f} |")
        ra = s["ratios"]
        lines += ["", f"project/phash throughput **{ra['project_over_phash_throughput']:.2f}**; "
                  f"project/reduced-decode time **{ra['project_over_reduced_decode_time']:.2f}**; "
                  f"project/full-decode time {ra['project_over_full_decode_time']:.2f}.", ""]
    j = r["throughput"]["jpeg"]["ratios"]
    s = r["throughput"]["jpeg"]
    phash, reduced, sha = (s[n]["ms_per_image"] for n in ("phash", "reduced_decode", "read_sha256"))
    lines += [f"The ceiling on the JPEGs: a reduced decode alone runs at {phash / reduced:.2f}x phash's throughput, "
              f"and a reduced decode plus the file's SHA-256 (which fixity needs anyway) at {phash / (reduced + sha):.2f}x; "
              "libjpeg must entropy-decode every coefficient whatever the output scale, so that is the most any "
              "fingerprint computed from decoded pixels can reach.", ""]
    lines += ["Targets on the JPEGs: project/phash throughput ≥ 5: "
              f"{'met' if j['project_over_phash_throughput'] >= 5 else '**not met**'} ({j['project_over_phash_throughput']:.2f}); "
              "project/reduced-decode time ≤ 1.5: "
              f"{'met' if j['project_over_reduced_decode_time'] <= 1.5 else '**not met**'} ({j['project_over_reduced_decode_time']:.2f}).", "",
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
        report["throughput"][key] = s
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
