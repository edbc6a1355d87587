"""Per-member request rate limits: a token bucket for each (member, kind of request).

A bucket holds up to ``burst`` tokens and refills at ``rate`` per second; a request takes
one token (or as many as it costs) or is refused with RESOURCE_EXHAUSTED, naming when to
retry. Buckets are in memory: a restart forgives, which is harmless for flood control.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

import grpc

from .refusal import Refusal


@dataclass(frozen=True)
class Limit:
    rate: float  # tokens per second
    burst: float  # bucket size

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("a rate limit needs a positive rate and a burst of at least 1")


class RateLimiter:
    def __init__(self, limits: dict[str, Limit], clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = dict(limits)
        self.clock = clock
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, member: str, kind: str, cost: float = 1.0) -> None:
        """Take ``cost`` tokens from the member's bucket for ``kind``, or raise a Refusal
        (RESOURCE_EXHAUSTED, reason ``rate_limited``). Kinds without a limit are free."""
        limit = self.limits.get(kind)
        if limit is None:
            return
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get((member, kind), (limit.burst, now))
            tokens = min(limit.burst, tokens + (now - at) * limit.rate)
            if tokens < cost:
                wait = (cost - tokens) / limit.rate
                self._buckets[(member, kind)] = (tokens, now)
                raise Refusal(grpc.StatusCode.RESOURCE_EXHAUSTED, "rate_limited",
                              f"member {member!r} is over its {kind} limit ({limit.rate:g}/s, burst "
                              f"{limit.burst:g}); retry in {wait:.1f} s")
            self._buckets[(member, kind)] = (tokens - cost, now)
