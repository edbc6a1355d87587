"""Ballots (many votes under one member signature) and the coordinator's checkpointed entries,
against a real coordinator over mutual TLS, then audited offline from its export."""

from __future__ import annotations

import json

import grpc
import pytest

from dedup.coordinator.export import export_log
from dedup.note import NoteSigner
from dedup.signing import CHECKPOINTED_TYPES, parse_body, parse_entry, sign_statement
from dedup.v1 import negotiation_pb2 as N, statement_pb2, statements_pb2 as S

from conftest import ORIGIN, asset, fingerprint, near
from test_audit import entries_of
from test_audit_tamper import resign_all, verify
from test_intake import batch, submit
from test_negotiation import A, ACCEPT, B, C, REJECT, consortium, listed, snapshot, stub, vote  # noqa: F401


def clusters(consortium, n: int, *, other=B) -> list[N.ProposalView]:
    """``n`` pictures held by A (the better copy) and ``other``: one open proposal each."""
    for k in range(n):
        fp = fingerprint(700 + k)
        submit(consortium, A, batch(consortium, A, [asset(f"a{k}", fp, width=4000, height=3000)], seq=k + 1))
        submit(consortium, other, batch(consortium, other, [asset(f"o{k}", near(fp, 4))], seq=k + 1))
    ps = sorted(listed(consortium, A).proposals, key=lambda p: p.own_asset_ids[0])
    assert len(ps) == n
    return ps


def ballot_stmt(consortium, member, votes, *, signer=None, ballot_member=None):
    body = S.MasterBallot(member_id=ballot_member or member, cast_unix=5, votes=votes)
    return sign_statement(signer or consortium.parties[member].signer, body, origin=ORIGIN)


def ballot_vote(member, p, choice=ACCEPT, **fields):
    return S.MasterVote(proposal_id=fields.pop("proposal_id", p.proposal_id),
                        cluster_id=fields.pop("cluster_id", p.cluster_id),
                        member_id=fields.pop("member_id", member), choice=choice, voted_unix=5, **fields)


def cast(consortium, member, votes, *, via=None, **kw) -> N.CastBallotResponse:
    return stub(consortium, via or member).CastBallot(
        N.CastBallotRequest(ballot=ballot_stmt(consortium, member, votes, **kw)), timeout=10)


def log(consortium) -> list[statement_pb2.SignedStatement]:
    return [parse_entry(bytes(e)) for (e,) in consortium.query("SELECT entry FROM log_entries ORDER BY idx")]


def refused(consortium, member, votes, **kw) -> grpc.RpcError:
    before = snapshot(consortium)
    with pytest.raises(grpc.RpcError) as info:
        cast(consortium, member, votes, **kw)
    assert snapshot(consortium) == before, "a refused ballot stored something"
    return info.value


def test_one_ballot_answers_many_proposals_in_one_entry(consortium):
    ps = clusters(consortium, 3)
    size = len(log(consortium))
    got = cast(consortium, A, [ballot_vote(A, p) for p in ps])
    entries = log(consortium)
    # One member-signed entry for the three votes, and nothing else.
    assert len(entries) == size + 1 and got.log_index == size
    assert (entries[-1].type, entries[-1].signer) == ("dedup.v1.MasterBallot", A)
    assert not got.already_stored
    assert [(r.proposal_id, r.status, r.outcome_log_index) for r in got.results] == [
        (p.proposal_id, N.PROPOSAL_STATUS_OPEN, 0) for p in ps]
    assert consortium.query("SELECT proposal_id, member_id, log_index FROM votes ORDER BY proposal_id") == sorted(
        (p.proposal_id, A, size) for p in ps)

    # B accepts two and rejects one in its ballot: two outcomes follow it, each citing both ballots.
    got = cast(consortium, B, [ballot_vote(B, ps[0]), ballot_vote(B, ps[1], REJECT, reason="ours is older"),
                               ballot_vote(B, ps[2])])
    b_index = size + 1
    assert got.log_index == b_index
    assert [(r.status, r.outcome_log_index) for r in got.results] == [
        (N.PROPOSAL_STATUS_AGREED, b_index + 1), (N.PROPOSAL_STATUS_DISPUTED, 0), (N.PROPOSAL_STATUS_AGREED, b_index + 2)]
    agreed = [parse_body(e) for e in log(consortium)[b_index + 1:]]
    assert [(a.proposal_id, a.basis, list(a.vote_indexes)) for a in agreed] == [
        (ps[0].proposal_id, S.AGREEMENT_BASIS_UNANIMOUS, [size, b_index]),
        (ps[2].proposal_id, S.AGREEMENT_BASIS_UNANIMOUS, [size, b_index])]

    # The same ballot sent again (its answer lost): acknowledged, nothing stored twice.
    before = snapshot(consortium)
    again = stub(consortium, B).CastBallot(N.CastBallotRequest(ballot=parse_entry(
        bytes(consortium.query("SELECT entry FROM log_entries WHERE idx=?", (b_index,))[0][0]))), timeout=10)
    assert again.already_stored and again.log_index == b_index
    assert [r.status for r in again.results] == [N.PROPOSAL_STATUS_AGREED, N.PROPOSAL_STATUS_DISPUTED,
                                                 N.PROPOSAL_STATUS_AGREED]
    assert snapshot(consortium) == before


def test_a_ballot_is_refused_whole(consortium):
    ps = clusters(consortium, 3)
    vote(consortium, A, ps[2])  # on its own, earlier
    good = [ballot_vote(A, p) for p in ps[:2]]
    cases = [
        ([], {}, grpc.StatusCode.INVALID_ARGUMENT, "empty_ballot", "the ballot holds no vote"),
        (good + [ballot_vote(A, ps[0])], {}, grpc.StatusCode.INVALID_ARGUMENT, "duplicate_vote",
         f"vote 2 (proposal {ps[0].proposal_id!r}): the ballot votes twice on this proposal"),
        (good + [ballot_vote(A, ps[2], member_id=B)], {}, grpc.StatusCode.INVALID_ARGUMENT, "member_mismatch",
         f"vote 2 (proposal {ps[2].proposal_id!r}) names member {B!r}, signer is {A!r}"),
        (good + [ballot_vote(A, ps[2], REJECT)], {}, grpc.StatusCode.INVALID_ARGUMENT, "missing_reason",
         f"vote 2 (proposal {ps[2].proposal_id!r}): a reason is required"),
        (good + [ballot_vote(A, ps[0], proposal_id="p-none")], {}, grpc.StatusCode.NOT_FOUND, "unknown_proposal",
         "vote 2 of the ballot: there is no proposal 'p-none' open to votes"),
        (good + [ballot_vote(A, ps[2])], {}, grpc.StatusCode.ALREADY_EXISTS, "already_voted", None),
        (good, {"ballot_member": B}, grpc.StatusCode.INVALID_ARGUMENT, "member_mismatch",
         f"ballot names member {B!r}, signer is {A!r}"),
        (good, {"via": B}, grpc.StatusCode.PERMISSION_DENIED, "identity_mismatch", None),
        (good, {"signer": NoteSigner.generate(A)}, grpc.StatusCode.UNAUTHENTICATED, "bad_signature", None),
        ([ballot_vote(A, ps[0])] * 1001, {}, grpc.StatusCode.RESOURCE_EXHAUSTED, "oversized_ballot",
         "the ballot holds 1001 votes; at most 1000"),
        # Each vote's free text and claim kind are checked with the ballot's fields.
        (good + [ballot_vote(A, ps[2], REJECT, reason="r" * 4097)], {}, grpc.StatusCode.INVALID_ARGUMENT,
         "oversized_field", "the ballot.votes[2]: reason is 4097 characters long; dedup.v1.MasterVote.reason holds "
                            "at most 4096"),
        (good + [ballot_vote(A, ps[2], REJECT, reason="older\x1b]8;;")], {}, grpc.StatusCode.INVALID_ARGUMENT,
         "bad_text", "the ballot.votes[2]: reason holds the control character U+001B at character 5; free text may "
                     "hold tab and newline, no other control character"),
        (good + [ballot_vote(A, ps[2], S.VOTE_CHOICE_CLAIM, claimed_master=ps[2].copies[0].ref,
                             claim_kind="Jane Doe's register")], {}, grpc.StatusCode.INVALID_ARGUMENT,
         "bad_claim_kind", "the ballot.votes[2]: claim_kind is not a claim kind: one lowercase word of a-z 0-9 _ "
                           "(at most 64), e.g. camera_original"),
    ]
    for votes, kw, code, reason, message in cases:
        err = refused(consortium, A, votes, **kw)
        assert err.code() == code, (reason, err.details())
        if message is not None:
            assert err.details() == message, reason
        else:
            assert err.details(), reason
    # C holds no copy in these clusters.
    err = refused(consortium, C, [ballot_vote(C, ps[0])])
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED and err.details().startswith("vote 0 of the ballot: ")
    # And the good part of every refused ballot is still open to a ballot of its own.
    assert [r.status for r in cast(consortium, A, good).results] == [N.PROPOSAL_STATUS_OPEN] * 2


def test_the_coordinator_signs_only_what_must_stand_on_its_own(consortium):
    ps = clusters(consortium, 1)
    vote(consortium, A, ps[0])
    vote(consortium, B, ps[0])
    by_type: dict[str, set[bool]] = {}
    for e in log(consortium):
        by_type.setdefault(e.type.removeprefix("dedup.v1."), set()).add(len(e.signature) == 64)
        if not e.signature:
            # Named by the log key, which the checkpoints over it are signed with.
            assert (e.signer, e.key_id) == (consortium.log_signer.name, consortium.log_signer.key_id)
    assert by_type == {"MemberAdmitted": {True}, "BatchManifest": {True}, "MatchRecorded": {False},
                       "MasterProposed": {False}, "MasterVote": {True}, "MasterAgreed": {False}}
    assert CHECKPOINTED_TYPES == {"dedup.v1.MatchRecorded", "dedup.v1.MasterProposed", "dedup.v1.MasterAgreed",
                                  "dedup.v1.LookupsCounted"}


@pytest.fixture
def balloted(consortium, tmp_path):
    """Two clusters answered by ballots (one agreed unanimously, one disputed), exported."""
    ps = clusters(consortium, 2)
    cast(consortium, A, [ballot_vote(A, p) for p in ps])
    cast(consortium, B, [ballot_vote(B, ps[0]), ballot_vote(B, ps[1], REJECT, reason="ours is older")])
    out = tmp_path / "export"
    export_log(consortium.server.core.store, out, consortium.log_signer.verifier().to_string())
    return out, consortium, ps


def find(path, typ: str, signer: str | None = None) -> tuple[int, statement_pb2.SignedStatement]:
    for i, e in enumerate(entries_of(path)):
        stmt = parse_entry(e)
        if stmt.type == typ and signer in (None, stmt.signer):
            return i, stmt
    raise AssertionError(f"no {typ} entry")


def replace(path, consortium, index, stmt) -> None:
    es = entries_of(path)
    es[index] = stmt.SerializeToString(deterministic=True)
    resign_all(path, consortium.log_signer, es, [len(es)])


def test_an_export_with_ballots_verifies(balloted, capsys):
    path, _, _ = balloted
    code, out, err = verify(capsys, path)
    assert code == 0, err
    assert "  4 votes (2 ballots), 0 rulings, 1 agreed master\n" in out
    code, out, _ = verify(capsys, path, "--json")
    report = json.loads(out)
    assert (report["votes"], report["ballots"], report["agreements"]) == (4, 2, 1)


def test_a_ballot_vote_by_a_member_holding_no_copy_is_caught(balloted, capsys):
    path, c, ps = balloted
    i, stmt = find(path, "dedup.v1.MasterBallot", B)
    forged = S.MasterBallot(member_id=C, cast_unix=5, votes=[ballot_vote(C, ps[0]), ballot_vote(C, ps[1])])
    replace(path, c, i, sign_statement(c.parties[C].signer, forged, origin=ORIGIN))
    code, _, err = verify(capsys, path)
    assert code == 1
    assert err == (f"log NOT verified: entry {i}: vote on proposal {ps[0].proposal_id!r} signed by {C}, who holds "
                   f"no copy in cluster {ps[0].cluster_id}\n")


def test_a_ballot_naming_another_member_or_voting_twice_is_caught(balloted, capsys):
    path, c, ps = balloted
    i, _ = find(path, "dedup.v1.MasterBallot", B)
    signer = c.parties[B].signer
    for body, message in (
        (S.MasterBallot(member_id=A, votes=[ballot_vote(B, ps[0])]), f"ballot names member {A!r} but is signed by {B!r}"),
        (S.MasterBallot(member_id=B, votes=[ballot_vote(B, ps[0]), ballot_vote(B, ps[0])]),
         f"ballot by {B} votes twice on proposal {ps[0].proposal_id!r}"),
        (S.MasterBallot(member_id=B, votes=[]), f"ballot by {B} holds no vote"),
        (S.MasterBallot(member_id=B, votes=[ballot_vote(A, ps[0])]),
         f"vote on proposal {ps[0].proposal_id!r} names member {A!r} but is signed by {B!r}"),
    ):
        replace(path, c, i, sign_statement(signer, body, origin=ORIGIN))
        code, _, err = verify(capsys, path)
        assert (code, err) == (1, f"log NOT verified: entry {i}: {message}\n")


def test_only_checkpointed_coordinator_statements_may_go_unsigned(balloted, capsys):
    path, c, _ = balloted
    es = entries_of(path)
    allowed = ", ".join(sorted(t.removeprefix("dedup.v1.") for t in CHECKPOINTED_TYPES))
    for typ, signer in (("dedup.v1.MemberAdmitted", None), ("dedup.v1.BatchManifest", A),
                        ("dedup.v1.MasterBallot", B)):
        i, stmt = find(path, typ, signer)
        stmt.ClearField("signature")
        replace(path, c, i, stmt)
        code, _, err = verify(capsys, path)
        assert (code, err) == (1, f"log NOT verified: entry {i}: {typ} by {stmt.signer!r} carries no signature; "
                                  f"only the coordinator's {allowed} entries are signed by the checkpoints alone\n")
        resign_all(path, c.log_signer, es, [len(es)])
    # A checkpointed statement that does carry a signature, as earlier releases logged them, verifies.
    i, stmt = find(path, "dedup.v1.MatchRecorded")
    replace(path, c, i, sign_statement(c.log_signer, parse_body(stmt), origin=ORIGIN))
    assert verify(capsys, path)[0] == 0
    # One named by a member, or by a key id the log never put in force, does not.
    for signer, key_id, message in (
        (A, c.parties[A].signer.key_id, f"member {A!r} may not sign dedup.v1.MatchRecorded statements"),
        (c.log_signer.name, b"\x00\x01\x02\x03", f"statement signed by key id 00010203, not the known key "
                                                 f"{c.log_signer.key_id.hex()} of {c.log_signer.name!r}"),
    ):
        replace(path, c, i, statement_pb2.SignedStatement(type=stmt.type, body=stmt.body, signer=signer, key_id=key_id))
        code, _, err = verify(capsys, path)
        assert (code, err) == (1, f"log NOT verified: entry {i}: {message}\n")
