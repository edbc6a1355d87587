"""`make bench-check`: which benchmark results measured code that has changed since (bench/check.py),
and the import closure that decides which files a benchmark depends on (bench/sources.py)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from bench import check, sources
from bench.common import ROOT, code_state

PYPROJECT = """\
[tool.setuptools.package-dir]
"pkg" = "pkg"
"pkg.role" = "role"

[[tool.setuptools.ext-modules]]
name = "pkg._fast"
sources = ["pkg/_fast.c"]
"""

# A small project laid out as this one is: `pkg.role` lives in role/, not pkg/role/.
TREE = {
    "pyproject.toml": PYPROJECT,
    "pkg/__init__.py": "",
    "pkg/a.py": "from . import b\n\ndef later():\n    from .c import thing\n    return thing\n",
    "pkg/b.py": "import pkg.role.x\n",
    "pkg/c.py": "thing = 1\n",
    "pkg/d.py": "import json\nimport numpy\ntry:\n    from pkg import _fast\nexcept ImportError:\n    _fast = None\n",
    "pkg/_fast.c": "/* compiled */\n",
    "pkg/unused.py": "",
    "pkg/role/x.py": "# not the installed pkg.role.x: package-dir maps pkg.role to role/\n",
    "role/__init__.py": "",
    "role/x.py": "from ..d import numpy\n",
    "bench/__init__.py": "",
    "bench/run.py": "import tests.helper\n\ndef main():\n    from pkg import a\n",
    "tests/helper.py": "import pkg.unused\n",
}


def make_tree(root: Path, files: dict[str, str] = TREE) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def record(root: Path, files: list[str], **extra) -> dict:
    """A results file's code record for `files` as they are now."""
    digests = {f: hashlib.sha256((root / f).read_bytes()).hexdigest()[:16] for f in files}
    return {"head": "0" * 40, "uncommitted_changes": False, "source_digest": "unused", "sources": digests, **extra}


def write_result(root: Path, name: str, data: object) -> Path:
    path = root / "bench" / "results" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def run_check(root: Path, *args: str) -> tuple[int, str]:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = check.main(["--root", str(root), *args])
    return code, out.getvalue()


def test_closure_follows_relative_and_function_imports_through_the_package_dir_mapping(tmp_path):
    root = make_tree(tmp_path)
    assert sources.closure(["bench.run"], root) == [
        "bench/__init__.py", "bench/run.py",
        "pkg/__init__.py", "pkg/_fast.c", "pkg/a.py", "pkg/b.py", "pkg/c.py", "pkg/d.py",
        "role/__init__.py", "role/x.py",
    ]
    # tests/ is not project code, so what it imports is not followed either.
    assert "pkg/unused.py" not in sources.closure(["bench.run"], root)
    assert sources.closure(["pkg.c"], root) == ["pkg/__init__.py", "pkg/c.py"]


def test_closure_of_the_repository_maps_roles_to_their_folders():
    files = sources.closure(["dedup.cli.main"], ROOT)
    assert {"cli/main.py", "cli/__init__.py", "node/__init__.py", "coordinator/__init__.py",
            "audit/__init__.py", "dedup/__init__.py"} <= set(files)
    assert sources.closure(["dedup.ed25519"], ROOT) == ["dedup/__init__.py", "dedup/ed25519.py"]


def test_code_state_records_each_file_of_the_scope_with_its_digest():
    code = code_state(entries=("bench.check",))
    assert code["entries"] == ["bench.check"]
    assert {"bench/check.py", "bench/sources.py", "bench/common.py"} <= set(code["sources"])
    for rel, digest in code["sources"].items():
        assert digest == hashlib.sha256((ROOT / rel).read_bytes()).hexdigest()[:16]


def test_matching_record_is_fresh_and_an_edit_makes_it_stale_naming_the_file(tmp_path):
    root = make_tree(tmp_path)
    files = sources.closure(["bench.run"], root)
    write_result(root, "run.json", {"command": ".venv/bin/python -m bench.run", "date": "2026-01-01T00:00:00+00:00",
                                    "code": record(root, files)})
    code, out = run_check(root)
    assert code == 0
    assert out.splitlines()[0] == "fresh   bench/results/run.json (bench.run, measured 2026-01-01T00:00:00+00:00)"
    assert "stale" not in out.lower()

    (root / "pkg/c.py").write_text("thing = 2\n")
    code, out = run_check(root)
    assert code == 1
    first = out.splitlines()[0]
    assert first.startswith("STALE   bench/results/run.json: 1 file changed since it was measured: pkg/c.py")
    assert "  bench/results/run.json: .venv/bin/python -m bench.run" in out.splitlines()

    # An edit outside the recorded files does not touch it.
    (root / "pkg/c.py").write_text("thing = 1\n")
    (root / "pkg/unused.py").write_text("changed = True\n")
    assert run_check(root)[0] == 0


def legacy_digest(root: Path) -> str:
    """The whole-project digest results held before they listed their files, computed here by its definition."""
    h = hashlib.sha256()
    for f in sorted(p for d in ("dedup", "node", "coordinator") for p in (root / d).rglob("*.py")):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def test_legacy_record_is_judged_by_the_whole_project_digest(tmp_path):
    root = make_tree(tmp_path, {"dedup/__init__.py": "", "dedup/x.py": "x = 1\n", "node/y.py": "y = 1\n",
                                "coordinator/z.py": "z = 1\n", "bench/other.py": ""})
    old = {"head": "0" * 40, "uncommitted_changes": True, "source_digest": legacy_digest(root)}
    write_result(root, "old.json", {"command": "old command", "date": "2025-12-01T00:00:00+00:00", "code": old})
    assert run_check(root)[0] == 0

    (root / "bench/other.py").write_text("# outside the old digest's folders\n")
    assert run_check(root)[0] == 0

    (root / "node/y.py").write_text("y = 2\n")
    code, out = run_check(root)
    assert code == 1
    assert out.splitlines()[0] == ("STALE   bench/results/old.json: measured before per-file digests were recorded; "
                                   "the project's sources have changed since")


def test_coordinator_parts_are_judged_each_by_its_own_record(tmp_path):
    root = make_tree(tmp_path)
    write_result(root, "coordinator.json", {
        "benchmark": "coordinator", "date": "2026-01-03T00:00:00+00:00",
        "command": ".venv/bin/python -m bench.coordinator --parts scale",
        "code": record(root, ["pkg/a.py"]),
        "intake": {"benchmark": "intake", "date": "2026-01-01T00:00:00+00:00", "code": record(root, ["pkg/c.py"])},
        "intake_run": {"date": "2026-01-01T00:00:00+00:00", "code": record(root, ["pkg/c.py"]), "sizes": []},
        "scale": [{"n": 10}],
        "scale_run": {"date": "2026-01-03T00:00:00+00:00", "code": record(root, ["pkg/a.py"]), "sizes": [10]},
    })
    (root / "pkg/c.py").write_text("thing = 3\n")
    code, out = run_check(root, "--json")
    assert code == 1
    report = json.loads(out)
    status = {r["name"]: r["status"] for r in report["records"]}
    assert status == {"bench/results/coordinator.json": "fresh",
                      "bench/results/coordinator.json[intake]": "stale",
                      "bench/results/coordinator.json[intake_run]": "stale",
                      "bench/results/coordinator.json[scale_run]": "fresh"}
    intake = next(r for r in report["records"] if r["part"] == "intake")
    assert intake["changed"] == ["pkg/c.py"]
    assert intake["command"] == ".venv/bin/python -m bench.coordinator --parts intake"


def test_exit_codes_and_files_that_are_not_results(tmp_path):
    root = make_tree(tmp_path)
    write_result(root, "notes.json", {"what": "not a benchmark"})
    write_result(root, "a.json", {"command": "c", "date": "d", "code": record(root, ["pkg/a.py"])})
    code, out = run_check(root)
    assert code == 0
    assert "skip    bench/results/notes.json: not a benchmark result" in out.splitlines()

    write_result(root, "b.json", {"command": "c", "date": "d",
                                  "code": record(root, ["pkg/b.py"], sources={"pkg/b.py": "0" * 16})})
    assert run_check(root)[0] == 1

    write_result(root, "broken.json", "{not json")
    code, out = run_check(root)
    assert code == 2
    assert any(line.startswith("ERROR   bench/results/broken.json") for line in out.splitlines())


def test_check_on_this_repository_prints_one_line_per_results_file():
    proc = subprocess.run([sys.executable, "-m", "bench.check"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode in (0, 1), proc.stderr
    results = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "bench" / "results").glob("*.json"))
    lines = [ln for ln in proc.stdout.splitlines() if ln.split(" ", 1)[0] in ("fresh", "STALE", "skip", "ERROR")]
    named = sorted(ln.split()[1].rstrip(":") for ln in lines if "[" not in ln.split()[1])
    assert named == results
    for ln in lines:
        assert ("stale" in ln.lower()) == ln.startswith("STALE")
