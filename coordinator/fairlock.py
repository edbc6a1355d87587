"""A lock granted in the order it was asked for.

The coordinator's shared state is guarded by one lock, and a large batch takes it twice (its
search, then its store) so that other members wait for one half of its work, not for all of it.
``threading.Lock`` does not keep that promise: a thread that releases it and asks again at once
nearly always wins it back before a waiting thread is even scheduled. This lock hands itself
directly to the longest-waiting thread on release, so nobody can overtake a waiter.
"""

from __future__ import annotations

import threading
from collections import deque


class FairLock:
    """A mutual-exclusion lock whose waiters get it first come, first served. Not reentrant."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._held = False
        self._waiters: deque[threading.Event] = deque()

    def acquire(self) -> bool:
        with self._guard:
            if not self._held:
                self._held = True
                return True
            turn = threading.Event()
            self._waiters.append(turn)
        try:
            turn.wait()
        except BaseException:
            # Interrupted while waiting: leave the queue, or pass on a lock already handed over.
            with self._guard:
                if turn.is_set():
                    self._hand_on()
                else:
                    self._waiters.remove(turn)
            raise
        return True  # handed over by ``release``: still held, now by this thread

    def release(self) -> None:
        with self._guard:
            if not self._held:
                raise RuntimeError("release of an unheld FairLock")
            self._hand_on()

    def _hand_on(self) -> None:
        if self._waiters:
            self._waiters.popleft().set()
        else:
            self._held = False

    def waiting(self) -> int:
        """How many threads wait for the lock (for tests and metrics)."""
        with self._guard:
            return len(self._waiters)

    def locked(self) -> bool:
        with self._guard:
            return self._held

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
