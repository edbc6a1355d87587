"""Statements are bound to the log they were made for: a member that uses one key in two
consortia cannot have its vote, manifest or withdrawal in one log replayed into the other.
Two real coordinators with the same members and keys, and predictable ids in both."""

from __future__ import annotations

import grpc
import pytest

from dedup.audit.verify import verify_export
from dedup.coordinator.export import export_log
from dedup.note import NoteSigner
from dedup.signing import parse_entry, sign_statement
from dedup.v1 import asset_pb2, negotiation_pb2 as N, statements_pb2 as S

from conftest import ORIGIN, Consortium, asset, fingerprint, near
from test_audit import entries_of, exported  # noqa: F401 - fixture (redefined by the tests' parameters)
from test_audit_tamper import resign_all, verify as audit_verify
from test_intake import batch, refused, rows, submit
from test_negotiation import stub, the_proposal

A, B = "records-office", "city-museum"
OTHER = "other.example.org/dedup-log"


@pytest.fixture
def second(consortium, tmp_path):
    """A second consortium: the same CA, members and member keys; its own log and origin."""
    from dedup import pki
    from dedup.coordinator.settings import CoordinatorSettings

    log = NoteSigner.generate(OTHER)
    pki.write_private(tmp_path / "other-log.key", log.to_string().encode())
    data = consortium.settings.model_dump(mode="json")
    data.update(log_key=str(tmp_path / "other-log.key"), log_origin=OTHER, database=str(tmp_path / "other.sqlite"))
    c = Consortium(tmp_path, consortium.ca_pem, consortium.ca, log, consortium.parties,
                   CoordinatorSettings.model_validate(data))
    c.start()
    yield c
    c.stop()


def _same_batches(c: Consortium, origin: str) -> None:
    fp = fingerprint(7)
    for member, assets in ((A, [asset("a1", fp, width=4000, height=3000)]),
                           (B, [asset("b1", near(fp, 3), width=1000, height=750)])):
        req = batch(c, member, assets)
        req.manifest.CopyFrom(sign_statement(c.parties[member].signer, asset_pb2.BatchManifest.FromString(
            req.manifest.body), origin=origin))
        submit(c, member, req)


def test_a_vote_made_for_one_consortium_is_refused_by_another(consortium, second):
    _same_batches(consortium, ORIGIN)
    _same_batches(second, OTHER)
    p1, p2 = the_proposal(consortium, A), the_proposal(second, A)
    assert (p1.proposal_id, p1.cluster_id) == (p2.proposal_id, p2.cluster_id)  # the ids alone bind nothing
    body = S.MasterVote(proposal_id=p1.proposal_id, cluster_id=p1.cluster_id, member_id=A,
                        choice=S.VOTE_CHOICE_REJECT, reason="our print is the camera original", voted_unix=1)
    made_for_first = sign_statement(consortium.parties[A].signer, body, origin=ORIGIN)
    stub(consortium, A).Vote(N.VoteRequest(vote=made_for_first), timeout=10)

    before = {t: rows(second, t) for t in ("votes", "log_entries")}
    with pytest.raises(grpc.RpcError) as err:
        stub(second, A).Vote(N.VoteRequest(vote=made_for_first), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert err.value.details() == f"bad signature by {A!r} on dedup.v1.MasterVote (for log {OTHER!r})"
    assert {t: rows(second, t) for t in ("votes", "log_entries")} == before
    # The member's own vote for the second log, the same body, is taken there.
    stub(second, A).Vote(N.VoteRequest(vote=sign_statement(consortium.parties[A].signer, body, origin=OTHER)),
                         timeout=10)
    assert rows(second, "votes") == before["votes"] + 1


def test_a_batch_made_for_one_consortium_is_refused_by_another(consortium, second):
    req = batch(consortium, A, [asset("a1", fingerprint(3))])  # signed for the first log
    submit(consortium, A, req)
    err = refused(second, A, req)
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert err.details() == f"bad signature by {A!r} on dedup.v1.BatchManifest (for log {OTHER!r})"


def test_the_auditor_refuses_a_statement_made_for_another_log(exported, capsys, tmp_path):  # noqa: F811
    path, log = exported
    es = entries_of(path)
    k = next(i for i, e in enumerate(es) if parse_entry(e).type == asset_pb2.BatchManifest.DESCRIPTOR.full_name)
    stmt = parse_entry(es[k])
    signer = NoteSigner.generate(stmt.signer)  # a stand-in key, admitted below in place of the member's
    admitted = [i for i, e in enumerate(es) if parse_entry(e).type == S.MemberAdmitted.DESCRIPTOR.full_name]
    for i in admitted:
        body = S.MemberAdmitted.FromString(parse_entry(es[i]).body)
        if body.member_id == stmt.signer:
            body.public_key = signer.verifier().public_bytes()
            es[i] = sign_statement(log, body, origin=ORIGIN).SerializeToString(deterministic=True)
    manifest = asset_pb2.BatchManifest.FromString(stmt.body)
    es[k] = sign_statement(signer, manifest, origin=ORIGIN).SerializeToString(deterministic=True)
    resign_all(path, log, es, [3, 7, 11])
    code, _, err = audit_verify(capsys, path)
    assert code == 0, err  # the stand-in key, signing for this log, is accepted
    es[k] = sign_statement(signer, manifest, origin=OTHER).SerializeToString(deterministic=True)
    resign_all(path, log, es, [3, 7, 11])
    code, _, err = audit_verify(capsys, path)
    assert code == 1
    assert err == f"log NOT verified: entry {k}: bad signature by {stmt.signer!r} on dedup.v1.BatchManifest\n"


def test_a_clean_export_of_each_log_verifies_with_its_own_statements(consortium, second, tmp_path):
    _same_batches(consortium, ORIGIN)
    _same_batches(second, OTHER)
    for c, name in ((consortium, "first"), (second, "second")):
        export_log(c.server.core.store, tmp_path / name, c.log_signer.verifier().to_string())
        report = verify_export(tmp_path / name, c.log_signer.verifier())
        assert (report.origin, report.batches) == (c.settings.log_origin, 2)


def _unbound(signer: NoteSigner, entry: bytes) -> bytes:
    """``entry`` signed as releases before statements were bound to their log signed."""
    from dedup.signing import unbound_pae

    stmt = parse_entry(entry)
    stmt.signature = signer.sign(unbound_pae(stmt.type, stmt.body))
    return stmt.SerializeToString(deterministic=True)


@pytest.mark.parametrize("workers", [0, 1], ids=["in process", "worker process"])
def test_a_log_begun_before_statements_were_bound_still_verifies(exported, workers):  # noqa: F811
    """Entries an earlier release signed for no log are accepted before the log's first bound
    statement, and refused after it."""
    from dedup.audit.verify import AuditFailure

    path, log = exported
    es = entries_of(path)
    mine = [i for i, e in enumerate(es) if parse_entry(e).signer == log.name]
    assert mine[:3] == [0, 1, 2]  # the admissions come first
    old = [_unbound(log, e) if i < 3 else e for i, e in enumerate(es)]
    resign_all(path, log, old, [3, 7, 11])
    report = verify_export(path, log.verifier(), workers=workers)
    assert (report.unbound, report.entries) == (3, 11)
    assert verify_export(path, log.verifier(), workers=workers).as_dict()["unbound"] == 3

    late = mine[-1]
    assert late > 3
    resign_all(path, log, [_unbound(log, e) if i == late else e for i, e in enumerate(es)], [3, 7, 11])
    typ = parse_entry(es[late]).type
    with pytest.raises(AuditFailure, match=f"^entry {late}: {typ} by {log.name!r} is signed for no log "
                                           r"\(as releases before statements were bound to their log signed\), "
                                           "after entry 0, which is signed for this log$"):
        verify_export(path, log.verifier(), workers=workers)
