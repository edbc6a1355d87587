"""Intake over real gRPC with mutual TLS on loopback, against a real SQLite store."""

from __future__ import annotations

import hashlib

import grpc
import pytest

from dedup import pki
from dedup.note import NoteSigner
from dedup.signing import sign_statement
from dedup.v1 import asset_pb2, intake_pb2, statements_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from conftest import ORIGIN, asset, fingerprint, near, opaque, rid

A, B, C = "records-office", "city-museum", "university-library"


def batch(consortium, member, assets, *, seq=1, batch_id=None, signer=None, manifest_member=None, tamper=None):
    payload = asset_pb2.AssetList(assets=assets).SerializeToString(deterministic=True)
    m = asset_pb2.BatchManifest(member_id=manifest_member or member, batch_id=rid(batch_id or f"{member}-{seq}"),
                                sequence=seq, asset_count=len(assets), assets_sha256=hashlib.sha256(payload).digest(),
                                created_unix=1)
    stmt = sign_statement(signer or consortium.parties[member].signer, m, origin=ORIGIN)
    if tamper:
        tamper(stmt)
    return intake_pb2.SubmitBatchRequest(manifest=stmt, assets=payload)


def submit(consortium, member, req, **kw):
    return consortium.intake(member).SubmitBatch(req, timeout=10, **kw)


def rows(consortium, table):
    return consortium.query(f"SELECT COUNT(*) FROM {table}")[0][0]


def refused(consortium, member, req):
    before = {t: rows(consortium, t) for t in ("batches", "assets", "log_entries", "matches")}
    with pytest.raises(grpc.RpcError) as info:
        submit(consortium, member, req)
    after = {t: rows(consortium, t) for t in ("batches", "assets", "log_entries", "matches")}
    assert after == before, "a refused batch stored something"
    return info.value


def test_health_serving(consortium):
    stub = health_pb2_grpc.HealthStub(consortium.channel(A))
    for service in ("", "dedup.v1.IntakeService", "dedup.v1.LogService"):
        assert stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status == health_pb2.HealthCheckResponse.SERVING


def test_members_admitted_in_log(consortium):
    # One MemberAdmitted entry per configured member, before anything else.
    assert rows(consortium, "log_entries") == 3
    assert rows(consortium, "members") == 3


def test_cross_member_match_and_proposal(consortium):
    fp = fingerprint(1)
    r1 = submit(consortium, A, batch(consortium, A, [asset("a1", fp, width=4000, height=3000, lossless=True),
                                                     asset("a2", fingerprint(2))]))
    assert (r1.accepted, r1.new_matches, r1.already_stored) == (2, 0, False)
    r2 = submit(consortium, B, batch(consortium, B, [asset("b1", near(fp, 6), width=1000, height=750, quality=75),
                                                     asset("b2", fingerprint(3))]))
    assert (r2.accepted, r2.new_matches) == (2, 1)
    ms = consortium.intake(B).ListMatches(intake_pb2.ListMatchesRequest(), timeout=5).matches
    assert len(ms) == 1
    m = ms[0]
    assert (m.own_asset_id, m.counterpart_member, m.counterpart_asset_id, m.distance) == (opaque("b1"), A, opaque("a1"), 6)
    assert m.relation == statements_pb2.RELATION_REENCODED
    assert (m.counterpart_evidence.width, m.counterpart_evidence.height) == (4000, 3000)
    (master_member, master_asset, rule), = consortium.query(
        "SELECT master_member, master_asset, deciding_rule FROM proposals")
    assert (master_member, master_asset, rule) == (A, opaque("a1"), "pixel_count")


def test_members_see_only_their_own_matches(consortium):
    fp = fingerprint(7)
    submit(consortium, A, batch(consortium, A, [asset("a1", fp)]))
    submit(consortium, B, batch(consortium, B, [asset("b1", near(fp, 3))]))
    assert len(consortium.intake(A).ListMatches(intake_pb2.ListMatchesRequest(), timeout=5).matches) == 1
    # C holds no copy: it learns nothing of the A-B match.
    assert list(consortium.intake(C).ListMatches(intake_pb2.ListMatchesRequest(), timeout=5).matches) == []


def test_unrelated_and_far_fingerprints_do_not_match(consortium):
    fp = fingerprint(9)
    submit(consortium, A, batch(consortium, A, [asset("a1", fp)]))
    r = submit(consortium, B, batch(consortium, B, [asset("b1", near(fp, 60)), asset("b2", fingerprint(10))]))
    assert r.new_matches == 0


def test_low_information_not_matched_perceptually(consortium):
    fp = fingerprint(11)
    submit(consortium, A, batch(consortium, A, [asset("a1", fp, low_information=True)]))
    r = submit(consortium, B, batch(consortium, B, [asset("b1", fp, low_information=True)]))
    assert r.new_matches == 0


def test_identical_bytes_labelled(consortium):
    fp = fingerprint(12)
    same = hashlib.sha256(b"file").digest()
    submit(consortium, A, batch(consortium, A, [asset("a1", fp, sha=same)]))
    submit(consortium, B, batch(consortium, B, [asset("b1", fp, sha=same)]))
    m, = consortium.intake(A).ListMatches(intake_pb2.ListMatchesRequest(), timeout=5).matches
    assert m.relation == statements_pb2.RELATION_IDENTICAL_BYTES


def test_resend_is_idempotent(consortium):
    req = batch(consortium, A, [asset("a1", fingerprint(1))])
    first = submit(consortium, A, req)
    n = rows(consortium, "log_entries")
    again = submit(consortium, A, req)
    assert again.already_stored and again.log_index == first.log_index and again.accepted == 1
    assert rows(consortium, "log_entries") == n and rows(consortium, "batches") == 1


def test_bad_signature_refused(consortium):
    def flip(stmt):
        stmt.signature = bytes([stmt.signature[0] ^ 1]) + stmt.signature[1:]
    err = refused(consortium, A, batch(consortium, A, [asset("a1", fingerprint(1))], tamper=flip))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "bad signature" in err.details()


def test_signed_with_another_key_refused(consortium):
    rogue = NoteSigner.generate(A)
    err = refused(consortium, A, batch(consortium, A, [asset("a1", fingerprint(1))], signer=rogue))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED and "key id" in err.details()


def test_identity_mismatch_refused(consortium):
    # B's TLS connection carrying a batch that A signed.
    err = refused(consortium, B, batch(consortium, A, [asset("a1", fingerprint(1))]))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "signed by 'records-office'" in err.details() and "'city-museum'" in err.details()


def test_unknown_member_refused(consortium):
    err = refused(consortium, "outsider", batch(consortium, "outsider", [asset("x1", fingerprint(1))],
                                                 signer=NoteSigner.generate("outsider")))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED and "not a member" in err.details()


def test_replay_refused(consortium):
    submit(consortium, A, batch(consortium, A, [asset("a1", fingerprint(1))], seq=5))
    err = refused(consortium, A, batch(consortium, A, [asset("a2", fingerprint(2))], seq=5, batch_id="other"))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "replayed" in err.details()


def test_batch_id_reuse_refused(consortium):
    submit(consortium, A, batch(consortium, A, [asset("a1", fingerprint(1))], seq=1, batch_id="same"))
    err = refused(consortium, A, batch(consortium, A, [asset("a2", fingerprint(2))], seq=2, batch_id="same"))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS


@pytest.mark.parametrize("fp, message", [
    (b"\0" * 32, "degenerate dct256 v2 fingerprint (part 0): all bits are 0"),
    (b"\xff" * 32, "degenerate dct256 v2 fingerprint (part 0): all bits are 1"),
    (b"\1" * 31, "must be 256 bytes, got 255"),
])
def test_bad_fingerprint_refused(consortium, fp, message):
    err = refused(consortium, A, batch(consortium, A, [asset("a1", fingerprint(1)), asset("a2", fp)]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"asset 1 ({opaque('a2')!r})" in err.details() and message in err.details()


def test_fingerprint_given_twice_refused(consortium):
    a = asset("a1", fingerprint(1))
    a.fingerprints.append(a.fingerprints[1])
    err = refused(consortium, A, batch(consortium, A, [a]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "dct64 v2 given twice" in err.details()


def test_unknown_fingerprint_version_refused(consortium):
    a = asset("a1", fingerprint(1))
    a.fingerprints[0].version = 99
    err = refused(consortium, A, batch(consortium, A, [a]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown version 99 of fingerprint algorithm 'dct256'" in err.details()


def test_removed_win64_fingerprint_refused(consortium):
    """A node of an earlier version sends its crop windows (win64 v2) where kp64 now goes: the
    coordinator no longer knows that kind, and says so rather than storing a record it could
    never compare."""
    a = asset("a1", fingerprint(1))
    a.fingerprints[2].CopyFrom(asset_pb2.Fingerprint(algorithm="win64", version=2, value=bytes(range(8)) * 36))
    err = refused(consortium, A, batch(consortium, A, [asset("a0", fingerprint(2)), a]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"asset 1 ({opaque('a1')!r})" in err.details()
    assert "unknown fingerprint algorithm 'win64' (known: dct256, dct64, kp64)" in err.details()


@pytest.mark.parametrize("value, message", [
    (bytes.fromhex("01400140") + bytes(12 * 65), "kp64 v1 value holds 65 points; at most 64"),
    (bytes.fromhex("01400140") + bytes(13), "kp64 v1 value must be 4 + 12 x n bytes, got 17"),
    (bytes.fromhex("00800080") + bytes(12), "kp64 v1 extent 128 x 128 is not a picture's (long side 320)"),
])
def test_malformed_keypoints_refused(consortium, value, message):
    a = asset("a1", fingerprint(1))
    a.fingerprints[2].value = value
    err = refused(consortium, A, batch(consortium, A, [a]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"asset 0 ({opaque('a1')!r})" in err.details() and message in err.details()


def test_payload_not_matching_manifest_refused(consortium):
    req = batch(consortium, A, [asset("a1", fingerprint(1))])
    req.assets = asset_pb2.AssetList(assets=[asset("a9", fingerprint(9))]).SerializeToString()
    err = refused(consortium, A, req)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "SHA-256" in err.details()


def test_oversized_batch_refused(consortium):
    err = refused(consortium, A, batch(consortium, A, [asset(f"a{i}", fingerprint(i)) for i in range(51)]))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "at most 50" in err.details()


def test_manifest_for_another_member_refused(consortium):
    err = refused(consortium, A, batch(consortium, A, [asset("a1", fingerprint(1))], manifest_member=B))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "names member" in err.details()


def test_client_without_certificate_cannot_connect(consortium):
    creds = grpc.ssl_channel_credentials(root_certificates=consortium.ca_pem.read_bytes())
    ch = grpc.secure_channel(f"127.0.0.1:{consortium.server.port}", creds,
                             options=[("grpc.ssl_target_name_override", "coordinator")])
    from dedup.v1 import intake_pb2_grpc
    with pytest.raises(grpc.RpcError) as info:
        intake_pb2_grpc.IntakeServiceStub(ch).SubmitBatch(batch(consortium, A, [asset("a1", fingerprint(1))]), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert rows(consortium, "batches") == 0


def test_certificate_from_foreign_ca_cannot_connect(consortium, tmp_path):
    foreign = pki.new_ca("foreign CA")
    key, cert = pki.issue(foreign, A)
    pki.write_key(tmp_path / "f.key", key)
    pki.write_cert(tmp_path / "f.pem", cert)
    creds = grpc.ssl_channel_credentials(root_certificates=consortium.ca_pem.read_bytes(),
                                         private_key=(tmp_path / "f.key").read_bytes(),
                                         certificate_chain=(tmp_path / "f.pem").read_bytes())
    ch = grpc.secure_channel(f"127.0.0.1:{consortium.server.port}", creds,
                             options=[("grpc.ssl_target_name_override", "coordinator")])
    from dedup.v1 import intake_pb2_grpc
    with pytest.raises(grpc.RpcError) as info:
        intake_pb2_grpc.IntakeServiceStub(ch).SubmitBatch(batch(consortium, A, [asset("a1", fingerprint(1))]), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert rows(consortium, "batches") == 0


def test_cluster_does_not_chain_through_loose_links(consortium):
    """X~Y and Y~Z within the threshold, but X and Z far apart: Z must not join the cluster of
    X, a second copy of X and Y (it matches one of three representatives; at least half must
    agree). A cluster of two takes a copy that matches either: a picture and its crop must take
    a copy of the picture that does not contain the crop's part."""
    from dedup.matching import DEFAULT_THRESHOLD as t
    x = fingerprint(21)
    y = near(x, t - 4, seed=1)  # within t of x and of x2
    # z is within t of y but 2t - 4 from x, beyond the verification's loosened distance.
    zb = bytearray(y)
    flipped = 0
    for bit in range(256):
        if (x[bit // 8] >> (bit % 8)) & 1 == (y[bit // 8] >> (bit % 8)) & 1:
            zb[bit // 8] ^= 1 << (bit % 8)
            flipped += 1
            if flipped == t:
                break
    z = bytes(zb)
    # x2: 10 of the bits in which y differs from x flipped back, so it is a version of its own
    # (past FOLLOW_DISTANCE from x), within t of y, and 2t - 14 from z.
    x2b = bytearray(x)
    moved = 0
    for bit in range(256):
        if (x[bit // 8] >> (bit % 8)) & 1 != (y[bit // 8] >> (bit % 8)) & 1:
            x2b[bit // 8] ^= 1 << (bit % 8)
            moved += 1
            if moved == 10:
                break
    submit(consortium, A, batch(consortium, A, [asset("x", x), asset("x2", bytes(x2b))]))
    r = submit(consortium, B, batch(consortium, B, [asset("y", y)]))
    assert r.new_matches == 2
    r = submit(consortium, C, batch(consortium, C, [asset("z", z)]))
    assert r.new_matches == 0
    assert consortium.query("SELECT COUNT(*) FROM clusters WHERE asset_id=?", (opaque("z"),)) == [(0,)]


def test_restart_keeps_matching_state(consortium):
    fp = fingerprint(31)
    submit(consortium, A, batch(consortium, A, [asset("a1", fp)]))
    consortium.stop()
    consortium.start()
    r = submit(consortium, B, batch(consortium, B, [asset("b1", near(fp, 2))]))
    assert r.new_matches == 1


def test_low_information_asset_without_fingerprint_is_accepted_and_matched_exactly(consortium):
    blank = asset("a1", fingerprint(1), low_information=True, sha=hashlib.sha256(b"blank").digest())
    del blank.fingerprints[:]
    submit(consortium, A, batch(consortium, A, [blank]))
    other = asset("b1", fingerprint(1), low_information=True, sha=hashlib.sha256(b"blank").digest())
    del other.fingerprints[:]
    r = submit(consortium, B, batch(consortium, B, [other]))
    assert r.new_matches == 1  # same bytes still match


def test_asset_without_fingerprint_refused_unless_low_information(consortium):
    a = asset("a1", fingerprint(1))
    del a.fingerprints[:]
    err = refused(consortium, A, batch(consortium, A, [a]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "no fingerprint" in err.details()


def test_revoked_member_refused_and_revocation_logged(consortium, tmp_path):
    from dedup.audit.verify import AuditFailure, verify_export
    from dedup.coordinator.export import export_log
    from dedup.export import read_entries
    from dedup.signing import parse_body, parse_entry

    submit(consortium, A, batch(consortium, A, [asset("a1", fingerprint(1))], seq=1))
    consortium.stop()
    consortium.settings.members[0].revoked = "key reported lost"
    consortium.start()
    n = rows(consortium, "log_entries")
    err = refused(consortium, A, batch(consortium, A, [asset("a2", fingerprint(2))], seq=2))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert err.details() == ("the key of member 'records-office' is revoked (key reported lost); "
                             "nothing it sends is accepted")
    # Restarting does not log the revocation twice.
    consortium.stop()
    consortium.start()
    assert rows(consortium, "log_entries") == n
    out = tmp_path / "export"
    export_log(consortium.server.core.store, out, consortium.log_signer.verifier().to_string())
    entries = list(read_entries(out))
    kinds = [parse_entry(e).type for e in entries]
    assert kinds.count("dedup.v1.MemberRevoked") == 1
    revoked = parse_body(parse_entry(entries[kinds.index("dedup.v1.MemberRevoked")]))
    assert (revoked.member_id, revoked.reason) == (A, "key reported lost")
    assert verify_export(out, consortium.log_signer.verifier()).revocations == 1
    # A batch the member signed, slipped in after the revocation, fails the audit.
    from test_audit import _resign
    late = batch(consortium, A, [asset("a3", fingerprint(3))], seq=3).manifest.SerializeToString(deterministic=True)
    _resign(out, consortium.log_signer, entries + [late])
    with pytest.raises(AuditFailure, match=f"entry {len(entries)}: signed by 'records-office' after its key was revoked"):
        verify_export(out, consortium.log_signer.verifier())


def test_prometheus_metrics_count_batches_refusals_and_matches(consortium):
    import urllib.request

    consortium.stop()
    consortium.settings.metrics_listen = "127.0.0.1:0"
    consortium.start()
    fp = fingerprint(5)
    submit(consortium, A, batch(consortium, A, [asset("a1", fp)]))
    submit(consortium, B, batch(consortium, B, [asset("b1", near(fp, 4))]))
    submit(consortium, B, batch(consortium, B, [asset("b1", near(fp, 4))]))  # a resend
    refused(consortium, "outsider", batch(consortium, "outsider", [asset("x", fingerprint(9))],
                                          signer=NoteSigner.generate("outsider")))
    body = urllib.request.urlopen(f"http://127.0.0.1:{consortium.server.metrics_port}/metrics", timeout=5).read().decode()
    metrics = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
               if line and not line.startswith("#")}
    assert metrics['dedup_batches_total{outcome="stored"}'] == 2
    assert metrics['dedup_batches_total{outcome="already_stored"}'] == 1
    assert metrics["dedup_assets_total"] == 2
    assert metrics["dedup_matches_total"] == 1
    assert metrics['dedup_refusals_total{method="SubmitBatch",reason="unknown_member"}'] == 1
    assert metrics["dedup_index_assets"] == 2
    assert metrics['dedup_request_seconds_count{method="SubmitBatch"}'] == 4  # refusals are timed too


def withdrawal(consortium, member, asset_ids, wid="w1", signer=None):
    stmt = sign_statement(signer or consortium.parties[member].signer, asset_pb2.AssetsWithdrawn(
        member_id=member, withdrawal_id=rid(wid), asset_ids=asset_ids, reason="deaccessioned", created_unix=1), origin=ORIGIN)
    return intake_pb2.WithdrawAssetsRequest(withdrawal=stmt)


def test_withdrawal_tombstones_assets_reproposes_and_is_logged(consortium):
    fp = fingerprint(40)
    submit(consortium, A, batch(consortium, A, [asset("a1", fp, width=4000, height=3000)]))
    submit(consortium, B, batch(consortium, B, [asset("b1", near(fp, 4), width=1000, height=750)]))
    submit(consortium, C, batch(consortium, C, [asset("c1", near(fp, 6), width=2000, height=1500)]))
    assert consortium.query("SELECT master_member FROM proposals ORDER BY log_index DESC LIMIT 1") == [(A,)]
    resp = consortium.intake(A).WithdrawAssets(withdrawal(consortium, A, [opaque("a1")]), timeout=10)
    assert (resp.withdrawn, resp.already_stored) == (1, False)
    # The master left: the cluster is proposed again, among the copies still held.
    assert consortium.query("SELECT master_member, master_asset FROM proposals ORDER BY log_index DESC LIMIT 1") == [(C, opaque("c1"))]
    assert consortium.query("SELECT member_id, asset_id FROM tombstones") == [(A, opaque("a1"))]
    assert [m.counterpart_member for m in consortium.intake(B).ListMatches(intake_pb2.ListMatchesRequest(), timeout=5).matches] == [C]
    # A resend stores nothing twice; a new record for the same asset id revives it.
    n = rows(consortium, "log_entries")
    again = consortium.intake(A).WithdrawAssets(withdrawal(consortium, A, [opaque("a1")]), timeout=10)
    assert again.already_stored and again.log_index == resp.log_index and rows(consortium, "log_entries") == n
    r = submit(consortium, A, batch(consortium, A, [asset("a1", fp, width=4000, height=3000)], seq=2))
    assert r.new_matches == 2 and rows(consortium, "tombstones") == 0
    # The member-signed withdrawal is in the log, and the auditor accepts the whole history.
    from dedup.audit.verify import verify_export
    from dedup.coordinator.export import export_log

    export_log(consortium.server.core.store, consortium.root / "export", consortium.log_signer.verifier().to_string())
    report = verify_export(consortium.root / "export", consortium.log_signer.verifier())
    assert (report.withdrawals, report.proposals) == (1, 4)


def test_withdrawal_refusals_store_nothing(consortium):
    submit(consortium, A, batch(consortium, A, [asset("a1", fingerprint(41))]))
    n = rows(consortium, "log_entries")
    for member, req, code, text in (
        (A, withdrawal(consortium, A, ["nope"]), grpc.StatusCode.NOT_FOUND, "not held by 'records-office'"),
        (B, withdrawal(consortium, A, [opaque("a1")]), grpc.StatusCode.PERMISSION_DENIED, "authenticated as 'city-museum'"),
        (A, withdrawal(consortium, A, [opaque("a1")], signer=NoteSigner.generate(A)), grpc.StatusCode.UNAUTHENTICATED, "key id"),
        (A, withdrawal(consortium, A, []), grpc.StatusCode.INVALID_ARGUMENT, "names 1 to 50 assets"),
    ):
        with pytest.raises(grpc.RpcError) as info:
            consortium.intake(member).WithdrawAssets(req, timeout=10)
        assert info.value.code() == code and text in info.value.details()
    assert rows(consortium, "log_entries") == n and rows(consortium, "tombstones") == 0


def test_store_records_its_schema_version_and_refuses_a_newer_one(consortium, database):
    from dedup.coordinator.store import SCHEMA_VERSION, SchemaError, Store

    assert consortium.query("SELECT value FROM meta WHERE key='schema_version'") == [(str(SCHEMA_VERSION),)]
    consortium.stop()
    store = Store(database)
    store._db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    store.close()
    with pytest.raises(SchemaError, match="never downgrade"):
        Store(database)


def proposals(consortium, cluster_id):
    return consortium.query("SELECT master_member, master_asset FROM proposals WHERE cluster_id=? ORDER BY log_index",
                            (cluster_id,))


def test_update_with_new_evidence_keeps_the_cluster_and_proposes_again(consortium):
    """A rescan finds a better copy of the same picture: same cluster, and the master moves."""
    fp = fingerprint(41)
    submit(consortium, A, batch(consortium, A, [asset("a1", fp, width=1000, height=800)]))
    submit(consortium, B, batch(consortium, B, [asset("b1", near(fp, 3), width=2000, height=1600)]))
    [(cid,)] = consortium.query("SELECT DISTINCT cluster_id FROM clusters")
    assert proposals(consortium, cid)[-1] == (B, opaque("b1"))
    # Same pixels and fingerprints, now declared at a larger size and lossless.
    submit(consortium, A, batch(consortium, A, [asset("a1", fp, width=4000, height=3200, lossless=True)], seq=2))
    assert consortium.query("SELECT asset_id FROM clusters WHERE cluster_id=? ORDER BY asset_id", (cid,)) == [
        (opaque("a1"),), (opaque("b1"),)]
    assert proposals(consortium, cid)[-1] == (A, opaque("a1"))


def test_update_with_other_pixels_leaves_the_cluster(consortium):
    """A rescan shows the file is now another picture: it leaves the cluster, which is
    proposed again without it, and it is matched afresh."""
    fp, other = fingerprint(51), fingerprint(52)
    submit(consortium, A, batch(consortium, A, [asset("a1", fp)]))
    submit(consortium, B, batch(consortium, B, [asset("b1", near(fp, 3)), asset("b2", near(fp, 4))]))
    submit(consortium, C, batch(consortium, C, [asset("c1", near(other, 2))]))
    [(cid,)] = consortium.query("SELECT DISTINCT cluster_id FROM clusters")
    before = len(proposals(consortium, cid))
    r = submit(consortium, A, batch(consortium, A, [asset("a1", other)], seq=2))
    assert r.new_matches == 1  # now a copy of c1
    assert consortium.query("SELECT cluster_id FROM clusters WHERE asset_id=?", (opaque("a1"),)) != [(cid,)]
    assert consortium.query("SELECT asset_id FROM clusters WHERE cluster_id=? ORDER BY asset_id", (cid,)) == [
        (opaque("b1"),), (opaque("b2"),)]
    # b1 and b2 are one member's copies: no cross-member cluster is left to propose for.
    assert len(proposals(consortium, cid)) == before
    [(c1_cluster,)] = consortium.query("SELECT cluster_id FROM clusters WHERE asset_id=?", (opaque("c1"),))
    assert consortium.query("SELECT cluster_id FROM clusters WHERE asset_id=?", (opaque("a1"),)) == [(c1_cluster,)]


def _with_unknown_field(message) -> bytes:
    """``message``'s bytes with a field no version of its type defines (number 99, a varint)."""
    return message.SerializeToString(deterministic=True) + bytes((0x98, 0x06, 0x01))


@pytest.mark.parametrize("where", ["asset", "evidence", "fingerprint", "manifest"])
def test_unknown_fields_refused_and_nothing_stored(consortium, where):
    """What is stored is what was signed, so a record carrying fields SPEC does not define is
    refused (not stored with them, nor stripped of them)."""
    a = asset("a1", fingerprint(60))
    part = {"asset": a, "evidence": a.evidence, "fingerprint": a.fingerprints[0]}.get(where)
    if part is not None:
        part.ParseFromString(_with_unknown_field(part))  # parsed messages keep unknown fields
    payload = asset_pb2.AssetList(assets=[a]).SerializeToString(deterministic=True)
    manifest = asset_pb2.BatchManifest(member_id=A, batch_id=rid("b1"), sequence=1, asset_count=1,
                                       assets_sha256=hashlib.sha256(payload).digest(), created_unix=1)
    if where == "manifest":
        manifest = asset_pb2.BatchManifest.FromString(_with_unknown_field(manifest))
    stmt = sign_statement(consortium.parties[A].signer, manifest, origin=ORIGIN)
    err = refused(consortium, A, intake_pb2.SubmitBatchRequest(manifest=stmt, assets=payload))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "field number(s) 99" in err.details() and "does not define" in err.details()
    named = f"asset 0 ({opaque('a1')!r})"
    assert {"asset": f"{named}:", "evidence": f"{named}.evidence:",
            "fingerprint": f"{named}.fingerprints[0]:", "manifest": "the manifest:"}[where] in err.details()


@pytest.mark.parametrize("field, value, limit", [
    ("rights", "http://rightsstatements.org/vocab/InC/1.0/" + "x" * 2400, 256),
    ("capture_date", "2024-01-01T00:00:00 taken at the manor by " + "x" * 40, 19),
])
def test_oversized_strings_refused_and_nothing_stored(consortium, field, value, limit):
    a = asset("a1", fingerprint(61))
    setattr(a.evidence, field, value)
    err = refused(consortium, A, batch(consortium, A, [a]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"{field} is {len(value)} characters long; dedup.v1.Evidence.{field} holds at most {limit}" in err.details()


def test_an_oversized_withdrawal_reason_is_refused(consortium):
    submit(consortium, A, batch(consortium, A, [asset("a1", fingerprint(62))]))
    n = rows(consortium, "log_entries")
    stmt = sign_statement(consortium.parties[A].signer, asset_pb2.AssetsWithdrawn(
        member_id=A, withdrawal_id=rid("w1"), asset_ids=[opaque("a1")], reason="r" * 5000), origin=ORIGIN)
    with pytest.raises(grpc.RpcError) as info:
        consortium.intake(A).WithdrawAssets(intake_pb2.WithdrawAssetsRequest(withdrawal=stmt), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "holds at most 4096" in info.value.details()
    assert rows(consortium, "log_entries") == n and rows(consortium, "tombstones") == 0


@pytest.mark.parametrize("asset_id", [
    "masters:Jane_Doe_portrait.tif", "a1", "a-" + "0" * 23, "a-" + "0" * 25, "a-" + "ABCDEF" * 4, "A-" + "0" * 24,
    "a-" + "0" * 23 + "g", " a-" + "0" * 24, "a-" + "0" * 24 + "\n", "",
])
def test_an_asset_id_not_of_the_opaque_form_is_refused_and_not_quoted(consortium, asset_id):
    """A node chooses its ids, but the coordinator takes only the opaque form, so no path or
    name reaches the store or the log whatever the node; the refusal (which is logged) does
    not repeat the id."""
    a = asset("a1", fingerprint(64))
    a.asset_id = asset_id
    err = refused(consortium, A, batch(consortium, A, [asset("a2", fingerprint(65)), a]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("asset 1: asset_id is not an asset id: it is 'a-' and 24 lowercase hex digits")
    assert "Jane" not in err.details()


@pytest.mark.parametrize("field, value, reason", [
    ("rights", "© Jane Doe, Lakeside Manor collection, masters/portraits/jane_doe.tif", "is not a rights value"),
    ("rights", "http://rightsstatements.org/vocab/InC/1.0/ masters/portraits/jane_doe.tif", "is not a rights value"),
    ("rights", "http://rightsstatements.org/vocab/Jane-Doe/1.0/", "is not a rights value"),
    ("rights", "In Copyright", "is not a rights value"),
    ("rights", "Unknown", "is not a rights value"),  # a value has one spelling, so a difference can carry nothing
    ("capture_date", "taken at Lakeside Manor by Jane Doe", "is 35 characters long"),
    ("capture_date", "Lakeside Manor", "is not a capture date"),
    ("capture_date", "2024:05:01 10:00:00", "is not a capture date"),
    ("capture_date", "2024-05-01", "is not a capture date"),
    ("capture_date", "2024-02-30T10:00:00", "is not a capture date"),
    ("capture_date", "2024-05-01T24:00:00", "is not a capture date"),
    ("capture_date", "２０２４-05-01T10:00:00", "is not a capture date"),
])
def test_evidence_not_of_its_form_is_refused_and_nothing_stored(consortium, field, value, reason):
    a = asset("a1", fingerprint(66))
    setattr(a.evidence, field, value)
    err = refused(consortium, A, batch(consortium, A, [a]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"asset 0 ({opaque('a1')!r}).evidence: {field} {reason}" in err.details()
    assert value not in err.details()


@pytest.mark.parametrize("rights, date", [
    ("http://rightsstatements.org/vocab/InC/1.0/", "2024-05-01T10:00:00"),
    ("https://creativecommons.org/licenses/by-nc/4.0/", "1899-12-31T23:59:59"),
    ("https://creativecommons.org/publicdomain/zero/1.0/", ""),
    ("https://creativecommons.org/publicdomain/mark/1.0/", "2024-02-29T00:00:00"),
    ("unknown", ""),
    ("", ""),  # absent: unknown
])
def test_evidence_of_its_form_is_taken(consortium, rights, date):
    a = asset("a1", fingerprint(67))
    a.evidence.rights, a.evidence.capture_date = rights, date
    assert submit(consortium, A, batch(consortium, A, [a])).accepted == 1


@pytest.mark.parametrize("reason, problem", [
    ("deaccessioned\x1b[2Kand sent to Jane Doe", "holds the control character U+001B at character 13"),
    ("deaccessioned\r", "holds the control character U+000D"),
    ("r" * 4097, "holds at most 4096"),
])
def test_a_withdrawal_reason_unfit_as_free_text_is_refused(consortium, reason, problem):
    submit(consortium, A, batch(consortium, A, [asset("a1", fingerprint(68))]))
    n = rows(consortium, "log_entries")
    stmt = sign_statement(consortium.parties[A].signer, asset_pb2.AssetsWithdrawn(
        member_id=A, withdrawal_id=rid("w1"), asset_ids=[opaque("a1")], reason=reason), origin=ORIGIN)
    with pytest.raises(grpc.RpcError) as info:
        consortium.intake(A).WithdrawAssets(intake_pb2.WithdrawAssetsRequest(withdrawal=stmt), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith("the withdrawal: reason ") and problem in info.value.details()
    assert rows(consortium, "log_entries") == n and rows(consortium, "tombstones") == 0
    # Tab and newline are text.
    ok = sign_statement(consortium.parties[A].signer, asset_pb2.AssetsWithdrawn(
        member_id=A, withdrawal_id=rid("w2"), asset_ids=[opaque("a1")], reason="deaccessioned:\n\tsee the register"),
        origin=ORIGIN)
    assert consortium.intake(A).WithdrawAssets(intake_pb2.WithdrawAssetsRequest(withdrawal=ok), timeout=10).withdrawn == 1


def test_a_withdrawal_of_an_unheld_id_does_not_quote_a_name(consortium):
    submit(consortium, A, batch(consortium, A, [asset("a1", fingerprint(69))]))
    with pytest.raises(grpc.RpcError) as info:
        consortium.intake(A).WithdrawAssets(withdrawal(consortium, A, ["masters:Jane_Doe_portrait.tif"]), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND and "Jane" not in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        consortium.intake(A).WithdrawAssets(withdrawal(consortium, A, [opaque("a2")]), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND and repr(opaque("a2")) in info.value.details()


def test_a_batch_whose_search_passes_the_bound_is_refused(consortium):
    """max_batch_candidates bounds a batch's search: past it the batch is refused before
    anything is written, and a smaller batch of the same assets is taken."""
    fp = fingerprint(63)
    submit(consortium, B, batch(consortium, B, [asset(f"b{i}", near(fp, 10 * i, seed=i)) for i in range(3)]))
    consortium.stop()
    consortium.settings = consortium.settings.model_copy(update={"max_batch_candidates": 4})
    consortium.start()
    # Each copy finds B's three assets (three versions, 10 bits apart): 6 candidates for two.
    copies = [asset(f"a{i}", near(fp, 3, seed=100 + i)) for i in range(2)]
    err = refused(consortium, A, batch(consortium, A, copies))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "passed 4 candidates in its first 2 of 2 assets" in err.details()
    assert "max_batch_candidates" in err.details() and "nothing was stored" in err.details()
    assert rows(consortium, "clusters") == 0
    r = submit(consortium, A, batch(consortium, A, copies[:1]))
    assert (r.accepted, r.new_matches) == (1, 3)


@pytest.mark.parametrize("bad", ["masters_Jane_Doe", "records-office-1", "0" * 31, "0" * 33, "ABCDEF" * 5 + "AB", ""])
def test_batch_and_withdrawal_ids_not_drawn_at_random_are_refused_and_not_quoted(consortium, bad):
    """A batch or withdrawal id is logged, so it is 32 random hex digits: no collection's or
    person's name can ride in it. The refusal does not repeat the id, and nothing is stored."""
    payload = asset_pb2.AssetList(assets=[asset("a1", fingerprint(69))]).SerializeToString(deterministic=True)
    manifest = asset_pb2.BatchManifest(member_id=A, batch_id=bad, sequence=1, asset_count=1,
                                       assets_sha256=hashlib.sha256(payload).digest(), created_unix=1)
    err = refused(consortium, A, intake_pb2.SubmitBatchRequest(
        manifest=sign_statement(consortium.parties[A].signer, manifest, origin=ORIGIN), assets=payload))
    assert (err.code(), err.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "the manifest: batch_id is not a batch "
                                                                             "id: it is 32 lowercase hex digits, drawn at random")
    assert rows(consortium, "batches") == 0 and rows(consortium, "assets") == 0

    submit(consortium, A, batch(consortium, A, [asset("a1", fingerprint(69))]))
    n = rows(consortium, "log_entries")
    stmt = sign_statement(consortium.parties[A].signer, asset_pb2.AssetsWithdrawn(
        member_id=A, withdrawal_id=bad, asset_ids=[opaque("a1")], reason="deaccessioned"), origin=ORIGIN)
    with pytest.raises(grpc.RpcError) as info:
        consortium.intake(A).WithdrawAssets(intake_pb2.WithdrawAssetsRequest(withdrawal=stmt), timeout=10)
    assert (info.value.code(), info.value.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "the withdrawal: withdrawal_id is not a withdrawal id: it is 32 lowercase hex digits, drawn at random")
    assert rows(consortium, "log_entries") == n and rows(consortium, "tombstones") == 0
