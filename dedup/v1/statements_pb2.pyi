# Generated from proto/dedup/v1 by proto/generate.py (make proto). Do not edit.
from dedup.v1 import asset_pb2 as _asset_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Relation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RELATION_UNSPECIFIED: _ClassVar[Relation]
    RELATION_IDENTICAL_BYTES: _ClassVar[Relation]
    RELATION_IDENTICAL_PIXELS: _ClassVar[Relation]
    RELATION_REENCODED: _ClassVar[Relation]
    RELATION_TONE_VARIANT: _ClassVar[Relation]
    RELATION_GREYSCALE: _ClassVar[Relation]
    RELATION_CROPPED: _ClassVar[Relation]
    RELATION_ROTATED_MIRRORED: _ClassVar[Relation]
    RELATION_BORDERED: _ClassVar[Relation]
    RELATION_EDITED: _ClassVar[Relation]
    RELATION_SIMILAR: _ClassVar[Relation]
    RELATION_RESCANNED: _ClassVar[Relation]

class VoteChoice(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VOTE_CHOICE_UNSPECIFIED: _ClassVar[VoteChoice]
    VOTE_CHOICE_ACCEPT: _ClassVar[VoteChoice]
    VOTE_CHOICE_REJECT: _ClassVar[VoteChoice]
    VOTE_CHOICE_CLAIM: _ClassVar[VoteChoice]

class AgreementBasis(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGREEMENT_BASIS_UNSPECIFIED: _ClassVar[AgreementBasis]
    AGREEMENT_BASIS_UNANIMOUS: _ClassVar[AgreementBasis]
    AGREEMENT_BASIS_DEADLINE: _ClassVar[AgreementBasis]
    AGREEMENT_BASIS_RULING: _ClassVar[AgreementBasis]
RELATION_UNSPECIFIED: Relation
RELATION_IDENTICAL_BYTES: Relation
RELATION_IDENTICAL_PIXELS: Relation
RELATION_REENCODED: Relation
RELATION_TONE_VARIANT: Relation
RELATION_GREYSCALE: Relation
RELATION_CROPPED: Relation
RELATION_ROTATED_MIRRORED: Relation
RELATION_BORDERED: Relation
RELATION_EDITED: Relation
RELATION_SIMILAR: Relation
RELATION_RESCANNED: Relation
VOTE_CHOICE_UNSPECIFIED: VoteChoice
VOTE_CHOICE_ACCEPT: VoteChoice
VOTE_CHOICE_REJECT: VoteChoice
VOTE_CHOICE_CLAIM: VoteChoice
AGREEMENT_BASIS_UNSPECIFIED: AgreementBasis
AGREEMENT_BASIS_UNANIMOUS: AgreementBasis
AGREEMENT_BASIS_DEADLINE: AgreementBasis
AGREEMENT_BASIS_RULING: AgreementBasis

class AssetRef(_message.Message):
    __slots__ = ("member_id", "asset_id")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    asset_id: str
    def __init__(self, member_id: _Optional[str] = ..., asset_id: _Optional[str] = ...) -> None: ...

class MemberAdmitted(_message.Message):
    __slots__ = ("member_id", "display_name", "public_key", "custodial_priority", "admitted_unix", "arbiter", "reader", "auditor")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    CUSTODIAL_PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ADMITTED_UNIX_FIELD_NUMBER: _ClassVar[int]
    ARBITER_FIELD_NUMBER: _ClassVar[int]
    READER_FIELD_NUMBER: _ClassVar[int]
    AUDITOR_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    display_name: str
    public_key: bytes
    custodial_priority: int
    admitted_unix: int
    arbiter: bool
    reader: bool
    auditor: bool
    def __init__(self, member_id: _Optional[str] = ..., display_name: _Optional[str] = ..., public_key: _Optional[bytes] = ..., custodial_priority: _Optional[int] = ..., admitted_unix: _Optional[int] = ..., arbiter: _Optional[bool] = ..., reader: _Optional[bool] = ..., auditor: _Optional[bool] = ...) -> None: ...

class MemberRevoked(_message.Message):
    __slots__ = ("member_id", "public_key", "reason", "revoked_unix")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REVOKED_UNIX_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    public_key: bytes
    reason: str
    revoked_unix: int
    def __init__(self, member_id: _Optional[str] = ..., public_key: _Optional[bytes] = ..., reason: _Optional[str] = ..., revoked_unix: _Optional[int] = ...) -> None: ...

class MemberKeyReplaced(_message.Message):
    __slots__ = ("member_id", "old_public_key", "new_public_key", "replaced_unix")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    OLD_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    NEW_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    REPLACED_UNIX_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    old_public_key: bytes
    new_public_key: bytes
    replaced_unix: int
    def __init__(self, member_id: _Optional[str] = ..., old_public_key: _Optional[bytes] = ..., new_public_key: _Optional[bytes] = ..., replaced_unix: _Optional[int] = ...) -> None: ...

class MatchRecorded(_message.Message):
    __slots__ = ("match_id", "cluster_id", "a", "b", "relation", "algorithm", "distance", "recorded_unix", "kept_permille", "crop")
    MATCH_ID_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    RELATION_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    RECORDED_UNIX_FIELD_NUMBER: _ClassVar[int]
    KEPT_PERMILLE_FIELD_NUMBER: _ClassVar[int]
    CROP_FIELD_NUMBER: _ClassVar[int]
    match_id: str
    cluster_id: str
    a: AssetRef
    b: AssetRef
    relation: Relation
    algorithm: str
    distance: int
    recorded_unix: int
    kept_permille: int
    crop: AssetRef
    def __init__(self, match_id: _Optional[str] = ..., cluster_id: _Optional[str] = ..., a: _Optional[_Union[AssetRef, _Mapping]] = ..., b: _Optional[_Union[AssetRef, _Mapping]] = ..., relation: _Optional[_Union[Relation, str]] = ..., algorithm: _Optional[str] = ..., distance: _Optional[int] = ..., recorded_unix: _Optional[int] = ..., kept_permille: _Optional[int] = ..., crop: _Optional[_Union[AssetRef, _Mapping]] = ...) -> None: ...

class Copy(_message.Message):
    __slots__ = ("ref", "evidence", "derived")
    REF_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    DERIVED_FIELD_NUMBER: _ClassVar[int]
    ref: AssetRef
    evidence: _asset_pb2.Evidence
    derived: bool
    def __init__(self, ref: _Optional[_Union[AssetRef, _Mapping]] = ..., evidence: _Optional[_Union[_asset_pb2.Evidence, _Mapping]] = ..., derived: _Optional[bool] = ...) -> None: ...

class MasterProposed(_message.Message):
    __slots__ = ("proposal_id", "cluster_id", "copies", "master", "policy_version", "deciding_rule", "proposed_unix", "supersedes", "reason", "deadline_unix")
    PROPOSAL_ID_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    COPIES_FIELD_NUMBER: _ClassVar[int]
    MASTER_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    DECIDING_RULE_FIELD_NUMBER: _ClassVar[int]
    PROPOSED_UNIX_FIELD_NUMBER: _ClassVar[int]
    SUPERSEDES_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_UNIX_FIELD_NUMBER: _ClassVar[int]
    proposal_id: str
    cluster_id: str
    copies: _containers.RepeatedCompositeFieldContainer[Copy]
    master: AssetRef
    policy_version: str
    deciding_rule: str
    proposed_unix: int
    supersedes: str
    reason: str
    deadline_unix: int
    def __init__(self, proposal_id: _Optional[str] = ..., cluster_id: _Optional[str] = ..., copies: _Optional[_Iterable[_Union[Copy, _Mapping]]] = ..., master: _Optional[_Union[AssetRef, _Mapping]] = ..., policy_version: _Optional[str] = ..., deciding_rule: _Optional[str] = ..., proposed_unix: _Optional[int] = ..., supersedes: _Optional[str] = ..., reason: _Optional[str] = ..., deadline_unix: _Optional[int] = ...) -> None: ...

class MasterVote(_message.Message):
    __slots__ = ("proposal_id", "cluster_id", "member_id", "choice", "reason", "claimed_master", "claim_kind", "claim_evidence", "voted_unix")
    PROPOSAL_ID_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    CHOICE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CLAIMED_MASTER_FIELD_NUMBER: _ClassVar[int]
    CLAIM_KIND_FIELD_NUMBER: _ClassVar[int]
    CLAIM_EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    VOTED_UNIX_FIELD_NUMBER: _ClassVar[int]
    proposal_id: str
    cluster_id: str
    member_id: str
    choice: VoteChoice
    reason: str
    claimed_master: AssetRef
    claim_kind: str
    claim_evidence: str
    voted_unix: int
    def __init__(self, proposal_id: _Optional[str] = ..., cluster_id: _Optional[str] = ..., member_id: _Optional[str] = ..., choice: _Optional[_Union[VoteChoice, str]] = ..., reason: _Optional[str] = ..., claimed_master: _Optional[_Union[AssetRef, _Mapping]] = ..., claim_kind: _Optional[str] = ..., claim_evidence: _Optional[str] = ..., voted_unix: _Optional[int] = ...) -> None: ...

class MasterBallot(_message.Message):
    __slots__ = ("member_id", "votes", "cast_unix")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    VOTES_FIELD_NUMBER: _ClassVar[int]
    CAST_UNIX_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    votes: _containers.RepeatedCompositeFieldContainer[MasterVote]
    cast_unix: int
    def __init__(self, member_id: _Optional[str] = ..., votes: _Optional[_Iterable[_Union[MasterVote, _Mapping]]] = ..., cast_unix: _Optional[int] = ...) -> None: ...

class MasterRuling(_message.Message):
    __slots__ = ("proposal_id", "cluster_id", "master", "reasoning", "arbiter_id", "ruled_unix")
    PROPOSAL_ID_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    MASTER_FIELD_NUMBER: _ClassVar[int]
    REASONING_FIELD_NUMBER: _ClassVar[int]
    ARBITER_ID_FIELD_NUMBER: _ClassVar[int]
    RULED_UNIX_FIELD_NUMBER: _ClassVar[int]
    proposal_id: str
    cluster_id: str
    master: AssetRef
    reasoning: str
    arbiter_id: str
    ruled_unix: int
    def __init__(self, proposal_id: _Optional[str] = ..., cluster_id: _Optional[str] = ..., master: _Optional[_Union[AssetRef, _Mapping]] = ..., reasoning: _Optional[str] = ..., arbiter_id: _Optional[str] = ..., ruled_unix: _Optional[int] = ...) -> None: ...

class MasterAgreed(_message.Message):
    __slots__ = ("proposal_id", "cluster_id", "master", "basis", "vote_indexes", "ruling_index", "silent_members", "agreed_unix")
    PROPOSAL_ID_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    MASTER_FIELD_NUMBER: _ClassVar[int]
    BASIS_FIELD_NUMBER: _ClassVar[int]
    VOTE_INDEXES_FIELD_NUMBER: _ClassVar[int]
    RULING_INDEX_FIELD_NUMBER: _ClassVar[int]
    SILENT_MEMBERS_FIELD_NUMBER: _ClassVar[int]
    AGREED_UNIX_FIELD_NUMBER: _ClassVar[int]
    proposal_id: str
    cluster_id: str
    master: AssetRef
    basis: AgreementBasis
    vote_indexes: _containers.RepeatedScalarFieldContainer[int]
    ruling_index: int
    silent_members: _containers.RepeatedScalarFieldContainer[str]
    agreed_unix: int
    def __init__(self, proposal_id: _Optional[str] = ..., cluster_id: _Optional[str] = ..., master: _Optional[_Union[AssetRef, _Mapping]] = ..., basis: _Optional[_Union[AgreementBasis, str]] = ..., vote_indexes: _Optional[_Iterable[int]] = ..., ruling_index: _Optional[int] = ..., silent_members: _Optional[_Iterable[str]] = ..., agreed_unix: _Optional[int] = ...) -> None: ...

class LogKeyRotated(_message.Message):
    __slots__ = ("old_verifier_key", "new_verifier_key", "reason", "rotated_unix")
    OLD_VERIFIER_KEY_FIELD_NUMBER: _ClassVar[int]
    NEW_VERIFIER_KEY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ROTATED_UNIX_FIELD_NUMBER: _ClassVar[int]
    old_verifier_key: str
    new_verifier_key: str
    reason: str
    rotated_unix: int
    def __init__(self, old_verifier_key: _Optional[str] = ..., new_verifier_key: _Optional[str] = ..., reason: _Optional[str] = ..., rotated_unix: _Optional[int] = ...) -> None: ...

class LookupsCounted(_message.Message):
    __slots__ = ("member_id", "calls", "files", "period_start_unix", "period_end_unix")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    PERIOD_START_UNIX_FIELD_NUMBER: _ClassVar[int]
    PERIOD_END_UNIX_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    calls: int
    files: int
    period_start_unix: int
    period_end_unix: int
    def __init__(self, member_id: _Optional[str] = ..., calls: _Optional[int] = ..., files: _Optional[int] = ..., period_start_unix: _Optional[int] = ..., period_end_unix: _Optional[int] = ...) -> None: ...
