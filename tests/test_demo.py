"""`dedup demo` end to end: real processes, real TLS, real SQLite, then the printed rerun command."""

import re
import shlex
import subprocess
import sys


def test_demo_runs_end_to_end_and_its_verify_command_works(tmp_path):
    work = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "dedup.cli.main", "demo", "--workdir", str(work)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    out = proc.stdout
    assert "members:                 3" in out
    m = re.search(r"cross-member clusters:\s+(\d+) \(all (\d+) shared photographs found\)", out)
    assert m and m.group(1) == m.group(2) and int(m.group(1)) >= 3
    assert re.search(r"log verified: \d+ entries, root [0-9a-f]{64}", out)
    # Every node answered the proposals by its automatic rule, so every master is agreed, and the
    # agreed masters are in each member's report.
    agreed = re.search(r"proposed masters:\s+(\d+) \((\d+) agreed", out)
    assert agreed and agreed.group(1) == agreed.group(2) == m.group(1)
    masters = (work / "nodes/city-museum/report/masters.csv").read_text()
    assert "we hold the master" in masters or "master held by member" in masters
    for part in ("pki/ca.pem", "coordinator/coordinator.toml", "coordinator/coordinator.sqlite",
                 "nodes/records-office/catalogue.sqlite", "log-export/entries", "log.pub"):
        assert (work / part).exists(), part
    # Secrets are readable by their owner only.
    assert (work / "nodes/records-office/signing.key").stat().st_mode & 0o077 == 0
    assert (work / "coordinator/log.key").stat().st_mode & 0o077 == 0
    # The command the demo prints verifies the export again.
    cmd = out.strip().splitlines()[-1].strip()
    assert cmd.split()[1:3] == ["audit", "verify"]
    again = subprocess.run(shlex.split(cmd), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("log verified:")
