"""Why the coordinator refuses a request: a gRPC status, a short reason for metrics and logs,
and a message that names the problem for the member's operator."""

from __future__ import annotations

import grpc


class Refusal(Exception):
    def __init__(self, code: grpc.StatusCode, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
