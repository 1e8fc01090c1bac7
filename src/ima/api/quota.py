"""Rate limits and daily quotas per key: a token bucket (the tier's requests per minute,
refilled continuously) and a count per UTC day. Both checks and the spend happen in
one atomic step, so under any concurrency exactly the allowed number get through.

`SqliteLimiter` (the default) keeps the counters beside the store; `RedisLimiter`
keeps them in Redis, so several `ima serve` replicas share one budget per key.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from ima.api.tiers import Tier
from ima.config import private_file


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after: float = 0.0  # seconds, when refused
    reason: str = ""  # "rate" (per minute) or "daily"


def _seconds_to_midnight(now: float) -> float:
    moment = datetime.fromtimestamp(now, UTC)
    midnight = (moment + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - moment).total_seconds()


class Limiter(Protocol):
    name: str

    def admit(self, key_id: str, tier: Tier) -> Decision: ...

    def spend(self, key_id: str, quantity: str, amount: float, limit: float) -> Decision:
        """Add `amount` to today's `quantity` (audio seconds, say), unless today's total
        has already reached `limit`: usage is known only once the work is done, so the
        last request may end past it, and the next is refused."""
        ...

    def close(self) -> None: ...


class SqliteLimiter:
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        # one connection, which threads take in turn (they would queue for SQLite's
        # write lock anyway); one per thread left file descriptors behind each thread
        self._db = sqlite3.connect(private_file(path), timeout=30, isolation_level=None,
                                   check_same_thread=False)  # fmt: skip
        self._turn = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        # no fsync per request: a crash may forget the last moment's counts, never more
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(
            "CREATE TABLE IF NOT EXISTS buckets "
            "(key TEXT PRIMARY KEY, tokens REAL NOT NULL, updated REAL NOT NULL);"
            "CREATE TABLE IF NOT EXISTS daily (key TEXT NOT NULL, day TEXT NOT NULL, "
            "count INTEGER NOT NULL, PRIMARY KEY (key, day));"
            "CREATE TABLE IF NOT EXISTS usage (key TEXT NOT NULL, day TEXT NOT NULL, "
            "quantity TEXT NOT NULL, amount REAL NOT NULL, PRIMARY KEY (key, day, quantity));"
        )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """The connection in an immediate transaction (one writer at a time: check and
        spend together), in this process's turn (threads queue here, not in SQLite's busy
        loop): committed at the end unless the body rolled back, rolled back on an error."""
        with self._turn:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            if db.in_transaction:
                db.execute("COMMIT")

    def admit(self, key_id: str, tier: Tier) -> Decision:
        with self._transaction() as db:
            now = time.time()
            capacity, rate = float(tier.requests_per_minute), tier.requests_per_minute / 60
            row = db.execute("SELECT tokens, updated FROM buckets WHERE key = ?", (key_id,))
            found = row.fetchone()
            tokens = (
                capacity if found is None else min(capacity, found[0] + (now - found[1]) * rate)
            )
            day = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")
            used = db.execute(
                "SELECT count FROM daily WHERE key = ? AND day = ?", (key_id, day)
            ).fetchone()
            if tokens < 1:
                db.execute("ROLLBACK")
                return Decision(False, (1 - tokens) / rate, "rate")
            if used is not None and used[0] >= tier.requests_per_day:
                db.execute("ROLLBACK")
                return Decision(False, _seconds_to_midnight(now), "daily")
            db.execute(
                "INSERT OR REPLACE INTO buckets (key, tokens, updated) VALUES (?, ?, ?)",
                (key_id, tokens - 1, now),
            )
            db.execute(
                "INSERT INTO daily (key, day, count) VALUES (?, ?, 1) "
                "ON CONFLICT(key, day) DO UPDATE SET count = count + 1",
                (key_id, day),
            )
            return Decision(True)

    def close(self) -> None:
        with self._turn:
            self._db.close()

    def spend(self, key_id: str, quantity: str, amount: float, limit: float) -> Decision:
        now = time.time()
        day = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")
        with self._transaction() as db:
            row = db.execute("SELECT amount FROM usage WHERE key = ? AND day = ? AND "
                             "quantity = ?", (key_id, day, quantity)).fetchone()  # fmt: skip
            if row is not None and row[0] >= limit:
                db.execute("ROLLBACK")
                return Decision(False, _seconds_to_midnight(now), "daily")
            db.execute(
                "INSERT INTO usage (key, day, quantity, amount) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(key, day, quantity) DO UPDATE SET amount = amount + ?",
                (key_id, day, quantity, amount, amount),
            )
            return Decision(True)


_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local capacity = tonumber(ARGV[1])
local rate = capacity / 60
local daily_limit = tonumber(ARGV[2])
local to_midnight = 86400 - (math.floor(now) % 86400)
local day_key = KEYS[2] .. ':' .. math.floor(now / 86400)
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(bucket[1]) or capacity
local updated = tonumber(bucket[2]) or now
tokens = math.min(capacity, tokens + (now - updated) * rate)
if tokens < 1 then return {0, tostring((1 - tokens) / rate), 'rate'} end
local used = tonumber(redis.call('GET', day_key) or '0')
if used >= daily_limit then return {0, tostring(to_midnight), 'daily'} end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - 1), 'updated', tostring(now))
redis.call('EXPIRE', KEYS[1], 3600)
redis.call('INCR', day_key)
redis.call('EXPIRE', day_key, to_midnight + 60)
return {1, '0', 'ok'}
"""


_SPEND = """
local now = tonumber(redis.call('TIME')[1])
local key = KEYS[1] .. ':' .. math.floor(now / 86400)
local used = tonumber(redis.call('GET', key) or '0')
if used >= tonumber(ARGV[2]) then return {0, tostring(86400 - now % 86400)} end
redis.call('INCRBYFLOAT', key, ARGV[1])
redis.call('EXPIRE', key, 86400 - now % 86400 + 60)
return {1, '0'}
"""


class RedisLimiter:
    """The same limits in Redis, checked and spent by one Lua script (atomic)."""

    name = "redis"

    def __init__(self, url: str, *, prefix: str = "ima:quota") -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.client.ping()  # fail at start, not on the first request
        self.prefix = prefix
        self._script = self.client.register_script(_SCRIPT)
        self._spend = self.client.register_script(_SPEND)

    def close(self) -> None:
        self.client.close()

    def spend(self, key_id: str, quantity: str, amount: float, limit: float) -> Decision:
        allowed, wait = self._spend(
            keys=[f"{self.prefix}:{quantity}:{key_id}"],
            args=[repr(float(amount)), repr(min(float(limit), 1e18))],
        )
        return Decision(True) if int(allowed) == 1 else Decision(False, float(wait), "daily")

    def admit(self, key_id: str, tier: Tier) -> Decision:
        allowed, value, reason = self._script(
            keys=[f"{self.prefix}:bucket:{key_id}", f"{self.prefix}:day:{key_id}"],
            args=[tier.requests_per_minute, tier.requests_per_day],
        )
        if int(allowed) == 1:
            return Decision(True)
        return Decision(
            False, float(value), reason.decode() if isinstance(reason, bytes) else reason
        )
