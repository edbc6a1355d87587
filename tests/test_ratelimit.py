import grpc
import pytest

from dedup.coordinator.ratelimit import Limit, RateLimiter
from dedup.coordinator.refusal import Refusal


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_burst_then_refill_per_member_and_kind() -> None:
    clock = Clock()
    rl = RateLimiter({"lookup": Limit(rate=2.0, burst=3)}, clock)
    for _ in range(3):
        rl.take("a", "lookup")
    with pytest.raises(Refusal) as e:
        rl.take("a", "lookup")
    assert e.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and e.value.reason == "rate_limited"
    assert "retry in 0.5 s" in e.value.message
    rl.take("b", "lookup")  # another member has its own bucket
    rl.take("a", "intake")  # a kind without a limit is free
    clock.t += 0.5
    rl.take("a", "lookup")  # one token back after half a second at 2/s
    with pytest.raises(Refusal):
        rl.take("a", "lookup")
    clock.t += 100
    for _ in range(3):  # refills up to the burst, not beyond
        rl.take("a", "lookup")
    with pytest.raises(Refusal):
        rl.take("a", "lookup")


def test_cost_and_bad_limits() -> None:
    rl = RateLimiter({"lookup": Limit(rate=1.0, burst=10)}, Clock())
    rl.take("a", "lookup", cost=10)
    with pytest.raises(Refusal):
        rl.take("a", "lookup", cost=1)
    with pytest.raises(ValueError):
        Limit(rate=0, burst=1)
