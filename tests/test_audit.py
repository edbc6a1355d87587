"""The offline auditor against real exports, and a tamper suite: each change must be caught."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from dedup.audit.verify import AuditFailure, verify_export
from dedup.coordinator.export import export_log
from dedup.export import read_entries, write_checkpoint, write_entries, ENTRIES, CHECKPOINTS
from dedup.note import NoteSigner
from dedup.checkpoint import Checkpoint
from dedup.merkle import Tree
from dedup.note import sign_note
from dedup.signing import parse_body, parse_entry, sign_statement
from dedup.v1 import statements_pb2

from conftest import ORIGIN, asset, fingerprint, near
from test_intake import A, B, C, batch, submit


@pytest.fixture
def exported(consortium, tmp_path):
    fp = fingerprint(1)
    submit(consortium, A, batch(consortium, A, [asset("a1", fp, width=4000, height=3000, lossless=True),
                                                asset("a2", fingerprint(2))]))
    submit(consortium, B, batch(consortium, B, [asset("b1", near(fp, 5), width=1000, height=750)]))
    submit(consortium, C, batch(consortium, C, [asset("c1", near(fp, 4), width=4000, height=3000, channels=1)]))
    out = tmp_path / "export"
    entries, checkpoints = export_log(consortium.server.core.store, out, consortium.log_signer.verifier().to_string())
    return out, consortium.log_signer


def entries_of(path):
    return list(read_entries(path))


def rewrite(path, entries):
    with open(path / ENTRIES, "wb") as f:
        write_entries(f, entries)


def test_clean_export_verifies(exported):
    path, signer = exported
    report = verify_export(path, signer.verifier())
    assert report.members == sorted([A, B, C])
    assert (report.batches, report.matches, report.proposals) == (3, 3, 2)
    assert report.entries == 3 + 3 + 3 + 2
    assert report.checkpoints >= 2


def test_cli_verify_exit_codes(exported):
    path, signer = exported
    ok = subprocess.run([sys.executable, "-m", "dedup.cli.main", "audit", "verify", str(path), "--key",
                         str(path / "log.pub")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("log verified: 11 entries, root ")
    other = NoteSigner.generate(signer.name)
    bad = subprocess.run([sys.executable, "-m", "dedup.cli.main", "audit", "verify", str(path), "--key",
                          other.verifier().to_string()], capture_output=True, text=True)
    assert bad.returncode == 1
    assert bad.stderr.startswith("log NOT verified: entry 0: statement signed by key id")
    usage = subprocess.run([sys.executable, "-m", "dedup.cli.main", "audit", "verify", str(path / "nope"), "--key",
                            str(path / "log.pub")], capture_output=True, text=True)
    assert usage.returncode == 2


@pytest.mark.parametrize("index", [0, 3, 5, 10])
def test_flipped_byte_in_any_entry_is_caught(exported, index):
    path, signer = exported
    es = entries_of(path)
    e = bytearray(es[index])
    e[len(e) // 2] ^= 0x01
    es[index] = bytes(e)
    rewrite(path, es)
    with pytest.raises(AuditFailure, match=rf"^entry {index}: |checkpoint .* does not match"):
        verify_export(path, signer.verifier())


def test_deleted_entry_is_caught(exported):
    path, signer = exported
    es = entries_of(path)
    del es[4]
    rewrite(path, es)
    with pytest.raises(AuditFailure):
        verify_export(path, signer.verifier())


def test_swapped_entries_are_caught(exported):
    path, signer = exported
    es = entries_of(path)
    es[4], es[5] = es[5], es[4]
    rewrite(path, es)
    with pytest.raises(AuditFailure, match="does not match"):
        verify_export(path, signer.verifier())


def test_truncated_log_is_caught(exported):
    path, signer = exported
    rewrite(path, entries_of(path)[:-2])
    with pytest.raises(AuditFailure, match="truncated"):
        verify_export(path, signer.verifier())


def test_entries_beyond_the_checkpoint_are_caught(exported):
    path, signer = exported
    es = entries_of(path)
    # A repeated match passes every entry check (a repeated proposal would not): only the
    # checkpoints can tell it is there.
    rewrite(path, es + [es[-2]])
    with pytest.raises(AuditFailure, match="vouched for by no checkpoint"):
        verify_export(path, signer.verifier())


def test_checkpoint_signed_by_unknown_key_is_caught(exported):
    path, signer = exported
    es = entries_of(path)
    tree = Tree()
    for e in es:
        tree.append(e)
    rogue = NoteSigner.generate(signer.name)
    for p in (path / CHECKPOINTS).iterdir():
        p.unlink()
    write_checkpoint(path, len(es), sign_note(Checkpoint(ORIGIN, len(es), tree.root()).to_text(), [rogue]))
    with pytest.raises(AuditFailure, match="checkpoint"):
        verify_export(path, signer.verifier())




def _resign(path, signer, es):
    """Rewrite the export as a coordinator with the real key would: new tree, new checkpoint."""
    rewrite(path, es)
    tree = Tree()
    for e in es:
        tree.append(e)
    for p in (path / CHECKPOINTS).iterdir():
        p.unlink()
    write_checkpoint(path, len(es), sign_note(Checkpoint(ORIGIN, len(es), tree.root()).to_text(), [signer]))


def test_proposal_against_policy_is_caught_even_when_signed(exported):
    path, signer = exported
    es = entries_of(path)
    i, p = next((i, parse_body(parse_entry(e))) for i, e in enumerate(es)
                if isinstance(parse_body(parse_entry(e)), statements_pb2.MasterProposed))
    loser = next(c.ref for c in p.copies if (c.ref.member_id, c.ref.asset_id) != (p.master.member_id, p.master.asset_id))
    p.master.CopyFrom(loser)
    es[i] = sign_statement(signer, p, origin=ORIGIN).SerializeToString(deterministic=True)
    _resign(path, signer, es)
    with pytest.raises(AuditFailure, match=rf"^entry {i}: proposal .* but the policy chooses"):
        verify_export(path, signer.verifier())


def test_batch_signed_by_coordinator_is_caught(exported):
    """The coordinator cannot forge a member's batch: members sign their own manifests."""
    path, signer = exported
    es = entries_of(path)
    stmt = parse_entry(es[3])
    assert stmt.type == "dedup.v1.BatchManifest"
    es[3] = sign_statement(signer, parse_body(stmt), origin=ORIGIN).SerializeToString(deterministic=True)
    _resign(path, signer, es)
    with pytest.raises(AuditFailure, match="^entry 3: the coordinator may not sign dedup.v1.BatchManifest"):
        verify_export(path, signer.verifier())


def test_match_naming_unadmitted_member_is_caught(exported):
    path, signer = exported
    es = entries_of(path)
    es.append(sign_statement(signer, statements_pb2.MatchRecorded(
        match_id="m", a=statements_pb2.AssetRef(member_id="ghost", asset_id="g"),
        b=statements_pb2.AssetRef(member_id=A, asset_id="a1")), origin=ORIGIN).SerializeToString(deterministic=True))
    _resign(path, signer, es)
    with pytest.raises(AuditFailure, match=f"^entry {len(es) - 1}: match 'm' names 'ghost'"):
        verify_export(path, signer.verifier())


def test_missing_parts_are_reported(exported, tmp_path):
    path, signer = exported
    shutil.rmtree(path / CHECKPOINTS)
    with pytest.raises(AuditFailure, match="checkpoints is missing"):
        verify_export(path, signer.verifier())
    with open(path / ENTRIES, "ab") as f:
        f.write(b"\x00\x00")
    (path / CHECKPOINTS).mkdir()
    write_checkpoint(path, 1, sign_note(Checkpoint(ORIGIN, 1, b"\0" * 32).to_text(), [signer]))
    with pytest.raises(AuditFailure, match="truncated length prefix"):
        verify_export(path, signer.verifier())
