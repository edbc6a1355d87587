"""The node's side of master-file negotiation (SPEC.md 9): see the proposals for clusters this
member holds copies in, answer them with signed votes, and keep the agreed outcomes.

A vote is written to the catalogue before it is sent, as batches are: a resend after a timeout
carries the same signed bytes, which the coordinator acknowledges without counting it twice.
The automatic mode answers every proposal it decides in one signed ballot (one signature and
one log entry for all of them); a ballot the coordinator refuses is sent again vote by vote, so
one proposal superseded meanwhile costs only its own vote.
The automatic mode re-runs the published policy on the proposal's own evidence and accepts only
what follows it; whenever this member's copy would lose its master status it casts nothing and
leaves the proposal to a person.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field

import grpc

from dedup import policy
from dedup.jsonlog import event
from dedup.signing import SignatureError, parse_body, parse_entry, sign_statement
from dedup.v1 import asset_pb2, log_pb2, log_pb2_grpc, negotiation_pb2, negotiation_pb2_grpc, statement_pb2
from dedup.v1 import statements_pb2 as S

from .catalogue import Catalogue
from .client import NotConfigured, channel
from .push import load_signer, signed_now
from .settings import NodeSettings
from .wording import rule_words

log = logging.getLogger("dedup.node")

#: Statuses the coordinator may retry after; anything else is its refusal.
UNREACHABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}

PENDING = (negotiation_pb2.PROPOSAL_STATUS_OPEN, negotiation_pb2.PROPOSAL_STATUS_DISPUTED)
ALL = PENDING + (negotiation_pb2.PROPOSAL_STATUS_AGREED, negotiation_pb2.PROPOSAL_STATUS_SUPERSEDED)

_MEMBER_ADMITTED = S.MemberAdmitted.DESCRIPTOR.full_name
#: Votes per ballot, as the coordinator's limit (coordinator.negotiation.MAX_BALLOT).
BALLOT_SIZE = 1000


class VoteRefused(Exception):
    """The coordinator refused a vote; ``code`` and ``details`` are its status and message."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class NotVisible(Exception):
    """The proposal is not among those this member can see (no copy in its cluster, or no such id)."""


# --- words for enums --------------------------------------------------------------------------


def status_name(s: int) -> str:
    return negotiation_pb2.ProposalStatus.Name(s).removeprefix("PROPOSAL_STATUS_").lower()


def choice_name(c: int) -> str:
    return S.VoteChoice.Name(c).removeprefix("VOTE_CHOICE_").lower()


def basis_name(b: int) -> str:
    return S.AgreementBasis.Name(b).removeprefix("AGREEMENT_BASIS_").lower()


def family_name(f: int) -> str:
    return {asset_pb2.FORMAT_FAMILY_LOSSLESS: "lossless", asset_pb2.FORMAT_FAMILY_LOSSY: "lossy"}.get(f, "unknown")


def ref(r: S.AssetRef) -> dict:
    return {"member_id": r.member_id, "asset_id": r.asset_id}


def is_agreed(v: negotiation_pb2.ProposalView) -> bool:
    """Whether the proposal was agreed (it may since have been superseded by a re-proposal)."""
    return v.basis != S.AGREEMENT_BASIS_UNSPECIFIED and bool(v.agreed_master.asset_id)


# --- talking to the coordinator ---------------------------------------------------------------


def list_proposals(settings: NodeSettings, statuses=ALL, page_size: int = 200) -> list[negotiation_pb2.ProposalView]:
    """Every proposal in ``statuses`` for the clusters this member holds copies in, all pages."""
    out: list[negotiation_pb2.ProposalView] = []
    token = ""
    with channel(settings) as ch:
        stub = negotiation_pb2_grpc.NegotiationServiceStub(ch)
        while True:
            resp = stub.ListProposals(negotiation_pb2.ListProposalsRequest(
                status=list(statuses), page_size=page_size, page_token=token),
                timeout=settings.coordinator.timeout_seconds)
            out.extend(resp.proposals)
            token = resp.next_page_token
            if not token:
                return out


@dataclass
class VoteResult:
    proposal_id: str
    choice: str
    log_index: int
    status: str
    already_stored: bool
    outcome_log_index: int
    resent: bool

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def cast_vote(settings: NodeSettings, catalogue: Catalogue, proposal_id: str, cluster_id: str, choice: int, *,
              reason: str = "", claimed_master: S.AssetRef | None = None, claim_kind: str = "",
              claim_evidence: str = "", automatic: bool = False, clock=time.time) -> VoteResult:
    """Sign a MasterVote, record it, send it; raise VoteRefused with the coordinator's status."""
    if settings.coordinator is None or settings.tls is None:
        raise NotConfigured("this node has no [coordinator] and [tls] settings; it cannot vote")
    name = choice_name(choice)
    detail = reason if choice != S.VOTE_CHOICE_CLAIM else (
        f"{claim_kind}: {claimed_master.member_id}/{claimed_master.asset_id}: {claim_evidence}"
        + (f" ({reason})" if reason else ""))
    pending = catalogue.pending_vote(proposal_id)
    ballot = catalogue.ballot_of(pending[0]) if pending is not None else None
    if ballot is not None and (pending[1], pending[2]) == (name, detail):
        # The same answer, cast in a ballot never acknowledged: send that ballot again.
        for r in send_ballot(settings, catalogue, ballot, resent=True):
            if r.proposal_id == proposal_id:
                return r
    if pending is not None and ballot is None and (pending[1], pending[2]) == (name, detail):
        # The same answer, never acknowledged: send it again (signed again only if the key or the
        # log's binding changed since).
        stmt_bytes = signed_now(pending[3], load_signer(settings), settings.origin()).SerializeToString(
            deterministic=True)
        vote_id, resent = pending[0], True
    else:
        now = int(clock())
        vote = S.MasterVote(proposal_id=proposal_id, cluster_id=cluster_id, member_id=settings.member_id,
                            choice=choice, reason=reason, claim_kind=claim_kind, claim_evidence=claim_evidence,
                            voted_unix=now)
        if claimed_master is not None:
            vote.claimed_master.CopyFrom(claimed_master)
        stmt_bytes = sign_statement(load_signer(settings), vote, origin=settings.origin()).SerializeToString(
            deterministic=True)
        if pending is not None:
            catalogue.settle_vote(pending[0], "replaced", "a different answer was sent instead")
        vote_id = catalogue.add_vote(proposal_id, cluster_id, name, detail, stmt_bytes, automatic, now)
        resent = False
    stmt = statement_pb2.SignedStatement()
    stmt.ParseFromString(stmt_bytes)
    try:
        with channel(settings) as ch:
            resp = negotiation_pb2_grpc.NegotiationServiceStub(ch).Vote(
                negotiation_pb2.VoteRequest(vote=stmt), timeout=settings.coordinator.timeout_seconds)
    except grpc.RpcError as err:
        if err.code() not in UNREACHABLE:
            catalogue.settle_vote(vote_id, "refused", f"{err.code().name}: {err.details()}")
            event(log, "vote refused", logging.WARNING, member=settings.member_id, proposal=proposal_id,
                  code=err.code().name, detail=err.details())
        # Unreachable: the vote stays pending, and the same command resends it.
        raise VoteRefused(err.code(), err.details() or "") from err
    catalogue.settle_vote(vote_id, "accepted", f"log_index={resp.log_index}", resp.log_index)
    event(log, "vote sent", member=settings.member_id, proposal=proposal_id, choice=name, log_index=resp.log_index)
    return VoteResult(proposal_id, name, resp.log_index, status_name(resp.status), resp.already_stored,
                      resp.outcome_log_index, resent)


@dataclass
class Answer:
    """One vote to put in a ballot."""

    proposal_id: str
    cluster_id: str
    choice: int
    reason: str = ""


def cast_ballot(settings: NodeSettings, catalogue: Catalogue, answers: list[Answer], *, automatic: bool = False,
                clock=time.time) -> list[VoteResult]:
    """Sign one MasterBallot holding ``answers`` (accepts and rejects, one per proposal, at most
    BALLOT_SIZE), record each vote with it, send it; raise VoteRefused with the coordinator's status."""
    if settings.coordinator is None or settings.tls is None:
        raise NotConfigured("this node has no [coordinator] and [tls] settings; it cannot vote")
    if not 0 < len(answers) <= BALLOT_SIZE:
        raise ValueError(f"a ballot holds 1 to {BALLOT_SIZE} votes, not {len(answers)}")
    now = int(clock())
    ballot = S.MasterBallot(member_id=settings.member_id, cast_unix=now, votes=[
        S.MasterVote(proposal_id=a.proposal_id, cluster_id=a.cluster_id, member_id=settings.member_id,
                     choice=a.choice, reason=a.reason, voted_unix=now) for a in answers])
    stmt_bytes = sign_statement(load_signer(settings), ballot, origin=settings.origin()).SerializeToString(
        deterministic=True)
    ballot_id = catalogue.add_ballot(stmt_bytes, [
        (a.proposal_id, a.cluster_id, choice_name(a.choice), a.reason, v.SerializeToString(deterministic=True))
        for a, v in zip(answers, ballot.votes)], automatic, now)
    return send_ballot(settings, catalogue, ballot_id)


def send_ballot(settings: NodeSettings, catalogue: Catalogue, ballot_id: int, *, resent: bool = False) -> list[VoteResult]:
    """Send a ballot recorded in the catalogue (again, with ``resent``) and settle its votes."""
    stmt_bytes, rows = catalogue.ballot(ballot_id)
    stmt = signed_now(stmt_bytes, load_signer(settings), settings.origin())
    try:
        with channel(settings) as ch:
            resp = negotiation_pb2_grpc.NegotiationServiceStub(ch).CastBallot(
                negotiation_pb2.CastBallotRequest(ballot=stmt), timeout=settings.coordinator.timeout_seconds)
    except grpc.RpcError as err:
        if err.code() not in UNREACHABLE:
            for vote_id, _, state in rows:
                if state == "pending":
                    catalogue.settle_vote(vote_id, "refused", f"{err.code().name}: {err.details()}")
            event(log, "ballot refused", logging.WARNING, member=settings.member_id, votes=len(rows),
                  code=err.code().name, detail=err.details())
        raise VoteRefused(err.code(), err.details() or "") from err
    ids = {pid: vote_id for vote_id, pid, state in rows if state == "pending"}
    choices = {v.proposal_id: choice_name(v.choice) for v in S.MasterBallot.FromString(stmt.body).votes}
    out = []
    for r in resp.results:
        if r.proposal_id in ids:
            catalogue.settle_vote(ids[r.proposal_id], "accepted", f"log_index={resp.log_index}", resp.log_index)
        out.append(VoteResult(r.proposal_id, choices.get(r.proposal_id, ""), resp.log_index, status_name(r.status),
                              resp.already_stored, r.outcome_log_index, resent))
    event(log, "ballot sent", member=settings.member_id, votes=len(out), log_index=resp.log_index,
          already_stored=resp.already_stored)
    return out


def resend_pending_ballots(settings: NodeSettings, catalogue: Catalogue) -> list[VoteResult]:
    """Every ballot sent but never acknowledged, sent again (the coordinator stores none twice)."""
    out = []
    for ballot_id in catalogue.pending_ballots():
        out += send_ballot(settings, catalogue, ballot_id, resent=True)
    return out


# --- the published policy, re-run on the proposal's evidence ---------------------------------


def consortium_members(settings: NodeSettings, catalogue: Catalogue) -> dict[str, tuple[int, bool]]:
    """member id -> (custodial priority, arbiter), from the log's MemberAdmitted entries.

    Entries already read are remembered in the catalogue, so each is read once. They are taken
    as the coordinator serves them, like the proposals themselves: the node only uses them to
    re-run the policy for its own advice, and `dedup node witness` and the auditor check the log.
    """
    from dedup.checkpoint import Checkpoint
    from dedup.note import split_note

    from .witness import _entries

    members, read_to = catalogue.consortium_members()
    timeout = settings.coordinator.timeout_seconds
    found = []
    with channel(settings) as ch:
        stub = log_pb2_grpc.LogServiceStub(ch)
        note = stub.GetCheckpoint(log_pb2.GetCheckpointRequest(), timeout=timeout).signed_checkpoint
        end = Checkpoint.parse(split_note(note)[0]).size if note else 0
        if end > read_to:
            for index, entry in _entries(stub, read_to, end, timeout):
                try:
                    stmt = parse_entry(entry)
                    if stmt.type != _MEMBER_ADMITTED:
                        continue
                    body = parse_body(stmt, S.MemberAdmitted)
                except SignatureError:
                    continue
                found.append((body.member_id, body.custodial_priority, body.arbiter, index))
            catalogue.save_consortium_members(found, end)
    members.update({m: (p, a) for m, p, a, _ in found})
    return members


def _choose(version: str, candidates: list) -> policy.Decision:
    """Run the named policy version; ValueError if this node does not know it."""
    if version not in policy.POLICIES:
        raise ValueError(f"this node does not know policy {version!r} (it knows {', '.join(policy.POLICIES)})")
    return policy.choose_master(candidates, version)


def _candidates(view: negotiation_pb2.ProposalView, priorities: dict[str, int]) -> list[policy.Candidate]:
    return [policy.Candidate(c.ref.member_id, c.ref.asset_id, c.evidence, priorities.get(c.ref.member_id, 0),
                             derived=c.derived) for c in view.copies]


@dataclass
class PolicyCheck:
    follows: bool
    master: dict | None = None  # what the policy gives
    deciding_rule: str = ""
    ranking: list[dict] = field(default_factory=list)
    problem: str = ""

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def check_policy(view: negotiation_pb2.ProposalView, priorities=None) -> PolicyCheck:
    """Re-run the proposal's policy version on its copies; ``priorities`` is a callable giving
    {member: custodial priority}, asked only when the evidence ties at the top."""
    try:
        decision = _choose(view.policy_version, _candidates(view, {}))
        if decision.deciding_rule in ("custodial_priority", "tie_break") and priorities is not None:
            decision = _choose(view.policy_version, _candidates(view, priorities()))
    except ValueError as exc:
        return PolicyCheck(False, problem=str(exc))
    m = decision.master
    follows = ((m.member_id, m.asset_id) == (view.master.member_id, view.master.asset_id)
               and decision.deciding_rule == view.deciding_rule)
    problem = "" if follows else (
        f"the policy gives {m.member_id}/{m.asset_id} for {rule_words(decision.deciding_rule)}; the proposal names "
        f"{view.master.member_id}/{view.master.asset_id} for {rule_words(view.deciding_rule)}")
    return PolicyCheck(follows, {"member_id": m.member_id, "asset_id": m.asset_id}, decision.deciding_rule,
                       [{"member_id": c.member_id, "asset_id": c.asset_id} for c in decision.ranking], problem)


# --- agreed outcomes ----------------------------------------------------------------------------


def current_agreed(views: list[negotiation_pb2.ProposalView]) -> dict[str, negotiation_pb2.ProposalView]:
    """cluster id -> its most recently agreed proposal."""
    out: dict[str, negotiation_pb2.ProposalView] = {}
    for v in views:
        if is_agreed(v) and (v.cluster_id not in out or v.outcome_log_index > out[v.cluster_id].outcome_log_index):
            out[v.cluster_id] = v
    return out


def outcome_rows(views: list[negotiation_pb2.ProposalView]) -> list[dict]:
    """One row per own asset in a cluster with an agreed master (catalogue.master_outcomes)."""
    pending: dict[str, str] = {}
    for v in views:
        if v.status in PENDING:
            pending[v.cluster_id] = v.proposal_id
    rows = {}
    for cluster_id, v in sorted(current_agreed(views).items()):
        # The own copies as of the agreed proposal; a copy since withdrawn is no longer ours.
        for asset_id in v.own_asset_ids:
            rows[asset_id] = {
                "asset_id": asset_id, "cluster_id": cluster_id, "master_member": v.agreed_master.member_id,
                "master_asset": v.agreed_master.asset_id, "basis": basis_name(v.basis),
                "proposal_id": v.proposal_id, "outcome_log_index": v.outcome_log_index,
                "copies": [[c.ref.member_id, c.ref.asset_id] for c in v.copies],
                "pending_proposal": pending.get(cluster_id)}
    return [rows[a] for a in sorted(rows)]


def refresh_outcomes(catalogue: Catalogue, views: list[negotiation_pb2.ProposalView]) -> int:
    """Record the agreed outcomes from a full listing (every status); return how many own assets have one."""
    rows = outcome_rows(views)
    catalogue.replace_outcomes(rows)
    return len(rows)


# --- presenting a proposal ----------------------------------------------------------------------


def view_dict(view: negotiation_pb2.ProposalView, member_id: str, paths: dict[str, str],
              check: PolicyCheck | None = None) -> dict:
    """A proposal as plain data, with each copy's evidence (own copies first, then the others)."""
    own = set(view.own_asset_ids)
    copies = []
    for c in view.copies:
        e = c.evidence
        ours = c.ref.member_id == member_id and c.ref.asset_id in own
        copies.append({
            "member_id": c.ref.member_id, "asset_id": c.ref.asset_id, "ours": ours,
            "path": paths.get(c.ref.asset_id) if ours else None,
            "proposed_master": (c.ref.member_id, c.ref.asset_id) == (view.master.member_id, view.master.asset_id),
            "derived": c.derived,
            "evidence": {"width": e.width, "height": e.height, "format_family": family_name(e.format_family),
                         "bit_depth": e.bit_depth, "channels": e.channels, "jpeg_quality": e.jpeg_quality,
                         "capture_date": e.capture_date, "rights": e.rights or "unknown"},
        })
    copies.sort(key=lambda c: (not c["ours"], c["member_id"], c["asset_id"]))
    voted = {v.member_id for v in view.votes}
    holders = sorted({c.ref.member_id for c in view.copies})
    votes = [{"member_id": v.member_id, "choice": choice_name(v.choice), "reason": v.reason,
              "claimed_master": ref(v.claimed_master) if v.claimed_master.asset_id else None,
              "claim_kind": v.claim_kind, "claim_evidence": v.claim_evidence} for v in view.votes]
    out = {
        "proposal_id": view.proposal_id, "cluster_id": view.cluster_id, "status": status_name(view.status),
        "master": ref(view.master), "we_hold_master": view.master.member_id == member_id,
        "policy_version": view.policy_version, "deciding_rule": view.deciding_rule, "reason": view.reason,
        "proposed_unix": view.proposed_unix, "deadline_unix": view.deadline_unix, "supersedes": view.supersedes,
        "copies": copies, "votes": votes, "not_voted": [m for m in holders if m not in voted],
        "we_voted": member_id in voted, "own_asset_ids": list(view.own_asset_ids),
        "proposal_log_index": view.proposal_log_index,
        "agreed_master": ref(view.agreed_master) if is_agreed(view) else None,
        "basis": basis_name(view.basis) if is_agreed(view) else None,
        "outcome_log_index": view.outcome_log_index if is_agreed(view) else None,
    }
    if check is not None:
        out["policy_check"] = check.as_dict()
    return out


# --- the automatic mode -------------------------------------------------------------------------


@dataclass
class AutoResult:
    accepted: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    held: list[dict] = field(default_factory=list)
    refused: list[dict] = field(default_factory=list)
    unreachable: str | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def cast(self, choice: str, item: dict, log_index: int, status: str) -> None:
        """Record a vote the coordinator took, under accepted or rejected by its ``choice``."""
        item.update(log_index=log_index, status=status)
        (self.accepted if choice == "accept" else self.rejected).append(item)


def auto_answer(view: negotiation_pb2.ProposalView, member_id: str, agreed: negotiation_pb2.ProposalView | None,
                check: PolicyCheck, rules) -> tuple[str, str]:
    """The local rule's answer to one open proposal: ('accept' | 'reject' | 'hold', why)."""
    names_us = view.master.member_id == member_id
    if rules.hold_when_losing_master and not names_us:
        if agreed is not None and agreed.agreed_master.member_id == member_id:
            return "hold", (f"we hold the agreed master of cluster {view.cluster_id} "
                            f"({agreed.agreed_master.asset_id}, proposal {agreed.proposal_id}); this proposal names "
                            f"{view.master.member_id}/{view.master.asset_id}")
        if check.master is not None and check.master["member_id"] == member_id:
            return "hold", (f"our copy {check.master['asset_id']} ranks first under {view.policy_version}, but the "
                            f"proposal names {view.master.member_id}/{view.master.asset_id}")
    if not check.follows:
        why = f"does not follow the published policy: {check.problem}"
        return ("reject", why) if rules.off_policy == "reject" and check.master is not None else ("hold", why)
    if not rules.accept_following_policy:
        return "hold", "follows the policy, but automatic acceptance is off (auto_decisions.accept_following_policy)"
    return "accept", f"follows {view.policy_version} (rule {view.deciding_rule})"


def auto_decide(settings: NodeSettings, catalogue: Catalogue, views: list[negotiation_pb2.ProposalView],
                clock=time.time) -> AutoResult:
    """Answer every open proposal this member has not voted on, by the configured local rule."""
    result = AutoResult()
    agreed = current_agreed(views)
    members: dict[str, tuple[int, bool]] | None = None

    def priorities() -> dict[str, int]:
        nonlocal members
        if members is None:
            members = consortium_members(settings, catalogue)
        return {m: p for m, (p, _) in members.items()}

    try:
        for r in resend_pending_ballots(settings, catalogue):
            result.cast(r.choice, {"proposal_id": r.proposal_id,
                                   "reason": "cast before and never acknowledged: sent again"}, r.log_index, r.status)
    except VoteRefused as exc:
        if exc.code in UNREACHABLE:
            result.unreachable = str(exc)
            return result
        # Refused: its votes are settled as refused and decided again below.
    # Votes the listing may predate: those just resent, and any sent since it was made.
    voted = {r["proposal_id"] for r in catalogue.votes() if r["state"] == "accepted"}
    answers: list[tuple[Answer, dict, str]] = []
    alone: list[tuple[Answer, dict, str]] = []  # a vote sent on its own, never acknowledged: resent as it was
    for v in views:
        if v.status != negotiation_pb2.PROPOSAL_STATUS_OPEN or not v.own_asset_ids:
            continue
        if any(x.member_id == settings.member_id for x in v.votes) or v.proposal_id in voted:
            continue
        check = check_policy(v, priorities)
        answer, why = auto_answer(v, settings.member_id, agreed.get(v.cluster_id), check, settings.auto_decisions)
        item = {"proposal_id": v.proposal_id, "cluster_id": v.cluster_id, "reason": why}
        if answer == "hold":
            result.held.append(item)
            continue
        choice = S.VOTE_CHOICE_ACCEPT if answer == "accept" else S.VOTE_CHOICE_REJECT
        pending = catalogue.pending_vote(v.proposal_id)
        (alone if pending is not None and catalogue.ballot_of(pending[0]) is None else answers).append(
            (Answer(v.proposal_id, v.cluster_id, choice, "" if answer == "accept" else why), item, answer))
    if alone and not _one_by_one(settings, catalogue, alone, result, clock):
        answers = []
    for start in range(0, len(answers), BALLOT_SIZE):
        part = answers[start:start + BALLOT_SIZE]
        try:
            results = cast_ballot(settings, catalogue, [a for a, _, _ in part], automatic=True, clock=clock)
        except VoteRefused as exc:
            if exc.code in UNREACHABLE:
                result.unreachable = str(exc)
                break
            # One vote the coordinator cannot take (its proposal superseded since it was listed)
            # refuses the ballot: send the votes one by one, so only that one is refused.
            if not _one_by_one(settings, catalogue, part, result, clock):
                break
            continue
        for (a, item, answer), r in zip(part, results):
            result.cast(answer, item, r.log_index, r.status)
    event(log, "automatic decisions", member=settings.member_id, accepted=len(result.accepted),
          rejected=len(result.rejected), held=len(result.held), refused=len(result.refused))
    return result


def _one_by_one(settings, catalogue, part, result: AutoResult, clock) -> bool:
    """Cast each answer as a vote of its own; False once the coordinator is unreachable."""
    for a, item, answer in part:
        try:
            r = cast_vote(settings, catalogue, a.proposal_id, a.cluster_id, a.choice, reason=a.reason,
                          automatic=True, clock=clock)
        except VoteRefused as exc:
            if exc.code in UNREACHABLE:
                result.unreachable = str(exc)
                return False
            result.refused.append({**item, "refusal": str(exc)})
            continue
        result.cast(answer, item, r.log_index, r.status)
    return True


def send_ruling(settings: NodeSettings, proposal_id: str, cluster_id: str, master: S.AssetRef, reasoning: str,
                clock=time.time) -> negotiation_pb2.RuleResponse:
    """As an arbiter: sign a MasterRuling settling a disputed proposal and send it."""
    ruling = S.MasterRuling(proposal_id=proposal_id, cluster_id=cluster_id, master=master, reasoning=reasoning,
                            arbiter_id=settings.member_id, ruled_unix=int(clock()))
    stmt = sign_statement(load_signer(settings), ruling, origin=settings.origin())
    try:
        with channel(settings) as ch:
            resp = negotiation_pb2_grpc.NegotiationServiceStub(ch).Rule(
                negotiation_pb2.RuleRequest(ruling=stmt), timeout=settings.coordinator.timeout_seconds)
    except grpc.RpcError as err:
        raise VoteRefused(err.code(), err.details() or "") from err
    event(log, "ruling sent", member=settings.member_id, proposal=proposal_id, log_index=resp.log_index)
    return resp
