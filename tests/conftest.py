"""Shared fixtures: a real consortium on loopback (CA, keys, a coordinator over mutual TLS)."""

from __future__ import annotations

import hashlib
import os
import random
import secrets
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from dedup import pki
from dedup.note import NoteSigner
from dedup.transport import client_options
from dedup.v1 import asset_pb2, intake_pb2_grpc, log_pb2_grpc
from dedup.wire_rules import is_asset_id

MEMBERS = ("records-office", "city-museum", "university-library")
#: The test consortium's log origin: every statement in its log is signed for it.
ORIGIN = "test.dedup.local/log"


@dataclass
class Party:
    member_id: str
    signer: NoteSigner
    tls_key: Path
    tls_cert: Path


@dataclass
class Consortium:
    root: Path
    ca_pem: Path
    ca: pki.KeyAndCert
    log_signer: NoteSigner
    parties: dict[str, Party]
    settings: object  # CoordinatorSettings
    server: object = None  # RunningServer

    def channel(self, member_id: str, ca_pem: Path | None = None) -> grpc.Channel:
        p = self.parties[member_id]
        creds = grpc.ssl_channel_credentials(
            root_certificates=(ca_pem or self.ca_pem).read_bytes(),
            private_key=p.tls_key.read_bytes(), certificate_chain=p.tls_cert.read_bytes())
        return grpc.secure_channel(f"127.0.0.1:{self.server.port}", creds, options=client_options("coordinator"))

    def intake(self, member_id: str) -> intake_pb2_grpc.IntakeServiceStub:
        return intake_pb2_grpc.IntakeServiceStub(self.channel(member_id))

    def log(self, member_id: str) -> log_pb2_grpc.LogServiceStub:
        return log_pb2_grpc.LogServiceStub(self.channel(member_id))

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Read the coordinator's store through a connection of the test's own."""
        from dedup.coordinator.store import Store

        store = Store(self.settings.database)
        try:
            return [tuple(r) for r in store._db.execute(sql, params).fetchall()]
        finally:
            store.close()

    def start(self):
        from dedup.coordinator.server import start

        self.server = start(self.settings, workers=4)
        return self.server

    def stop(self):
        if self.server is not None:
            self.server.stop(grace=None)
            self.server = None


def admit(consortium: Consortium, member_id: str, **role) -> Party:
    """Configure one more member (``arbiter=True``, ``reader=True``, ``auditor=True``); it is
    admitted when the coordinator next starts."""
    from dedup.coordinator.settings import MemberSettings

    party = consortium.parties[member_id] = make_party(consortium.root, consortium.ca, member_id)
    consortium.settings.members.append(MemberSettings(id=member_id, name=member_id.title(),
                                                      public_key=party.signer.verifier().to_string(), **role))
    return party


def make_party(root: Path, ca: pki.KeyAndCert, member_id: str) -> Party:
    d = root / "parties" / member_id
    key, cert = pki.issue(ca, member_id, dns_names=(member_id,))
    pki.write_key(d / "tls.key", key)
    pki.write_cert(d / "tls.pem", cert)
    return Party(member_id, NoteSigner.generate(member_id), d / "tls.key", d / "tls.pem")


PG_DSN = os.environ.get("DEDUP_TEST_PG_DSN")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request, tmp_path):
    """Where the coordinator stores: a SQLite file, or a fresh schema in the PostgreSQL named by
    $DEDUP_TEST_PG_DSN (e.g. postgresql://postgres@127.0.0.1:5432/test)."""
    if request.param == "sqlite":
        yield str(tmp_path / "coordinator.sqlite")
        return
    if not PG_DSN:
        pytest.skip("PostgreSQL variant skipped: DEDUP_TEST_PG_DSN is not set "
                    "(e.g. DEDUP_TEST_PG_DSN=postgresql://postgres@127.0.0.1:5432/test make test)")
    import psycopg

    schema = "t_" + secrets.token_hex(6)
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in PG_DSN else "?"
    yield f"{PG_DSN}{sep}options=-csearch_path%3D{schema}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        # With any copies a test made beside it (named after it).
        for (name,) in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname = %s OR nspname LIKE %s",
                                    (schema, schema + "\\_%")).fetchall():
            conn.execute(f"DROP SCHEMA {name} CASCADE")


@pytest.fixture
def consortium(tmp_path, database):
    from dedup.coordinator.settings import CoordinatorSettings

    ca = pki.new_ca("test CA")
    pki.write_cert(tmp_path / "ca.pem", ca[1])
    skey, scert = pki.issue(ca, "coordinator", dns_names=("coordinator",), ip_addresses=("127.0.0.1",),
                            server=True, client=False)
    pki.write_key(tmp_path / "server.key", skey)
    pki.write_cert(tmp_path / "server.pem", scert)
    log_signer = NoteSigner.generate(ORIGIN)
    pki.write_private(tmp_path / "log.key", log_signer.to_string().encode())
    parties = {m: make_party(tmp_path, ca, m) for m in MEMBERS}
    # A certificate from the consortium CA for an organisation that is not a member.
    parties["outsider"] = make_party(tmp_path, ca, "outsider")
    settings = CoordinatorSettings(
        listen="127.0.0.1:0", database=database, log_key=tmp_path / "log.key",
        log_origin=ORIGIN,
        tls={"ca": tmp_path / "ca.pem", "cert": tmp_path / "server.pem", "key": tmp_path / "server.key"},
        members=[{"id": m, "name": m.title(), "public_key": parties[m].signer.verifier().to_string(),
                  "custodial_priority": 10 * (i + 1)} for i, m in enumerate(MEMBERS)],
        max_batch_assets=50,
    )
    c = Consortium(tmp_path, tmp_path / "ca.pem", ca, log_signer, parties, settings)
    c.start()
    yield c
    c.stop()


def fingerprint(seed: int) -> bytes:
    """A deterministic, non-degenerate 256-bit value."""
    return random.Random(seed).randbytes(32)


def near(value: bytes, flips: int, seed: int = 0) -> bytes:
    """``value`` with ``flips`` distinct bits flipped."""
    b = bytearray(value)
    for bit in random.Random(seed).sample(range(256), flips):
        b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


def keypoints(rng: random.Random, count: int = 8, width: int = 320, height: int = 240) -> bytes:
    """A valid kp64 v1 value: the header of a ``width`` x ``height`` working picture and
    ``count`` points with random hashes, positions inside it and middling scales."""
    out = bytearray(width.to_bytes(2, "big") + height.to_bytes(2, "big"))
    for _ in range(count):
        # Positions are 12-bit shares of the long side.
        x, y = rng.randrange(4096 * width // max(width, height)), rng.randrange(4096 * height // max(width, height))
        out += rng.randbytes(8) + ((x << 12) | y).to_bytes(3, "big") + bytes((rng.randrange(40, 120),))
    return bytes(out)


def fingerprint_set(upright: bytes, seed: str) -> list[asset_pb2.Fingerprint]:
    """A full fingerprint set whose upright dct256 is ``upright``; every other part is
    random (seeded), so two sets only match through the upright hash."""
    rng = random.Random(seed)
    dihedral = upright + b"".join(rng.randbytes(32) for _ in range(7))
    return [
        asset_pb2.Fingerprint(algorithm="dct256", version=2, value=dihedral),
        asset_pb2.Fingerprint(algorithm="dct64", version=2, value=rng.randbytes(16)),
        asset_pb2.Fingerprint(algorithm="kp64", version=1, value=keypoints(rng)),
    ]


def rid(name: str) -> str:
    """The batch or withdrawal id a test's short name ("w1") stands for, in the wire's form (32
    lowercase hex digits); an id already of that form is itself."""
    if len(name) == 32 and all(c in "0123456789abcdef" for c in name):
        return name
    return hashlib.sha256(name.encode()).hexdigest()[:32]


def opaque(name: str | int) -> str:
    """The asset id a test's short name ("a1") or number stands for, in the wire's opaque form
    ("a-" and 24 lowercase hex digits). A name of up to 12 bytes is spelled in hex and padded,
    so names keep their order (policy ties break by asset id); a longer one is hashed; an id
    already opaque is itself."""
    if isinstance(name, int):
        return f"a-{name:024x}"
    if is_asset_id(name):
        return name
    raw = name.encode()
    return "a-" + (raw.hex().ljust(24, "0") if len(raw) <= 12 else hashlib.sha256(raw).hexdigest()[:24])


def asset(name: str, fp: bytes, *, width=1000, height=800, lossless=False, quality=80, sha=None, channels=3,
          low_information=False) -> asset_pb2.Asset:
    """An asset whose upright dct256 hash is ``fp``, with id ``opaque(name)``; its digests and
    other fingerprints are seeded by ``name``."""
    return asset_pb2.Asset(
        asset_id=opaque(name),
        sha256=sha or hashlib.sha256(name.encode() + fp).digest(),
        pixel_digest=hashlib.sha256(b"px" + name.encode() + fp).digest(),
        fingerprints=fingerprint_set(fp, name),
        evidence=asset_pb2.Evidence(
            width=width, height=height, bit_depth=8, channels=channels, rights="unknown",
            format_family=asset_pb2.FORMAT_FAMILY_LOSSLESS if lossless else asset_pb2.FORMAT_FAMILY_LOSSY,
            jpeg_quality=0 if lossless else quality, frame_width=width, frame_height=height,
            luma_mean=120, luma_spread=50, saturation=40),
        low_information=low_information,
    )


def record_of(name: str, image, path: Path, **options) -> asset_pb2.Asset:
    """The record a node makes of a real picture, with id ``opaque(name)`` (none for a lookup's
    empty name): ``image`` (Pillow) saved at ``path`` with ``options``, read and fingerprinted
    as a scan reads it."""
    from dedup.node.imaging import read_image
    from dedup.node.scan import to_record

    image.save(path, **options)
    return to_record(opaque(name) if name else "", read_image(path))
