"""Who may read what, asked as outsiders would over real mutual TLS on loopback: a certificate
of the consortium's CA naming no member, a revoked member, a certificate of another CA; and
the gRPC conventions tools expect (health List, reflection v1 and v1alpha)."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from dedup import pki
from dedup.v1 import intake_pb2, intake_pb2_grpc, log_pb2, log_pb2_grpc, negotiation_pb2, negotiation_pb2_grpc

from conftest import asset, fingerprint, make_party
from test_intake import A, B, batch, submit

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
