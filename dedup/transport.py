"""gRPC transport settings every party must agree on: message size and keepalive."""

from __future__ import annotations

#: Largest message either side sends or accepts (a batch stays well under it).
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

#: Clients ping every 60 s when idle; the server allows pings that often, so neither side
#: mistakes the other's keepalives for abuse and drops the connection.
KEEPALIVE_MS = 60_000

SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", KEEPALIVE_MS * 2),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.http2.min_ping_interval_without_data_ms", KEEPALIVE_MS // 2),
    ("grpc.keepalive_permit_without_calls", 1),
]


def client_options(server_name: str | None = None) -> list[tuple[str, object]]:
    opts: list[tuple[str, object]] = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", KEEPALIVE_MS),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.keepalive_permit_without_calls", 1),
    ]
    if server_name:
        opts.append(("grpc.ssl_target_name_override", server_name))
    return opts
