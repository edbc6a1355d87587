"""dedup.ed25519: the table verifier's verdict is OpenSSL's, on good signatures, tampered ones
and the edge cases where Ed25519 implementations are known to disagree (mixed-order and
small-order keys, small-order and non-canonical R, S not reduced, non-canonical keys).

The edge cases are built with a small independent model of the curve below (affine twisted
Edwards arithmetic on Python integers), which also signs with raw scalars, as no library
will sign for a key with a torsion component."""

from __future__ import annotations

import hashlib
import os
import random

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dedup import ed25519
from dedup.ed25519 import L, P, TableVerifier, decode_point, openssl_verify, verify, verify_many

D = -121665 * pow(121666, -1, P) % P
IDENTITY = (0, 1)
BASE = (ed25519._BASE_X, ed25519._BASE_Y)


def add(p, q):
    (x1, y1), (x2, y2) = p, q
    t = D * x1 * x2 * y1 * y2 % P
    return ((x1 * y2 + x2 * y1) * pow(1 + t, -1, P) % P, (y1 * y2 + x1 * x2) * pow(1 - t, -1, P) % P)


def mul(n, p):
    out = IDENTITY
    while n:
        if n & 1:
            out = add(out, p)
        p, n = add(p, p), n >> 1
    return out


def encode(p) -> bytes:
    x, y = p
    return (y | (x & 1) << 255).to_bytes(32, "little")


def on_curve(p) -> bool:
    x, y = p
    return (-x * x + y * y - 1 - D * x * x * y * y) % P == 0


def torsion_point(order: int):
    """A point of exactly this order (a power of two up to 8)."""
    rng = random.Random(order)
    while True:
        p = decode_point(rng.randbytes(32))
        if p is None:
            continue
        t = mul(L, p)  # the torsion part, of order dividing 8
        while t != IDENTITY and mul(order, t) != IDENTITY:
            t = add(t, t)
        if t != IDENTITY and mul(order // 2, t) != IDENTITY:
            return t


def h(*parts: bytes) -> int:
    return int.from_bytes(hashlib.sha512(b"".join(parts)).digest(), "little") % L


def sign_raw(a: int, public: bytes, message: bytes, r: int) -> bytes:
    """S = r + k*a for R = [r]B, with whatever public key encoding the test chose."""
    big_r = encode(mul(r, BASE))
    return big_r + ((r + h(big_r, public, message) * a) % L).to_bytes(32, "little")


def raw_key(private: Ed25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def compiled_verdicts(jobs) -> list[int]:
    """The compiled check alone, with no fallback to OpenSSL."""
    keys = sorted({k for k, _, _ in jobs})
    tables = [ed25519._table(BASE)] + [ed25519._table(decode_point(k)) for k in keys]
    records = b"".join(
        bytes([keys.index(k) + 1]) + s[32:] + h(s[:32], k, m).to_bytes(32, "little") + s[:32] for k, m, s in jobs)
    return list(ed25519._ed25519.verify(tables, records))


def test_the_compiled_verifier_is_built():
    assert ed25519.COMPILED, "dedup._ed25519 was not built: install a C compiler and run `make .venv/.installed`"


def test_model_agrees_with_the_standard_base_point():
    assert encode(BASE).hex() == "58" + "66" * 31
    assert on_curve(BASE) and mul(L, BASE) == IDENTITY
    private = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    digest = hashlib.sha512(bytes(range(32))).digest()
    a = int.from_bytes(digest[:32], "little") & ((1 << 254) - 8) | (1 << 254)
    assert encode(mul(a, BASE)) == raw_key(private)


def test_decode_point_matches_the_model():
    rng = random.Random(7)
    for _ in range(200):
        p = mul(rng.randrange(1, L), BASE)
        assert decode_point(encode(p)) == p
    assert decode_point((P + 1).to_bytes(32, "little")) is None  # y not reduced
    assert decode_point(bytes(31)) is None
    assert decode_point((1 | 1 << 255).to_bytes(32, "little")) is None  # x = 0 with the sign bit set
    assert decode_point((2).to_bytes(32, "little")) is None  # x^2 is not a square for y = 2


def test_good_signatures_verify_and_every_flipped_bit_is_refused():
    keys = [Ed25519PrivateKey.generate() for _ in range(3)]
    rng = random.Random(1)
    jobs = []
    for i in range(600):
        key = keys[i % 3]
        message = rng.randbytes(rng.choice([0, 1, 31, 64, 200, 1000]))
        jobs.append((raw_key(key), message, key.sign(message)))
    assert compiled_verdicts(jobs) == [1] * len(jobs)
    assert verify_many(jobs) == [True] * len(jobs)
    bad = []
    for k, m, s in jobs[:4]:
        bad += [(k, m, s[:i // 8] + bytes([s[i // 8] ^ 1 << i % 8]) + s[i // 8 + 1:]) for i in range(512)]
        bad += [(k, m + b"\0", s)] + ([(k, m[:-1] + bytes([m[-1] ^ 1]), s)] if m else [])
    assert compiled_verdicts(bad) == [0] * len(bad)
    assert verify_many(bad) == [openssl_verify(*job) for job in bad] == [False] * len(bad)


def test_s_not_reduced_is_refused_as_openssl_refuses_it():
    key = Ed25519PrivateKey.generate()
    m = b"statement"
    s = key.sign(m)
    big_s = int.from_bytes(s[32:], "little")
    for other in (big_s + L, big_s + 2 * L, big_s | 1 << 255):
        job = (raw_key(key), m, s[:32] + (other % (1 << 256)).to_bytes(32, "little"))
        assert compiled_verdicts([job]) == [0]
        assert verify_many([job]) == [openssl_verify(*job)] == [False]


def test_keys_with_a_torsion_component_get_openssls_verdict():
    """A = [a]B + T: the cofactorless equation holds only when k*T vanishes, about one
    signature in eight for T of order 8; both verifiers must say so for the same ones."""
    t8 = torsion_point(8)
    assert mul(8, t8) == IDENTITY and mul(4, t8) != IDENTITY
    rng = random.Random(2)
    a = rng.randrange(1, L)
    public = encode(add(mul(a, BASE), t8))
    jobs = [(public, m, sign_raw(a, public, m, rng.randrange(1, L))) for m in (b"m%d" % i for i in range(160))]
    expected = [openssl_verify(*job) for job in jobs]
    assert 5 < sum(expected) < 60  # some hold, most do not
    assert compiled_verdicts(jobs) == [int(e) for e in expected]
    assert verify_many(jobs) == expected


def test_small_order_keys_and_small_order_r_get_openssls_verdict():
    """A of order 8 and S = 0: R = -[k]A is small-order and holds for one R in eight guesses.
    libsodium refuses all of these; OpenSSL accepts the ones whose equation holds."""
    t8 = torsion_point(8)
    public = encode(t8)
    smalls = [mul(i, t8) for i in range(8)]
    jobs = []
    for i in range(120):
        m = b"small %d" % i
        for r in smalls:
            if r == IDENTITY:
                continue
            jobs.append((public, m, encode(r) + bytes(32)))
    expected = [openssl_verify(*job) for job in jobs]
    assert sum(expected) > 10
    assert compiled_verdicts(jobs) == [int(e) for e in expected]
    assert verify_many(jobs, TableVerifier(min_uses=1)) == expected


def test_non_canonical_r_and_keys_get_openssls_verdict():
    t8 = torsion_point(8)
    public = encode(t8)
    # The identity as R, spelled y = p + 1: the equation can hold, the encoding does not match.
    jobs = [(public, b"n%d" % i, (P + 1).to_bytes(32, "little") + bytes(32)) for i in range(64)]
    assert verify_many(jobs, TableVerifier(min_uses=1)) == [openssl_verify(*job) for job in jobs]
    assert compiled_verdicts(jobs) == [0] * len(jobs)
    # A key spelled with y >= p (3 + p) has no table; its signatures are judged by OpenSSL.
    spelled = (3 + P).to_bytes(32, "little")
    assert decode_point(spelled) is None and decode_point((3).to_bytes(32, "little")) is not None
    key = Ed25519PrivateKey.generate()
    jobs = [(spelled, b"x%d" % i, key.sign(b"x%d" % i)) for i in range(8)]
    verifier = TableVerifier(min_uses=1)
    assert verifier.verify_many(jobs) == [openssl_verify(*job) for job in jobs]
    assert verifier._tables == {spelled: None}


def test_table_limits_and_rarely_used_keys():
    keys = [Ed25519PrivateKey.generate() for _ in range(5)]
    jobs = []
    for i in range(400):
        key = keys[0] if i % 2 else keys[1 + i % 8 // 2]  # one key signs 200, four sign 50 each
        jobs.append((raw_key(key), b"%d" % i, key.sign(b"%d" % i)))
    jobs.append((raw_key(keys[0]), b"tampered", jobs[1][2]))
    verifier = TableVerifier(max_tables=2, min_uses=100)
    assert verifier.verify_many(jobs) == [True] * 400 + [False]
    assert set(verifier._tables) == {raw_key(keys[0])}  # the rare keys went through libsodium
    assert verifier.verify_many(jobs * 2) == ([True] * 400 + [False]) * 2  # now 100 of each
    assert len(verifier._tables) == 2
    with pytest.raises(ValueError):
        TableVerifier(max_tables=0)


def test_single_verify_and_malformed_inputs():
    key = Ed25519PrivateKey.generate()
    s = key.sign(b"m")
    assert verify(raw_key(key), b"m", s) and not verify(raw_key(key), b"m", s[:63])
    assert verify_many([(raw_key(key), b"m", s[:63])]) == [False]
    assert verify_many([(b"short", b"m", s)]) == [False]
    table = ed25519._table(BASE)
    assert len(table) == 32 * 128 * 15 * 8
    with pytest.raises(ValueError, match="97 bytes"):
        ed25519._ed25519.verify([table], b"\0" * 96)
    with pytest.raises(ValueError, match="table"):
        ed25519._ed25519.verify([table, b"x"], b"")
    with pytest.raises(ValueError, match="32 bytes"):
        ed25519._ed25519.table(b"x", b"y")
    # Slot 0 is the base point, and a slot past the tables is refused rather than read.
    record = s[32:] + h(s[:32], raw_key(key), b"m").to_bytes(32, "little") + s[:32]
    assert ed25519._ed25519.verify([table], b"\0" + record + b"\5" + record) == b"\0\0"


def test_many_random_keys_and_messages_agree_with_openssl():
    rng = random.Random(os.getpid())
    keys = [Ed25519PrivateKey.generate() for _ in range(6)]
    jobs = []
    for i in range(1500):
        key = rng.choice(keys)
        m = rng.randbytes(rng.randrange(0, 300))
        s = key.sign(m)
        if rng.random() < 0.2:
            m = m + b"!"
        jobs.append((raw_key(key), m, s))
    assert verify_many(jobs, TableVerifier(min_uses=1)) == [openssl_verify(*job) for job in jobs]
