"""Build and run the coordinator's gRPC server: mutual TLS, health checking, reflection."""

from __future__ import annotations

import logging
import threading
import time
from concurrent import futures
from dataclasses import dataclass
from typing import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from dedup.candidates import CandidateIndex
from dedup.jsonlog import event
from dedup.matching import Rule
from dedup.note import NoteSigner
from dedup.transport import SERVER_OPTIONS
from dedup.v1 import (intake_pb2, intake_pb2_grpc, log_pb2, log_pb2_grpc, lookup_pb2, lookup_pb2_grpc, negotiation_pb2,
                      negotiation_pb2_grpc, statements_pb2)

from .consortium import Coordinator
from .log import TransparencyLog
from .metrics import Metrics
from .service import IntakeService, LogService, LookupService, NegotiationService, record_agreement, update_proposal_gauge
from .settings import CoordinatorSettings
from .witness_client import WitnessClient
from .store import Store
from .storefault import StoreFaults

log = logging.getLogger("dedup.coordinator")

SERVICES = (
    intake_pb2.DESCRIPTOR.services_by_name["IntakeService"].full_name,
    log_pb2.DESCRIPTOR.services_by_name["LogService"].full_name,
    negotiation_pb2.DESCRIPTOR.services_by_name["NegotiationService"].full_name,
    lookup_pb2.DESCRIPTOR.services_by_name["LookupService"].full_name,
)


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    core: Coordinator
    health: health.HealthServicer
    metrics: Metrics
    metrics_port: int | None = None
    health_port: int | None = None
    _metrics_server: object = None
    _health_server: grpc.Server | None = None
    _deadlines: DeadlineTimer | None = None
    witnesses: WitnessClient | None = None

    def stop(self, grace: float | None = 1.0) -> None:
        for name in ("", *SERVICES):
            self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        if self._deadlines is not None:
            self._deadlines.stop()
        if self.witnesses is not None:
            self.witnesses.stop()
        self.server.stop(grace).wait()
        if self._health_server is not None:
            self._health_server.stop(None).wait()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
        self.save_index()
        self.core.store.close()

    def save_index(self) -> None:
        """Save the index for the next start (no intake runs now); a failure costs only the
        next start-up's time (it rebuilds), so it is logged, not raised."""
        started = time.perf_counter()
        try:
            size = self.core.save_index()
        except Exception as exc:  # noqa: BLE001 - a full disk must not stop the shutdown
            event(log, "index_snapshot_failed", logging.ERROR, error=str(exc))
            return
        if size is not None:
            event(log, "index_snapshot_saved", path=str(self.core.settings.snapshot_path()), bytes=size,
                  seconds=round(time.perf_counter() - started, 3))


class DeadlineTimer:
    """Agrees open proposals past their vote deadline and logs the lookup counts whose period
    ended, at start-up and then every ``deadline_check_seconds``, in a thread of its own."""

    def __init__(self, core: Coordinator, metrics: Metrics, interval: float) -> None:
        self.core, self.metrics, self.interval = core, metrics, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dedup-deadlines", daemon=True)

    def check(self) -> None:
        try:
            agreed = self.core.expire_deadlines()
        except Exception as exc:  # noqa: BLE001 - a failed check is retried at the next tick
            event(log, "deadline_check_failed", logging.ERROR, error=str(exc))
            return
        for proposal_id, index in agreed:
            record_agreement(self.metrics, statements_pb2.AGREEMENT_BASIS_DEADLINE)
            event(log, "agreed_at_deadline", proposal_id=proposal_id, log_index=index)
        try:
            counted = self.core.lookups.flush()
        except Exception as exc:  # noqa: BLE001 - the counts stay stored; logged at the next tick
            event(log, "lookup_count_failed", logging.ERROR, error=str(exc))
            counted = []
        if counted:
            event(log, "lookups_counted", entries=len(counted), first_index=counted[0])
        self.metrics.log_size.set(self.core.log.size)
        update_proposal_gauge(self.core, self.metrics)

    def start(self) -> None:
        self.check()
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.check()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


class HealthServicer(health.HealthServicer):
    """grpcio's health servicer, with ``List`` (added to grpc.health.v1 after it; grpcio's
    answers UNIMPLEMENTED and logs a traceback per call): every service's status, as set."""

    def __init__(self) -> None:
        super().__init__()
        self._statuses: dict[str, int] = {"": health_pb2.HealthCheckResponse.SERVING}
        self._statuses_lock = threading.Lock()

    def set(self, service: str, status) -> None:
        super().set(service, status)
        with self._statuses_lock:
            self._statuses[service] = status

    def List(self, request, context):
        with self._statuses_lock:
            statuses = dict(self._statuses)
        return health_pb2.HealthListResponse(
            statuses={name: health_pb2.HealthCheckResponse(status=s) for name, s in statuses.items()})


#: The reflection service under its current name. grpcio-reflection serves only the older
#: v1alpha name; the two have the same messages, field for field, so v1 requests are answered
#: by the same servicer, read and written with the v1alpha message classes.
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"


def _enable_reflection(server: grpc.Server, names: tuple[str, ...]) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    servicer = reflection.ReflectionServicer((*names, reflection.SERVICE_NAME))
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(REFLECTION_V1, {
        "ServerReflectionInfo": handler}),))


def _serve_health(servicer: health.HealthServicer, listen: str) -> tuple[grpc.Server, int]:
    """The same health statuses, without TLS, on a port of their own: orchestrators' probes
    (Kubernetes `grpc:` probes) cannot present a client certificate. Nothing else is served there."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), options=SERVER_OPTIONS)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"cannot listen on {listen} (health_listen)")
    server.start()
    return server, port


def load_signer(settings: CoordinatorSettings) -> NoteSigner:
    return NoteSigner.from_string(settings.log_key.read_text(encoding="utf-8").strip())


def build_core(settings: CoordinatorSettings,
               candidates: Callable[[Rule], CandidateIndex] = CandidateIndex) -> Coordinator:
    """``candidates`` makes the matcher's candidate search (see ``Matcher``)."""
    store = Store(settings.database)
    tlog = TransparencyLog(store, load_signer(settings), settings.log_origin)
    return Coordinator(settings, store, tlog, candidates=candidates)


def start(settings: CoordinatorSettings, workers: int = 8,
          candidates: Callable[[Rule], CandidateIndex] = CandidateIndex) -> RunningServer:
    core = build_core(settings, candidates)
    metrics = Metrics()
    faults = StoreFaults(lambda method, fault: metrics.refusals.labels(method.rsplit("/", 1)[-1], fault.reason).inc())
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=SERVER_OPTIONS,
                         interceptors=[faults])
    metrics.index_size.set(len(core.matcher.index))
    metrics.log_size.set(core.log.size)
    intake_pb2_grpc.add_IntakeServiceServicer_to_server(IntakeService(core, metrics), server)
    log_pb2_grpc.add_LogServiceServicer_to_server(LogService(core, metrics), server)
    negotiation_pb2_grpc.add_NegotiationServiceServicer_to_server(NegotiationService(core, metrics), server)
    lookup_pb2_grpc.add_LookupServiceServicer_to_server(LookupService(core, metrics), server)
    health_servicer = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    _enable_reflection(server, (*SERVICES, health.SERVICE_NAME))
    creds = grpc.ssl_server_credentials(
        [(settings.tls.key.read_bytes(), settings.tls.cert.read_bytes())],
        root_certificates=settings.tls.ca.read_bytes(),
        require_client_auth=True,
    )
    port = server.add_secure_port(settings.listen, creds)
    if port == 0:
        raise OSError(f"cannot listen on {settings.listen}")
    server.start()
    for name in ("", *SERVICES):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    running = RunningServer(server, port, core, health_servicer, metrics)
    running._deadlines = DeadlineTimer(core, metrics, settings.deadline_check_seconds)
    running._deadlines.start()
    running.witnesses = WitnessClient(core, settings.witnesses, settings.witness_interval_seconds, metrics)
    running.witnesses.start()
    if settings.metrics_listen:
        running._metrics_server, running.metrics_port = metrics.serve(settings.metrics_listen)
    if settings.health_listen:
        running._health_server, running.health_port = _serve_health(health_servicer, settings.health_listen)
    event(log, "serving", listen=settings.listen, port=port, members=len(core.members), log_size=core.log.size,
          metrics_port=running.metrics_port, health_port=running.health_port)
    return running
