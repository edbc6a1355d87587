# Generated from proto/dedup/v1 by proto/generate.py (make proto). Do not edit.
from dedup.v1 import statement_pb2 as _statement_pb2
from dedup.v1 import statements_pb2 as _statements_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProposalStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROPOSAL_STATUS_UNSPECIFIED: _ClassVar[ProposalStatus]
    PROPOSAL_STATUS_OPEN: _ClassVar[ProposalStatus]
    PROPOSAL_STATUS_DISPUTED: _ClassVar[ProposalStatus]
    PROPOSAL_STATUS_AGREED: _ClassVar[ProposalStatus]
    PROPOSAL_STATUS_SUPERSEDED: _ClassVar[ProposalStatus]
PROPOSAL_STATUS_UNSPECIFIED: ProposalStatus
PROPOSAL_STATUS_OPEN: ProposalStatus
PROPOSAL_STATUS_DISPUTED: ProposalStatus
PROPOSAL_STATUS_AGREED: ProposalStatus
PROPOSAL_STATUS_SUPERSEDED: ProposalStatus

class ListProposalsRequest(_message.Message):
    __slots__ = ("status", "page_size", "page_token")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    status: _containers.RepeatedScalarFieldContainer[ProposalStatus]
    page_size: int
    page_token: str
    def __init__(self, status: _Optional[_Iterable[_Union[ProposalStatus, str]]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class VoteSummary(_message.Message):
    __slots__ = ("member_id", "choice", "reason", "claimed_master", "claim_kind", "claim_evidence")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    CHOICE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CLAIMED_MASTER_FIELD_NUMBER: _ClassVar[int]
    CLAIM_KIND_FIELD_NUMBER: _ClassVar[int]
    CLAIM_EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    choice: _statements_pb2.VoteChoice
    reason: str
    claimed_master: _statements_pb2.AssetRef
    claim_kind: str
    claim_evidence: str
    def __init__(self, member_id: _Optional[str] = ..., choice: _Optional[_Union[_statements_pb2.VoteChoice, str]] = ..., reason: _Optional[str] = ..., claimed_master: _Optional[_Union[_statements_pb2.AssetRef, _Mapping]] = ..., claim_kind: _Optional[str] = ..., claim_evidence: _Optional[str] = ...) -> None: ...

class ProposalView(_message.Message):
    __slots__ = ("proposal_id", "cluster_id", "status", "copies", "master", "policy_version", "deciding_rule", "reason", "proposed_unix", "deadline_unix", "supersedes", "votes", "own_asset_ids", "agreed_master", "basis", "proposal_log_index", "outcome_log_index")
    PROPOSAL_ID_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    COPIES_FIELD_NUMBER: _ClassVar[int]
    MASTER_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    DECIDING_RULE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PROPOSED_UNIX_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_UNIX_FIELD_NUMBER: _ClassVar[int]
    SUPERSEDES_FIELD_NUMBER: _ClassVar[int]
    VOTES_FIELD_NUMBER: _ClassVar[int]
    OWN_ASSET_IDS_FIELD_NUMBER: _ClassVar[int]
    AGREED_MASTER_FIELD_NUMBER: _ClassVar[int]
    BASIS_FIELD_NUMBER: _ClassVar[int]
    PROPOSAL_LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    proposal_id: str
    cluster_id: str
    status: ProposalStatus
    copies: _containers.RepeatedCompositeFieldContainer[_statements_pb2.Copy]
    master: _statements_pb2.AssetRef
    policy_version: str
    deciding_rule: str
    reason: str
    proposed_unix: int
    deadline_unix: int
    supersedes: str
    votes: _containers.RepeatedCompositeFieldContainer[VoteSummary]
    own_asset_ids: _containers.RepeatedScalarFieldContainer[str]
    agreed_master: _statements_pb2.AssetRef
    basis: _statements_pb2.AgreementBasis
    proposal_log_index: int
    outcome_log_index: int
    def __init__(self, proposal_id: _Optional[str] = ..., cluster_id: _Optional[str] = ..., status: _Optional[_Union[ProposalStatus, str]] = ..., copies: _Optional[_Iterable[_Union[_statements_pb2.Copy, _Mapping]]] = ..., master: _Optional[_Union[_statements_pb2.AssetRef, _Mapping]] = ..., policy_version: _Optional[str] = ..., deciding_rule: _Optional[str] = ..., reason: _Optional[str] = ..., proposed_unix: _Optional[int] = ..., deadline_unix: _Optional[int] = ..., supersedes: _Optional[str] = ..., votes: _Optional[_Iterable[_Union[VoteSummary, _Mapping]]] = ..., own_asset_ids: _Optional[_Iterable[str]] = ..., agreed_master: _Optional[_Union[_statements_pb2.AssetRef, _Mapping]] = ..., basis: _Optional[_Union[_statements_pb2.AgreementBasis, str]] = ..., proposal_log_index: _Optional[int] = ..., outcome_log_index: _Optional[int] = ...) -> None: ...

class ListProposalsResponse(_message.Message):
    __slots__ = ("proposals", "next_page_token")
    PROPOSALS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    proposals: _containers.RepeatedCompositeFieldContainer[ProposalView]
    next_page_token: str
    def __init__(self, proposals: _Optional[_Iterable[_Union[ProposalView, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class VoteRequest(_message.Message):
    __slots__ = ("vote",)
    VOTE_FIELD_NUMBER: _ClassVar[int]
    vote: _statement_pb2.SignedStatement
    def __init__(self, vote: _Optional[_Union[_statement_pb2.SignedStatement, _Mapping]] = ...) -> None: ...

class VoteResponse(_message.Message):
    __slots__ = ("log_index", "status", "already_stored", "outcome_log_index")
    LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ALREADY_STORED_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    log_index: int
    status: ProposalStatus
    already_stored: bool
    outcome_log_index: int
    def __init__(self, log_index: _Optional[int] = ..., status: _Optional[_Union[ProposalStatus, str]] = ..., already_stored: _Optional[bool] = ..., outcome_log_index: _Optional[int] = ...) -> None: ...

class CastBallotRequest(_message.Message):
    __slots__ = ("ballot",)
    BALLOT_FIELD_NUMBER: _ClassVar[int]
    ballot: _statement_pb2.SignedStatement
    def __init__(self, ballot: _Optional[_Union[_statement_pb2.SignedStatement, _Mapping]] = ...) -> None: ...

class BallotResult(_message.Message):
    __slots__ = ("proposal_id", "status", "outcome_log_index")
    PROPOSAL_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    proposal_id: str
    status: ProposalStatus
    outcome_log_index: int
    def __init__(self, proposal_id: _Optional[str] = ..., status: _Optional[_Union[ProposalStatus, str]] = ..., outcome_log_index: _Optional[int] = ...) -> None: ...

class CastBallotResponse(_message.Message):
    __slots__ = ("log_index", "already_stored", "results")
    LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    ALREADY_STORED_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    log_index: int
    already_stored: bool
    results: _containers.RepeatedCompositeFieldContainer[BallotResult]
    def __init__(self, log_index: _Optional[int] = ..., already_stored: _Optional[bool] = ..., results: _Optional[_Iterable[_Union[BallotResult, _Mapping]]] = ...) -> None: ...

class RuleRequest(_message.Message):
    __slots__ = ("ruling",)
    RULING_FIELD_NUMBER: _ClassVar[int]
    ruling: _statement_pb2.SignedStatement
    def __init__(self, ruling: _Optional[_Union[_statement_pb2.SignedStatement, _Mapping]] = ...) -> None: ...

class RuleResponse(_message.Message):
    __slots__ = ("log_index", "outcome_log_index")
    LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    log_index: int
    outcome_log_index: int
    def __init__(self, log_index: _Optional[int] = ..., outcome_log_index: _Optional[int] = ...) -> None: ...
