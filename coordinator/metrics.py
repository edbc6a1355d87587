"""Prometheus metrics of one coordinator, on a registry of its own (several can share a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.batches = Counter("dedup_batches_total", "Batches taken in, by outcome (stored, already_stored)",
                               ["outcome"], registry=r)
        self.assets = Counter("dedup_assets_total", "Assets (fingerprint sets) stored", registry=r)
        self.refusals = Counter("dedup_refusals_total", "Requests refused, by reason", ["method", "reason"], registry=r)
        self.matches = Counter("dedup_matches_total", "Cross-member matches recorded", registry=r)
        self.index_size = Gauge("dedup_index_assets", "Assets in the matching index", registry=r)
        self.cosignatures = Counter("dedup_cosignatures_total",
                                    "Witness cosignatures sent by members, by outcome (accepted, refused)",
                                    ["outcome"], registry=r)
        self.log_size = Gauge("dedup_log_entries", "Entries in the signed log", registry=r)
        self.votes = Counter("dedup_votes_total", "Master votes accepted, by choice (accept, reject, claim)",
                             ["choice"], registry=r)
        self.rulings = Counter("dedup_rulings_total", "Arbiters' rulings accepted", registry=r)
        self.agreements = Counter("dedup_agreements_total", "Master proposals agreed, by basis (unanimous, deadline,"
                                  " ruling)", ["basis"], registry=r)
        self.proposals = Gauge("dedup_proposals", "Master proposals by status (open, disputed, agreed, superseded)",
                               ["status"], registry=r)
        self.latency = Histogram("dedup_request_seconds", "Time to answer a request, by method", ["method"],
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=r)

    def serve(self, listen: str):
        """Expose /metrics over HTTP on host:port; returns (server, port)."""
        host, _, port = listen.rpartition(":")
        server, _ = start_http_server(int(port), addr=host or "127.0.0.1", registry=self.registry)
        return server, server.server_port
