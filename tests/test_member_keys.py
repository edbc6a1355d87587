"""A member's statement key replaced by one it made itself: the coordinator logs the
replacement once, refuses the old key from then on and takes the new one; the auditor replays
it and refuses whatever the log signs with a replaced key, a key another party holds, or a
key the member had before."""

from __future__ import annotations

import grpc
import pytest
from pydantic import ValidationError

from dedup.audit.verify import verify_export
from dedup.coordinator.export import export_log
from dedup.coordinator.settings import CoordinatorSettings
from dedup.note import NoteSigner
from dedup.signing import parse_entry, sign_statement
from dedup.v1 import asset_pb2, statements_pb2

from conftest import MEMBERS, ORIGIN, fingerprint, rid
from test_audit import entries_of, exported  # noqa: F401 - fixture (redefined by the tests' parameters)
from test_audit_tamper import resign_all, verify as audit_verify
from test_intake import asset, batch, refused, submit

A, B = MEMBERS[0], MEMBERS[1]
REPLACED = statements_pb2.MemberKeyReplaced.DESCRIPTOR.full_name


def rekeyed(settings: CoordinatorSettings, member: str, new: NoteSigner) -> CoordinatorSettings:
    """The configuration `dedup pki issue --rekey` leads to: the new key, the old one last in previous_keys."""
    data = settings.model_dump(mode="json")
    for m in data["members"]:
        if m["id"] == member:
            m["previous_keys"] = [*m.get("previous_keys", []), m["public_key"]]
            m["public_key"] = new.verifier().to_string()
    return CoordinatorSettings.model_validate(data)


def logged(consortium, type_name: str) -> list:
    from dedup.signing import parse_body

    out = []
    for (entry,) in consortium.query("SELECT entry FROM log_entries ORDER BY idx"):
        stmt = parse_entry(bytes(entry))
        if stmt.type == type_name:
            out.append(parse_body(stmt))
    return out


def test_a_replaced_key_is_logged_once_then_refused_and_the_new_one_taken(consortium, tmp_path):
    old = consortium.parties[A].signer
    submit(consortium, A, batch(consortium, A, [asset("a1", fingerprint(1))]))
    new = NoteSigner.generate(A)
    consortium.stop()
    consortium.settings = rekeyed(consortium.settings, A, new)
    consortium.start()
    [entry] = logged(consortium, REPLACED)
    assert (entry.member_id, entry.old_public_key, entry.new_public_key) == (
        A, old.verifier().public_bytes(), new.verifier().public_bytes())

    # The old key is refused, by name, and nothing is stored; the new one is taken.
    err = refused(consortium, A, batch(consortium, A, [asset("a2", fingerprint(2))], seq=2, signer=old))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert err.details() == (f"statement signed with a replaced key of {A!r} ({old.key_id.hex()}); the log holds "
                             f"key {new.key_id.hex()} for it now (`dedup pki install` puts the new key in use)")
    assert submit(consortium, A, batch(consortium, A, [asset("a2", fingerprint(2))], seq=2, signer=new)).accepted == 1

    # A restart with the same configuration logs nothing more.
    consortium.stop()
    consortium.start()
    assert len(logged(consortium, REPLACED)) == 1

    # The auditor replays the replacement: the batch before it under the old key, after it the new.
    out = tmp_path / "export"
    export_log(consortium.server.core.store, out, consortium.log_signer.verifier().to_string())
    report = verify_export(out, consortium.log_signer.verifier())
    assert (report.key_replacements, report.batches) == (1, 2)
    assert report.as_dict()["key_replacements"] == 1


def test_a_configured_key_the_log_cannot_account_for_is_refused_at_start(consortium):
    from dedup.coordinator.server import build_core

    consortium.stop()
    data = consortium.settings.model_dump(mode="json")
    data["members"][0]["public_key"] = NoteSigner.generate(A).verifier().to_string()
    with pytest.raises(ValueError, match=f"member {A}: configured key differs from the key admitted in the log, and "
                                         "the log's key is not the last of its previous_keys"):
        build_core(CoordinatorSettings.model_validate(data))
    # Nor when the logged key is in previous_keys but not last: the replacement order is the log's.
    data["members"][0]["previous_keys"] = [consortium.parties[A].signer.verifier().to_string(),
                                           NoteSigner.generate(A).verifier().to_string()]
    with pytest.raises(ValueError, match="is not the last of its previous_keys"):
        build_core(CoordinatorSettings.model_validate(data))


def test_previous_keys_are_checked_like_keys(consortium):
    data = consortium.settings.model_dump(mode="json")
    a, b = data["members"][0], data["members"][1]
    for previous, message in (
        ([b["public_key"]], f"previous keys must be named {A!r}, not [{B!r}]"),
        ([a["public_key"]], f"member {A}: a key appears twice among public_key and previous_keys"),
        (["not a key"], "previous_keys"),
    ):
        a["previous_keys"] = previous
        with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
            CoordinatorSettings.model_validate(data)
    # A key once B's may not become A's: holders are counted across previous keys too.
    shared = NoteSigner.generate(A)
    a["previous_keys"], a["public_key"] = [], shared.verifier().to_string()
    b["previous_keys"] = [f"{B}+" + shared.verifier().to_string().split("+", 1)[1]]
    with pytest.raises(ValidationError):  # named for A, so refused either by name or as shared
        CoordinatorSettings.model_validate(data)


# --- the auditor ---------------------------------------------------------------------------


def _admitted(entries: list[bytes], member: str) -> bytes:
    for e in entries:
        stmt = parse_entry(e)
        if stmt.type == statements_pb2.MemberAdmitted.DESCRIPTOR.full_name:
            body = statements_pb2.MemberAdmitted.FromString(stmt.body)
            if body.member_id == member:
                return body.public_key
    raise AssertionError(member)


def _replacement(log: NoteSigner, member: str, old: bytes, new: bytes) -> bytes:
    return sign_statement(log, statements_pb2.MemberKeyReplaced(
        member_id=member, old_public_key=old, new_public_key=new, replaced_unix=2), origin=ORIGIN).SerializeToString(deterministic=True)


def _withdrawal(signer: NoteSigner, member: str) -> bytes:
    return sign_statement(signer, asset_pb2.AssetsWithdrawn(
        member_id=member, withdrawal_id=rid("w1"), asset_ids=["a2"], created_unix=3), origin=ORIGIN).SerializeToString(deterministic=True)


def _audit(capsys, path, log, entries):
    resign_all(path, log, entries, [3, 7, 11, len(entries)])
    return audit_verify(capsys, path)


def test_the_auditor_follows_a_replacement_and_refuses_the_old_key_after_it(exported, capsys):  # noqa: F811
    path, log = exported
    es = entries_of(path)
    old_key = _admitted(es, A)
    new = NoteSigner.generate(A)
    code, out, err = _audit(capsys, path, log, es + [_replacement(log, A, old_key, new.verifier().public_bytes()),
                                                     _withdrawal(new, A)])
    assert code == 0, err

    # The same withdrawal signed with the old key: the log holds the key id, so the auditor names it.
    old_id = parse_entry(next(e for e in es if parse_entry(e).signer == A)).key_id
    forged = sign_statement(NoteSigner.generate(A), asset_pb2.AssetsWithdrawn(
        member_id=A, withdrawal_id=rid("w1"), asset_ids=["a2"], created_unix=3), origin=ORIGIN)
    forged.key_id = old_id  # whatever it signs, the key id is the replaced one's
    code, _, err = _audit(capsys, path, log, es + [_replacement(log, A, old_key, new.verifier().public_bytes()),
                                                   forged.SerializeToString(deterministic=True)])
    assert code == 1
    assert err == f"log NOT verified: entry 12: signed with a replaced key of {A!r} ({old_id.hex()}), replaced at entry 11\n"


@pytest.mark.parametrize("case", ["wrong old key", "another member's key", "the log's key", "its key before",
                                  "unknown member"])
def test_the_auditor_refuses_a_replacement_that_does_not_follow(exported, capsys, case):  # noqa: F811
    path, log = exported
    es = entries_of(path)
    a_key, b_key = _admitted(es, A), _admitted(es, B)
    fresh = NoteSigner.generate(A).verifier().public_bytes()
    first = NoteSigner.generate(A).verifier().public_bytes()
    extra, expected = {
        "wrong old key": ([_replacement(log, A, fresh, first)],
                          f"entry 11: key replacement for {A!r} names an old key the log does not hold for it"),
        "another member's key": ([_replacement(log, A, a_key, b_key)],
                                 f"entry 11: member {A!r} gets member {B!r}'s public key"),
        "the log's key": ([_replacement(log, A, a_key, log.verifier().public_bytes())],
                          f"entry 11: member {A!r} gets a key of the log's own"),
        "its key before": ([_replacement(log, A, a_key, first), _replacement(log, A, first, a_key)],
                           f"entry 12: member {A!r} gets a key it has had before"),
        "unknown member": ([_replacement(log, "nobody", a_key, first)],
                           "entry 11: key replacement for 'nobody' names an old key the log does not hold for it"),
    }[case]
    code, _, err = _audit(capsys, path, log, es + extra)
    assert code == 1
    assert err == f"log NOT verified: {expected}\n"
