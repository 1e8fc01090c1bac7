"""Answers are the expensive requests: at most `slots` run at once, and when more are
waiting, higher tiers go first (premium_plus is "first in line under load"). A
request that waits longer than `timeout` is refused with 503 and Retry-After."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ima.errors import Overloaded


class Busy(Overloaded):
    """No slot freed up in time."""


class PriorityGate:
    def __init__(self, slots: int = 4, timeout: float = 15.0) -> None:
        self._free = slots
        self.timeout = timeout
        self._waiting: list[tuple[int, int]] = []  # (-priority, arrival): a min-heap
        self._arrivals = itertools.count()
        self._cond = threading.Condition()

    @contextmanager
    def slot(self, priority: int) -> Iterator[None]:
        ticket = (-priority, next(self._arrivals))
        deadline = time.monotonic() + self.timeout
        with self._cond:
            heapq.heappush(self._waiting, ticket)
            while not (self._free > 0 and self._waiting[0] == ticket):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._waiting.remove(ticket)
                    heapq.heapify(self._waiting)
                    self._cond.notify_all()
                    raise Busy
                self._cond.wait(remaining)
            heapq.heappop(self._waiting)
            self._free -= 1
            self._cond.notify_all()  # the next in line may take another free slot
        try:
            yield
        finally:
            with self._cond:
                self._free += 1
                self._cond.notify_all()
