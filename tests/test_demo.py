"""`dedup demo` end to end: real processes, real TLS, real SQLite, then the printed rerun command,
each member's audit figures, and proofs that a quorum of witnesses cosigned."""

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from dedup.cosignature import CosignatureVerifier, cosignatures
from dedup.demo.run import MEMBERS, QUORUM
from dedup.node.report.html import money


def dedup(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dedup.cli.main", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, str]:
    work = tmp_path_factory.mktemp("demo") / "work"
    proc = subprocess.run([sys.executable, "-m", "dedup.cli.main", "demo", "--workdir", str(work)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return work, proc.stdout


def witnesses(work: Path) -> list[CosignatureVerifier]:
    return [CosignatureVerifier.from_string((work / "witnesses" / f"{m}.vkey").read_text().strip()) for m in MEMBERS]


def witness_args(work: Path) -> list[str]:
    return [a for m in MEMBERS for a in ("--witness", str(work / "witnesses" / f"{m}.vkey"))]


def test_demo_runs_end_to_end_and_its_verify_command_works(demo):
    work, out = demo
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
                 "nodes/records-office/catalogue.sqlite", "log-export/entries", "log.pub",
                 "witnesses/records-office.vkey"):
        assert (work / part).exists(), part
    # Secrets are readable by their owner only.
    assert (work / "nodes/records-office/signing.key").stat().st_mode & 0o077 == 0
    assert (work / "coordinator/log.key").stat().st_mode & 0o077 == 0
    # The command the demo prints verifies the export again, witnesses' quorum included.
    cmd = out.strip().splitlines()[-1].strip()
    assert cmd.split()[1:3] == ["audit", "verify"]
    assert f"--quorum {QUORUM}" in cmd
    again = subprocess.run(shlex.split(cmd), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("log verified:")
    assert f"latest checkpoint cosigned by 3 witnesses ({', '.join(sorted(MEMBERS))}), quorum {QUORUM}" in again.stdout


def test_each_member_report_shows_duplicates_cost_and_rights(demo):
    work, out = demo
    for member in MEMBERS:
        report = json.loads((work / "nodes" / member / "report" / "report.json").read_text())
        t = report["totals"]
        assert t["clusters"] >= 2, member
        assert t["reclaimable_bytes"] > 5_000_000, member
        # Every cost figure reads as money, never HK$ 0.00.
        for end in ("cost_low", "cost_high"):
            for period in ("per_month", "per_year"):
                assert t[end][period] > 0 and money(t[end][period], "HK$") != "HK$\u00a00.00", (member, end, period)
        html = (work / "nodes" / member / "report" / "report.html").read_text()
        assert money(t["cost_high"]["per_year"], "HK$") in html
        assert len(report["rights_restricted"]) >= 1, member
        statuses = {f["rights"] for f in report["rights_restricted"]}
        statuses |= {s for c in report["clusters"] for s in c["rights_statuses"]}
        assert len(statuses) >= 2, (member, statuses)
        assert report["mixed_rights_clusters"], member
        # The summary says the same, per member.
        block = out[out.index(f"  {member}: "):]
        m = re.match(rf"  {member}: (\d+) files \((\d+) unreadable\), (\d+) internal duplicate clusters holding "
                     r"(\d+) files\n    ([\d.]+ [kMG]?B) reclaimable: HK\$\xa0([\d.,]+) to HK\$\xa0([\d.,]+) a year\n"
                     r"    (\d+) rights-restricted files?; readable files by rights:\n      (.+)\n", block)
        assert m, block[:600]
        assert (int(m.group(1)), int(m.group(3))) == (t["files"], t["clusters"])
        assert float(m.group(6)) > 0 and float(m.group(7)) > float(m.group(6))
        assert int(m.group(8)) == len(report["rights_restricted"])
        assert len(m.group(9).split(", ")) >= 2


def test_the_exported_latest_checkpoint_is_cosigned_by_a_quorum(demo):
    work, out = demo
    latest = max((work / "log-export" / "checkpoints").iterdir(), key=lambda p: int(p.name))
    names = {c.name for c in cosignatures(latest.read_text(), witnesses(work))}
    assert names == set(MEMBERS) and len(names) >= QUORUM
    assert re.search(rf"latest checkpoint:\s+size {int(latest.name)}, cosigned by 3 witnesses", out)


def test_saved_proofs_pass_check_proof_with_the_quorum(demo):
    work, out = demo
    proofs = sorted((work / "proofs").glob("*.tlog-proof"))
    assert proofs and f"proofs handed out:       {len(proofs)} " in out
    for proof in proofs:
        r = dedup("audit", "check-proof", str(proof), "--key", str(work / "log.pub"), *witness_args(work),
                  "--quorum", str(QUORUM), "--json")
        assert r.returncode == 0, r.stderr
        assert sorted(json.loads(r.stdout)["cosigned_by"]) == sorted(MEMBERS)


def test_check_proof_refuses_a_quorum_it_cannot_meet(demo):
    work, _ = demo
    proof = sorted((work / "proofs").glob("*.tlog-proof"))[0]
    # More than the witnesses named: refused before anything is checked.
    r = dedup("audit", "check-proof", str(proof), "--key", str(work / "log.pub"), *witness_args(work),
              "--quorum", str(len(MEMBERS) + 1))
    assert r.returncode == 2
    assert f"--quorum {len(MEMBERS) + 1} needs at least as many --witness keys" in r.stderr
    # An earlier checkpoint, which one member witnessed after its push and no one since, does not
    # meet the quorum.
    sizes = sorted(int(p.name) for p in (work / "log-export" / "checkpoints").iterdir())
    early = next(s for s in sizes if s > 0 and len(cosignatures(
        (work / "log-export" / "checkpoints" / f"{s:012d}").read_text(), witnesses(work))) == 1)
    bundle = work / "early.tlog-proof"
    assert dedup("audit", "prove", "0", "--export", str(work / "log-export"), "--size", str(early),
                 "--out", str(bundle)).returncode == 0
    r = dedup("audit", "check-proof", str(bundle), "--key", str(work / "log.pub"), *witness_args(work),
              "--quorum", str(QUORUM))
    assert r.returncode == 1
    assert f"carries 1 valid cosignatures by the given witnesses, fewer than the quorum of {QUORUM}" in r.stderr
