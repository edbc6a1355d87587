# Generated from proto/dedup/v1 by proto/generate.py (make proto). Do not edit.
from dedup.v1 import asset_pb2 as _asset_pb2
from dedup.v1 import statements_pb2 as _statements_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MasterStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MASTER_STATUS_UNSPECIFIED: _ClassVar[MasterStatus]
    MASTER_STATUS_AGREED: _ClassVar[MasterStatus]
    MASTER_STATUS_PROPOSED: _ClassVar[MasterStatus]
    MASTER_STATUS_DISPUTED: _ClassVar[MasterStatus]
    MASTER_STATUS_NONE: _ClassVar[MasterStatus]
MASTER_STATUS_UNSPECIFIED: MasterStatus
MASTER_STATUS_AGREED: MasterStatus
MASTER_STATUS_PROPOSED: MasterStatus
MASTER_STATUS_DISPUTED: MasterStatus
MASTER_STATUS_NONE: MasterStatus

class LookupRequest(_message.Message):
    __slots__ = ("files",)
    FILES_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedCompositeFieldContainer[_asset_pb2.Asset]
    def __init__(self, files: _Optional[_Iterable[_Union[_asset_pb2.Asset, _Mapping]]] = ...) -> None: ...

class LookupResult(_message.Message):
    __slots__ = ("position", "matched", "cluster_id", "master_status", "master", "master_evidence", "relation", "distance", "kept_permille", "master_is_crop", "description", "proposal_id", "copies", "holders", "outcome_log_index", "inclusion_proof", "agreed_master")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    MASTER_STATUS_FIELD_NUMBER: _ClassVar[int]
    MASTER_FIELD_NUMBER: _ClassVar[int]
    MASTER_EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    RELATION_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    KEPT_PERMILLE_FIELD_NUMBER: _ClassVar[int]
    MASTER_IS_CROP_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PROPOSAL_ID_FIELD_NUMBER: _ClassVar[int]
    COPIES_FIELD_NUMBER: _ClassVar[int]
    HOLDERS_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    INCLUSION_PROOF_FIELD_NUMBER: _ClassVar[int]
    AGREED_MASTER_FIELD_NUMBER: _ClassVar[int]
    position: int
    matched: bool
    cluster_id: str
    master_status: MasterStatus
    master: _statements_pb2.AssetRef
    master_evidence: _asset_pb2.Evidence
    relation: _statements_pb2.Relation
    distance: int
    kept_permille: int
    master_is_crop: bool
    description: str
    proposal_id: str
    copies: int
    holders: int
    outcome_log_index: int
    inclusion_proof: str
    agreed_master: _statements_pb2.AssetRef
    def __init__(self, position: _Optional[int] = ..., matched: _Optional[bool] = ..., cluster_id: _Optional[str] = ..., master_status: _Optional[_Union[MasterStatus, str]] = ..., master: _Optional[_Union[_statements_pb2.AssetRef, _Mapping]] = ..., master_evidence: _Optional[_Union[_asset_pb2.Evidence, _Mapping]] = ..., relation: _Optional[_Union[_statements_pb2.Relation, str]] = ..., distance: _Optional[int] = ..., kept_permille: _Optional[int] = ..., master_is_crop: _Optional[bool] = ..., description: _Optional[str] = ..., proposal_id: _Optional[str] = ..., copies: _Optional[int] = ..., holders: _Optional[int] = ..., outcome_log_index: _Optional[int] = ..., inclusion_proof: _Optional[str] = ..., agreed_master: _Optional[_Union[_statements_pb2.AssetRef, _Mapping]] = ...) -> None: ...

class LookupResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[LookupResult]
    def __init__(self, results: _Optional[_Iterable[_Union[LookupResult, _Mapping]]] = ...) -> None: ...
