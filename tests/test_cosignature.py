"""Witness cosignatures (C2SP tlog-cosignature, cosignature/v1): key ids, signed bytes, verification."""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from dedup.checkpoint import Checkpoint
from dedup.cosignature import (CosignatureError, CosignatureSigner, CosignatureVerifier, add_cosignature,
                               cosignatures, cosigned_message, cosigner_key_id)
from dedup.note import NoteSigner, open_note, sign_note

TEXT = Checkpoint("test.dedup.local/log", 7, hashlib.sha256(b"root").digest()).to_text()


@pytest.fixture
def log_key() -> NoteSigner:
    return NoteSigner.generate("test.dedup.local/log")


@pytest.fixture
def witness() -> CosignatureSigner:
    return CosignatureSigner("records-office", Ed25519PrivateKey.generate())


def _raw(key: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def test_key_id_uses_algorithm_byte_0x04(witness):
    raw = _raw(witness.private_key.public_key())
    assert witness.key_id == hashlib.sha256(b"records-office\n\x04" + raw).digest()[:4]
    assert cosigner_key_id("records-office", raw) == witness.key_id
    # The same key as an ordinary note signer (0x01) has another id, so neither passes for the other.
    assert NoteSigner("records-office", witness.private_key).key_id != witness.key_id
    vkey = witness.verifier.to_string()
    assert base64.b64decode(vkey.split("+", 2)[2])[0] == 0x04
    assert CosignatureVerifier.from_string(vkey).key_id == witness.key_id


def test_signed_message_is_exactly_header_time_and_body(witness):
    assert cosigned_message(TEXT, 1700000000) == b"cosignature/v1\ntime 1700000000\n" + TEXT.encode()
    sig = witness.cosign(TEXT, 1700000000)
    assert sig.name == "records-office" and sig.key_id == witness.key_id
    assert struct.unpack(">Q", sig.signature[:8]) == (1700000000,) and len(sig.signature) == 72
    # The Ed25519 part verifies over those exact bytes, and no others.
    witness.private_key.public_key().verify(sig.signature[8:], b"cosignature/v1\ntime 1700000000\n" + TEXT.encode())


def test_round_trip_keeps_the_log_signature(log_key, witness):
    note = add_cosignature(sign_note(TEXT, [log_key]), witness, 1700000001)
    assert open_note(note, [log_key.verifier()]).text == TEXT  # the log's line still verifies
    assert [(c.name, c.key_id, c.timestamp) for c in cosignatures(note, [witness.verifier])] == [
        ("records-office", witness.key_id, 1700000001)]
    # Cosigning again replaces the earlier line rather than adding a second one.
    again = add_cosignature(note, witness, 1700000002)
    assert again.count("\u2014 records-office ") == 1
    assert cosignatures(again, [witness.verifier])[0].timestamp == 1700000002


def test_a_flipped_bit_fails(log_key, witness):
    note = add_cosignature(sign_note(TEXT, [log_key]), witness, 1700000001)
    head, _, line = note.rstrip("\n").rpartition("\n")
    name, b64 = line.rsplit(" ", 1)
    raw = bytearray(base64.b64decode(b64))
    raw[-1] ^= 0x01
    bad = f"{head}\n{name} {base64.b64encode(bytes(raw)).decode()}\n"
    with pytest.raises(CosignatureError, match="invalid cosignature by records-office"):
        cosignatures(bad, [witness.verifier])
    # A flipped bit in the timestamp fails too: the time is inside the signed bytes.
    raw = bytearray(base64.b64decode(b64))
    raw[4 + 7] ^= 0x01
    bad = f"{head}\n{name} {base64.b64encode(bytes(raw)).decode()}\n"
    with pytest.raises(CosignatureError, match="invalid cosignature"):
        cosignatures(bad, [witness.verifier])
    # And so does a changed body.
    other = TEXT.replace("\n7\n", "\n8\n")
    with pytest.raises(CosignatureError):
        witness.verifier.verify(other, witness.cosign(TEXT, 5).signature)


def test_unknown_cosigners_are_ignored(log_key, witness):
    stranger = CosignatureSigner("city-museum", Ed25519PrivateKey.generate())
    note = add_cosignature(add_cosignature(sign_note(TEXT, [log_key]), stranger, 3), witness, 4)
    assert [c.name for c in cosignatures(note, [witness.verifier])] == ["records-office"]
    assert cosignatures(note, []) == []
    # Same name, another key: unknown, hence ignored, even when its signature is garbage.
    impostor = CosignatureSigner("records-office", Ed25519PrivateKey.generate())
    assert cosignatures(add_cosignature(sign_note(TEXT, [log_key]), impostor, 1), [witness.verifier]) == []


def test_a_bad_line_by_a_known_cosigner_is_an_error(log_key, witness):
    good = add_cosignature(sign_note(TEXT, [log_key]), witness, 9)
    short = good.rstrip("\n").rpartition(" ")[0] + " " + base64.b64encode(witness.key_id + b"\0" * 10).decode() + "\n"
    with pytest.raises(CosignatureError, match="is 10 bytes, want 72"):
        cosignatures(short, [witness.verifier])
    with pytest.raises(CosignatureError, match="no signature block"):
        cosignatures(TEXT, [witness.verifier])
