"""Who may read what, asked as outsiders would over real mutual TLS on loopback: a certificate
of the consortium's CA naming no member, a revoked member, a certificate of another CA; and
the gRPC conventions tools expect (health List, reflection v1 and v1alpha)."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from dedup import pki
from dedup.checkpoint import Checkpoint
from dedup.merkle import Tree, leaf_hash, verify_inclusion
from dedup.note import split_note
from dedup.signing import parse_body, parse_entry
from dedup.v1 import intake_pb2, intake_pb2_grpc, log_pb2, log_pb2_grpc, negotiation_pb2, negotiation_pb2_grpc

from conftest import admit, asset, fingerprint, make_party
from test_intake import A, B, C, batch, submit

READS = {
    "GetCheckpoint": lambda ch: log_pb2_grpc.LogServiceStub(ch).GetCheckpoint(log_pb2.GetCheckpointRequest(), timeout=5),
    "GetEntries": lambda ch: log_pb2_grpc.LogServiceStub(ch).GetEntries(
        log_pb2.GetEntriesRequest(start=0, end=2), timeout=5),
    "GetInclusionProof": lambda ch: log_pb2_grpc.LogServiceStub(ch).GetInclusionProof(
        log_pb2.GetInclusionProofRequest(index=0), timeout=5),
    "GetConsistencyProof": lambda ch: log_pb2_grpc.LogServiceStub(ch).GetConsistencyProof(
        log_pb2.GetConsistencyProofRequest(old_size=3), timeout=5),
    "ListMatches": lambda ch: intake_pb2_grpc.IntakeServiceStub(ch).ListMatches(
        intake_pb2.ListMatchesRequest(), timeout=5),
    "ListProposals": lambda ch: negotiation_pb2_grpc.NegotiationServiceStub(ch).ListProposals(
        negotiation_pb2.ListProposalsRequest(), timeout=5),
}
WHAT = {"GetCheckpoint": "it may not read the log", "GetEntries": "it may not read the log",
        "GetInclusionProof": "it may not read the log", "GetConsistencyProof": "it may not read the log",
        "ListMatches": "it may not list matches", "ListProposals": "it may not list proposals"}


@pytest.fixture
def stocked(consortium):
    submit(consortium, A, batch(consortium, A, [asset("a1", fingerprint(1))], seq=1))
    return consortium


def test_members_read_and_a_certificate_naming_no_member_reads_nothing(stocked, tmp_path):
    for name, call in READS.items():
        call(stocked.channel(B))  # a member reads
    stranger = make_party(tmp_path, stocked.ca, "stranger")
    stocked.parties["stranger"] = stranger
    ch = stocked.channel("stranger")
    for name, call in READS.items():
        with pytest.raises(grpc.RpcError) as info:
            call(ch)
        assert (info.value.code(), info.value.details()) == (
            grpc.StatusCode.PERMISSION_DENIED, "TLS identity 'stranger' is not a member of this consortium"), name


def test_a_revoked_member_reads_nothing(stocked):
    stocked.stop()
    stocked.settings.members[0].revoked = "key reported lost"
    stocked.start()
    for name, call in READS.items():
        with pytest.raises(grpc.RpcError) as info:
            call(stocked.channel(A))
        assert (info.value.code(), info.value.details()) == (
            grpc.StatusCode.PERMISSION_DENIED,
            f"the key of member 'records-office' is revoked (key reported lost); {WHAT[name]}"), name
    READS["GetCheckpoint"](stocked.channel(B))


def test_a_certificate_of_another_ca_cannot_connect(stocked, tmp_path):
    other = pki.new_ca("another CA")
    pki.write_cert(tmp_path / "other-ca.pem", other[1])
    party = make_party(tmp_path / "other", other, B)  # a member's name, from the wrong CA
    stocked.parties["impostor"] = party
    with pytest.raises(grpc.RpcError) as info:
        READS["GetCheckpoint"](stocked.channel("impostor"))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_client_without_a_certificate_cannot_connect(stocked):
    from dedup.transport import client_options

    creds = grpc.ssl_channel_credentials(root_certificates=stocked.ca_pem.read_bytes())  # trusts the server only
    ch = grpc.secure_channel(f"127.0.0.1:{stocked.server.port}", creds, options=client_options("coordinator"))
    for name, call in READS.items():
        with pytest.raises(grpc.RpcError) as info:
            call(ch)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE, name


def test_health_lists_every_service_and_reflection_answers_under_both_names(stocked):
    ch = stocked.channel(B)
    listed = health_pb2_grpc.HealthStub(ch).List(health_pb2.HealthListRequest(), timeout=5)
    assert {name: s.status for name, s in listed.statuses.items()} == {
        name: health_pb2.HealthCheckResponse.SERVING
        for name in ("", "dedup.v1.IntakeService", "dedup.v1.LogService", "dedup.v1.NegotiationService",
                     "dedup.v1.LookupService")}
    want = {"dedup.v1.IntakeService", "dedup.v1.LogService", "dedup.v1.NegotiationService", "dedup.v1.LookupService",
            "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}
    for path in ("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                 "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"):
        # v1's messages are v1alpha's, field for field: the same classes read and write both.
        call = ch.stream_stream(path, request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                                response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
        answers = list(call(iter([reflection_pb2.ServerReflectionRequest(list_services=""),
                                  reflection_pb2.ServerReflectionRequest(
                                      file_containing_symbol="dedup.v1.LogService")]), timeout=5))
        assert {s.name for s in answers[0].list_services_response.service} == want, path
        assert answers[1].file_descriptor_response.file_descriptor_proto, path


# --- Who reads which entry (SPEC.md 8, "Who reads the log") ---------------------------------

AUDITOR, READER, ARBITER = "consortium-auditor", "newsroom", "records-service"


@pytest.fixture
def matched(consortium):
    """A and B hold the same picture (a match and a proposal between them); C holds another.
    An auditor, a reader and an arbiter are admitted too."""
    for member_id, role in ((AUDITOR, "auditor"), (READER, "reader"), (ARBITER, "arbiter")):
        admit(consortium, member_id, **{role: True})
    consortium.stop()
    consortium.start()
    submit(consortium, A, batch(consortium, A, [asset("a1", fingerprint(1))], seq=1))
    submit(consortium, B, batch(consortium, B, [asset("b1", fingerprint(1))], seq=1))
    submit(consortium, C, batch(consortium, C, [asset("c1", fingerprint(2))], seq=1))
    return consortium


def _log(consortium, member_id):
    """Every entry as the member reads it (None where withheld), and every leaf hash."""
    stub = consortium.log(member_id)
    size = Checkpoint.parse(split_note(stub.GetCheckpoint(log_pb2.GetCheckpointRequest(), timeout=5)
                                       .signed_checkpoint)[0]).size
    got = stub.GetEntries(log_pb2.GetEntriesRequest(start=0, end=size), timeout=5)
    assert len(got.entries) == len(got.leaf_hashes) == size
    return [parse_entry(e) if e else None for e in got.entries], list(got.leaf_hashes)


def _kinds(entries):
    """(type, who it names) per entry read, None per entry withheld."""
    out = []
    for stmt in entries:
        if stmt is None:
            out.append(None)
            continue
        body = parse_body(stmt)
        short = stmt.type.removeprefix("dedup.v1.")
        if short == "MatchRecorded":
            out.append((short, tuple(sorted((body.a.member_id, body.b.member_id)))))
        elif short == "MasterProposed":
            out.append((short, tuple(sorted(c.ref.member_id for c in body.copies))))
        else:
            out.append((short, body.member_id if hasattr(body, "member_id") else None))
    return out


def test_an_auditor_reads_every_entry_and_a_member_only_those_about_it(matched):
    full, hashes = _log(matched, AUDITOR)
    kinds = _kinds(full)
    admissions = [k for k in kinds if k[0] == "MemberAdmitted"]
    assert len(admissions) == 6
    assert kinds[6:] == [("BatchManifest", A), ("BatchManifest", B), ("MatchRecorded", (B, A)),
                         ("MasterProposed", (B, A)), ("BatchManifest", C)]
    # Every member reads the same leaf hashes.
    assert hashes == _log(matched, C)[1] == _log(matched, READER)[1]

    def seen(member_id):
        return _kinds(_log(matched, member_id)[0])

    public = admissions  # membership entries are everyone's
    assert seen(A) == public + [("BatchManifest", A), None, ("MatchRecorded", (B, A)), ("MasterProposed", (B, A)), None]
    assert seen(B) == public + [None, ("BatchManifest", B), ("MatchRecorded", (B, A)), ("MasterProposed", (B, A)), None]
    # C is party to nothing between A and B: it reads neither their match nor their batches.
    assert seen(C) == public + [None, None, None, None, ("BatchManifest", C)]
    assert seen(READER) == public + [None] * 5
    # The arbiter may be asked to settle a proposal: it reads proposals, not matches or batches.
    assert seen(ARBITER) == public + [None, None, None, ("MasterProposed", (B, A)), None]


def test_a_member_checks_every_root_from_leaf_hashes_without_reading_others_entries(matched):
    stub = matched.log(C)
    note = stub.GetCheckpoint(log_pb2.GetCheckpointRequest(), timeout=5).signed_checkpoint
    cp = Checkpoint.parse(split_note(note)[0])
    _, hashes = _log(matched, C)
    assert Tree.from_leaf_hashes(hashes).root() == cp.root_hash
    # The match between A and B: C gets its proof and leaf hash, not the entry.
    proof = stub.GetInclusionProof(log_pb2.GetInclusionProofRequest(index=8), timeout=5)
    assert proof.entry == b"" and proof.leaf_hash == hashes[8]
    verify_inclusion(proof.leaf_hash, 8, cp.size, list(proof.hashes), cp.root_hash)
    mine = matched.log(A).GetInclusionProof(log_pb2.GetInclusionProofRequest(index=8), timeout=5)
    assert parse_entry(mine.entry).type == "dedup.v1.MatchRecorded"
    assert leaf_hash(mine.entry) == mine.leaf_hash == proof.leaf_hash


def test_votes_and_outcomes_are_read_by_the_proposals_holders(matched):
    from test_negotiation import the_proposal, vote

    p = the_proposal(matched, A)
    vote(matched, A, p)
    vote(matched, B, p)
    tail = {m: [k[0] if k else None for k in _kinds(_log(matched, m)[0])][11:] for m in (A, B, C, ARBITER, AUDITOR)}
    assert tail[A] == tail[B] == tail[ARBITER] == tail[AUDITOR] == ["MasterVote", "MasterVote", "MasterAgreed"]
    assert tail[C] == [None, None, None]


def test_an_auditor_signs_nothing_but_cosignatures(matched):
    with pytest.raises(grpc.RpcError) as info:
        submit(matched, AUDITOR, batch(matched, AUDITOR, [asset("x1", fingerprint(3))], seq=1))
    assert (info.value.code(), info.value.details()) == (
        grpc.StatusCode.PERMISSION_DENIED,
        f"{AUDITOR!r} is an auditor member: it may read the log and look up, but not submit batches "
        "(it holds no collection)")
    admitted = {parse_body(e).member_id: parse_body(e).auditor for e in _log(matched, C)[0]
                if e is not None and e.type == "dedup.v1.MemberAdmitted"}
    assert admitted == {A: False, B: False, C: False, AUDITOR: True, READER: False, ARBITER: False}


def test_the_auditor_role_is_fixed_at_admission(matched):
    matched.stop()
    next(m for m in matched.settings.members if m.id == C).auditor = True
    with pytest.raises(ValueError, match="member university-library: configured auditor = True, but the log "
                                         "admitted it with auditor = False; auditors are named when first admitted"):
        matched.start()


def test_the_offline_audit_accepts_the_auditor_and_refuses_what_it_signs(matched, tmp_path):
    from dedup.audit.verify import AuditFailure, verify_export
    from dedup.coordinator.export import export_log

    core = matched.server.core
    out = tmp_path / "export"
    export_log(core.store, out, matched.log_signer.verifier().to_string())
    assert AUDITOR in verify_export(out, matched.log_signer.verifier()).members
    # A batch signed by the auditor, slipped into the log: the replay names the role it breaks.
    stmt = batch(matched, AUDITOR, [asset("x1", fingerprint(3))], seq=1).manifest
    with core.lock, core.log.transaction() as txn:
        index = txn.append(stmt)
    core.log.publish_checkpoint()
    export_log(core.store, tmp_path / "tampered", matched.log_signer.verifier().to_string())
    with pytest.raises(AuditFailure, match=f"entry {index}: dedup.v1.BatchManifest signed by '{AUDITOR}', which was "
                                           r"admitted as an auditor \(auditors read the log and look up only\)"):
        verify_export(tmp_path / "tampered", matched.log_signer.verifier())
