import struct

import pytest

from dedup.note import NoteSigner
from dedup.signing import PAE_PREFIX, SignatureError, pae, parse_body, parse_entry, sign_statement, verify_statement
from dedup.v1 import asset_pb2, statements_pb2


ORIGIN = "records.example.hk/dedup-log"


def test_pae_layout_is_exact():
    got = pae(ORIGIN, "dedup.v1.BatchManifest", b"\x01\x02")
    want = (b"\xffdedup/v2/statement\n" + struct.pack(">H", len(ORIGIN)) + ORIGIN.encode()
            + struct.pack(">H", 22) + b"dedup.v1.BatchManifest" + struct.pack(">Q", 2) + b"\x01\x02")
    assert got == want
    assert got.startswith(PAE_PREFIX)
    with pytest.raises(UnicodeDecodeError):
        got.decode("utf-8")  # never valid note text
    with pytest.raises(ValueError, match="origin must be 1 to 65535 bytes"):
        pae("", "dedup.v1.BatchManifest", b"")


def test_a_statement_verifies_only_for_the_log_it_was_signed_for():
    signer = NoteSigner.generate("records-office")
    stmt = sign_statement(signer, asset_pb2.BatchManifest(member_id="records-office", batch_id="b1", sequence=1),
                          origin=ORIGIN)
    verify_statement(stmt, signer.verifier(), origin=ORIGIN)
    for other in ("other.example.org/dedup-log", ORIGIN + "x", ORIGIN.upper()):
        with pytest.raises(SignatureError, match=f"bad signature by 'records-office' on dedup.v1.BatchManifest "
                                                 f"\\(for log '{other}'\\)"):
            verify_statement(stmt, signer.verifier(), origin=other)


def test_sign_and_verify_round_trip():
    signer = NoteSigner.generate("records-office")
    m = asset_pb2.BatchManifest(member_id="records-office", batch_id="b1", sequence=1, asset_count=0,
                                assets_sha256=b"\0" * 32)
    stmt = sign_statement(signer, m, origin=ORIGIN)
    assert stmt.type == "dedup.v1.BatchManifest"
    assert stmt.signer == "records-office" and stmt.key_id == signer.key_id
    verify_statement(stmt, signer.verifier(), origin=ORIGIN)
    assert parse_body(stmt, asset_pb2.BatchManifest) == m
    assert parse_entry(stmt.SerializeToString()) == stmt


def test_tampered_body_or_type_fails():
    signer = NoteSigner.generate("records-office")
    stmt = sign_statement(signer, asset_pb2.BatchManifest(member_id="records-office", batch_id="b1", sequence=1), origin=ORIGIN)
    bad = type(stmt)()
    bad.CopyFrom(stmt)
    bad.body = stmt.body + b"\x00"
    with pytest.raises(SignatureError, match="bad signature"):
        verify_statement(bad, signer.verifier(), origin=ORIGIN)
    # Same bytes presented as another statement type: the type is inside the signature.
    bad.CopyFrom(stmt)
    bad.type = "dedup.v1.MatchRecorded"
    with pytest.raises(SignatureError, match="bad signature"):
        verify_statement(bad, signer.verifier(), origin=ORIGIN)


def test_wrong_signer_or_key_fails():
    a, b = NoteSigner.generate("records-office"), NoteSigner.generate("records-office")
    stmt = sign_statement(a, statements_pb2.MatchRecorded(match_id="m"), origin=ORIGIN)
    with pytest.raises(SignatureError, match="key id"):
        verify_statement(stmt, b.verifier(), origin=ORIGIN)
    other = NoteSigner.generate("city-museum")
    with pytest.raises(SignatureError, match="expected 'city-museum'"):
        verify_statement(stmt, other.verifier(), origin=ORIGIN)


def test_unknown_type_and_garbage_refused():
    signer = NoteSigner.generate("x")
    stmt = sign_statement(signer, statements_pb2.MatchRecorded(match_id="m"), origin=ORIGIN)
    stmt.type = "dedup.v1.Nope"
    with pytest.raises(SignatureError, match="unknown statement type"):
        parse_body(stmt)
    with pytest.raises(SignatureError, match="expected a dedup.v1.BatchManifest"):
        parse_body(sign_statement(signer, statements_pb2.MatchRecorded(), origin=ORIGIN), asset_pb2.BatchManifest)
    with pytest.raises(SignatureError):
        parse_entry(b"\xff\xff\xff")
    with pytest.raises(SignatureError, match="lacks"):
        parse_entry(b"")
    with pytest.raises(ValueError, match="not a statement type"):
        sign_statement(signer, asset_pb2.Evidence(), origin=ORIGIN)
