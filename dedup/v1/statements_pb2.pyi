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

class AssetRef(_message.Message):
    __slots__ = ("member_id", "asset_id")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    asset_id: str
    def __init__(self, member_id: _Optional[str] = ..., asset_id: _Optional[str] = ...) -> None: ...

class MemberAdmitted(_message.Message):
    __slots__ = ("member_id", "display_name", "public_key", "custodial_priority", "admitted_unix")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    CUSTODIAL_PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ADMITTED_UNIX_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    display_name: str
    public_key: bytes
    custodial_priority: int
    admitted_unix: int
    def __init__(self, member_id: _Optional[str] = ..., display_name: _Optional[str] = ..., public_key: _Optional[bytes] = ..., custodial_priority: _Optional[int] = ..., admitted_unix: _Optional[int] = ...) -> None: ...

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

class MatchRecorded(_message.Message):
    __slots__ = ("match_id", "cluster_id", "a", "b", "relation", "algorithm", "distance", "recorded_unix", "kept_permille")
    MATCH_ID_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    RELATION_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    RECORDED_UNIX_FIELD_NUMBER: _ClassVar[int]
    KEPT_PERMILLE_FIELD_NUMBER: _ClassVar[int]
    match_id: str
    cluster_id: str
    a: AssetRef
    b: AssetRef
    relation: Relation
    algorithm: str
    distance: int
    recorded_unix: int
    kept_permille: int
    def __init__(self, match_id: _Optional[str] = ..., cluster_id: _Optional[str] = ..., a: _Optional[_Union[AssetRef, _Mapping]] = ..., b: _Optional[_Union[AssetRef, _Mapping]] = ..., relation: _Optional[_Union[Relation, str]] = ..., algorithm: _Optional[str] = ..., distance: _Optional[int] = ..., recorded_unix: _Optional[int] = ..., kept_permille: _Optional[int] = ...) -> None: ...

class Copy(_message.Message):
    __slots__ = ("ref", "evidence")
    REF_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    ref: AssetRef
    evidence: _asset_pb2.Evidence
    def __init__(self, ref: _Optional[_Union[AssetRef, _Mapping]] = ..., evidence: _Optional[_Union[_asset_pb2.Evidence, _Mapping]] = ...) -> None: ...

class MasterProposed(_message.Message):
    __slots__ = ("proposal_id", "cluster_id", "copies", "master", "policy_version", "deciding_rule", "proposed_unix")
    PROPOSAL_ID_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    COPIES_FIELD_NUMBER: _ClassVar[int]
    MASTER_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    DECIDING_RULE_FIELD_NUMBER: _ClassVar[int]
    PROPOSED_UNIX_FIELD_NUMBER: _ClassVar[int]
    proposal_id: str
    cluster_id: str
    copies: _containers.RepeatedCompositeFieldContainer[Copy]
    master: AssetRef
    policy_version: str
    deciding_rule: str
    proposed_unix: int
    def __init__(self, proposal_id: _Optional[str] = ..., cluster_id: _Optional[str] = ..., copies: _Optional[_Iterable[_Union[Copy, _Mapping]]] = ..., master: _Optional[_Union[AssetRef, _Mapping]] = ..., policy_version: _Optional[str] = ..., deciding_rule: _Optional[str] = ..., proposed_unix: _Optional[int] = ...) -> None: ...

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
