"""Exact limits under concurrency: a limit of N per minute admits exactly N of 200
simultaneous requests, with counters in SQLite and in the real Redis on this machine."""

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import redis

from api_server import serving
from ima.api import quota
from ima.api.quota import RedisLimiter, SqliteLimiter
from ima.api.tiers import Tier

REDIS = "redis://127.0.0.1:6379/0"
N = 10
NOON = datetime(2026, 11, 22, 12, tzinfo=UTC).timestamp()


def _stop_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SQLite limiter's clock stands still: no token comes back during a burst, and
    no burst straddles midnight. (Redis's script reads Redis's own clock.)"""
    monkeypatch.setattr(quota, "time", SimpleNamespace(time=lambda: NOON))


@pytest.fixture
def redis_limiter():
    prefix = f"ima-test:{uuid.uuid4().hex[:8]}"
    limiter = RedisLimiter(REDIS, prefix=prefix)
    yield limiter
    client = redis.Redis.from_url(REDIS)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)


def _burst(limiter, tier: Tier, key: str = "k1", requests: int = 200) -> list[bool]:
    with ThreadPoolExecutor(max_workers=50) as pool:
        return list(pool.map(lambda _: limiter.admit(key, tier).allowed, range(requests)))


@pytest.fixture(params=["sqlite", "redis"])
def limiter(request, tmp_path, monkeypatch):
    """Each limiter in turn: SQLite beside the store, and the real Redis."""
    if request.param == "sqlite":
        _stop_the_clock(monkeypatch)
        return SqliteLimiter(tmp_path / "quota.sqlite3")
    return request.getfixturevalue("redis_limiter")


def test_exactly_n_of_200_concurrent_requests_are_admitted(limiter):
    tier = Tier("t", N, 1000, False, 0)
    assert sum(_burst(limiter, tier)) == N
    assert sum(_burst(limiter, tier, key="k2")) == N  # keys have budgets of their own
    refused = limiter.admit("k1", tier)
    assert not refused.allowed and refused.reason == "rate" and 0 < refused.retry_after <= 60 / N


def test_the_daily_quota_holds_under_concurrency(limiter):
    tier = Tier("t", 1000, 7, False, 0)
    assert sum(_burst(limiter, tier)) == 7
    assert limiter.admit("k1", tier).reason == "daily"


def test_two_replicas_share_a_redis_budget(redis_limiter):
    other = RedisLimiter(REDIS, prefix=redis_limiter.prefix)  # a second server process
    tier = Tier("t", N, 1000, False, 0)
    with ThreadPoolExecutor(max_workers=40) as pool:
        results = list(
            pool.map(lambda i: (redis_limiter if i % 2 else other).admit("k", tier).allowed,
                     range(200))
        )  # fmt: skip
    assert sum(results) == N


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_200_concurrent_http_requests(store, tmp_path: Path, request, monkeypatch):
    if store == "sqlite":
        _stop_the_clock(monkeypatch)
    limiter = None if store == "sqlite" else request.getfixturevalue("redis_limiter")
    with serving(tmp_path / "data", limiter=limiter) as (base, svc):
        key = svc.keys.create("burst", "tiny")[1]  # tiny: 10 a minute

        async def burst() -> list[int]:
            async with httpx.AsyncClient(timeout=60) as client:
                calls = [
                    client.get(f"{base}/models", headers={"Authorization": f"Bearer {key}"})
                    for _ in range(200)
                ]
                return [r.status_code for r in await asyncio.gather(*calls)]

        codes = asyncio.run(burst())
    assert codes.count(200) == N and codes.count(429) == 200 - N


def test_higher_tiers_go_first_when_answers_queue():
    import threading
    import time

    from ima.api.gate import Busy, PriorityGate

    gate = PriorityGate(slots=1, timeout=5)
    order: list[str] = []
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with gate.slot(0):
            holding.set()
            release.wait(5)

    def wait_in_line(name: str, priority: int) -> None:
        with gate.slot(priority):
            order.append(name)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(5)
    waiters = []
    for name, priority in [("free", 0), ("premium", 1), ("premium_plus", 2)]:
        waiters.append(threading.Thread(target=wait_in_line, args=(name, priority)))
        waiters[-1].start()
        deadline = time.monotonic() + 10
        while len(gate._waiting) < len(waiters):  # arrive in this order: free first
            assert time.monotonic() < deadline
            time.sleep(0.01)
    release.set()
    for thread in [holder, *waiters]:
        thread.join(5)
    assert order == ["premium_plus", "premium", "free"]
    impatient = PriorityGate(slots=0, timeout=0.05)
    with pytest.raises(Busy), impatient.slot(2):
        pass
