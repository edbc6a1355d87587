"""`dedup audit verify` against a real export from a real coordinator, tampered with in every
way an auditor must catch: each case asserts exit code 1 and the exact entry or checkpoint named.

The export (tests/test_audit.py's fixture) holds 11 entries: 0-2 MemberAdmitted, 3 and 4
BatchManifest, 5 MatchRecorded, 6 MasterProposed, 7 BatchManifest, 8 and 9 MatchRecorded,
10 MasterProposed; checkpoints at sizes 0, 3, 4, 7 and 11.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dedup.audit.verify import TrustedCheckpoint
from dedup.checkpoint import Checkpoint
from dedup.cli.main import main
from dedup.cosignature import CosignatureSigner, add_cosignature
from dedup.export import CHECKPOINTS, checkpoint_name, write_checkpoint
from dedup.merkle import Tree
from dedup.note import NoteSigner, sign_note
from dedup.signing import parse_body, parse_entry, sign_statement
from dedup.v1 import statements_pb2

from test_audit import ORIGIN, entries_of, exported, rewrite  # noqa: F401 - fixture

#: Coordinator statements logged without a signature of their own (SPEC 5).
CHECKPOINTED = {"MatchRecorded", "MasterProposed"}
TYPES = {0: "MemberAdmitted", 3: "BatchManifest", 5: "MatchRecorded", 6: "MasterProposed", 10: "MasterProposed"}


def audit(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["audit", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def verify(capsys, path, *args):
    return audit(capsys, "verify", path, "--key", path / "log.pub", *args)


def cp_line(path, size) -> str:
    note = (path / CHECKPOINTS / checkpoint_name(size)).read_text()
    cp = Checkpoint.parse(note[: note.index("\n\n") + 1])
    return f"checkpoint {checkpoint_name(size)} (size {size}, root {cp.root_hash.hex()})"


def resign_all(path, signer, es, sizes, *, key_for=lambda size: None):
    """Rewrite entries and sign a checkpoint at each of ``sizes``, as the coordinator would."""
    rewrite(path, es)
    tree = Tree()
    for e in es:
        tree.append(e)
    for p in (path / CHECKPOINTS).iterdir():
        p.unlink()
    for s in sizes:
        write_checkpoint(path, s, sign_note(Checkpoint(ORIGIN, s, tree.root(s)).to_text(), [key_for(s) or signer]))


def test_clean_export_verifies_and_state_is_written(exported, capsys, tmp_path):
    path, _ = exported
    state = tmp_path / "audit-state.json"
    code, out, err = verify(capsys, path, "--state", state)
    assert code == 0, err
    assert out.splitlines()[-1] == f"  {state} created: trusts size 11"
    saved = json.loads(state.read_text())
    assert (saved["format"], saved["size"], saved["origin"]) == ("dedup-audit-state/1", 11, ORIGIN)
    assert saved["checkpoint"] == (path / CHECKPOINTS / "000000000011").read_text()
    code, out, _ = verify(capsys, path, "--state", state, "--json")
    assert code == 0 and json.loads(out)["trusted_size"] == 11


@pytest.mark.parametrize("index", sorted(TYPES))
def test_flipped_byte_in_entry(exported, capsys, index):
    path, _ = exported
    es = entries_of(path)
    for offset in (len(es[index]) // 3, len(es[index]) - 10):
        e = bytearray(es[index])
        e[offset] ^= 0x01
        rewrite(path, es[:index] + [bytes(e)] + es[index + 1:])
        code, _, err = verify(capsys, path)
        assert code == 1
        # The first checkpoint over the entry no longer matches; where the flip also breaks a
        # rule (a signature, or a body that no longer parses), that rule is named after it.
        after, before = {0: (3, 0), 3: (4, 3), 5: (7, 4), 6: (7, 4), 10: (11, 7)}[index]
        mismatch = (f"log NOT verified: checkpoint {checkpoint_name(after)}: signed root for size {after} does not "
                    f"match the entries (an entry was altered, removed, inserted or reordered); the entries still "
                    f"match {cp_line(path, before)}")
        if TYPES[index] in CHECKPOINTED:
            # No signature of its own: nothing but the checkpoint may catch it.
            assert err == mismatch + "\n" or err.startswith(f"{mismatch}; the first rule broken: entry {index}: "), err
        else:
            assert err.startswith(f"{mismatch}; the first rule broken: entry {index}: "), err


def test_deleted_entry(exported, capsys):
    path, _ = exported
    es = entries_of(path)
    rewrite(path, es[:4] + es[5:])
    code, _, err = verify(capsys, path)
    # Entry 4 (city-museum's manifest) is gone: the match that was entry 5 now names an asset
    # of a member... still admitted, so every entry passes; the tree no longer matches.
    assert code == 1
    assert err == (f"log NOT verified: checkpoint 000000000007: signed root for size 7 does not match the entries"
                   f" (an entry was altered, removed, inserted or reordered); the entries still match "
                   f"{cp_line(path, 4)}\n")


def test_a_deleted_admission_names_the_checkpoint_first_then_the_rule(exported, capsys):
    path, _ = exported
    es = entries_of(path)
    member = parse_body(parse_entry(es[1])).member_id
    rewrite(path, es[:1] + es[2:])
    code, _, err = verify(capsys, path)
    # What an independent checker says first (the tree no longer matches checkpoint 3), then
    # the first statement that no longer fits: the manifest of the member never admitted.
    first = next(i for i, e in enumerate(es[2:], 1) if parse_entry(e).signer == member)
    assert code == 1
    assert err == (f"log NOT verified: checkpoint 000000000003: signed root for size 3 does not match the entries"
                   f" (an entry was altered, removed, inserted or reordered); the entries still match "
                   f"{cp_line(path, 0)}; the first rule broken: entry {first}: signed by {member!r}, which is neither "
                   "the coordinator nor an admitted member\n")


def test_swapped_entries(exported, capsys):
    path, _ = exported
    es = entries_of(path)
    es[8], es[9] = es[9], es[8]
    rewrite(path, es)
    code, _, err = verify(capsys, path)
    assert code == 1
    assert err == (f"log NOT verified: checkpoint 000000000011: signed root for size 11 does not match the entries"
                   f" (an entry was altered, removed, inserted or reordered); the entries still match "
                   f"{cp_line(path, 7)}\n")


def test_truncated_log_against_state_of_longer_verification(exported, capsys, tmp_path):
    path, _ = exported
    state = tmp_path / "state.json"
    assert verify(capsys, path, "--state", state)[0] == 0
    before = state.read_bytes()
    trusted = TrustedCheckpoint.load(state)
    # Present the log as it was at size 7: its later checkpoint removed, so it is self-consistent.
    rewrite(path, entries_of(path)[:7])
    (path / CHECKPOINTS / "000000000011").unlink()
    assert verify(capsys, path)[0] == 0
    code, _, err = verify(capsys, path, "--state", state)
    assert code == 1
    assert err == (f"log NOT verified: {cp_line(path, 7)}, the export's latest, is smaller than the trusted checkpoint "
                   f"in {state} (size 11, root {trusted.root.hex()}): the log was truncated or rolled back\n")
    assert state.read_bytes() == before


def test_truncated_log_without_cosigned_latest(exported, capsys):
    path, _ = exported
    witnesses = _cosign_latest(exported, ["records-office", "city-museum"], size=11)
    assert verify(capsys, path, "--witnesses-from-log", "--quorum", "2")[0] == 0
    rewrite(path, entries_of(path)[:7])
    (path / CHECKPOINTS / "000000000011").unlink()
    code, _, err = verify(capsys, path, *witnesses, "--quorum", "2")
    assert code == 1
    assert err == ("log NOT verified: checkpoint 000000000007: the latest checkpoint carries 0 valid cosignature(s)"
                   " by known witnesses, fewer than the quorum of 2\n")


def test_forked_checkpoint_pair_in_export(exported, capsys):
    path, signer = exported
    # The coordinator's own key signs a different tree of size 7 (entry 5 changed): a split view.
    es = entries_of(path)
    fork = Tree()
    for e in es[:5] + [es[6], es[5]]:
        fork.append(e)
    write_checkpoint(path, 7, sign_note(Checkpoint(ORIGIN, 7, fork.root()).to_text(), [signer]))
    code, _, err = verify(capsys, path)
    real = Tree()
    for e in es[:7]:
        real.append(e)
    assert code == 1
    assert err == (f"log NOT verified: {cp_line(path, 7)} and {cp_line(path, 11)} are a fork: the later one commits "
                   f"to root {real.root().hex()} at size 7, so they cannot both be views of one log\n")


def test_forked_checkpoint_against_state(exported, capsys, tmp_path):
    path, signer = exported
    # The state trusts a size-4 tree that the coordinator signed for another auditor.
    other = sign_note(Checkpoint(ORIGIN, 4, bytes(range(32))).to_text(), [signer])
    state = tmp_path / "state.json"
    TrustedCheckpoint(4, bytes(range(32)), other, ORIGIN).save(state)
    before = state.read_bytes()
    code, _, err = verify(capsys, path, "--state", state)
    es = entries_of(path)
    real = Tree()
    for e in es[:4]:
        real.append(e)
    assert code == 1
    assert err == (f"log NOT verified: {cp_line(path, 4)} and the trusted checkpoint in {state} (size 4, root "
                   f"{bytes(range(32)).hex()}) cannot both be views of one log: the export's tree at size 4 has root "
                   f"{real.root().hex()} (a fork)\n")
    assert state.read_bytes() == before


def test_checkpoint_signed_by_unknown_key(exported, capsys):
    path, signer = exported
    rogue = NoteSigner.generate(signer.name)
    note = (path / CHECKPOINTS / "000000000007").read_text()
    text = note[: note.index("\n\n") + 1]
    write_checkpoint(path, 7, sign_note(text, [rogue]))
    code, _, err = verify(capsys, path)
    assert code == 1
    assert err == (f"log NOT verified: checkpoint 000000000007: not signed by the coordinator key "
                   f"{signer.name}+{signer.key_id.hex()} in force at size 7; signed only by unknown key(s) "
                   f"{rogue.name}+{rogue.key_id.hex()}\n")


def _rotation(old: NoteSigner, new: NoteSigner) -> bytes:
    return sign_statement(old, statements_pb2.LogKeyRotated(
        old_verifier_key=old.verifier().to_string(), new_verifier_key=new.verifier().to_string(),
        reason="scheduled", rotated_unix=1), origin=ORIGIN).SerializeToString(deterministic=True)


def _match(signer: NoteSigner, n: int) -> bytes:
    return sign_statement(signer, statements_pb2.MatchRecorded(
        match_id=f"after-{n}", cluster_id="c", a=statements_pb2.AssetRef(member_id="records-office", asset_id="a1"),
        b=statements_pb2.AssetRef(member_id="city-museum", asset_id="b1")), origin=ORIGIN).SerializeToString(deterministic=True)


def test_key_rotation_is_followed(exported, capsys):
    path, old = exported
    new = NoteSigner.generate(old.name)
    es = entries_of(path) + [_rotation(old, new), _match(new, 1)]
    # Checkpoints up to 11 stay signed with the old key; 12 (which holds the rotation) and 13 with the new one.
    resign_all(path, old, es, [3, 7, 11, 12, 13], key_for=lambda s: new if s > 11 else None)
    code, out, err = verify(capsys, path)
    assert code == 0, err
    assert out.splitlines()[2] == f"  1 coordinator key rotation; key in force: {new.verifier().to_string()}"


def test_statement_signed_by_old_key_after_rotation(exported, capsys):
    path, old = exported
    new = NoteSigner.generate(old.name)
    es = entries_of(path) + [_rotation(old, new), _match(new, 1), _match(old, 2)]
    resign_all(path, old, es, [3, 7, 11, 14], key_for=lambda s: new if s > 11 else None)
    code, _, err = verify(capsys, path)
    assert code == 1
    assert err == (f"log NOT verified: entry 13: signed with the retired coordinator key {old.name}+{old.key_id.hex()},"
                   " replaced at entry 11\n")


def test_checkpoint_signed_by_old_key_after_rotation(exported, capsys):
    path, old = exported
    new = NoteSigner.generate(old.name)
    es = entries_of(path) + [_rotation(old, new), _match(new, 1)]
    resign_all(path, old, es, [3, 7, 11, 12, 13], key_for=lambda s: new if s == 13 else None)
    code, _, err = verify(capsys, path)
    assert code == 1
    assert err == (f"log NOT verified: checkpoint 000000000012: signed for size 12 with the retired coordinator key "
                   f"{old.name}+{old.key_id.hex()}, replaced at entry 11; the key in force is "
                   f"{new.name}+{new.key_id.hex()}\n")


def test_rotation_not_signed_by_the_key_in_force(exported, capsys):
    path, old = exported
    new = NoteSigner.generate(old.name)
    es = entries_of(path) + [_rotation(new, new)]
    resign_all(path, old, es, [11, 12], key_for=lambda s: new if s > 11 else None)
    code, _, err = verify(capsys, path)
    assert code == 1
    assert err == (f"log NOT verified: entry 11: statement signed by key id {new.key_id.hex()}, not the known key "
                   f"{old.key_id.hex()} of {old.name!r}\n")


def _cosign_latest(exported, members, size=11) -> list[str]:
    """Cosign checkpoint ``size`` by ``members`` (their statement keys, as witnesses)."""

    path, _ = exported
    note = (path / CHECKPOINTS / checkpoint_name(size)).read_text()
    args = []
    for m in members:
        signer = _PARTIES[m].signer
        w = CosignatureSigner(m, signer.private_key)
        note = add_cosignature(note, w, timestamp=1_700_000_000)
        args += ["--witness", w.verifier.to_string()]
    write_checkpoint(path, size, note)
    return args


_PARTIES: dict = {}


@pytest.fixture(autouse=True)
def _parties(consortium):
    _PARTIES.clear()
    _PARTIES.update(consortium.parties)


def test_witness_quorum(exported, capsys):
    path, _ = exported
    args = _cosign_latest(exported, ["records-office", "university-library"])
    code, out, err = verify(capsys, path, *args, "--quorum", "2")
    assert code == 0, err
    assert out.splitlines()[2] == "  latest checkpoint cosigned by 2 witnesses (records-office, university-library), quorum 2"
    assert verify(capsys, path, "--witnesses-from-log", "--quorum", "2")[0] == 0
    code, _, err = verify(capsys, path, "--witnesses-from-log", "--quorum", "3")
    assert code == 1
    assert err == ("log NOT verified: checkpoint 000000000011: the latest checkpoint carries 2 valid cosignature(s) "
                   "by known witnesses (records-office, university-library), fewer than the quorum of 3\n")
    # A known witness's line that does not verify is a failure, not a missing cosignature.
    note = (path / CHECKPOINTS / "000000000011").read_text()
    start = note.index("\u2014 records-office ") + len("\u2014 records-office ") + 30
    flipped = "B" if note[start] != "B" else "C"
    write_checkpoint(path, 11, note[:start] + flipped + note[start + 1:])
    code, _, err = verify(capsys, path, *args, "--quorum", "1")
    assert code == 1
    assert err == f"log NOT verified: checkpoint 000000000011: invalid cosignature by {'+'.join(args[1].split('+')[:2])}\n"


def test_quorum_needs_witnesses(exported, capsys):
    path, _ = exported
    assert verify(capsys, path, "--quorum", "1")[0] == 2


def test_bad_state_file_is_a_usage_error(exported, capsys, tmp_path):
    path, _ = exported
    state = tmp_path / "state.json"
    state.write_text("{}")
    code, _, err = verify(capsys, path, "--state", state)
    assert code == 2 and "is not a dedup-audit-state/1 file" in err


def test_process_pool_gives_the_same_verdicts(exported):
    path, _ = exported
    run = lambda: subprocess.run([sys.executable, "-m", "dedup.cli.main", "audit", "verify", str(path), "--key",  # noqa: E731
                                  str(path / "log.pub"), "--workers", "2", "--json"], capture_output=True, text=True)
    ok = run()
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["entries"] == 11
    es = entries_of(path)
    e = bytearray(es[6])
    e[-20] ^= 1
    rewrite(path, es[:6] + [bytes(e)] + es[7:])
    bad = run()
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["failure"].startswith(
        "checkpoint 000000000007: signed root for size 7 does not match the entries (an entry was altered, removed,"
        " inserted or reordered); the entries still match checkpoint 000000000004 ")
    assert "; the first rule broken: entry 6: " in json.loads(bad.stdout)["failure"]
