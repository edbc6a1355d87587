"""`dedup audit verify` on a negotiated log from a real coordinator: the clean export verifies,
and each forged vote, ruling, outcome or proposal makes it exit 1 naming the entry."""

from __future__ import annotations

import pytest

from dedup.coordinator.export import export_log
from dedup.signing import parse_body, parse_entry, sign_statement
from dedup.v1 import statements_pb2 as S

from conftest import asset, fingerprint, near, opaque
from test_audit import ORIGIN, entries_of  # noqa: F401
from test_audit_tamper import resign_all, verify
from test_intake import batch, submit
from test_negotiation import (A, ARBITER, B, C, REJECT, centre_crop_pair, consortium, listed,  # noqa: F401 - fixture
                              ruling, vote)


@pytest.fixture
def negotiated(consortium, tmp_path):
    """Four clusters: agreed unanimously, by ruling, at the deadline, and a crop still open."""
    core = consortium.server.core
    for k, (m, other) in enumerate(((A, B), (A, B), (A, C))):
        fp = fingerprint(500 + k)
        submit(consortium, m, batch(consortium, m, [asset(f"a{k}", fp, width=4000, height=3000)], seq=k + 1))
        submit(consortium, other, batch(consortium, other, [asset(f"o{k}", near(fp, 4))], seq=k + 1))
    ps = {p.own_asset_ids[0]: p for p in listed(consortium, A).proposals}
    p0, p1, p2 = ps[opaque("a0")], ps[opaque("a1")], ps[opaque("a2")]
    vote(consortium, A, p0)
    vote(consortium, B, p0)
    vote(consortium, B, p1, REJECT, reason="ours is the camera original")
    ruling(consortium, p1, S.AssetRef(member_id=B, asset_id=opaque("o1")))
    vote(consortium, A, p2)
    core.expire_deadlines(p2.deadline_unix)
    # Proposed after the deadline check, so it stays open.
    full, crop = centre_crop_pair(tmp_path, "a9", "c9")
    submit(consortium, A, batch(consortium, A, [full], seq=9))
    submit(consortium, C, batch(consortium, C, [crop], seq=9))
    out = tmp_path / "export"
    export_log(core.store, out, consortium.log_signer.verifier().to_string())
    return out, consortium


def find(path, cls, pred=lambda b: True):
    """(index, signed statement, body) of the first entry of type ``cls`` satisfying ``pred``."""
    for i, e in enumerate(entries_of(path)):
        stmt = parse_entry(e)
        body = parse_body(stmt)
        if isinstance(body, cls) and pred(body):
            return i, stmt, body
    raise AssertionError(f"no {cls.__name__} entry")


def tamper(path, consortium, index, new_stmt, *, insert=False):
    es = entries_of(path)
    e = new_stmt.SerializeToString(deterministic=True)
    es = es[:index] + [e] + es[index + (0 if insert else 1):]
    resign_all(path, consortium.log_signer, es, [len(es)])


def test_clean_negotiated_export_verifies(negotiated, capsys):
    path, _ = negotiated
    code, out, err = verify(capsys, path)
    assert code == 0, err
    assert "  4 votes, 1 ruling, 3 agreed masters\n" in out
    _, _, crop = find(path, S.MasterProposed, lambda b: any(c.derived for c in b.copies))
    assert crop.deciding_rule == "not_derived"
    bases = [find(path, S.MasterAgreed, lambda b, k=k: b.basis == k)[2].basis for k in (1, 2, 3)]
    assert bases == [S.AGREEMENT_BASIS_UNANIMOUS, S.AGREEMENT_BASIS_DEADLINE, S.AGREEMENT_BASIS_RULING]


def test_vote_by_a_member_holding_no_copy(negotiated, capsys):
    path, c = negotiated
    i, _, v = find(path, S.MasterVote, lambda b: b.member_id == A)
    forged = S.MasterVote(proposal_id=v.proposal_id, cluster_id=v.cluster_id, member_id=C, choice=S.VOTE_CHOICE_ACCEPT)
    tamper(path, c, i, sign_statement(c.parties[C].signer, forged, origin=ORIGIN))
    code, _, err = verify(capsys, path)
    assert code == 1
    assert err == (f"log NOT verified: entry {i}: vote on proposal {v.proposal_id!r} signed by {C}, who holds no copy"
                   f" in cluster {v.cluster_id}\n")


def test_second_vote_by_one_member(negotiated, capsys):
    path, c = negotiated
    i, stmt, v = find(path, S.MasterVote, lambda b: b.choice == S.VOTE_CHOICE_REJECT)
    again = S.MasterVote(proposal_id=v.proposal_id, cluster_id=v.cluster_id, member_id=B, choice=S.VOTE_CHOICE_ACCEPT)
    tamper(path, c, i + 1, sign_statement(c.parties[B].signer, again, origin=ORIGIN), insert=True)
    code, _, err = verify(capsys, path)
    assert code == 1
    assert err == (f"log NOT verified: entry {i + 1}: second vote by {B} on proposal {v.proposal_id!r}"
                   f" (the first is entry {i})\n")


def test_outcome_that_does_not_follow_from_the_votes(negotiated, capsys):
    path, c = negotiated
    i, _, a = find(path, S.MasterAgreed, lambda b: b.basis == S.AGREEMENT_BASIS_UNANIMOUS)
    a.master.CopyFrom(S.AssetRef(member_id=B, asset_id=opaque("o0")))
    tamper(path, c, i, sign_statement(c.log_signer, a, origin=ORIGIN))
    code, _, err = verify(capsys, path)
    assert code == 1
    assert err == (f"log NOT verified: entry {i}: outcome of proposal {a.proposal_id!r} agrees master {B}/{opaque('o0')},"
                   f" not the proposed {A}/{opaque('a0')}\n")


def test_unanimity_without_every_holder(negotiated, capsys):
    path, c = negotiated
    i, _, a = find(path, S.MasterAgreed, lambda b: b.basis == S.AGREEMENT_BASIS_DEADLINE)
    a.basis = S.AGREEMENT_BASIS_UNANIMOUS
    del a.silent_members[:]
    tamper(path, c, i, sign_statement(c.log_signer, a, origin=ORIGIN))
    code, _, err = verify(capsys, path)
    assert code == 1
    assert err == f"log NOT verified: entry {i}: outcome of proposal {a.proposal_id!r} claims unanimity, but {C} did not accept it\n"


def test_deadline_outcome_before_the_deadline(negotiated, capsys):
    path, c = negotiated
    i, _, a = find(path, S.MasterAgreed, lambda b: b.basis == S.AGREEMENT_BASIS_DEADLINE)
    a.agreed_unix -= 1
    tamper(path, c, i, sign_statement(c.log_signer, a, origin=ORIGIN))
    code, _, err = verify(capsys, path)
    assert code == 1 and f"entry {i}: outcome of proposal {a.proposal_id!r} is agreed at the deadline" in err
    assert "before the deadline" in err


def test_ruling_by_a_non_arbiter(negotiated, capsys):
    path, c = negotiated
    i, _, r = find(path, S.MasterRuling)
    r.arbiter_id = A
    tamper(path, c, i, sign_statement(c.parties[A].signer, r, origin=ORIGIN))
    code, _, err = verify(capsys, path)
    assert code == 1
    assert err == (f"log NOT verified: entry {i}: ruling on proposal {r.proposal_id!r} signed by {A}, who was not"
                   " admitted as an arbiter\n")


def test_derived_flag_removed_from_a_crop(negotiated, capsys):
    path, c = negotiated
    i, _, p = find(path, S.MasterProposed, lambda b: any(x.derived for x in b.copies))
    for x in p.copies:
        x.derived = False
    p.master.CopyFrom(S.AssetRef(member_id=C, asset_id=opaque("c9")))
    p.deciding_rule = "pixel_count"
    tamper(path, c, i, sign_statement(c.log_signer, p, origin=ORIGIN))
    code, _, err = verify(capsys, path)
    assert code == 1
    assert err == (f"log NOT verified: entry {i}: proposal {p.proposal_id!r} marks copy {C}/{opaque('c9')} derived=False, but the"
                   " log's matches show it is a crop or bordered copy of another copy\n")


def test_vote_on_a_superseded_proposal(negotiated, capsys):
    path, c = negotiated
    es = entries_of(path)
    i, _, p = find(path, S.MasterProposed, lambda b: any(x.derived for x in b.copies))
    q = S.MasterProposed()
    q.CopyFrom(p)
    q.proposal_id, q.supersedes, q.reason = p.proposal_id.replace("/p1", "/p2"), p.proposal_id, "copy_changed"
    late = S.MasterVote(proposal_id=p.proposal_id, cluster_id=p.cluster_id, member_id=A, choice=S.VOTE_CHOICE_ACCEPT)
    es += [sign_statement(c.log_signer, q, origin=ORIGIN).SerializeToString(deterministic=True),
           sign_statement(c.parties[A].signer, late, origin=ORIGIN).SerializeToString(deterministic=True)]
    resign_all(path, c.log_signer, es, [len(es)])
    code, _, err = verify(capsys, path)
    assert code == 1
    assert err == f"log NOT verified: entry {len(es) - 1}: vote on proposal {p.proposal_id!r}, which was superseded\n"
