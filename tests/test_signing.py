import struct

import pytest

from dedup.note import NoteSigner
from dedup.signing import PAE_PREFIX, SignatureError, pae, parse_body, parse_entry, sign_statement, verify_statement
from dedup.v1 import asset_pb2, statements_pb2


def test_pae_layout_is_exact():
    got = pae("dedup.v1.BatchManifest", b"\x01\x02")
    want = b"\xffdedup/v1/statement\n" + struct.pack(">H", 22) + b"dedup.v1.BatchManifest" + struct.pack(">Q", 2) + b"\x01\x02"
    assert got == want
    assert got.startswith(PAE_PREFIX)
    with pytest.raises(UnicodeDecodeError):
        got.decode("utf-8")  # never valid note text


def test_sign_and_verify_round_trip():
    signer = NoteSigner.generate("records-office")
    m = asset_pb2.BatchManifest(member_id="records-office", batch_id="b1", sequence=1, asset_count=0,
                                assets_sha256=b"\0" * 32)
    stmt = sign_statement(signer, m)
    assert stmt.type == "dedup.v1.BatchManifest"
    assert stmt.signer == "records-office" and stmt.key_id == signer.key_id
    verify_statement(stmt, signer.verifier())
    assert parse_body(stmt, asset_pb2.BatchManifest) == m
    assert parse_entry(stmt.SerializeToString()) == stmt


def test_tampered_body_or_type_fails():
    signer = NoteSigner.generate("records-office")
    stmt = sign_statement(signer, asset_pb2.BatchManifest(member_id="records-office", batch_id="b1", sequence=1))
    bad = type(stmt)()
    bad.CopyFrom(stmt)
    bad.body = stmt.body + b"\x00"
    with pytest.raises(SignatureError, match="bad signature"):
        verify_statement(bad, signer.verifier())
    # Same bytes presented as another statement type: the type is inside the signature.
    bad.CopyFrom(stmt)
    bad.type = "dedup.v1.MatchRecorded"
    with pytest.raises(SignatureError, match="bad signature"):
        verify_statement(bad, signer.verifier())


def test_wrong_signer_or_key_fails():
    a, b = NoteSigner.generate("records-office"), NoteSigner.generate("records-office")
    stmt = sign_statement(a, statements_pb2.MatchRecorded(match_id="m"))
    with pytest.raises(SignatureError, match="key id"):
        verify_statement(stmt, b.verifier())
    other = NoteSigner.generate("city-museum")
    with pytest.raises(SignatureError, match="expected 'city-museum'"):
        verify_statement(stmt, other.verifier())


def test_unknown_type_and_garbage_refused():
    signer = NoteSigner.generate("x")
    stmt = sign_statement(signer, statements_pb2.MatchRecorded(match_id="m"))
    stmt.type = "dedup.v1.Nope"
    with pytest.raises(SignatureError, match="unknown statement type"):
        parse_body(stmt)
    with pytest.raises(SignatureError, match="expected a dedup.v1.BatchManifest"):
        parse_body(sign_statement(signer, statements_pb2.MatchRecorded()), asset_pb2.BatchManifest)
    with pytest.raises(SignatureError):
        parse_entry(b"\xff\xff\xff")
    with pytest.raises(SignatureError, match="lacks"):
        parse_entry(b"")
    with pytest.raises(ValueError, match="not a statement type"):
        sign_statement(signer, asset_pb2.Evidence())
