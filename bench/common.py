"""Paths, progress output and report plumbing shared by the benchmarks."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CACHE = BENCH / ".cache"
RESULTS = BENCH / "results"
README = BENCH / "README.md"

_T0 = time.monotonic()


def log(msg: str) -> None:
    """Progress on stderr with elapsed time, flushed so `make` shows it live."""
    print(f"[{time.monotonic() - _T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def asset_id(space: int, n: int) -> str:
    """The ``n``-th opaque asset id of id space ``space`` (0-255): "a-" and 24 lowercase hex
    digits, the only form a coordinator takes; the space keeps a benchmark's kinds of asset apart."""
    return f"a-{space:02x}{n:022x}"


def versions(*dists: str) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in dists:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def machine() -> dict[str, object]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "memory": mem, "platform": platform.platform()}


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def git_revision() -> str | None:
    """HEAD and whether the tree is dirty, read from files so no git command runs."""
    head = ROOT / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            path = ROOT / ".git" / ref[5:]
            if path.exists():
                return path.read_text().strip()
            packed = ROOT / ".git" / "packed-refs"
            for line in packed.read_text().splitlines():
                if line.endswith(ref[5:]):
                    return line.split()[0]
            return None
        return ref
    except OSError:
        return None


def code_state(entries: Sequence[str] | None = None) -> dict[str, object]:
    """Which project code was measured: HEAD, whether tracked files differ from it, and each
    project file the benchmark runs with its own digest (they change under the benchmarks), so
    `python -m bench.check` can tell which figures an edit made stale.

    `entries` names the modules the benchmark runs: its own, and ``dedup.cli.main`` when it
    runs the `dedup` command in subprocesses; their import closure is the scope
    (bench/sources.py). Without them every project file is in scope."""
    import subprocess

    from bench import sources

    dirty = None
    try:
        # --no-optional-locks: a read that never rewrites the index.
        out = subprocess.run(["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"],
                             cwd=ROOT, capture_output=True, text=True, timeout=30)
        if out.returncode == 0:
            dirty = bool(out.stdout.strip())
    except (OSError, subprocess.TimeoutExpired):
        pass
    files = sources.closure(entries, ROOT) if entries is not None else sources.all_files(ROOT)
    code: dict[str, object] = {"head": git_revision(), "uncommitted_changes": dirty,
                               "source_digest": sources_digest(*(ROOT / f for f in files)) if files else None,
                               "sources": {f: sources.file_digest(ROOT / f) for f in files}}
    if entries is not None:
        code["entries"] = list(entries)
    return code


def code_label(code: dict) -> str:
    head = (code.get("head") or "unknown")[:10]
    extra = " plus uncommitted changes" if code.get("uncommitted_changes") else ""
    if isinstance(code.get("sources"), dict):
        scope = f"source digest `{code.get('source_digest')}` over the {len(code['sources'])} project files it runs"
        return f"`{head}`{extra} ({scope})"
    return f"`{head}`{extra} (project source digest `{code.get('source_digest')}`)"


def sources_digest(*files: Path) -> str:
    """Digest of generator source files: a cached corpus is rebuilt when they change."""
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)


def publish(name: str, report: dict, table: str, update_readme: bool) -> None:
    """Write results/<name>.json and, unless told not to, the README section; print the table."""
    path = RESULTS / f"{name}.json"
    write_json(path, report)
    log(f"wrote {path.relative_to(ROOT)}")
    if update_readme:
        replace_section(name, table)
        log("updated bench/README.md")
    print(table)


def replace_section(name: str, body: str) -> None:
    """Rewrite the README between ``<!-- name:begin -->`` and ``<!-- name:end -->``."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = README.read_text() if README.exists() else ""
    block = f"{begin}\n{body.rstrip()}\n{end}"
    if begin in text and end in text:
        text = re.sub(re.escape(begin) + r".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    README.write_text(text)
