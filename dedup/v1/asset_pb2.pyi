# Generated from proto/dedup/v1 by proto/generate.py (make proto). Do not edit.
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FormatFamily(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FORMAT_FAMILY_UNSPECIFIED: _ClassVar[FormatFamily]
    FORMAT_FAMILY_LOSSLESS: _ClassVar[FormatFamily]
    FORMAT_FAMILY_LOSSY: _ClassVar[FormatFamily]
FORMAT_FAMILY_UNSPECIFIED: FormatFamily
FORMAT_FAMILY_LOSSLESS: FormatFamily
FORMAT_FAMILY_LOSSY: FormatFamily

class Fingerprint(_message.Message):
    __slots__ = ("algorithm", "version", "value")
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    algorithm: str
    version: int
    value: bytes
    def __init__(self, algorithm: _Optional[str] = ..., version: _Optional[int] = ..., value: _Optional[bytes] = ...) -> None: ...

class Evidence(_message.Message):
    __slots__ = ("width", "height", "bit_depth", "format_family", "jpeg_quality", "capture_date", "rights", "channels", "frame_width", "frame_height", "skew_centidegrees", "luma_mean", "luma_spread", "saturation", "cast_blue", "cast_red", "flat_top", "flat_bottom", "flat_left", "flat_right")
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    BIT_DEPTH_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FAMILY_FIELD_NUMBER: _ClassVar[int]
    JPEG_QUALITY_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_DATE_FIELD_NUMBER: _ClassVar[int]
    RIGHTS_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    FRAME_WIDTH_FIELD_NUMBER: _ClassVar[int]
    FRAME_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    SKEW_CENTIDEGREES_FIELD_NUMBER: _ClassVar[int]
    LUMA_MEAN_FIELD_NUMBER: _ClassVar[int]
    LUMA_SPREAD_FIELD_NUMBER: _ClassVar[int]
    SATURATION_FIELD_NUMBER: _ClassVar[int]
    CAST_BLUE_FIELD_NUMBER: _ClassVar[int]
    CAST_RED_FIELD_NUMBER: _ClassVar[int]
    FLAT_TOP_FIELD_NUMBER: _ClassVar[int]
    FLAT_BOTTOM_FIELD_NUMBER: _ClassVar[int]
    FLAT_LEFT_FIELD_NUMBER: _ClassVar[int]
    FLAT_RIGHT_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    bit_depth: int
    format_family: FormatFamily
    jpeg_quality: int
    capture_date: str
    rights: str
    channels: int
    frame_width: int
    frame_height: int
    skew_centidegrees: int
    luma_mean: int
    luma_spread: int
    saturation: int
    cast_blue: int
    cast_red: int
    flat_top: int
    flat_bottom: int
    flat_left: int
    flat_right: int
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ..., bit_depth: _Optional[int] = ..., format_family: _Optional[_Union[FormatFamily, str]] = ..., jpeg_quality: _Optional[int] = ..., capture_date: _Optional[str] = ..., rights: _Optional[str] = ..., channels: _Optional[int] = ..., frame_width: _Optional[int] = ..., frame_height: _Optional[int] = ..., skew_centidegrees: _Optional[int] = ..., luma_mean: _Optional[int] = ..., luma_spread: _Optional[int] = ..., saturation: _Optional[int] = ..., cast_blue: _Optional[int] = ..., cast_red: _Optional[int] = ..., flat_top: _Optional[int] = ..., flat_bottom: _Optional[int] = ..., flat_left: _Optional[int] = ..., flat_right: _Optional[int] = ...) -> None: ...

class Asset(_message.Message):
    __slots__ = ("asset_id", "sha256", "pixel_digest", "fingerprints", "evidence", "low_information")
    ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    PIXEL_DIGEST_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINTS_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    LOW_INFORMATION_FIELD_NUMBER: _ClassVar[int]
    asset_id: str
    sha256: bytes
    pixel_digest: bytes
    fingerprints: _containers.RepeatedCompositeFieldContainer[Fingerprint]
    evidence: Evidence
    low_information: bool
    def __init__(self, asset_id: _Optional[str] = ..., sha256: _Optional[bytes] = ..., pixel_digest: _Optional[bytes] = ..., fingerprints: _Optional[_Iterable[_Union[Fingerprint, _Mapping]]] = ..., evidence: _Optional[_Union[Evidence, _Mapping]] = ..., low_information: _Optional[bool] = ...) -> None: ...

class AssetList(_message.Message):
    __slots__ = ("assets",)
    ASSETS_FIELD_NUMBER: _ClassVar[int]
    assets: _containers.RepeatedCompositeFieldContainer[Asset]
    def __init__(self, assets: _Optional[_Iterable[_Union[Asset, _Mapping]]] = ...) -> None: ...

class AssetsWithdrawn(_message.Message):
    __slots__ = ("member_id", "withdrawal_id", "asset_ids", "reason", "created_unix")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    WITHDRAWAL_ID_FIELD_NUMBER: _ClassVar[int]
    ASSET_IDS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    withdrawal_id: str
    asset_ids: _containers.RepeatedScalarFieldContainer[str]
    reason: str
    created_unix: int
    def __init__(self, member_id: _Optional[str] = ..., withdrawal_id: _Optional[str] = ..., asset_ids: _Optional[_Iterable[str]] = ..., reason: _Optional[str] = ..., created_unix: _Optional[int] = ...) -> None: ...

class BatchManifest(_message.Message):
    __slots__ = ("member_id", "batch_id", "sequence", "asset_count", "assets_sha256", "created_unix")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ASSET_COUNT_FIELD_NUMBER: _ClassVar[int]
    ASSETS_SHA256_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    batch_id: str
    sequence: int
    asset_count: int
    assets_sha256: bytes
    created_unix: int
    def __init__(self, member_id: _Optional[str] = ..., batch_id: _Optional[str] = ..., sequence: _Optional[int] = ..., asset_count: _Optional[int] = ..., assets_sha256: _Optional[bytes] = ..., created_unix: _Optional[int] = ...) -> None: ...
