"""Build and run the coordinator's gRPC server: mutual TLS, health checking, reflection."""

from __future__ import annotations

import logging
from concurrent import futures
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from dedup.jsonlog import event
from dedup.note import NoteSigner
from dedup.transport import SERVER_OPTIONS
from dedup.v1 import intake_pb2, intake_pb2_grpc, log_pb2, log_pb2_grpc

from .consortium import Coordinator
from .log import TransparencyLog
from .metrics import Metrics
from .service import IntakeService, LogService
from .settings import CoordinatorSettings
from .store import Store

log = logging.getLogger("dedup.coordinator")

SERVICES = (
    intake_pb2.DESCRIPTOR.services_by_name["IntakeService"].full_name,
    log_pb2.DESCRIPTOR.services_by_name["LogService"].full_name,
)


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    core: Coordinator
    health: health.HealthServicer
    metrics: Metrics
    metrics_port: int | None = None
    _metrics_server: object = None

    def stop(self, grace: float | None = 1.0) -> None:
        for name in ("", *SERVICES):
            self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        self.server.stop(grace).wait()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
        self.core.store.close()


def load_signer(settings: CoordinatorSettings) -> NoteSigner:
    return NoteSigner.from_string(settings.log_key.read_text(encoding="utf-8").strip())


def build_core(settings: CoordinatorSettings) -> Coordinator:
    store = Store(settings.database)
    tlog = TransparencyLog(store, load_signer(settings), settings.log_origin)
    return Coordinator(settings, store, tlog)


def start(settings: CoordinatorSettings, workers: int = 8) -> RunningServer:
    core = build_core(settings)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=SERVER_OPTIONS)
    metrics = Metrics()
    metrics.index_size.set(len(core.matcher.index))
    metrics.log_size.set(core.log.size)
    intake_pb2_grpc.add_IntakeServiceServicer_to_server(IntakeService(core, metrics), server)
    log_pb2_grpc.add_LogServiceServicer_to_server(LogService(core, metrics), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((*SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
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
    if settings.metrics_listen:
        running._metrics_server, running.metrics_port = metrics.serve(settings.metrics_listen)
    event(log, "serving", listen=settings.listen, port=port, members=len(core.members), log_size=core.log.size,
          metrics_port=running.metrics_port)
    return running
