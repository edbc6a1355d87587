# Generated from proto/dedup/v1 by proto/generate.py (make proto). Do not edit.
from dedup.v1 import asset_pb2 as _asset_pb2
from dedup.v1 import statement_pb2 as _statement_pb2
from dedup.v1 import statements_pb2 as _statements_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WithdrawAssetsRequest(_message.Message):
    __slots__ = ("withdrawal",)
    WITHDRAWAL_FIELD_NUMBER: _ClassVar[int]
    withdrawal: _statement_pb2.SignedStatement
    def __init__(self, withdrawal: _Optional[_Union[_statement_pb2.SignedStatement, _Mapping]] = ...) -> None: ...

class WithdrawAssetsResponse(_message.Message):
    __slots__ = ("withdrawn", "already_stored", "log_index")
    WITHDRAWN_FIELD_NUMBER: _ClassVar[int]
    ALREADY_STORED_FIELD_NUMBER: _ClassVar[int]
    LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    withdrawn: int
    already_stored: bool
    log_index: int
    def __init__(self, withdrawn: _Optional[int] = ..., already_stored: _Optional[bool] = ..., log_index: _Optional[int] = ...) -> None: ...

class SubmitBatchRequest(_message.Message):
    __slots__ = ("manifest", "assets")
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    ASSETS_FIELD_NUMBER: _ClassVar[int]
    manifest: _statement_pb2.SignedStatement
    assets: bytes
    def __init__(self, manifest: _Optional[_Union[_statement_pb2.SignedStatement, _Mapping]] = ..., assets: _Optional[bytes] = ...) -> None: ...

class SubmitBatchResponse(_message.Message):
    __slots__ = ("batch_id", "accepted", "already_stored", "log_index", "new_matches")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    ALREADY_STORED_FIELD_NUMBER: _ClassVar[int]
    LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    NEW_MATCHES_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    accepted: int
    already_stored: bool
    log_index: int
    new_matches: int
    def __init__(self, batch_id: _Optional[str] = ..., accepted: _Optional[int] = ..., already_stored: _Optional[bool] = ..., log_index: _Optional[int] = ..., new_matches: _Optional[int] = ...) -> None: ...

class ListMatchesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class MemberMatch(_message.Message):
    __slots__ = ("cluster_id", "own_asset_id", "counterpart_member", "counterpart_asset_id", "relation", "distance", "counterpart_evidence", "kept_permille")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    OWN_ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    COUNTERPART_MEMBER_FIELD_NUMBER: _ClassVar[int]
    COUNTERPART_ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    RELATION_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    COUNTERPART_EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    KEPT_PERMILLE_FIELD_NUMBER: _ClassVar[int]
    cluster_id: str
    own_asset_id: str
    counterpart_member: str
    counterpart_asset_id: str
    relation: _statements_pb2.Relation
    distance: int
    counterpart_evidence: _asset_pb2.Evidence
    kept_permille: int
    def __init__(self, cluster_id: _Optional[str] = ..., own_asset_id: _Optional[str] = ..., counterpart_member: _Optional[str] = ..., counterpart_asset_id: _Optional[str] = ..., relation: _Optional[_Union[_statements_pb2.Relation, str]] = ..., distance: _Optional[int] = ..., counterpart_evidence: _Optional[_Union[_asset_pb2.Evidence, _Mapping]] = ..., kept_permille: _Optional[int] = ...) -> None: ...

class ListMatchesResponse(_message.Message):
    __slots__ = ("matches", "next_page_token")
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    matches: _containers.RepeatedCompositeFieldContainer[MemberMatch]
    next_page_token: str
    def __init__(self, matches: _Optional[_Iterable[_Union[MemberMatch, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
