"""`python -m bench.check` (`make bench-check`): are the benchmark figures still those of the code in the tree?

Each results file under bench/results/ records the project files its benchmark ran, each with
its own digest (``code.sources``, made by ``bench.common.code_state``); bench/results/coordinator.json
also records one for each part it kept from an earlier run (``intake``, ``intake_run``, ...).
A record is fresh when every file it names is unchanged, and stale otherwise, with the files
that changed. Records made before per-file digests were kept are judged by the whole-project
digest they hold (every .py file under dedup/, node/ and coordinator/).

Exit status: 0 when every record is fresh, 1 when any is stale, 2 when a results file cannot be read.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.common import ROOT, sources_digest
from bench.sources import file_digest

#: Changed files named on a stale line; the rest are counted.
SHOWN = 3
LEGACY = "measured before per-file digests were recorded; the project's sources have changed since"


@dataclass
class Verdict:
    file: str  # relative to the root
    part: str | None  # a key of the results file with a code record of its own, or None for the file's own
    status: str  # "fresh", "stale", "unreadable" or "not a benchmark result"
    what: str = ""
    date: str | None = None
    changed: list[str] = field(default_factory=list)
    reason: str | None = None
    command: str | None = None

    @property
    def name(self) -> str:
        return f"{self.file}[{self.part}]" if self.part else self.file


def legacy_digest(root: Path) -> str | None:
    """The whole-project digest records held before they listed their files: code_state's old rule."""
    files = sorted(p for d in ("dedup", "node", "coordinator") for p in (root / d).rglob("*.py"))
    return sources_digest(*files) if files else None


def changed_files(sources: dict[str, str], root: Path) -> list[str]:
    """The recorded files whose content is no longer what was measured (a removed file counts)."""
    out = []
    for rel, digest in sorted(sources.items()):
        path = root / rel
        if not path.is_file():
            out.append(f"{rel} (removed)")
        elif file_digest(path) != digest:
            out.append(rel)
    return out


def records(data: dict) -> list[tuple[str | None, dict]]:
    """The file's own record, then each part's (a top-level object with a code record of its own)."""
    out: list[tuple[str | None, dict]] = [(None, data)]
    out += [(key, value) for key, value in data.items()
            if isinstance(value, dict) and isinstance(value.get("code"), dict)]
    return out


def _what(data: dict) -> str:
    if data.get("benchmark"):
        return str(data["benchmark"])
    found = re.search(r"-m\s+(\S+)", data.get("command") or "")
    return found.group(1) if found else "benchmark"


def _command(data: dict, part: str | None) -> str | None:
    """What remakes a record: the file's command; for a part, that command run for the part alone."""
    command = data.get("command")
    if not command or part is None:
        return command
    base = re.sub(r"\s+--parts(\s+|=)\S+", "", command)
    return f"{base} --parts {part.removesuffix('_run')}"


def judge(code: dict, root: Path, legacy: dict[str, str | None]) -> tuple[list[str], str | None]:
    """(changed files, reason why stale) for one code record: ([], None) when it is fresh.
    `legacy` caches the whole-project digest, computed only if an old record needs it."""
    sources = code.get("sources")
    if isinstance(sources, dict):
        return changed_files(sources, root), None
    recorded = code.get("source_digest")
    if recorded is None:
        return [], "records no source digest, so which code it measured is unknown"
    if "digest" not in legacy:
        legacy["digest"] = legacy_digest(root)
    return [], None if recorded == legacy["digest"] else LEGACY


def check_file(path: Path, root: Path, legacy: dict[str, str | None]) -> list[Verdict]:
    rel = path.relative_to(root).as_posix()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [Verdict(rel, None, "unreadable", reason=f"{type(exc).__name__}: {exc}")]
    if not isinstance(data, dict) or not isinstance(data.get("code"), dict):
        return [Verdict(rel, None, "not a benchmark result")]
    out = []
    what = _what(data)
    for part, record in records(data):
        changed, reason = judge(record["code"], root, legacy)
        out.append(Verdict(rel, part, "stale" if changed or reason else "fresh",
                           what=f"{what}: {part}" if part else what, date=record.get("date") or data.get("date"),
                           changed=changed, reason=reason, command=_command(data, part)))
    return out


def check(root: Path = ROOT) -> list[Verdict]:
    """A verdict for each results file under root/bench/results and each part with its own record."""
    legacy: dict[str, str | None] = {}
    return [v for path in sorted((root / "bench" / "results").glob("*.json")) for v in check_file(path, root, legacy)]


def line(v: Verdict) -> str:
    if v.status == "fresh":
        return f"fresh   {v.name} ({v.what}, measured {v.date or 'at an unknown date'})"
    if v.status == "stale":
        if v.reason:
            return f"STALE   {v.name}: {v.reason}"
        n = len(v.changed)
        shown = ", ".join(v.changed[:SHOWN]) + (f" (+{n - SHOWN} more)" if n > SHOWN else "")
        return f"STALE   {v.name}: {n} file{'s' if n != 1 else ''} changed since it was measured: {shown}"
    if v.status == "unreadable":
        return f"ERROR   {v.name}: cannot be read: {v.reason}"
    return f"skip    {v.name}: not a benchmark result"


def exit_code(verdicts: list[Verdict]) -> int:
    if any(v.status == "unreadable" for v in verdicts):
        return 2
    return 1 if any(v.status == "stale" for v in verdicts) else 0


def render(verdicts: list[Verdict]) -> str:
    lines = [line(v) for v in verdicts]
    judged = [v for v in verdicts if v.status in ("fresh", "stale")]
    stale = [v for v in judged if v.status == "stale"]
    unreadable = sum(v.status == "unreadable" for v in verdicts)
    summary = (f"{len(stale)} of {len(judged)} records stale, {len(judged) - len(stale)} fresh" if stale
               else f"All {len(judged)} records fresh")
    lines += ["", summary + (f"; {unreadable} results file(s) unreadable." if unreadable else ".")]
    if stale:
        lines += ["Stale figures, and the command that remakes each:"]
        lines += [f"  {v.name}: {v.command or '(no command recorded)'}" for v in stale]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.check", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print a machine-readable report instead")
    ap.add_argument("--root", type=Path, default=ROOT, help="the project checkout (default: this one)")
    args = ap.parse_args(argv)
    verdicts = check(args.root.resolve())
    code = exit_code(verdicts)
    if args.json:
        print(json.dumps({"records": [dict(asdict(v), name=v.name) for v in verdicts],
                          "fresh": sum(v.status == "fresh" for v in verdicts),
                          "stale": sum(v.status == "stale" for v in verdicts),
                          "exit_code": code}, indent=2))
    else:
        print(render(verdicts))
    return code


if __name__ == "__main__":
    sys.exit(main())
