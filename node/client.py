"""The node's connection to the coordinator: mutual TLS with the consortium CA."""

from __future__ import annotations

import grpc

from dedup.transport import client_options

from .settings import NodeSettings


class NotConfigured(Exception):
    """The node lacks settings the command needs (the coordinator and TLS files, or the log's origin)."""


def channel(settings: NodeSettings) -> grpc.Channel:
    if settings.coordinator is None or settings.tls is None:
        raise NotConfigured("this node has no [coordinator] and [tls] settings; it can scan and report only")
    creds = grpc.ssl_channel_credentials(
        root_certificates=settings.tls.ca.read_bytes(),
        private_key=settings.tls.key.read_bytes(),
        certificate_chain=settings.tls.cert.read_bytes(),
    )
    return grpc.secure_channel(settings.coordinator.address, creds,
                               options=client_options(settings.coordinator.server_name))
