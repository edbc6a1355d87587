"""Master negotiation against a real coordinator over mutual TLS on loopback (SQLite and
PostgreSQL): proposals, votes, disputes, rulings, deadlines, re-proposals and every refusal."""

from __future__ import annotations

import threading

import grpc
import pytest

from dedup.note import NoteSigner
from dedup.signing import parse_body, parse_entry, sign_statement
from dedup.v1 import negotiation_pb2 as N, negotiation_pb2_grpc, statements_pb2 as S

from conftest import ORIGIN, asset, fingerprint, make_party, near, opaque, record_of
from test_intake import batch, rows, submit, withdrawal

A, B, C = "records-office", "city-museum", "university-library"
ARBITER = "records-service"
ACCEPT, REJECT, CLAIM = S.VOTE_CHOICE_ACCEPT, S.VOTE_CHOICE_REJECT, S.VOTE_CHOICE_CLAIM


@pytest.fixture
def consortium(consortium):
    """The shared consortium plus an arbiter member (admitted as such on restart)."""
    from dedup.coordinator.settings import MemberSettings

    party = make_party(consortium.root, consortium.ca, ARBITER)
    consortium.parties[ARBITER] = party
    consortium.settings.members.append(MemberSettings(id=ARBITER, name="Records Service",
                                                      public_key=party.signer.verifier().to_string(), arbiter=True))
    consortium.stop()
    consortium.start()
    return consortium


def stub(consortium, member) -> negotiation_pb2_grpc.NegotiationServiceStub:
    return negotiation_pb2_grpc.NegotiationServiceStub(consortium.channel(member))


def listed(consortium, member, *statuses, page_size=0, page_token=""):
    return stub(consortium, member).ListProposals(
        N.ListProposalsRequest(status=statuses, page_size=page_size, page_token=page_token), timeout=10)


def the_proposal(consortium, member=A, *statuses) -> N.ProposalView:
    p, = listed(consortium, member, *statuses).proposals
    return p


def vote_stmt(consortium, member, p, choice=ACCEPT, *, signer=None, **fields):
    body = S.MasterVote(proposal_id=fields.pop("proposal_id", p.proposal_id),
                        cluster_id=fields.pop("cluster_id", p.cluster_id),
                        member_id=fields.pop("member_id", member), choice=choice, voted_unix=1, **fields)
    return sign_statement(signer or consortium.parties[member].signer, body, origin=ORIGIN)


def vote(consortium, member, p, choice=ACCEPT, *, via=None, **kw):
    return stub(consortium, via or member).Vote(N.VoteRequest(vote=vote_stmt(consortium, member, p, choice, **kw)),
                                                timeout=10)


def ruling(consortium, p, master, *, member=ARBITER, **fields):
    body = S.MasterRuling(proposal_id=p.proposal_id, cluster_id=p.cluster_id, master=master,
                          reasoning=fields.pop("reasoning", "the accession register names the camera original"),
                          arbiter_id=fields.pop("arbiter_id", member), ruled_unix=2, **fields)
    return stub(consortium, member).Rule(N.RuleRequest(ruling=sign_statement(consortium.parties[member].signer, body, origin=ORIGIN)),
                                         timeout=10)


def ref(member, name):
    return S.AssetRef(member_id=member, asset_id=opaque(name))


def entries(consortium):
    return [parse_body(parse_entry(bytes(e))) for (e,) in consortium.query("SELECT entry FROM log_entries ORDER BY idx")]


def of_type(consortium, cls):
    return [e for e in entries(consortium) if isinstance(e, cls)]


def two_copies(consortium, fp_seed=1):
    """A holds the better copy (a1), B a smaller one (b1): one proposal, master a1."""
    fp = fingerprint(fp_seed)
    submit(consortium, A, batch(consortium, A, [asset("a1", fp, width=4000, height=3000)]))
    submit(consortium, B, batch(consortium, B, [asset("b1", near(fp, 5), width=1000, height=750)]))
    return fp


def snapshot(consortium):
    return (rows(consortium, "log_entries"), rows(consortium, "votes"), rows(consortium, "rulings"),
            consortium.query("SELECT proposal_id, status, outcome_index FROM negotiations ORDER BY proposal_id"))


def refused_vote(consortium, member, p, choice=ACCEPT, **kw):
    before = snapshot(consortium)
    with pytest.raises(grpc.RpcError) as info:
        vote(consortium, member, p, choice, **kw)
    assert snapshot(consortium) == before, "a refused vote stored something"
    return info.value


def refused_ruling(consortium, p, master, **kw):
    before = snapshot(consortium)
    with pytest.raises(grpc.RpcError) as info:
        ruling(consortium, p, master, **kw)
    assert snapshot(consortium) == before, "a refused ruling stored something"
    return info.value


def test_unanimous_agreement(consortium):
    two_copies(consortium)
    p = the_proposal(consortium, A)
    assert (p.master.member_id, p.master.asset_id, p.deciding_rule, p.reason) == (A, opaque("a1"), "pixel_count", "new_cluster")
    assert p.status == N.PROPOSAL_STATUS_OPEN and p.policy_version == "dedup-master-policy/2"
    assert p.deadline_unix == p.proposed_unix + 14 * 86400
    assert list(p.own_asset_ids) == [opaque("a1")] and list(the_proposal(consortium, B).own_asset_ids) == [opaque("b1")]
    assert [c.ref.asset_id for c in p.copies] == [opaque("b1"), opaque("a1")]  # sorted by (member, asset)
    assert p.copies[0].evidence.width == 1000
    # C holds no copy: it sees nothing; the arbiter sees every proposal.
    assert list(listed(consortium, C).proposals) == []
    assert the_proposal(consortium, ARBITER).proposal_id == p.proposal_id

    r1 = vote(consortium, A, p)
    assert (r1.status, r1.outcome_log_index, r1.already_stored) == (N.PROPOSAL_STATUS_OPEN, 0, False)
    assert [v.member_id for v in the_proposal(consortium, B).votes] == [A]
    r2 = vote(consortium, B, p)
    assert r2.status == N.PROPOSAL_STATUS_AGREED and r2.outcome_log_index == r2.log_index + 1
    agreed, = of_type(consortium, S.MasterAgreed)
    assert (agreed.proposal_id, agreed.basis, list(agreed.vote_indexes)) == (
        p.proposal_id, S.AGREEMENT_BASIS_UNANIMOUS, [r1.log_index, r2.log_index])
    assert (agreed.master.member_id, agreed.master.asset_id) == (A, opaque("a1"))
    votes = of_type(consortium, S.MasterVote)
    assert [v.member_id for v in votes] == [A, B]
    # The votes are logged as the members signed them.
    (signer,), = consortium.query("SELECT entry FROM log_entries WHERE idx = ?", (r1.log_index,))
    assert parse_entry(bytes(signer)).signer == A
    # Agreed: no longer listed by default; listed on request with its outcome.
    assert list(listed(consortium, A).proposals) == []
    done = the_proposal(consortium, B, N.PROPOSAL_STATUS_AGREED)
    assert (done.basis, done.agreed_master.asset_id, done.outcome_log_index) == (
        S.AGREEMENT_BASIS_UNANIMOUS, opaque("a1"), r2.outcome_log_index)
    # The identical vote resent is acknowledged, nothing stored twice.
    n = rows(consortium, "log_entries")
    again = vote(consortium, B, p)
    assert again.already_stored and again.log_index == r2.log_index and rows(consortium, "log_entries") == n


def test_rejection_then_ruling(consortium):
    two_copies(consortium)
    p = the_proposal(consortium)
    r = vote(consortium, B, p, REJECT, reason="our copy is the only one with the original caption card")
    assert r.status == N.PROPOSAL_STATUS_DISPUTED
    # A later accept does not end a dispute.
    assert vote(consortium, A, p).status == N.PROPOSAL_STATUS_DISPUTED
    err = refused_ruling(consortium, p, ref(B, "b1"), member=A)
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED and "not admitted as an arbiter" in err.details()
    out = ruling(consortium, p, ref(B, "b1"))
    agreed = of_type(consortium, S.MasterAgreed)[-1]
    assert (agreed.basis, agreed.ruling_index, agreed.master.asset_id) == (S.AGREEMENT_BASIS_RULING, out.log_index, opaque("b1"))
    assert len(agreed.vote_indexes) == 2 and out.outcome_log_index == out.log_index + 1
    assert the_proposal(consortium, A, N.PROPOSAL_STATUS_AGREED).agreed_master.asset_id == opaque("b1")
    err = refused_ruling(consortium, p, ref(A, "a1"))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "already agreed" in err.details()


def test_claim_then_ruling(consortium):
    two_copies(consortium)
    p = the_proposal(consortium)
    r = vote(consortium, B, p, CLAIM, claimed_master=ref(B, "b1"), claim_kind="camera_original",
             claim_evidence="accession 1987.14.3")
    assert r.status == N.PROPOSAL_STATUS_DISPUTED
    v, = the_proposal(consortium, A).votes
    assert (v.choice, v.claim_kind, v.claim_evidence, v.claimed_master.asset_id) == (
        CLAIM, "camera_original", "accession 1987.14.3", opaque("b1"))
    err = refused_ruling(consortium, p, ref(C, "c9"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "not a copy in cluster" in err.details()
    ruling(consortium, p, ref(B, "b1"))
    assert of_type(consortium, S.MasterAgreed)[-1].master.asset_id == opaque("b1")


def test_ruling_needs_a_dispute(consortium):
    two_copies(consortium)
    p = the_proposal(consortium)
    err = refused_ruling(consortium, p, ref(A, "a1"))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "not disputed" in err.details()


def test_deadline_counts_silence_and_leaves_disputes(consortium):
    core = consortium.server.core
    two_copies(consortium, 1)
    p = the_proposal(consortium)
    fp = fingerprint(2)
    submit(consortium, A, batch(consortium, A, [asset("a2", fp, width=4000, height=3000)], seq=2))
    submit(consortium, C, batch(consortium, C, [asset("c2", near(fp, 3))]))
    q, = [x for x in listed(consortium, A).proposals if x.proposal_id != p.proposal_id]
    a = vote(consortium, A, p)
    vote(consortium, C, q, REJECT, reason="wrong picture")
    assert core.expire_deadlines(p.deadline_unix - 1) == []
    done = core.expire_deadlines(max(p.deadline_unix, q.deadline_unix))
    assert [pid for pid, _ in done] == [p.proposal_id]
    agreed = of_type(consortium, S.MasterAgreed)[-1]
    assert (agreed.basis, list(agreed.silent_members), list(agreed.vote_indexes)) == (
        S.AGREEMENT_BASIS_DEADLINE, [B], [a.log_index])
    assert agreed.agreed_unix >= p.deadline_unix
    assert {x.proposal_id: x.status for x in listed(consortium, A, *N.ProposalStatus.values()[1:]).proposals} == {
        p.proposal_id: N.PROPOSAL_STATUS_AGREED, q.proposal_id: N.PROPOSAL_STATUS_DISPUTED}
    # Nothing more to expire; a late vote is refused.
    assert core.expire_deadlines(q.deadline_unix + 10) == []
    err = refused_vote(consortium, B, p)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "already agreed" in err.details()


def test_better_copy_reopens_a_decision(consortium):
    fp = two_copies(consortium)
    p = the_proposal(consortium)
    vote(consortium, A, p)
    vote(consortium, B, p)
    submit(consortium, C, batch(consortium, C, [asset("c1", near(fp, 4), width=6000, height=4500, lossless=True)]))
    q = the_proposal(consortium, A)
    assert (q.supersedes, q.reason, q.master.asset_id) == (p.proposal_id, "copy_added", opaque("c1"))
    assert q.proposal_id != p.proposal_id and q.status == N.PROPOSAL_STATUS_OPEN
    old, = listed(consortium, A, N.PROPOSAL_STATUS_SUPERSEDED).proposals
    assert old.proposal_id == p.proposal_id and old.agreed_master.asset_id == opaque("a1")
    err = refused_vote(consortium, C, p)
    # C held no copy in the superseded proposal.
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    submit(consortium, A, batch(consortium, A, [asset("a9", fingerprint(99))], seq=2))
    err = refused_vote(consortium, A, p, REJECT, reason="changed my mind")
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    # A second look at the evidence of one copy is a re-proposal too.
    a1 = asset("a1", fp, width=4000, height=3000, quality=95)
    submit(consortium, A, batch(consortium, A, [a1], seq=3))
    r = the_proposal(consortium, B)
    assert (r.supersedes, r.reason) == (q.proposal_id, "copy_changed")
    err = refused_vote(consortium, B, q)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and f"superseded by proposal {r.proposal_id!r}" in err.details()


def test_withdrawn_master_triggers_a_new_proposal(consortium):
    fp = fingerprint(40)
    submit(consortium, A, batch(consortium, A, [asset("a1", fp, width=4000, height=3000)]))
    submit(consortium, B, batch(consortium, B, [asset("b1", near(fp, 4), width=1000, height=750)]))
    submit(consortium, C, batch(consortium, C, [asset("c1", near(fp, 6), width=2000, height=1500)]))
    p = the_proposal(consortium, B)
    assert p.master.asset_id == opaque("a1")
    consortium.intake(A).WithdrawAssets(withdrawal(consortium, A, [opaque("a1")]), timeout=10)
    q = the_proposal(consortium, B)
    assert (q.supersedes, q.reason, q.master.member_id, q.master.asset_id) == (p.proposal_id, "copy_withdrawn", C, opaque("c1"))
    assert {c.ref.member_id for c in q.copies} == {B, C}
    assert list(listed(consortium, A).proposals) == []  # A no longer holds a copy
    err = refused_vote(consortium, A, q)
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED and "holds no copy" in err.details()
    # B withdraws too: one member left, nothing to agree; the proposal takes no more votes.
    consortium.intake(B).WithdrawAssets(withdrawal(consortium, B, [opaque("b1")]), timeout=10)
    err = refused_vote(consortium, C, q)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "no longer held by two members" in err.details()


def test_concurrent_votes_give_one_outcome(consortium):
    fp = fingerprint(50)
    for k, m in enumerate((A, B, C)):
        submit(consortium, m, batch(consortium, m, [asset(f"{m[0]}1", near(fp, k + 1), width=1000 + k)]))
    p = the_proposal(consortium, A)
    assert len({c.ref.member_id for c in p.copies}) == 3
    barrier = threading.Barrier(6)
    results, errors = [], []

    def go(member, choice, **kw):
        barrier.wait()
        try:
            results.append((member, vote(consortium, member, p, choice, **kw)))
        except grpc.RpcError as exc:
            errors.append((member, exc.code()))

    # Each member sends its accept twice at once (a retry racing the first), and A also a
    # conflicting reject: exactly one of A's two different votes counts.
    jobs = [(A, ACCEPT, {}), (A, REJECT, {"reason": "no"}), (B, ACCEPT, {}), (B, ACCEPT, {}),
            (C, ACCEPT, {}), (C, ACCEPT, {})]
    threads = [threading.Thread(target=go, args=(m, ch), kwargs=kw) for m, ch, kw in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [(A, grpc.StatusCode.ALREADY_EXISTS)]
    assert rows(consortium, "votes") == 3 and len(of_type(consortium, S.MasterVote)) == 3
    a_choice = next(v.choice for v in of_type(consortium, S.MasterVote) if v.member_id == A)
    outcomes = of_type(consortium, S.MasterAgreed)
    status, = consortium.query("SELECT status FROM negotiations WHERE proposal_id = ?", (p.proposal_id,))
    if a_choice == ACCEPT:
        assert len(outcomes) == 1 and status == (N.PROPOSAL_STATUS_AGREED,)
    else:
        assert outcomes == [] and status == (N.PROPOSAL_STATUS_DISPUTED,)
    assert sum(r.already_stored for _, r in results) == 2


def test_every_vote_refusal_stores_nothing(consortium):
    two_copies(consortium)
    p = the_proposal(consortium)
    cases = [
        (dict(member=A, proposal_id="c-0000000000000000/p1"), grpc.StatusCode.NOT_FOUND, "no proposal"),
        (dict(member=C), grpc.StatusCode.PERMISSION_DENIED, "'university-library' holds no copy in cluster"),
        (dict(member=A, member_id=B, signer=consortium.parties[A].signer), grpc.StatusCode.INVALID_ARGUMENT,
         "vote names member 'city-museum'"),
        (dict(member=A, cluster_id="c-1111111111111111"), grpc.StatusCode.INVALID_ARGUMENT,
         "vote names cluster 'c-1111111111111111'"),
        (dict(member=A, choice=REJECT), grpc.StatusCode.INVALID_ARGUMENT, "a reason is required"),
        (dict(member=A, choice=REJECT, reason="   "), grpc.StatusCode.INVALID_ARGUMENT, "a reason is required"),
        (dict(member=A, choice=CLAIM, claim_kind="camera_original"), grpc.StatusCode.INVALID_ARGUMENT,
         "is not a copy in cluster"),
        (dict(member=A, choice=CLAIM, claimed_master=ref(C, "zz"), claim_kind="camera_original"),
         grpc.StatusCode.INVALID_ARGUMENT, "is not a copy in cluster"),
        (dict(member=A, choice=CLAIM, claimed_master=ref(A, "a1")), grpc.StatusCode.INVALID_ARGUMENT,
         "a claim kind is required"),
        (dict(member=A, choice=S.VOTE_CHOICE_UNSPECIFIED), grpc.StatusCode.INVALID_ARGUMENT, "not accept, reject or claim"),
        (dict(member=A, reason="x" * 5000), grpc.StatusCode.INVALID_ARGUMENT, "at most 4096"),
        (dict(member=A, via=B), grpc.StatusCode.PERMISSION_DENIED, "authenticated as 'city-museum'"),
        (dict(member=A, signer=NoteSigner.generate(A)), grpc.StatusCode.UNAUTHENTICATED, "key id"),
        (dict(member="outsider", signer=NoteSigner.generate("outsider")), grpc.StatusCode.PERMISSION_DENIED,
         "not a member"),
    ]
    for kw, code, text in cases:
        kw = dict(kw)
        member, choice = kw.pop("member"), kw.pop("choice", ACCEPT)
        err = refused_vote(consortium, member, p, choice, **kw)
        assert (err.code(), text in err.details()) == (code, True), (kw, err.details())
    # A statement of another type is not a vote.
    batch_stmt = batch(consortium, A, []).manifest
    with pytest.raises(grpc.RpcError) as info:
        stub(consortium, A).Vote(N.VoteRequest(vote=batch_stmt), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "expected a dedup.v1.MasterVote" in info.value.details()
    # One vote per member: a different second vote is refused, the same one acknowledged.
    first = vote(consortium, A, p)
    err = refused_vote(consortium, A, p, REJECT, reason="second thoughts")
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS and "already voted" in err.details()
    assert vote(consortium, A, p).already_stored
    # The log holds the one accepted vote and nothing else from these attempts.
    assert [v.member_id for v in of_type(consortium, S.MasterVote)] == [A] and first.log_index


def test_every_ruling_refusal_stores_nothing(consortium):
    two_copies(consortium)
    p = the_proposal(consortium)
    vote(consortium, B, p, REJECT, reason="not ours to lose")
    for kw, code, text in [
        (dict(arbiter_id=A), grpc.StatusCode.INVALID_ARGUMENT, "ruling names arbiter"),
        (dict(reasoning=""), grpc.StatusCode.INVALID_ARGUMENT, "a reasoning is required"),
        (dict(member=B), grpc.StatusCode.PERMISSION_DENIED, "not admitted as an arbiter"),
    ]:
        err = refused_ruling(consortium, p, ref(B, "b1"), **kw)
        assert (err.code(), text in err.details()) == (code, True), err.details()
    bogus = N.ProposalView(proposal_id="c-0/p1", cluster_id="c-0")
    err = refused_ruling(consortium, bogus, ref(B, "b1"))
    assert err.code() == grpc.StatusCode.NOT_FOUND


def test_free_text_is_bounded_and_the_other_strings_keep_their_form(consortium):
    """Reasons, claim evidence and reasonings are logged as signed and read by other members:
    at most 4,096 characters, no control character but tab and newline. A claim kind is a
    word, and a copy is named by its opaque id. Each refusal names the field and stores nothing."""
    two_copies(consortium)
    p = the_proposal(consortium)
    claim = dict(claimed_master=ref(A, "a1"), claim_kind="camera_original")
    for choice, kw, reason in [
        (REJECT, dict(reason="r" * 4097), "the vote: reason is 4097 characters long; dedup.v1.MasterVote.reason holds at most 4096"),
        (REJECT, dict(reason="ours\x1b[8m (see masters/jane_doe.tif)"), "the vote: reason holds the control character U+001B at character 4"),
        (REJECT, dict(reason="ours\x85"), "the vote: reason holds the control character U+0085"),
        (CLAIM, dict(claim, claim_evidence="e" * 4097), "the vote: claim_evidence is 4097 characters long"),
        (CLAIM, dict(claim, claim_evidence="accession\r1987.14.3"), "the vote: claim_evidence holds the control character U+000D"),
        (CLAIM, dict(claim, claim_kind="Camera Original"), "the vote: claim_kind is not a claim kind"),
        (CLAIM, dict(claim, claim_kind="x" * 65), "the vote: claim_kind is not a claim kind"),
        (CLAIM, dict(claim, claimed_master=S.AssetRef(member_id=A, asset_id="masters:Jane_Doe_portrait.tif")),
         "the vote.claimed_master: asset_id is not an asset id: it is 'a-' and 24 lowercase hex digits"),
    ]:
        err = refused_vote(consortium, A, p, choice, **kw)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith(reason), err.details()
        assert "Jane" not in err.details() and "jane" not in err.details()
    r = vote(consortium, B, p, REJECT, reason="ours is the camera original:\n\tsee the register")
    assert r.status == N.PROPOSAL_STATUS_DISPUTED
    for kw, reason in [
        (dict(reasoning="x" * 4097), "the ruling: reasoning is 4097 characters long"),
        (dict(reasoning="\x00"), "the ruling: reasoning holds the control character U+0000 at character 0"),
    ]:
        err = refused_ruling(consortium, p, ref(B, "b1"), **kw)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith(reason), err.details()
    err = refused_ruling(consortium, p, S.AssetRef(member_id=B, asset_id="b1.tif"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("the ruling.master: asset_id is not an asset id")
    # The longest text is taken.
    out = ruling(consortium, p, ref(B, "b1"), reasoning="y" * 4095 + "\n")
    assert of_type(consortium, S.MasterRuling)[-1].reasoning == "y" * 4095 + "\n" and out.outcome_log_index


def test_listing_pages_and_filters(consortium):
    for k in range(5):
        fp = fingerprint(200 + k)
        submit(consortium, A, batch(consortium, A, [asset(f"a{k}", fp)], seq=k + 1))
        submit(consortium, B, batch(consortium, B, [asset(f"b{k}", near(fp, 2))], seq=k + 1))
    seen, token = [], ""
    while True:
        page = listed(consortium, B, page_size=2, page_token=token)
        seen += [p.proposal_id for p in page.proposals]
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen)) == 5
    with pytest.raises(grpc.RpcError) as info:
        listed(consortium, B, page_token="x")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as info:
        listed(consortium, "outsider")
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


def centre_crop_pair(tmp_path, full_id: str, crop_id: str):
    """Records of a real picture (300 px PNG) and of a larger scan (600 px JPEG) of its centre,
    68% of each side: the crop has more pixels."""
    import skimage.data
    from PIL import Image

    im = Image.fromarray(skimage.data.astronaut()).resize((300, 300), Image.Resampling.LANCZOS)
    full = record_of(full_id, im, tmp_path / f"{full_id}.png")
    centre = im.crop((48, 48, 252, 252)).resize((600, 600), Image.Resampling.LANCZOS)
    crop = record_of(crop_id, centre, tmp_path / f"{crop_id}.jpg", quality=90)
    assert crop.evidence.width * crop.evidence.height > full.evidence.width * full.evidence.height
    return full, crop


def test_policy_2_never_proposes_a_crop_over_the_fuller_image(consortium, tmp_path):
    # B's copy is a larger scan of the centre of A's picture; policy 1 would propose it.
    full, crop = centre_crop_pair(tmp_path, "a1", "b1")
    submit(consortium, A, batch(consortium, A, [full]))
    submit(consortium, B, batch(consortium, B, [crop]))
    m, = of_type(consortium, S.MatchRecorded)
    assert m.relation == S.RELATION_CROPPED and (m.crop.member_id, m.crop.asset_id) == (B, opaque("b1"))
    assert abs(m.kept_permille - 462) <= 10, m.kept_permille  # 0.68 x 0.68
    p = the_proposal(consortium)
    assert (p.master.asset_id, p.deciding_rule) == (opaque("a1"), "not_derived")
    assert {c.ref.asset_id: c.derived for c in p.copies} == {opaque("a1"): False, opaque("b1"): True}


def test_policy_2_ranks_the_bordered_copy_after_the_unbordered(consortium):
    fp = fingerprint(310)
    plain = asset("a1", fp, width=1000, height=800)
    matted = asset("b1", near(fp, 3), width=1000, height=800, lossless=True)
    matted.evidence.frame_width, matted.evidence.frame_height = 800, 600
    submit(consortium, A, batch(consortium, A, [plain]))
    submit(consortium, B, batch(consortium, B, [matted]))
    m, = of_type(consortium, S.MatchRecorded)
    assert m.relation == S.RELATION_BORDERED
    p = the_proposal(consortium)
    assert (p.master.asset_id, p.deciding_rule) == (opaque("a1"), "not_derived")
    assert {c.ref.asset_id: c.derived for c in p.copies} == {opaque("a1"): False, opaque("b1"): True}


def test_arbiter_flag_is_fixed_at_admission(consortium):
    consortium.stop()
    for m in consortium.settings.members:
        if m.id == A:
            m.arbiter = True
    from dedup.coordinator.server import start

    with pytest.raises(ValueError, match="arbiters are named when first admitted"):
        start(consortium.settings)
    for m in consortium.settings.members:
        if m.id == A:
            m.arbiter = False
    consortium.start()
    admitted = [e for e in entries(consortium) if isinstance(e, S.MemberAdmitted)]
    assert {e.member_id: e.arbiter for e in admitted} == {A: False, B: False, C: False, ARBITER: True}


def test_a_version_3_store_is_migrated(database):
    from dedup.coordinator.store import SCHEMA_VERSION, StoredMatch, Store

    store = Store(database)
    for sql in ("DROP TABLE negotiations", "DROP TABLE proposal_holders", "DROP TABLE votes", "DROP TABLE rulings",
                "DROP INDEX matches_a_asset", "DROP INDEX matches_b_asset",
                "ALTER TABLE members DROP COLUMN arbiter", "ALTER TABLE matches DROP COLUMN crop",
                "UPDATE meta SET value='3' WHERE key='schema_version'"):
        store._db.execute(sql)
    store._db.execute("INSERT INTO matches VALUES ('m', 'c', 'x', 'x1', 'y', 'y1', 6, 'win64', 2, 640, 7)")
    store.close()
    store = Store(database)
    try:
        assert SCHEMA_VERSION == 7 and store.meta("schema_version") == "7"
        with store.transaction() as db:
            # Matches recorded before know no crop side; new ones do.
            assert Store.links_between(db, [("x", "x1"), ("y", "y1")]) == [(("x", "x1"), ("y", "y1"), 6, None)]
            Store.add_match(db, StoredMatch("m2", "c", "x", "x1", "y", "y1", 6, "win64", 1, 640, crop=2), 9)
            assert Store.links_between(db, [("x", "x1"), ("y", "y1")]) == [(("x", "x1"), ("y", "y1"), 6, ("y", "y1"))]
            Store.add_member(db, "z", b"k" * 32, 10, arbiter=True)
        assert store.admitted_arbiters() == {"z"}
        assert [tuple(r) for r in store._db.execute("SELECT COUNT(*) FROM negotiations")] == [(0,)]
    finally:
        store.close()
