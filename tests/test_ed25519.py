"""dedup.ed25519: the verdict is always OpenSSL's, on good signatures, tampered ones and the
edge cases where Ed25519 libraries are known to disagree (the "Taming the many EdDSAs"
vectors, tests/vectors/ed25519-speccheck), which libsodium refuses where OpenSSL accepts."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dedup import ed25519
from dedup.ed25519 import openssl_verify, verify, verify_many

CASES = json.loads((Path(__file__).parent / "vectors" / "ed25519-speccheck" / "cases.json").read_text())
L = 2**252 + 27742317777372353535851937790883648493  # the group order, to build an unreduced S
#: OpenSSL's verdict on each case (results.md of the vectors' repository: OpenSSL-3.0 and PyCA).
OPENSSL_ACCEPTS = {0, 1, 2, 3, 11}


def case_jobs() -> list[tuple[bytes, bytes, bytes]]:
    return [(bytes.fromhex(c["pub_key"]), bytes.fromhex(c["message"]), bytes.fromhex(c["signature"])) for c in CASES]


def raw_key(private: Ed25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def test_edge_cases_get_openssls_verdict_even_where_libsodium_refuses():
    jobs = case_jobs()
    assert len(jobs) == 12
    expected = [i in OPENSSL_ACCEPTS for i in range(12)]
    assert [openssl_verify(*job) for job in jobs] == expected
    assert [verify(*job) for job in jobs] == expected
    assert verify_many(jobs) == expected
    # The fallback is what gives cases 0-2 and 11 their verdict: libsodium alone refuses them.
    sodium = [ed25519._sodium_ok(s + m, k) for k, m, s in jobs]
    assert [i for i, ok in enumerate(sodium) if ok] == [3]


def test_good_signatures_verify_and_every_flipped_bit_is_refused():
    keys = [Ed25519PrivateKey.generate() for _ in range(3)]
    rng = random.Random(1)
    jobs = []
    for i in range(300):
        key = keys[i % 3]
        message = rng.randbytes(rng.choice([0, 1, 31, 64, 200, 1000, 70_000]))
        jobs.append((raw_key(key), message, key.sign(message)))
    assert verify_many(jobs) == [True] * len(jobs)
    bad = []
    for k, m, s in jobs[:4]:
        bad += [(k, m, s[:i // 8] + bytes([s[i // 8] ^ 1 << i % 8]) + s[i // 8 + 1:]) for i in range(512)]
        bad += [(k, m + b"\0", s)] + ([(k, m[:-1] + bytes([m[-1] ^ 1]), s)] if m else [])
        bad += [(k[:31] + bytes([k[31] ^ 1]), m, s)]
    assert verify_many(bad) == [openssl_verify(*job) for job in bad] == [False] * len(bad)


def test_s_not_reduced_is_refused_as_openssl_refuses_it():
    key = Ed25519PrivateKey.generate()
    m = b"statement"
    s = key.sign(m)
    big_s = int.from_bytes(s[32:], "little")
    for other in (big_s + L, big_s + 2 * L, big_s | 1 << 255):
        job = (raw_key(key), m, s[:32] + (other % (1 << 256)).to_bytes(32, "little"))
        assert verify_many([job]) == [openssl_verify(*job)] == [False]


def test_malformed_inputs_are_refused_not_raised():
    key = Ed25519PrivateKey.generate()
    s = key.sign(b"m")
    assert verify(raw_key(key), b"m", s) and not verify(raw_key(key), b"m", s[:63])
    assert verify_many([(raw_key(key), b"m", s[:63])]) == [False]
    assert verify_many([(raw_key(key), b"m", s + b"\0")]) == [False]
    assert verify_many([(b"short", b"m", s)]) == [False]
    assert verify_many([(b"", b"", b"")]) == [False]
    assert verify_many([]) == []


def test_many_random_keys_and_messages_agree_with_openssl():
    rng = random.Random(os.getpid())
    keys = [Ed25519PrivateKey.generate() for _ in range(6)]
    jobs = []
    for _ in range(1500):
        key = rng.choice(keys)
        m = rng.randbytes(rng.randrange(0, 300))
        s = key.sign(m)
        if rng.random() < 0.2:
            m = m + b"!"
        jobs.append((raw_key(key), m, s))
    assert verify_many(jobs) == [openssl_verify(*job) for job in jobs]
