"""The coordinator's lock is granted first come, first served: a thread that releases it and
asks again at once waits behind everyone who asked before."""

from __future__ import annotations

import threading
import time

import pytest

from dedup.coordinator.fairlock import FairLock


def _wait_for(cond, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.001)


def test_a_waiter_goes_before_the_holder_asking_again() -> None:
    lock, order = FairLock(), []
    lock.acquire()
    waiter = threading.Thread(target=lambda: (lock.acquire(), order.append("waiter"), lock.release()))
    waiter.start()
    _wait_for(lambda: lock.waiting() == 1)
    for _ in range(3):
        lock.release()
        lock.acquire()  # at once: under threading.Lock this thread would nearly always win
        order.append("holder")
    lock.release()
    waiter.join(10)
    assert order == ["waiter", "holder", "holder", "holder"]
    assert not lock.locked() and lock.waiting() == 0


def test_waiters_are_served_in_the_order_they_asked() -> None:
    lock, order = FairLock(), []
    lock.acquire()
    threads = []
    for n in range(6):
        t = threading.Thread(target=lambda n=n: (lock.acquire(), order.append(n), lock.release()))
        t.start()
        threads.append(t)
        _wait_for(lambda n=n: lock.waiting() == n + 1)
    lock.release()
    for t in threads:
        t.join(10)
    assert order == list(range(6))


def test_mutual_exclusion_under_contention() -> None:
    lock, inside, most, counter = FairLock(), [0], [0], [0]

    def work() -> None:
        for _ in range(300):
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
                counter[0] += 1
                inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert (counter[0], most[0]) == (1200, 1)


def test_releasing_an_unheld_lock_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="release of an unheld FairLock"):
        FairLock().release()
