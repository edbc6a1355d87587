"""README's "Your own folder in five minutes", followed literally: its commands are read from the
section's sh block and run as written, with the example folder replaced by a folder of a few
photographs holding one known duplicate pair. If the README's commands stop working, this fails."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

from test_cli_firsthour import photos

REPO = Path(__file__).resolve().parent.parent
HEADING = "## Your own folder in five minutes"
EXAMPLE_FOLDER = "~/Pictures/some-folder"


def walkthrough() -> tuple[str, list[str]]:
    """The section's text and the command lines of its first sh block."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index(HEADING)
    end = readme.find("\n## ", start + len(HEADING))
    section = readme[start:end if end != -1 else None]
    block = re.search(r"^```sh\n(.*?)^```", section, re.S | re.M)
    assert block, "no sh block in the section"
    lines = [line.split(" #")[0].strip() for line in block.group(1).splitlines()]
    return section, [line for line in lines if line and not line.startswith("#")]


def test_the_readme_walkthrough_runs_as_written(tmp_path):
    section, commands = walkthrough()
    assert [shlex.split(c)[0] for c in commands] == ["make", ".venv/bin/dedup", ".venv/bin/dedup",
                                                     ".venv/bin/dedup"]
    assert "dedup-catalogue.sqlite" in section  # says where the catalogue lives

    folder = photos(tmp_path / "photos")
    # A fresh working folder that sees the clone's .venv as the clone's own folder does: the
    # catalogue and the report land here, not in the clone.
    work = tmp_path / "work"
    work.mkdir()
    (work / ".venv").symlink_to(REPO / ".venv")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEDUP_NODE")}

    ran = {}
    for line in commands:
        argv = [str(folder) if a == EXAMPLE_FOLDER else a for a in shlex.split(line)]
        # make builds .venv in the clone itself; the rest run in the working folder.
        p = subprocess.run(argv, cwd=REPO if argv[0] == "make" else work, env=env, capture_output=True, text=True,
                           timeout=1200)
        assert p.returncode == 0, f"{line}: exit {p.returncode}\n{p.stdout}\n{p.stderr}"
        ran[" ".join(argv[1:3]) if argv[0] != "make" else "make"] = p

    assert EXAMPLE_FOLDER in commands[1]  # the folder the scan was given
    catalogue = work / "dedup-catalogue.sqlite"
    note = f"catalogue: {catalogue} (no configuration given; --config FILE to use one)\n"
    for step in ("node scan", "node duplicates", "node report"):
        assert ran[step].stderr == note, step
    assert catalogue.is_file()
    scan = ran["node scan"].stdout.splitlines()
    assert scan[0].startswith("scanned 4 files in ") and scan[0].endswith(": 4 read, 0 unchanged, 0 unreadable, "
                                                                           "0 skipped")
    assert scan[-1].startswith("catalogue: 4 files, ")

    # The one duplicate pair, and nothing else.
    dup = ran["node duplicates"].stdout
    assert str(folder / "astronaut.png") in dup and str(folder / "astronaut-small.jpg") in dup
    assert "coffee.jpg" not in dup and "camera.png" not in dup

    report = work / "report"
    assert ran["node report"].stdout.startswith("report written to report/report.html")
    assert sorted(p.name for p in report.iterdir()) == ["clusters.csv", "fixity.jsonl", "masters.csv", "plan.csv",
                                                        "report.html", "report.json"]
    assert "astronaut-small.jpg" in (report / "plan.csv").read_text()
