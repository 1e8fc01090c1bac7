"""`ima bench feed`: how many posts `ima serve` takes a second, and how soon a post it
acknowledged is found, over HTTP and over NATS, beside SQLite FTS5 in this process.

Three systems take the same posts (the synthetic chatter; each batch carries one
probe post holding a word no other post has):

- **fts5**: SQLite FTS5 in this process, the baseline. A batch is acknowledged once its
  transaction commits; another connection, in another thread, looks for the word.
- **http**: a real `ima serve` process. `POST /v1/posts` (NDJSON) answers once the
  batch is committed; `GET /v1/search?q=WORD` looks for the word.
- **nats**: a real `ima serve` following a JetStream subject (its `nats:` source).
  A batch's posts are published in order and it is acknowledged when JetStream
  acknowledges its last message (what a producer on a team bus sees); the same search
  looks for the word.

Each is measured twice. *Findable*: batches of 10 to 500 posts offered at `rate`
posts/s (open loop: a batch leaves on time whether or not the one before was
answered), and from each acknowledgement, the time until a search first finds its
probe (searched every millisecond). *Flat out*: posts acknowledged a second over
`seconds` of sending as fast as the system takes them (four connections of 500-post
batches; JetStream publishing 512 at a time, then until the last post is found,
within two minutes; FTS5 transactions of 500 back to back).

The load runs on the same cores as the server: its own CPU is part of what is measured
against, as it is for the baseline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import random
import sqlite3
import string
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ima.api.keys import KeyStore
from ima.bench.http_client import Connection, HttpError
from ima.bench.serve import sendable, served, summary
from ima.synthetic.chatter import Stream

FLAT_OUT_BATCH = 500
FEEDERS = 4  # connections sending at once, flat out; and batches unanswered at most
PATHS = ("fts5", "http", "nats")  # the systems measured, in this order
PROBE_TIMEOUT_S = 10.0  # a probe not found by then counts as lost
FLAT_OUT_DRAIN_S = 120.0  # after publishing flat out, how long the last post may take
POLL_S = 0.001
FLAT_OUT_POLL_S = 0.02  # how often the last post of a flat-out run is looked for


def _word(n: int) -> str:
    """A word no post of the stream holds: letters only, so every analyzer keeps it whole."""
    letters = []
    while True:
        n, digit = divmod(n, 26)
        letters.append(string.ascii_lowercase[digit])
        if not n:
            break
    return "qzprobe" + "".join(letters)


class Batches:
    """The posts to send, made before any clock starts: batches of sizes drawn between
    `low` and `high`, each ending with its probe post."""

    def __init__(self, posts: int, low: int, high: int, seed: int = 11) -> None:
        rng = random.Random(seed)
        stream = iter(Stream(posts, seed=seed))
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        self.batches: list[list[dict[str, Any]]] = []
        self.words: list[str] = []
        left = posts
        while left > 0:
            size = min(left, rng.randint(low, high))
            word = _word(seed * 1_000_000 + len(self.batches))  # no two sets share one
            probe = {"id": f"probe-{seed}-{len(self.batches)}", "author": "prober",
                     "text": f"probe {word}", "created_at": now}  # fmt: skip
            batch = [_own(sendable(next(stream)), seed) for _ in range(size - 1)] + [probe]
            self.batches.append(batch)
            self.words.append(word)
            left -= size

    def ndjson(self) -> list[bytes]:
        return [b"\n".join(json.dumps(r).encode() for r in batch) for batch in self.batches]

    def texts(self) -> list[list[str]]:
        return [[r["text"] for r in batch if "text" in r] for batch in self.batches]


def _own(record: dict[str, Any], seed: int) -> dict[str, Any]:
    """`record` with its ids (and those it points at) made this set's own: the stream
    numbers its posts from 0, and another set's post of the same id would be an edit."""
    for name in ("id", "repost_of", "quote_of", "reply_to"):
        if record.get(name):
            record[name] = f"{seed}-{record[name]}"
    return record


def _paced(sizes: list[int], rate: float) -> list[float]:
    """When each batch leaves, from the first: its posts at `rate` posts/s."""
    at, out = 0.0, []
    for size in sizes:
        out.append(at)
        at += size / rate
    return out


# -- SQLite FTS5, in this process ---------------------------------------------------------


def _fts5(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS posts USING fts5(text)")
    return conn


def _fts5_insert(conn: sqlite3.Connection, texts: list[str]) -> None:
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO posts(text) VALUES (?)", [(t,) for t in texts])
    conn.execute("COMMIT")


def fts5_findable(db: Path, batches: Batches, rate: float) -> dict[str, Any]:
    writer, reader = _fts5(db), _fts5(db)
    acked: queue.Queue[tuple[str, float] | None] = queue.Queue()
    found_ms: list[float] = []

    def probe() -> None:
        while (item := acked.get()) is not None:
            word, at = item
            deadline = at + PROBE_TIMEOUT_S
            while not reader.execute("SELECT 1 FROM posts WHERE posts MATCH ? LIMIT 1",
                                     (word,)).fetchone():  # fmt: skip
                if time.perf_counter() > deadline:
                    break
                time.sleep(POLL_S)
            else:
                found_ms.append((time.perf_counter() - at) * 1000)

    prober = threading.Thread(target=probe, name="fts5-probe")
    prober.start()
    texts = batches.texts()
    start = time.perf_counter()
    for when, batch, word in zip(_paced([len(t) for t in texts], rate), texts, batches.words,
                                 strict=True):  # fmt: skip
        time.sleep(max(0.0, start + when - time.perf_counter()))
        _fts5_insert(writer, batch)
        acked.put((word, time.perf_counter()))
    elapsed = time.perf_counter() - start
    acked.put(None)
    prober.join()
    writer.close()
    reader.close()
    posts = sum(len(t) for t in texts)
    return {"achieved_per_s": round(posts / elapsed), "findable_ms": summary(found_ms),
            "lost": len(texts) - len(found_ms)}  # fmt: skip


def fts5_flat_out(db: Path, texts: list[str], seconds: float) -> dict[str, Any]:
    conn = _fts5(db)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds and done < len(texts):
        _fts5_insert(conn, texts[done : done + FLAT_OUT_BATCH])
        done += FLAT_OUT_BATCH
    elapsed = time.perf_counter() - start
    conn.close()
    return {"posts_per_s": round(min(done, len(texts)) / elapsed)}


# -- ima serve -------------------------------------------------------------------------------


class Prober:
    """Looks for probe words through `GET /v1/search` on a few kept-alive connections."""

    def __init__(self, port: int, key: str, connections: int = 8) -> None:
        self.idle = [Connection("127.0.0.1", port) for _ in range(connections)]
        self.slots = asyncio.Semaphore(connections)
        self.headers = {"Authorization": f"Bearer {key}"}
        self.found_ms: list[float] = []
        self.lost = 0
        self.errors: list[str] = []

    async def find(self, word: str, acked_at: float, timeout: float = PROBE_TIMEOUT_S,
                   poll_s: float = POLL_S) -> None:  # fmt: skip
        async with self.slots:
            connection = self.idle.pop()
            try:
                while time.perf_counter() - acked_at < timeout:
                    response = await connection.request(
                        "GET", f"/v1/search?k=1&q={quote(word)}", self.headers
                    )
                    if response.status != 200:
                        self.errors.append(f"search {response.status}")
                    elif b'"hits":[{' in response.body.replace(b" ", b""):
                        self.found_ms.append((time.perf_counter() - acked_at) * 1000)
                        return
                    await asyncio.sleep(poll_s)
                self.lost += 1
            except HttpError as exc:
                self.errors.append(str(exc))
                self.lost += 1
            finally:
                self.idle.append(connection)

    async def close(self) -> None:
        for connection in self.idle:
            await connection.close()

    def figures(self) -> dict[str, Any]:
        return {"findable_ms": summary(self.found_ms), "lost": self.lost,
                "errors": len(self.errors), "error_examples": self.errors[:3]}  # fmt: skip


async def http_findable(port: int, key: str, batches: Batches, rate: float) -> dict[str, Any]:
    payloads = batches.ndjson()
    prober = Prober(port, key)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"}
    idle = [Connection("127.0.0.1", port) for _ in range(FEEDERS)]
    slots = asyncio.Semaphore(FEEDERS)
    accepted, errors, probes = [0], [], []

    async def send(payload: bytes, word: str) -> None:
        connection = idle.pop()
        try:
            response = await connection.request("POST", "/v1/posts", headers, payload)
        except HttpError as exc:
            errors.append(str(exc))
            return
        finally:
            idle.append(connection)
            slots.release()
        if response.status != 200:
            errors.append(f"{response.status}: {response.body[:200].decode(errors='replace')}")
            return
        accepted[0] += json.loads(response.body)["accepted"]
        probes.append(asyncio.create_task(prober.find(word, time.perf_counter())))

    start = time.perf_counter()
    sending = []
    for when, payload, word in zip(_paced([len(b) for b in batches.batches], rate), payloads,
                                   batches.words, strict=True):  # fmt: skip
        await asyncio.sleep(max(0.0, start + when - time.perf_counter()))
        await slots.acquire()
        sending.append(asyncio.create_task(send(payload, word)))
    await asyncio.gather(*sending)
    elapsed = time.perf_counter() - start
    await asyncio.gather(*probes)
    await prober.close()
    for connection in idle:
        await connection.close()
    figures = prober.figures()
    figures.update(achieved_per_s=round(accepted[0] / elapsed), send_errors=len(errors),
                   send_error_examples=errors[:3])  # fmt: skip
    return figures


async def http_flat_out(port: int, key: str, payloads: list[bytes], seconds: float) -> dict:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"}
    todo = iter(payloads)
    accepted, errors = [0], [0]
    end = time.perf_counter() + seconds

    async def sender() -> None:
        connection = Connection("127.0.0.1", port, timeout=60)
        for payload in todo:
            if time.perf_counter() > end:
                break
            try:
                response = await connection.request("POST", "/v1/posts", headers, payload)
            except HttpError:
                errors[0] += 1
                continue
            if response.status == 200:
                accepted[0] += json.loads(response.body)["accepted"]
            else:
                errors[0] += 1
        await connection.close()

    start = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(FEEDERS)))
    return {"posts_per_s": round(accepted[0] / (time.perf_counter() - start)),
            "errors": errors[0]}  # fmt: skip


async def nats_findable(
    nats_url: str, subject: str, port: int, key: str, batches: Batches, rate: float
) -> dict[str, Any]:
    import nats

    from ima.sources.nats import ensure_stream

    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_stream(js, subject)
    prober = Prober(port, key)
    probes, errors = [], []
    start = time.perf_counter()
    for when, batch, word in zip(_paced([len(b) for b in batches.batches], rate),
                                 batches.batches, batches.words, strict=True):  # fmt: skip
        await asyncio.sleep(max(0.0, start + when - time.perf_counter()))
        try:
            await _publish(nc, js, subject, [json.dumps(r).encode() for r in batch])
        except Exception as exc:  # a refused publish is a figure, not a stop
            errors.append(repr(exc))
            continue
        probes.append(asyncio.create_task(prober.find(word, time.perf_counter())))
    elapsed = time.perf_counter() - start
    await asyncio.gather(*probes)
    await prober.close()
    await nc.close()
    posts = sum(len(b) for b in batches.batches)
    figures = prober.figures()
    figures.update(published_per_s=round(posts / elapsed), publish_errors=len(errors))
    return figures


async def _publish(nc: Any, js: Any, subject: str, records: list[bytes]) -> None:
    """Publish `records` in order on one connection, only the last waiting for JetStream's
    acknowledgement: a stream takes one connection's messages in the order sent, so that
    acknowledgement says the earlier ones were handled (one the stream refused would go
    unseen; the probe, each batch's last post, never is). A future a message, each
    resolved by its own acknowledgement, cost the publisher, on the server's cores, about
    a core at 20,000 messages a second."""
    for data in records[:-1]:
        await nc.publish(subject, data)
    await js.publish(subject, records[-1])


async def nats_flat_out(
    nats_url: str, subject: str, port: int, key: str, records: list[bytes], last_word: str
) -> dict[str, Any]:
    """Publish every record as fast as JetStream stores them (512 at a time), then wait
    for the last one to be found (for up to `FLAT_OUT_DRAIN_S`: a server slower than the
    publisher has a backlog to work off): posts a second from the first publish to that."""
    import nats

    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    start = time.perf_counter()
    for first in range(0, len(records), 512):
        await _publish(nc, js, subject, records[first : first + 512])
    published = time.perf_counter()
    await nc.close()
    prober = Prober(port, key, connections=1)
    # looked for every 20 ms, not every millisecond: over a run of seconds that is
    # precise enough, and a search a millisecond took a third of a core from the server
    await prober.find(last_word, published, FLAT_OUT_DRAIN_S, FLAT_OUT_POLL_S)
    await prober.close()
    if prober.lost:
        return {"posts_per_s": None, "published_per_s": round(len(records) / (published - start)),
                "error": f"the last post not found within {FLAT_OUT_DRAIN_S:.0f} s"}  # fmt: skip
    stored = published + prober.found_ms[0] / 1000
    return {"posts_per_s": round(len(records) / (stored - start)),
            "published_per_s": round(len(records) / (published - start))}  # fmt: skip


def run(
    *,
    rate: float = 5000,
    seconds: float = 20,
    low: int = 10,
    high: int = 500,
    nats_url: str = "nats://127.0.0.1:4222",
    paths: tuple[str, ...] = PATHS,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure the systems named in `paths` (some of `PATHS`; all by default)."""
    if unknown := set(paths) - set(PATHS):
        raise ValueError(f"unknown paths {sorted(unknown)}: choose from {', '.join(PATHS)}")
    say = progress or (lambda _m: None)
    posts = int(rate * seconds)
    say(f"making {posts:,} posts in batches of {low}-{high}, and {2 * posts:,} for flat out")
    paced = Batches(posts, low, high)
    flat = Batches(2 * posts, FLAT_OUT_BATCH, FLAT_OUT_BATCH, seed=12)
    figures: dict[str, Any] = {"rate": rate, "seconds": seconds, "batch": [low, high],
                               "load_average_before": list(os.getloadavg())}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="ima-bench-feed-") as tmp:
        root = Path(tmp)
        if "fts5" in paths:
            say(f"SQLite FTS5 in-process at {rate:,.0f} posts/s, then flat out")
            figures["fts5"] = fts5_findable(root / "paced.db", paced, rate)
            flat_texts = [t for batch in flat.texts() for t in batch]
            figures["fts5"]["flat_out"] = fts5_flat_out(root / "flat.db", flat_texts, seconds)
        for path in (p for p in ("http", "nats") if p in paths):
            name = "http" if path == "http" else f"ima.bench.feed.{os.getpid()}"
            data = root / f"{path}-data"
            data.mkdir()
            keys = KeyStore(data / "keys.sqlite3")
            key = keys.create("feed", "load")[1]
            keys.close()
            spec = [] if path == "http" else [f"nats:{nats_url}/{name}"]
            with served(data, root, *spec) as server:
                say(f"ima serve over {path.upper()} at {rate:,.0f} posts/s, then flat out")
                if path == "http":
                    found = asyncio.run(http_findable(server.port, key, paced, rate))
                    found["flat_out"] = asyncio.run(
                        http_flat_out(server.port, key, flat.ndjson(), seconds)
                    )
                else:
                    found = asyncio.run(
                        nats_findable(nats_url, name, server.port, key, paced, rate)
                    )
                    half = len(flat.batches) // 2  # as many posts as the paced run sent
                    records = [json.dumps(r).encode() for b in flat.batches[:half] for r in b]
                    found["flat_out"] = asyncio.run(nats_flat_out(
                        nats_url, name, server.port, key, records, flat.words[half - 1]
                    ))  # fmt: skip
                found["server_errors"] = len(server.failures())
            found["stop_s"] = server.stop_s
            figures[path] = found
            if path == "nats":
                asyncio.run(_drop_stream(nats_url, name))
    figures["load_average_after"] = list(os.getloadavg())
    return figures


async def _drop_stream(nats_url: str, subject: str) -> None:
    import nats

    from ima.sources.nats import stream_name

    nc = await nats.connect(nats_url)
    with contextlib.suppress(Exception):  # gone already: nothing to clean
        await nc.jetstream().delete_stream(stream_name(subject))
    await nc.close()
