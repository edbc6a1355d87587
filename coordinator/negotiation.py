"""Master negotiation: proposal states, members' signed votes, arbiters' rulings, deadlines.

Every change runs under the coordinator's intake lock, in one store transaction with the log
entries that record it, so concurrent votes are serialised and a proposal gets exactly one
outcome. A refused vote or ruling stores nothing.

Statuses (dedup.v1.ProposalStatus): OPEN until a holder rejects or claims (DISPUTED) or every
holder accepts (AGREED, unanimous); an arbiter's ruling agrees a disputed proposal; an open
one past its deadline is agreed with the silent holders counted as accepting; any proposal
replaced by a later one for its cluster is SUPERSEDED and takes no more votes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc

from dedup.v1 import negotiation_pb2 as N, statement_pb2, statements_pb2 as S

from .refusal import Refusal
from .validation import invalid

if TYPE_CHECKING:
    from .consortium import Coordinator
    from .log import LogTransaction

OPEN, DISPUTED = N.PROPOSAL_STATUS_OPEN, N.PROPOSAL_STATUS_DISPUTED
AGREED, SUPERSEDED = N.PROPOSAL_STATUS_AGREED, N.PROPOSAL_STATUS_SUPERSEDED
#: A re-proposal of a cluster supersedes its proposal in any of these states.
LIVE = (OPEN, DISPUTED, AGREED)
ACCEPT, REJECT, CLAIM = S.VOTE_CHOICE_ACCEPT, S.VOTE_CHOICE_REJECT, S.VOTE_CHOICE_CLAIM
#: Most votes one ballot may carry: one signature answers up to this many proposals.
MAX_BALLOT = 1000

_COLUMNS = ("proposal_id, cluster_id, status, proposal, log_index, deadline_unix, outcome_index, agreed_member,"
            " agreed_asset, basis, superseded_by")


@dataclass(frozen=True)
class Proposal:
    """A proposal's stored state."""

    proposal_id: str
    cluster_id: str
    status: int
    body: S.MasterProposed
    log_index: int
    deadline_unix: int
    outcome_index: int | None
    agreed: tuple[str, str] | None
    basis: int
    superseded_by: str | None

    @property
    def holders(self) -> set[str]:
        return {c.ref.member_id for c in self.body.copies}

    def has_copy(self, ref: S.AssetRef) -> bool:
        return any((c.ref.member_id, c.ref.asset_id) == (ref.member_id, ref.asset_id) for c in self.body.copies)


def _proposal(row) -> Proposal:
    pid, cid, status, body, idx, deadline, outcome, am, aa, basis, by = row
    return Proposal(pid, cid, status, S.MasterProposed.FromString(bytes(body)), idx, deadline, outcome,
                    (am, aa) if am is not None else None, basis, by)


@dataclass(frozen=True)
class StoredVote:
    member_id: str
    choice: int
    body: bytes
    log_index: int


def _text(name: str, value: str, *, required: bool) -> None:
    # Bound and form were checked with the statement's fields (validation.check_fields).
    if required and not value.strip():
        raise invalid(f"missing_{name}", f"a {name.replace('_', ' ')} is required")


def _check_choice(v: S.MasterVote) -> None:
    if v.choice not in (ACCEPT, REJECT, CLAIM):
        raise invalid("bad_choice", f"vote choice {v.choice} is not accept, reject or claim")
    _text("reason", v.reason, required=v.choice == REJECT)
    _text("claim_kind", v.claim_kind, required=v.choice == CLAIM)
    _text("claim_evidence", v.claim_evidence, required=False)


def _ref(r: S.AssetRef) -> str:
    return f"{r.member_id}/{r.asset_id}"


class Negotiator:
    """The negotiation half of the coordinator; ``core`` holds the lock, store, log and members."""

    def __init__(self, core: Coordinator) -> None:
        self.core = core

    # --- reads (callers hold the lock, or are inside a transaction) ---------------------------

    @staticmethod
    def find(db, proposal_id: str) -> Proposal | None:
        row = db.execute(f"SELECT {_COLUMNS} FROM negotiations WHERE proposal_id=?", (proposal_id,)).fetchone()
        return _proposal(row) if row else None

    @staticmethod
    def latest(db, cluster_id: str, *, agreed: bool = False) -> Proposal | None:
        """The cluster's newest proposal (with ``agreed``, its newest agreed one)."""
        where = " AND outcome_index IS NOT NULL" if agreed else ""
        row = db.execute(f"SELECT {_COLUMNS} FROM negotiations WHERE cluster_id=?{where} ORDER BY log_index DESC LIMIT 1",
                         (cluster_id,)).fetchone()
        return _proposal(row) if row else None

    @staticmethod
    def votes(db, proposal_id: str) -> list[StoredVote]:
        return [StoredVote(m, c, bytes(b), i) for m, c, b, i in db.execute(
            "SELECT member_id, choice, statement, log_index FROM votes WHERE proposal_id=? ORDER BY member_id",
            (proposal_id,))]

    def counts(self) -> dict[int, int]:
        """Proposals by status (for the metrics gauge)."""
        with self.core.lock:  # the connection is shared: never read inside another thread's transaction
            return {s: n for s, n in self.core.store._db.execute(
                "SELECT status, COUNT(*) FROM negotiations GROUP BY status")}

    # --- proposals (called from Coordinator._propose, inside its transaction) -----------------

    @staticmethod
    def supersede(db, cluster_id: str, by: str | None) -> str:
        """Mark the cluster's live proposals superseded (by ``by``, if it is known); return the
        newest of them, or '' if there was none."""
        rows = db.execute("SELECT proposal_id FROM negotiations WHERE cluster_id=? AND status IN (?, ?, ?)"
                          " ORDER BY log_index", (cluster_id, *LIVE)).fetchall()
        for (pid,) in rows:
            db.execute("UPDATE negotiations SET status=?, superseded_by=? WHERE proposal_id=?", (SUPERSEDED, by, pid))
        return rows[-1][0] if rows else ""

    @staticmethod
    def opened(db, p: S.MasterProposed, log_index: int) -> None:
        db.execute(f"INSERT INTO negotiations ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, NULL, 0, NULL)",
                   (p.proposal_id, p.cluster_id, OPEN, p.SerializeToString(deterministic=True), log_index,
                    p.deadline_unix))
        db.executemany("INSERT INTO proposal_holders (member_id, log_index, proposal_id) VALUES (?, ?, ?)",
                       [(m, log_index, p.proposal_id) for m in sorted({c.ref.member_id for c in p.copies})])

    def _agree(self, txn: LogTransaction, p: Proposal, master: S.AssetRef, basis: int, vote_indexes: list[int],
               *, ruling_index: int = 0, silent: list[str] = (), when: int | None = None) -> int:
        idx = txn.append_statement(S.MasterAgreed(
            proposal_id=p.proposal_id, cluster_id=p.cluster_id, master=master, basis=basis,
            vote_indexes=sorted(vote_indexes), ruling_index=ruling_index, silent_members=sorted(silent),
            agreed_unix=int(self.core.clock()) if when is None else when))
        txn.db.execute("UPDATE negotiations SET status=?, outcome_index=?, agreed_member=?, agreed_asset=?, basis=?"
                       " WHERE proposal_id=?", (AGREED, idx, master.member_id, master.asset_id, basis, p.proposal_id))
        return idx

    # --- votes ---------------------------------------------------------------------------------

    def vote(self, identity: str, stmt: statement_pb2.SignedStatement) -> N.VoteResponse:
        core = self.core
        v = core.signed_body(identity, stmt, S.MasterVote, "vote")
        _check_choice(v)
        with core.lock:
            db = core.store._db
            p, prior = self._votable(db, identity, v, stmt.body)
            if prior is not None:
                return N.VoteResponse(log_index=prior, status=p.status, already_stored=True,
                                      outcome_log_index=p.outcome_index or 0)
            with core.log.transaction() as txn:
                idx = txn.append(stmt)
                status, outcome = self._count(txn, p, identity, v, stmt.body, idx)
        return N.VoteResponse(log_index=idx, status=status, outcome_log_index=outcome)

    def cast_ballot(self, identity: str, stmt: statement_pb2.SignedStatement) -> N.CastBallotResponse:
        """Many votes under one signature: each checked as if sent alone, all counted in one
        transaction after one log entry, or the whole ballot refused and nothing stored."""
        core = self.core
        b = core.signed_body(identity, stmt, S.MasterBallot, "ballot")
        if not b.votes:
            raise invalid("empty_ballot", "the ballot holds no vote")
        if len(b.votes) > MAX_BALLOT:
            raise Refusal(grpc.StatusCode.RESOURCE_EXHAUSTED, "oversized_ballot",
                          f"the ballot holds {len(b.votes)} votes; at most {MAX_BALLOT}")
        seen: set[str] = set()
        for n, v in enumerate(b.votes):
            where = f"vote {n} (proposal {v.proposal_id!r})"
            if v.member_id != identity:
                raise invalid("member_mismatch", f"{where} names member {v.member_id!r}, signer is {identity!r}")
            if v.proposal_id in seen:
                raise invalid("duplicate_vote", f"{where}: the ballot votes twice on this proposal")
            seen.add(v.proposal_id)
            try:
                _check_choice(v)
            except Refusal as r:
                raise Refusal(r.code, r.reason, f"{where}: {r.message}") from None
        bodies = [v.SerializeToString(deterministic=True) for v in b.votes]
        with core.lock:
            db = core.store._db
            checked, stored = [], set()
            for n, (v, body) in enumerate(zip(b.votes, bodies)):
                try:
                    p, prior = self._votable(db, identity, v, body)
                except Refusal as r:
                    raise Refusal(r.code, r.reason, f"vote {n} of the ballot: {r.message}") from None
                checked.append(p)
                stored.add(prior)
            if stored != {None}:
                # Every vote already stored, all from one entry: this ballot, sent again.
                if None in stored or len(stored) != 1:
                    raise Refusal(grpc.StatusCode.ALREADY_EXISTS, "already_voted",
                                  f"{identity!r} already voted on some of the ballot's proposals "
                                  f"(log entries {sorted(i for i in stored if i is not None)}); each member "
                                  "votes once per proposal")
                return N.CastBallotResponse(log_index=stored.pop(), already_stored=True, results=[
                    N.BallotResult(proposal_id=p.proposal_id, status=p.status, outcome_log_index=p.outcome_index or 0)
                    for p in checked])
            out = N.CastBallotResponse()
            with core.log.transaction() as txn:
                idx = out.log_index = txn.append(stmt)
                for p, v, body in zip(checked, b.votes, bodies):
                    status, outcome = self._count(txn, p, identity, v, body, idx)
                    out.results.append(N.BallotResult(proposal_id=p.proposal_id, status=status,
                                                      outcome_log_index=outcome))
        return out

    def _votable(self, db, identity: str, v: S.MasterVote, body: bytes) -> tuple[Proposal, int | None]:
        """The proposal ``v`` may be counted on, and the log index of this very vote if it is
        already stored (a resend); refused for anything else."""
        p = self.find(db, v.proposal_id)
        if p is None:
            raise Refusal(grpc.StatusCode.NOT_FOUND, "unknown_proposal",
                          f"there is no proposal {v.proposal_id!r} open to votes")
        if v.cluster_id != p.cluster_id:
            raise invalid("cluster_mismatch", f"vote names cluster {v.cluster_id!r}, but proposal "
                                              f"{p.proposal_id!r} is for cluster {p.cluster_id!r}")
        if identity not in p.holders:
            raise Refusal(grpc.StatusCode.PERMISSION_DENIED, "not_holder",
                          f"{identity!r} holds no copy in cluster {p.cluster_id!r}; only members holding a copy"
                          f" vote on proposal {p.proposal_id!r}")
        if v.choice == CLAIM and not p.has_copy(v.claimed_master):
            raise invalid("bad_claim", f"the claimed master {_ref(v.claimed_master)!r} is not a copy in cluster "
                                       f"{p.cluster_id!r}")
        prior = db.execute("SELECT statement, log_index FROM votes WHERE proposal_id=? AND member_id=?",
                           (p.proposal_id, identity)).fetchone()
        if prior is not None:
            if bytes(prior[0]) != body:
                raise Refusal(grpc.StatusCode.ALREADY_EXISTS, "already_voted",
                              f"{identity!r} already voted on proposal {p.proposal_id!r} (log entry {prior[1]});"
                              " each member votes once")
            return p, prior[1]
        self._open_or_refuse(p, "vote on")
        return p, None

    def _count(self, txn: LogTransaction, p: Proposal, identity: str, v: S.MasterVote, body: bytes,
               idx: int) -> tuple[int, int]:
        """Store a vote logged at ``idx``; the proposal's status after it, and its outcome's
        index if the vote completed it."""
        txn.db.execute("INSERT INTO votes (proposal_id, member_id, choice, statement, log_index)"
                       " VALUES (?, ?, ?, ?, ?)", (p.proposal_id, identity, v.choice, body, idx))
        if v.choice in (REJECT, CLAIM):
            txn.db.execute("UPDATE negotiations SET status=? WHERE proposal_id=?", (DISPUTED, p.proposal_id))
            return DISPUTED, 0
        if p.status == OPEN:
            votes = self.votes(txn.db, p.proposal_id)
            if {x.member_id for x in votes if x.choice == ACCEPT} >= p.holders:
                return AGREED, self._agree(txn, p, p.body.master, S.AGREEMENT_BASIS_UNANIMOUS,
                                           [x.log_index for x in votes])
        return p.status, 0

    @staticmethod
    def _open_or_refuse(p: Proposal, doing: str) -> None:
        if p.status == SUPERSEDED:
            by = (f"superseded by proposal {p.superseded_by!r}" if p.superseded_by
                  else "closed: its cluster merged into another or is no longer held by two members")
            raise Refusal(grpc.StatusCode.FAILED_PRECONDITION, "superseded",
                          f"proposal {p.proposal_id!r} was {by}; cannot {doing} it")
        if p.status == AGREED:
            raise Refusal(grpc.StatusCode.FAILED_PRECONDITION, "already_agreed",
                          f"proposal {p.proposal_id!r} is already agreed (log entry {p.outcome_index}); cannot {doing} it")

    # --- rulings -------------------------------------------------------------------------------

    def rule(self, identity: str, stmt: statement_pb2.SignedStatement) -> N.RuleResponse:
        core = self.core
        def arbiter_only() -> None:
            if identity not in core.arbiters:
                raise Refusal(grpc.StatusCode.PERMISSION_DENIED, "not_arbiter",
                              f"{identity!r} was not admitted as an arbiter; only arbiters rule on disputed proposals")

        r = core.signed_body(identity, stmt, S.MasterRuling, "ruling", field="arbiter_id", role="arbiter",
                             then=arbiter_only)
        _text("reasoning", r.reasoning, required=True)
        with core.lock:
            db = core.store._db
            p = self.find(db, r.proposal_id)
            if p is None:
                raise Refusal(grpc.StatusCode.NOT_FOUND, "unknown_proposal", f"there is no proposal {r.proposal_id!r}")
            if r.cluster_id != p.cluster_id:
                raise invalid("cluster_mismatch", f"ruling names cluster {r.cluster_id!r}, but proposal "
                                                  f"{p.proposal_id!r} is for cluster {p.cluster_id!r}")
            prior = db.execute("SELECT statement, log_index FROM rulings WHERE proposal_id=?",
                               (p.proposal_id,)).fetchone()
            if prior is not None and bytes(prior[0]) == stmt.body:
                return N.RuleResponse(log_index=prior[1], outcome_log_index=p.outcome_index or 0)
            self._open_or_refuse(p, "rule on")
            if p.status != DISPUTED:
                raise Refusal(grpc.StatusCode.FAILED_PRECONDITION, "not_disputed",
                              f"proposal {p.proposal_id!r} is not disputed: no holder rejected it or claimed the master")
            if not p.has_copy(r.master):
                raise invalid("bad_master", f"the ruled master {_ref(r.master)!r} is not a copy in cluster "
                                            f"{p.cluster_id!r}")
            with core.log.transaction() as txn:
                idx = txn.append(stmt)
                txn.db.execute("INSERT INTO rulings (proposal_id, arbiter_id, statement, log_index) VALUES (?, ?, ?, ?)",
                               (p.proposal_id, identity, stmt.body, idx))
                outcome = self._agree(txn, p, r.master, S.AGREEMENT_BASIS_RULING,
                                      [x.log_index for x in self.votes(txn.db, p.proposal_id)], ruling_index=idx)
        return N.RuleResponse(log_index=idx, outcome_log_index=outcome)

    # --- deadlines -----------------------------------------------------------------------------

    def expire_deadlines(self, now: int) -> list[tuple[str, int]]:
        """Agree every open proposal whose deadline has passed, counting silent holders as
        accepting; disputed ones wait for a ruling. Returns (proposal id, outcome index)."""
        core = self.core
        with core.lock:
            db = core.store._db
            due = [_proposal(r) for r in db.execute(
                f"SELECT {_COLUMNS} FROM negotiations WHERE status=? AND deadline_unix<=? ORDER BY log_index",
                (OPEN, now)).fetchall()]
            if not due:
                return []
            out = []
            with core.log.transaction() as txn:
                for p in due:
                    votes = self.votes(txn.db, p.proposal_id)  # all accepts: a reject or claim disputes it
                    silent = sorted(p.holders - {x.member_id for x in votes})
                    out.append((p.proposal_id, self._agree(txn, p, p.body.master, S.AGREEMENT_BASIS_DEADLINE,
                                                           [x.log_index for x in votes], silent=silent, when=now)))
            return out

    # --- what a member may read ----------------------------------------------------------------

    def list_proposals(self, identity: str, statuses, page_size: int, page_token: str) -> N.ListProposalsResponse:
        core = self.core
        core.member(identity, "it may not list proposals")
        try:
            after = int(page_token) if page_token else -1
        except ValueError:
            raise invalid("bad_page_token", "page_token is not one this server issued") from None
        wanted = sorted(set(statuses)) or [OPEN, DISPUTED]
        bad = [s for s in wanted if s not in (OPEN, DISPUTED, AGREED, SUPERSEDED)]
        if bad:
            raise invalid("bad_status", f"unknown proposal status {bad[0]}")
        size = min(page_size or 100, 1000)
        marks = ", ".join("?" for _ in wanted)
        cols = ", ".join(f"n.{c.strip()}" for c in _COLUMNS.split(","))
        with core.lock:
            db = core.store._db
            if identity in core.arbiters:
                # An arbiter settles disputes in any cluster, so it sees every proposal.
                rows = db.execute(f"SELECT {cols} FROM negotiations n WHERE n.log_index > ? AND n.status IN ({marks})"
                                  " ORDER BY n.log_index LIMIT ?", (after, *wanted, size)).fetchall()
            else:
                rows = db.execute(f"SELECT {cols} FROM proposal_holders h JOIN negotiations n"
                                  " ON n.proposal_id = h.proposal_id WHERE h.member_id = ? AND h.log_index > ?"
                                  f" AND n.status IN ({marks}) ORDER BY h.log_index LIMIT ?",
                                  (identity, after, *wanted, size)).fetchall()
            out = N.ListProposalsResponse()
            for row in rows:
                p = _proposal(row)
                out.proposals.append(self._view(db, p, identity))
        if len(rows) == size:
            out.next_page_token = str(rows[-1][4])
        return out

    def _view(self, db, p: Proposal, identity: str) -> N.ProposalView:
        b = p.body
        view = N.ProposalView(
            proposal_id=p.proposal_id, cluster_id=p.cluster_id, status=p.status, copies=b.copies, master=b.master,
            policy_version=b.policy_version, deciding_rule=b.deciding_rule, reason=b.reason,
            proposed_unix=b.proposed_unix, deadline_unix=p.deadline_unix, supersedes=b.supersedes,
            own_asset_ids=[c.ref.asset_id for c in b.copies if c.ref.member_id == identity],
            proposal_log_index=p.log_index, outcome_log_index=p.outcome_index or 0, basis=p.basis)
        if p.agreed is not None:
            view.agreed_master.CopyFrom(S.AssetRef(member_id=p.agreed[0], asset_id=p.agreed[1]))
        for sv in self.votes(db, p.proposal_id):
            v = S.MasterVote.FromString(sv.body)
            view.votes.append(N.VoteSummary(member_id=v.member_id, choice=v.choice, reason=v.reason,
                                            claimed_master=v.claimed_master if v.HasField("claimed_master") else None,
                                            claim_kind=v.claim_kind, claim_evidence=v.claim_evidence))
        return view
