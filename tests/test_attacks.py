"""Attacks on the coordinator not covered elsewhere (RELIABILITY.md lists where the others are
tested): a plaintext connection, an expired certificate, an oversized or deeply nested
message, a flood from one member, and a coordinator showing two members different histories.
Each asserts the refusal and that nothing was stored."""

from __future__ import annotations

import json
import time

import grpc
import pytest

from dedup import pki
from dedup.transport import MAX_MESSAGE_BYTES
from dedup.v1 import intake_pb2, intake_pb2_grpc

from conftest import asset, fingerprint
from test_intake import A, B, batch, refused, rows, submit

STORED = ("batches", "assets", "log_entries", "matches")
SQLITE_ONLY = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


def nothing_stored(consortium, before):
    assert {t: rows(consortium, t) for t in STORED} == before


def snapshot(consortium):
    return {t: rows(consortium, t) for t in STORED}


@SQLITE_ONLY  # the refusal comes before any store is touched
def test_plaintext_connection_gets_no_service(consortium):
    before = snapshot(consortium)
    ch = grpc.insecure_channel(f"127.0.0.1:{consortium.server.port}")
    with pytest.raises(grpc.RpcError) as info:
        intake_pb2_grpc.IntakeServiceStub(ch).SubmitBatch(batch(consortium, A, [asset("a1", fingerprint(1))]),
                                                          timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    nothing_stored(consortium, before)


@SQLITE_ONLY  # the refusal comes before any store is touched
def test_expired_member_certificate_cannot_connect(consortium, tmp_path):
    key, cert = pki.issue(consortium.ca, A, dns_names=(A,), days=0)  # valid until now
    pki.write_key(tmp_path / "old.key", key)
    pki.write_cert(tmp_path / "old.pem", cert)
    time.sleep(1.1)
    creds = grpc.ssl_channel_credentials(root_certificates=consortium.ca_pem.read_bytes(),
                                         private_key=(tmp_path / "old.key").read_bytes(),
                                         certificate_chain=(tmp_path / "old.pem").read_bytes())
    ch = grpc.secure_channel(f"127.0.0.1:{consortium.server.port}", creds,
                             options=[("grpc.ssl_target_name_override", "coordinator")])
    before = snapshot(consortium)
    with pytest.raises(grpc.RpcError) as info:
        intake_pb2_grpc.IntakeServiceStub(ch).SubmitBatch(batch(consortium, A, [asset("a1", fingerprint(1))]),
                                                          timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    nothing_stored(consortium, before)


def _raw(consortium, member, method):
    """A SubmitBatch-style call that sends bytes as they are (no client-side encoding)."""
    return consortium.channel(member).unary_unary(method, request_serializer=None, response_deserializer=None)


@SQLITE_ONLY  # the refusal comes before any store is touched
def test_oversized_message_refused_before_it_is_read(consortium):
    before = snapshot(consortium)
    call = _raw(consortium, A, "/dedup.v1.IntakeService/SubmitBatch")
    # Field 2 (assets, bytes) one byte over the limit: the server refuses it at the door.
    body = b"\x12" + _varint(MAX_MESSAGE_BYTES + 1) + b"\0" * (MAX_MESSAGE_BYTES + 1)
    with pytest.raises(grpc.RpcError) as info:
        call(body, timeout=30)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    nothing_stored(consortium, before)
    submit(consortium, A, batch(consortium, A, [asset("a1", fingerprint(1))]))  # still serving


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


@SQLITE_ONLY  # the refusal comes before any store is touched
def test_deeply_nested_message_refused_cleanly(consortium):
    before = snapshot(consortium)
    # 100,000 nested groups in an unknown field, then the same depth as nested length-delimited
    # fields: a parser that recursed without a limit would exhaust its stack.
    groups = b"\x7b" * 100_000 + b"\x7c" * 100_000  # field 15, start/end group
    nested = b""
    for _ in range(3000):
        nested = b"\x0a" + _varint(len(nested)) + nested  # field 1 (manifest) inside field 1 ...
    for body in (groups, nested):
        with pytest.raises(grpc.RpcError) as info:
            _raw(consortium, A, "/dedup.v1.IntakeService/SubmitBatch")(body, timeout=30)
        assert info.value.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT), info.value
    nothing_stored(consortium, before)
    submit(consortium, A, batch(consortium, A, [asset("a1", fingerprint(1))]))


def test_flood_from_one_member_is_limited_and_the_others_still_served(consortium):
    consortium.stop()
    consortium.settings.intake_rate, consortium.settings.intake_burst = 1.0, 5
    consortium.start()
    refusals = 0
    for k in range(30):  # far faster than 1/s
        try:
            submit(consortium, A, batch(consortium, A, [asset(f"a{k}", fingerprint(100 + k))], seq=k + 1))
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "over its intake limit (1/s, burst 5); retry in" in err.details()
            refusals += 1
    assert refusals >= 30 - 5 - 2  # the burst, and what refilled while sending
    stored = rows(consortium, "batches")
    assert stored == 30 - refusals
    # Another member has its own bucket: served at once.
    assert submit(consortium, B, batch(consortium, B, [asset("b1", fingerprint(7))])).accepted == 1
    # A refused batch is not half-stored: sent again after the wait, it is taken.
    time.sleep(1.1)
    last = submit(consortium, A, batch(consortium, A, [asset("late", fingerprint(999))], seq=100))
    assert last.accepted == 1 and rows(consortium, "batches") == stored + 2


def test_split_view_is_caught_by_the_witnesses(consortium, tmp_path):
    """The coordinator shows member A one history and member B another of the same size (the
    same address and log key, two stores that share a prefix). Each witness alone sees a
    consistent log and cosigns what it was shown, so no checkpoint gets both cosignatures: an
    auditor asking for a quorum of 2 refuses either history. Shown the other history, a
    witness stops with evidence of the fork. Runs on SQLite and on PostgreSQL."""
    from dedup.audit.verify import AuditFailure, verify_export
    from dedup.coordinator.export import export_log
    from test_witness import cosigner, dedup, node_config, restart

    submit(consortium, A, batch(consortium, A, [asset("a1", fingerprint(1))]))
    cfg_a, cfg_b = node_config(consortium, A, tmp_path), node_config(consortium, B, tmp_path)
    assert dedup("node", "witness", "--config", cfg_a, "--json").returncode == 0
    assert dedup("node", "witness", "--config", cfg_b, "--json").returncode == 0
    # The shared prefix, copied into a second store.
    real, port = consortium.settings.database, consortium.server.port
    consortium.stop()
    view_b = _copy_store(real, tmp_path / "view-b.sqlite")
    consortium.settings = consortium.settings.model_copy(update={"listen": f"127.0.0.1:{port}"})
    consortium.start()
    verifier = consortium.log_signer.verifier()
    # View A: one more batch, cosigned by A only.
    submit(consortium, A, batch(consortium, A, [asset("a2", fingerprint(2))], seq=2))
    assert dedup("node", "witness", "--config", cfg_a, "--json").returncode == 0
    export_log(consortium.server.core.store, tmp_path / "view-a", verifier.to_string())
    # View B, at the same address: a different entry at the same index, cosigned by B only.
    restart(consortium, database=view_b)
    submit(consortium, A, batch(consortium, A, [asset("zz", fingerprint(77))], seq=2))
    assert dedup("node", "witness", "--config", cfg_b, "--json").returncode == 0
    export_log(consortium.server.core.store, tmp_path / "view-b", verifier.to_string())
    witnesses = (cosigner(consortium, A), cosigner(consortium, B))
    for view in ("view-a", "view-b"):
        assert verify_export(tmp_path / view, verifier, witnesses=witnesses, quorum=1).entries == 5
        with pytest.raises(AuditFailure, match="quorum|cosign"):
            verify_export(tmp_path / view, verifier, witnesses=witnesses, quorum=2)
    # A, shown B's view, refuses it: two checkpoints of one size with different roots.
    out = dedup("node", "witness", "--config", cfg_a, "--json")
    assert out.returncode == 4, out.stderr
    result = json.loads(out.stdout)
    assert result["inconsistent"] is True and result["problem"].startswith("two checkpoints of size 5")
    # And B, shown A's view, refuses that one.
    restart(consortium, database=real)
    out = dedup("node", "witness", "--config", cfg_b, "--json")
    assert out.returncode == 4, out.stderr
    assert json.loads(out.stdout)["problem"].startswith("two checkpoints of size 5")


def _copy_store(location: str, sqlite_path) -> str:
    """A second store holding what ``location`` holds now: a copied SQLite file, or for
    PostgreSQL a new schema beside the test's own (dropped with it) with every table copied."""
    if not location.startswith("postgresql://"):
        import sqlite3

        with sqlite3.connect(location) as src, sqlite3.connect(sqlite_path) as dst:
            src.backup(dst)
        return str(sqlite_path)
    import re

    import psycopg

    from conftest import PG_DSN

    schema = re.search(r"search_path%3D(\w+)", location).group(1)
    copy = schema + "_b"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {copy}")
        tables = [t for (t,) in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,))]
        assert "log_entries" in tables
        for t in tables:
            conn.execute(f"CREATE TABLE {copy}.{t} (LIKE {schema}.{t} INCLUDING ALL)")
            conn.execute(f"INSERT INTO {copy}.{t} SELECT * FROM {schema}.{t}")
    return location.replace(f"search_path%3D{schema}", f"search_path%3D{copy}")


def test_no_answer_to_another_member_carries_its_fingerprints(consortium):
    """B holds a copy of A's picture, so it may learn that A has one and A's declared evidence;
    but nothing B can ask for (matches, proposals, log entries, checkpoints) carries A's
    fingerprints or digests, and C, holding no copy, learns nothing of the match."""
    from conftest import near
    from dedup.v1 import log_pb2, log_pb2_grpc, negotiation_pb2, negotiation_pb2_grpc

    secret = fingerprint(4242)
    a = asset("a-secret", secret)
    submit(consortium, A, batch(consortium, A, [a]))
    submit(consortium, B, batch(consortium, B, [asset("b1", near(secret, 3))]))
    secrets = [fp.value for fp in a.fingerprints] + [a.sha256, a.pixel_digest, secret]
    for member in (B, "university-library"):
        ch = consortium.channel(member)
        log = log_pb2_grpc.LogServiceStub(ch)
        size = rows(consortium, "log_entries")
        answers = [
            intake_pb2_grpc.IntakeServiceStub(ch).ListMatches(intake_pb2.ListMatchesRequest(), timeout=5),
            negotiation_pb2_grpc.NegotiationServiceStub(ch).ListProposals(negotiation_pb2.ListProposalsRequest(),
                                                                          timeout=5),
            log.GetEntries(log_pb2.GetEntriesRequest(start=0, end=size), timeout=5),
            log.GetCheckpoint(log_pb2.GetCheckpointRequest(), timeout=5),
        ]
        blob = b"".join(x.SerializeToString() for x in answers)
        for s in secrets:
            assert s not in blob, f"{member} can read A's fingerprint or digest"
        if member != B:
            assert not answers[0].matches and not answers[1].proposals
