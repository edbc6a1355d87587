"""Signed statements: what every party signs, and how.

A statement is a protobuf message. Its signer serialises it once and signs the
pre-authentication encoding (PAE) of the log it is for, its type name and those bytes;
verifiers check the bytes exactly as received and only then parse them, so no party ever
depends on another re-serialising a message identically.

    PAE(origin, type, body) = 0xFF || "dedup/v2/statement" || 0x0A
                              || uint16be(len(origin)) || origin
                              || uint16be(len(type)) || type || uint64be(len(body)) || body

``origin`` is the log's checkpoint origin (its first line, e.g. records.example.hk/dedup-log):
a statement made for one consortium's log does not verify in another's, even where a member
uses one key in both. The leading 0xFF byte can never start valid UTF-8, so no statement
signature can be passed off as a C2SP signed-note signature (note text is UTF-8) made with
the same key, and the type name separates the statement types from each other.
"""

from __future__ import annotations

import struct
from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from dedup.note import NoteSigner, NoteVerifier
from dedup.v1 import asset_pb2, statement_pb2, statements_pb2

PAE_PREFIX = b"\xffdedup/v2/statement\n"
#: The encoding before statements were bound to a log: PAE without the origin. Auditors accept
#: it only in the entries a log holds before its first bound statement (logs begun by earlier
#: releases); nothing signs with it any more.
UNBOUND_PAE_PREFIX = b"\xffdedup/v1/statement\n"

#: Statement types a verifier accepts, by fully qualified protobuf name.
STATEMENT_TYPES: dict[str, type[Message]] = {
    cls.DESCRIPTOR.full_name: cls
    for cls in (
        asset_pb2.BatchManifest,
        asset_pb2.AssetsWithdrawn,
        statements_pb2.MemberAdmitted,
        statements_pb2.MemberRevoked,
        statements_pb2.MemberKeyReplaced,
        statements_pb2.MatchRecorded,
        statements_pb2.MasterProposed,
        statements_pb2.LogKeyRotated,
        statements_pb2.MasterVote,
        statements_pb2.MasterBallot,
        statements_pb2.MasterRuling,
        statements_pb2.MasterAgreed,
        statements_pb2.LookupsCounted,
    )
}

#: Coordinator statements that carry no signature of their own: the log's signed checkpoints
#: commit the coordinator to them. Each is a fact about the log (a match it found, a proposal,
#: an outcome, a count of lookups) that means something only as one of its entries, so its
#: receipt is a tlog-proof bundle (the entry, its inclusion proof, a signed checkpoint). What
#: must stand on its own is still signed: the membership and key statements, and above all a
#: log key rotation, which the outgoing key vouches for before any checkpoint by the new one.
CHECKPOINTED_TYPES = frozenset(cls.DESCRIPTOR.full_name for cls in (
    statements_pb2.MatchRecorded,
    statements_pb2.MasterProposed,
    statements_pb2.MasterAgreed,
    statements_pb2.LookupsCounted,
))

M = TypeVar("M", bound=Message)


class SignatureError(ValueError):
    """A statement's signature, signer or body is not acceptable."""


def pae(origin: str, type_name: str, body: bytes) -> bytes:
    """The exact bytes an Ed25519 statement signature covers."""
    return pae_head(origin, type_name) + struct.pack(">Q", len(body)) + body


def pae_head(origin: str, type_name: str) -> bytes:
    """The part of ``pae`` before the body's length, the same for every statement of a type in
    one log (a verifier of many statements computes it once per type)."""
    o = origin.encode("utf-8")
    if not o or len(o) > 0xFFFF:
        raise ValueError("a statement's log origin must be 1 to 65535 bytes")
    t = type_name.encode("utf-8")
    return PAE_PREFIX + struct.pack(">H", len(o)) + o + struct.pack(">H", len(t)) + t


def unbound_pae(type_name: str, body: bytes) -> bytes:
    """What earlier releases signed: ``pae`` without the origin."""
    t = type_name.encode("utf-8")
    return UNBOUND_PAE_PREFIX + struct.pack(">H", len(t)) + t + struct.pack(">Q", len(body)) + body


def sign_statement(signer: NoteSigner, message: Message, *, origin: str) -> statement_pb2.SignedStatement:
    """Serialise ``message`` deterministically and sign it as ``signer``, for the log ``origin``."""
    type_name = message.DESCRIPTOR.full_name
    if type_name not in STATEMENT_TYPES:
        raise ValueError(f"{type_name} is not a statement type")
    body = message.SerializeToString(deterministic=True)
    return statement_pb2.SignedStatement(
        type=type_name,
        body=body,
        signer=signer.name,
        key_id=signer.key_id,
        signature=signer.sign(pae(origin, type_name, body)),
    )


def checkpointed_statement(name: str, key_id: bytes, message: Message) -> statement_pb2.SignedStatement:
    """A coordinator statement of a ``CHECKPOINTED_TYPES`` type as a log entry: the log key's
    name and key id, and no signature (the checkpoint over the entry is the signature)."""
    type_name = message.DESCRIPTOR.full_name
    if type_name not in CHECKPOINTED_TYPES:
        raise ValueError(f"{type_name} is signed on its own, never vouched for by checkpoints alone")
    return statement_pb2.SignedStatement(type=type_name, body=message.SerializeToString(deterministic=True),
                                         signer=name, key_id=key_id)


def verify_statement(stmt: statement_pb2.SignedStatement, verifier: NoteVerifier, *, origin: str) -> None:
    """Raise SignatureError unless ``verifier`` made this signature, for the log ``origin``."""
    if stmt.signer != verifier.name:
        raise SignatureError(f"statement names signer {stmt.signer!r}, expected {verifier.name!r}")
    if stmt.key_id != verifier.key_id:
        raise SignatureError(f"statement signed by key id {stmt.key_id.hex()}, not the known key {verifier.key_id.hex()} of {verifier.name!r}")
    if len(stmt.signature) != 64 or not verifier.verify(pae(origin, stmt.type, stmt.body), stmt.signature):
        raise SignatureError(f"bad signature by {stmt.signer!r} on {stmt.type} (for log {origin!r})")


def parse_body(stmt: statement_pb2.SignedStatement, expected: type[M] | None = None) -> Message:
    """Parse a statement's body by its declared type (checked against ``expected`` if given)."""
    cls = STATEMENT_TYPES.get(stmt.type)
    if cls is None:
        raise SignatureError(f"unknown statement type {stmt.type!r}")
    if expected is not None and cls is not expected:
        raise SignatureError(f"expected a {expected.DESCRIPTOR.full_name} statement, got {stmt.type}")
    msg = cls()
    try:
        msg.ParseFromString(stmt.body)
    except DecodeError as exc:
        raise SignatureError(f"{stmt.type} body does not parse: {exc}") from exc
    return msg


def parse_entry(entry: bytes) -> statement_pb2.SignedStatement:
    """Parse one log entry (a serialised SignedStatement)."""
    stmt = statement_pb2.SignedStatement()
    try:
        stmt.ParseFromString(entry)
    except DecodeError as exc:
        raise SignatureError(f"entry is not a SignedStatement: {exc}") from exc
    if not stmt.type or not stmt.signer:
        raise SignatureError("entry lacks a statement type or signer")
    return stmt
