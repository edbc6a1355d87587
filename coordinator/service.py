"""gRPC servicers: map requests to the coordinator core and refusals to gRPC statuses."""

from __future__ import annotations

import logging

import grpc

from dedup.jsonlog import event
from dedup.v1 import (intake_pb2, intake_pb2_grpc, log_pb2, log_pb2_grpc, lookup_pb2, lookup_pb2_grpc, negotiation_pb2,
                      negotiation_pb2_grpc, statements_pb2)

from . import witnessing
from .consortium import Coordinator
from .metrics import Metrics
from .refusal import Refusal

log = logging.getLogger("dedup.coordinator")

MAX_ENTRIES_PER_CALL = 1000


def peer_identity(context: grpc.ServicerContext) -> str:
    """The member id the client certificate names (its common name); '' without one."""
    auth = context.auth_context()
    names = auth.get("x509_common_name") or []
    return names[0].decode("utf-8", "replace") if names else ""


def _refuse(context: grpc.ServicerContext, metrics: Metrics, method: str, identity: str, r: Refusal):
    metrics.refusals.labels(method, r.reason).inc()
    event(log, "refused", logging.WARNING, method=method, member=identity, reason=r.reason,
          code=r.code.name, detail=r.message)
    context.abort(r.code, r.message)


class IntakeService(intake_pb2_grpc.IntakeServiceServicer):
    def __init__(self, core: Coordinator, metrics: Metrics) -> None:
        self.core = core
        self.metrics = metrics

    def SubmitBatch(self, request: intake_pb2.SubmitBatchRequest, context: grpc.ServicerContext):
        identity = peer_identity(context)
        m = self.metrics
        with m.latency.labels("SubmitBatch").time():
            try:
                resp = self.core.submit_batch(identity, request.manifest, request.assets)
            except Refusal as r:
                _refuse(context, m, "SubmitBatch", identity, r)
        m.batches.labels("already_stored" if resp.already_stored else "stored").inc()
        if not resp.already_stored:
            m.assets.inc(resp.accepted)
            m.matches.inc(resp.new_matches)
        m.index_size.set(len(self.core.matcher.index))
        m.log_size.set(self.core.log.size)
        event(log, "batch", member=identity, batch_id=resp.batch_id, accepted=resp.accepted,
              already_stored=resp.already_stored, new_matches=resp.new_matches, log_index=resp.log_index)
        return resp

    def WithdrawAssets(self, request: intake_pb2.WithdrawAssetsRequest, context: grpc.ServicerContext):
        identity = peer_identity(context)
        with self.metrics.latency.labels("WithdrawAssets").time():
            try:
                resp = self.core.withdraw(identity, request.withdrawal)
            except Refusal as r:
                _refuse(context, self.metrics, "WithdrawAssets", identity, r)
        self.metrics.index_size.set(len(self.core.matcher.index))
        self.metrics.log_size.set(self.core.log.size)
        event(log, "withdrawal", member=identity, withdrawn=resp.withdrawn, already_stored=resp.already_stored,
              log_index=resp.log_index)
        return resp

    def ListMatches(self, request: intake_pb2.ListMatchesRequest, context: grpc.ServicerContext):
        identity = peer_identity(context)
        with self.metrics.latency.labels("ListMatches").time():
            try:
                return self.core.list_matches(identity, request.page_size, request.page_token)
            except Refusal as r:
                _refuse(context, self.metrics, "ListMatches", identity, r)


class LogService(log_pb2_grpc.LogServiceServicer):
    def __init__(self, core: Coordinator, metrics: Metrics | None = None) -> None:
        self.core = core
        self.metrics = metrics or Metrics()

    def _reader(self, context: grpc.ServicerContext, method: str) -> str:
        """Only a member whose key stands reads the log: a certificate of the consortium's CA that
        names no member, or a revoked member's, reads nothing. What a member may read of each
        entry is the core's ``entry_reader``."""
        identity = peer_identity(context)
        try:
            self.core.member(identity, "it may not read the log")
        except Refusal as r:
            _refuse(context, self.metrics, method, identity, r)
        return identity

    def GetCheckpoint(self, request, context):
        self._reader(context, "GetCheckpoint")
        return log_pb2.GetCheckpointResponse(signed_checkpoint=self.core.log.checkpoint_note() or "")

    def GetConsistencyProof(self, request: log_pb2.GetConsistencyProofRequest, context):
        self._reader(context, "GetConsistencyProof")
        try:
            size, proof, note = witnessing.consistency_proof(self.core, request.old_size, request.new_size)
        except Refusal as r:
            context.abort(r.code, r.message)
        return log_pb2.GetConsistencyProofResponse(old_size=request.old_size, new_size=size, hashes=proof,
                                                   signed_checkpoint=note)

    def AddCosignature(self, request: log_pb2.AddCosignatureRequest, context):
        identity = peer_identity(context)
        with self.metrics.latency.labels("AddCosignature").time():
            try:
                size, _ = witnessing.add_cosignature(self.core, identity, request.cosigned_checkpoint)
            except Refusal as r:
                self.metrics.cosignatures.labels("refused").inc()
                _refuse(context, self.metrics, "AddCosignature", identity, r)
        self.metrics.cosignatures.labels("accepted").inc()
        event(log, "cosignature", member=identity, tree_size=size)
        return log_pb2.AddCosignatureResponse(tree_size=size)

    def GetEntries(self, request: log_pb2.GetEntriesRequest, context):
        identity = self._reader(context, "GetEntries")
        size = self.core.log.size
        if request.start >= size or request.end <= request.start:
            context.abort(grpc.StatusCode.OUT_OF_RANGE,
                          f"entries [{request.start}, {request.end}) are not in a log of {size} entries")
        end = min(request.end, size, request.start + MAX_ENTRIES_PER_CALL)
        rows = self.core.store.log_range(request.start, end)
        may_read = self.core.entry_reader(identity)
        # Withheld entries keep their place (empty) and their leaf hash: roots stay checkable.
        return log_pb2.GetEntriesResponse(entries=[e if may_read(e) else b"" for e, _ in rows],
                                          leaf_hashes=[h for _, h in rows])

    def GetInclusionProof(self, request: log_pb2.GetInclusionProofRequest, context):
        identity = self._reader(context, "GetInclusionProof")
        latest = self.core.store.latest_checkpoint()
        latest_size = latest[0] if latest else 0
        size = request.tree_size or latest_size
        if size > latest_size:
            context.abort(grpc.StatusCode.OUT_OF_RANGE,
                          f"tree size {size} is beyond the latest checkpoint's size {latest_size}")
        # Only published sizes: a proof against a root nobody signed would prove nothing.
        note = self.core.log.checkpoint_note(size)
        if note is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no checkpoint was published for tree size {size}")
        if request.index >= size:
            context.abort(grpc.StatusCode.OUT_OF_RANGE,
                          f"entry index {request.index} is not inside the tree of size {size}")
        (entry, leaf_hash), = self.core.store.log_range(request.index, request.index + 1)
        return log_pb2.GetInclusionProofResponse(
            index=request.index, tree_size=size, hashes=self.core.log.tree.inclusion_proof(request.index, size),
            entry=entry if self.core.entry_reader(identity)(entry) else b"", signed_checkpoint=note,
            leaf_hash=leaf_hash)


def _name(enum, value: int, prefix: str) -> str:
    return enum.Name(value).removeprefix(prefix).lower()


def update_proposal_gauge(core: Coordinator, metrics: Metrics) -> None:
    counts = core.negotiation.counts()
    for value in negotiation_pb2.ProposalStatus.values():
        if value:
            metrics.proposals.labels(_name(negotiation_pb2.ProposalStatus, value, "PROPOSAL_STATUS_")).set(
                counts.get(value, 0))


def record_agreement(metrics: Metrics, basis: int) -> None:
    metrics.agreements.labels(_name(statements_pb2.AgreementBasis, basis, "AGREEMENT_BASIS_")).inc()


class NegotiationService(negotiation_pb2_grpc.NegotiationServiceServicer):
    def __init__(self, core: Coordinator, metrics: Metrics) -> None:
        self.core = core
        self.metrics = metrics

    def ListProposals(self, request: negotiation_pb2.ListProposalsRequest, context: grpc.ServicerContext):
        identity = peer_identity(context)
        with self.metrics.latency.labels("ListProposals").time():
            try:
                return self.core.list_proposals(identity, list(request.status), request.page_size, request.page_token)
            except Refusal as r:
                _refuse(context, self.metrics, "ListProposals", identity, r)

    def Vote(self, request: negotiation_pb2.VoteRequest, context: grpc.ServicerContext):
        identity = peer_identity(context)
        m = self.metrics
        with m.latency.labels("Vote").time():
            try:
                resp = self.core.vote(identity, request.vote)
            except Refusal as r:
                _refuse(context, m, "Vote", identity, r)
        if not resp.already_stored:
            choice = statements_pb2.MasterVote.FromString(request.vote.body).choice
            m.votes.labels(_name(statements_pb2.VoteChoice, choice, "VOTE_CHOICE_")).inc()
            if resp.outcome_log_index:
                record_agreement(m, statements_pb2.AGREEMENT_BASIS_UNANIMOUS)
            update_proposal_gauge(self.core, m)
        m.log_size.set(self.core.log.size)
        event(log, "vote", member=identity, status=_name(negotiation_pb2.ProposalStatus, resp.status, "PROPOSAL_STATUS_"),
              already_stored=resp.already_stored, log_index=resp.log_index, outcome_log_index=resp.outcome_log_index)
        return resp

    def CastBallot(self, request: negotiation_pb2.CastBallotRequest, context: grpc.ServicerContext):
        identity = peer_identity(context)
        m = self.metrics
        with m.latency.labels("CastBallot").time():
            try:
                resp = self.core.cast_ballot(identity, request.ballot)
            except Refusal as r:
                _refuse(context, m, "CastBallot", identity, r)
        if not resp.already_stored:
            for v in statements_pb2.MasterBallot.FromString(request.ballot.body).votes:
                m.votes.labels(_name(statements_pb2.VoteChoice, v.choice, "VOTE_CHOICE_")).inc()
            for x in resp.results:
                if x.outcome_log_index:
                    record_agreement(m, statements_pb2.AGREEMENT_BASIS_UNANIMOUS)
            update_proposal_gauge(self.core, m)
        m.log_size.set(self.core.log.size)
        event(log, "ballot", member=identity, votes=len(resp.results), already_stored=resp.already_stored,
              log_index=resp.log_index, agreed=sum(1 for x in resp.results if x.outcome_log_index))
        return resp

    def Rule(self, request: negotiation_pb2.RuleRequest, context: grpc.ServicerContext):
        identity = peer_identity(context)
        m = self.metrics
        with m.latency.labels("Rule").time():
            try:
                resp = self.core.rule(identity, request.ruling)
            except Refusal as r:
                _refuse(context, m, "Rule", identity, r)
        m.rulings.inc()
        record_agreement(m, statements_pb2.AGREEMENT_BASIS_RULING)
        update_proposal_gauge(self.core, m)
        m.log_size.set(self.core.log.size)
        event(log, "ruling", member=identity, log_index=resp.log_index, outcome_log_index=resp.outcome_log_index)
        return resp


class LookupService(lookup_pb2_grpc.LookupServiceServicer):
    def __init__(self, core: Coordinator, metrics: Metrics) -> None:
        self.core = core
        self.metrics = metrics

    def Lookup(self, request: lookup_pb2.LookupRequest, context: grpc.ServicerContext):
        identity = peer_identity(context)
        with self.metrics.latency.labels("Lookup").time():
            try:
                resp = self.core.lookup(identity, request.files)
            except Refusal as r:
                _refuse(context, self.metrics, "Lookup", identity, r)
        # Counts only: what was asked is never logged.
        event(log, "lookup", member=identity, files=len(request.files),
              matched=sum(r.matched for r in resp.results))
        return resp
