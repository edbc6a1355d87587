# Generated from proto/dedup/v1 by proto/generate.py (make proto). Do not edit.
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class SignedStatement(_message.Message):
    __slots__ = ("type", "body", "signer", "key_id", "signature")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    SIGNER_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    type: str
    body: bytes
    signer: str
    key_id: bytes
    signature: bytes
    def __init__(self, type: _Optional[str] = ..., body: _Optional[bytes] = ..., signer: _Optional[str] = ..., key_id: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...
