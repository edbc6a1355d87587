"""Answer a store outage (disk full, read-only storage, PostgreSQL restarted) with a status that
names it, on every unary method, instead of gRPC's bare "Exception calling application".

The store's transactions roll back whole, so a request refused this way stored nothing and
may be sent again as it was (a node's push does so with backoff).
"""

from __future__ import annotations

import logging

import grpc

from dedup.jsonlog import event

from .database import store_fault

log = logging.getLogger("dedup.coordinator")


class StoreFaults(grpc.ServerInterceptor):
    def __init__(self, on_fault=None) -> None:
        self.on_fault = on_fault  # called with (method, fault): metrics

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        behaviour, method = handler.unary_unary, handler_call_details.method

        def guarded(request, context):
            try:
                return behaviour(request, context)
            except Exception as exc:
                fault = store_fault(exc)
                if fault is None:
                    raise
                event(log, "store_unavailable", logging.ERROR, method=method, reason=fault.reason,
                      code=fault.code.name, detail=fault.message)
                if self.on_fault is not None:
                    self.on_fault(method, fault)
                context.abort(fault.code, fault.message)

        return grpc.unary_unary_rpc_method_handler(guarded, request_deserializer=handler.request_deserializer,
                                                   response_serializer=handler.response_serializer)
