"""Ed25519 public keys no honest key pair has are refused wherever a key enters: a member's key
in the coordinator's configuration, a key string anyone parses, a cosigner's key, and a
member's admission or a log key rotation replayed by the auditor. Two members never share a key,
and no member holds the log's.

The keys below are the eight points of small order in their canonical encodings (the identity,
the point of order 2, two of order 4, four of order 8) and non-canonical encodings of points
(y at or past the field prime, a sign bit on x = 0)."""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from dedup.cosignature import CosignatureError, CosignatureVerifier
from dedup.coordinator.settings import CoordinatorSettings, MemberSettings
from dedup.ed25519 import openssl_verify, verify, weak_key
from dedup.note import ALG_ED25519, NoteError, NoteSigner, NoteVerifier, key_id
from dedup.signing import sign_statement
from dedup.v1 import statements_pb2

from conftest import ORIGIN
from test_audit import entries_of, exported  # noqa: F401 - fixture
from test_audit_tamper import resign_all, verify as audit_verify

IDENTITY = bytes.fromhex("01" + "00" * 31)
SMALL_ORDER = [
    IDENTITY,
    bytes.fromhex("ec" + "ff" * 30 + "7f"),  # order 2: y = -1
    bytes(32),  # order 4: y = 0
    bytes.fromhex("00" * 31 + "80"),
    bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),  # order 8
    bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85"),
    bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
    bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"),
]
NON_CANONICAL = [
    bytes.fromhex("ed" + "ff" * 30 + "7f"),  # y = p, which is 0
    bytes.fromhex("ee" + "ff" * 30 + "7f"),  # y = p + 1, which is 1: the identity again
    bytes.fromhex("01" + "00" * 30 + "80"),  # the identity with x's sign bit set
    bytes.fromhex("ec" + "ff" * 31),  # y = -1 with x's sign bit set
]
WEAK = SMALL_ORDER + NON_CANONICAL
#: R = the base point, S = 1: under the identity key this verifies for every message.
UNIVERSAL = bytes.fromhex("58" + "66" * 31) + IDENTITY


def key_string(name: str, raw: bytes) -> str:
    """A C2SP verifier key string for ``raw``, with its correct key id."""
    return f"{name}+{key_id(name, raw).hex()}+{base64.b64encode(bytes([ALG_ED25519]) + raw).decode()}"


def test_why_weak_keys_must_be_refused_where_they_enter() -> None:
    """A signature check alone does not stop them: OpenSSL takes the identity key's universal
    signature for any message, and so does the verifier that keeps OpenSSL's verdict."""
    for message in (b"a vote", b"another vote"):
        assert openssl_verify(IDENTITY, message, UNIVERSAL)
        assert verify(IDENTITY, message, UNIVERSAL)


@pytest.mark.parametrize("raw", WEAK, ids=lambda r: r.hex()[:8] + ".." + r.hex()[-2:])
def test_weak_keys_are_refused_by_every_parser(raw: bytes) -> None:
    assert weak_key(raw).startswith("weak Ed25519 public key")
    with pytest.raises(NoteError, match="weak Ed25519 public key"):
        NoteVerifier.from_string(key_string("museum", raw))
    with pytest.raises(CosignatureError, match="weak Ed25519 public key"):
        CosignatureVerifier.from_raw("museum", raw)


def test_keys_made_the_standard_way_are_strong() -> None:
    for n in range(50):
        v = NoteSigner.generate(f"m{n}").verifier()
        assert weak_key(v.public_bytes()) == ""
        assert NoteVerifier.from_string(v.to_string()).public_bytes() == v.public_bytes()
    assert weak_key(bytes(31)) == "an Ed25519 public key is 32 bytes, not 31"


def _settings(tmp_path, members: list[dict]) -> CoordinatorSettings:
    return CoordinatorSettings(database=str(tmp_path / "c.sqlite"), log_key=tmp_path / "log.key",
                               log_origin="test.example/log", tls={"ca": tmp_path, "cert": tmp_path, "key": tmp_path},
                               members=members)


@pytest.mark.parametrize("raw", [IDENTITY, SMALL_ORDER[4], NON_CANONICAL[1]], ids=["identity", "order 8", "y=p+1"])
def test_the_coordinator_refuses_a_weak_member_key_in_its_configuration(tmp_path, raw: bytes) -> None:
    with pytest.raises(ValidationError, match="weak Ed25519 public key"):
        MemberSettings(id="museum", name="Museum", public_key=key_string("museum", raw))
    with pytest.raises(ValidationError, match=r"members\.0\.public_key"):
        _settings(tmp_path, [{"id": "museum", "name": "Museum", "public_key": key_string("museum", raw)}])


def test_two_members_may_not_share_a_key(tmp_path) -> None:
    raw = NoteSigner.generate("x").verifier().public_bytes()
    with pytest.raises(ValidationError, match="members archive and museum have the same public key; each member "
                                              "needs its own"):
        _settings(tmp_path, [{"id": "archive", "name": "A", "public_key": key_string("archive", raw)},
                             {"id": "museum", "name": "M", "public_key": key_string("museum", raw)}])


def _admission(log: NoteSigner, member_id: str, raw: bytes) -> bytes:
    return sign_statement(log, statements_pb2.MemberAdmitted(
        member_id=member_id, display_name=member_id, public_key=raw, custodial_priority=5,
        admitted_unix=1), origin=ORIGIN).SerializeToString(deterministic=True)


@pytest.mark.parametrize("raw", [IDENTITY, SMALL_ORDER[6], NON_CANONICAL[0]], ids=["identity", "order 8", "y=p"])
def test_the_auditor_refuses_an_admission_with_a_weak_key(exported, capsys, raw: bytes) -> None:  # noqa: F811
    path, log = exported
    resign_all(path, log, entries_of(path) + [_admission(log, "rogue", raw)], [3, 7, 11, 12])
    code, _, err = audit_verify(capsys, path)
    assert code == 1
    assert err.startswith("log NOT verified: entry 11: member 'rogue': key 'rogue': weak Ed25519 public key")


def test_the_auditor_refuses_an_admission_with_another_members_key(exported, capsys) -> None:  # noqa: F811
    path, log = exported
    es = entries_of(path)
    first = statements_pb2.MemberAdmitted()
    first.ParseFromString(_body(es[0]))
    resign_all(path, log, es + [_admission(log, "twin", first.public_key)], [3, 7, 11, 12])
    code, _, err = audit_verify(capsys, path)
    assert code == 1
    assert err == f"log NOT verified: entry 11: member 'twin' is admitted with member {first.member_id!r}'s public key\n"


def test_the_auditor_refuses_an_admission_with_the_logs_key(exported, capsys) -> None:  # noqa: F811
    path, log = exported
    resign_all(path, log, entries_of(path) + [_admission(log, "mimic", log.verifier().public_bytes())], [3, 7, 11, 12])
    code, _, err = audit_verify(capsys, path)
    assert code == 1
    assert err == "log NOT verified: entry 11: member 'mimic' is admitted with a key of the log's own\n"


def test_the_auditor_refuses_a_rotation_to_a_weak_key(exported, capsys) -> None:  # noqa: F811
    path, log = exported
    rotation = sign_statement(log, statements_pb2.LogKeyRotated(
        old_verifier_key=log.verifier().to_string(), new_verifier_key=key_string(log.name, IDENTITY),
        reason="scheduled", rotated_unix=1), origin=ORIGIN).SerializeToString(deterministic=True)
    resign_all(path, log, entries_of(path) + [rotation], [3, 7, 11, 12])
    code, _, err = audit_verify(capsys, path)
    assert code == 1
    assert err.startswith(f"log NOT verified: entry 11: key rotation: key {log.name!r}: weak Ed25519 public key")


def _body(entry: bytes) -> bytes:
    from dedup.signing import parse_entry

    return parse_entry(entry).body


def test_the_coordinator_refuses_a_member_holding_the_logs_key(tmp_path) -> None:
    from dedup import pki
    from dedup.coordinator.server import build_core

    log = NoteSigner.generate("test.example/log")
    pki.write_private(tmp_path / "log.key", log.to_string().encode())
    settings = _settings(tmp_path, [{"id": "museum", "name": "M",
                                     "public_key": key_string("museum", log.verifier().public_bytes())}])
    with pytest.raises(ValueError, match="a member's public key is the log's own key"):
        build_core(settings)
