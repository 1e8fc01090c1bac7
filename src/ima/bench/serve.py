"""`ima bench serve`: a real `ima serve` process under mixed load while posts stream in.

The server runs as its own process (as in production); this process is the load:
`clients` concurrent HTTP clients loop over search (two words and a time filter)
and chat questions for `duration` seconds (after 5 s of warm-up), each pausing
`think` seconds between requests as a person would (0: back to back), while
another task posts `rate` posts/s to `POST /v1/posts` (NDJSON, ten batches a
second). One client uses a key of a small tier, so some 429s are intended; every
other non-2xx response counts as an error. The clients run at nice 10: they stand
in for machines elsewhere, but share this one's cores.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from ima.api.keys import KeyStore
from ima.bench.synth import Stream
from ima.store.lexical import lower_priority

WARM_UP_S = 5.0  # load runs this long before measuring starts

_TIERS = """
[tiers.load]
requests_per_minute = 1000000
requests_per_day = 100000000
fun = true
priority = 2

[tiers.free]
requests_per_minute = 5
requests_per_day = 100
fun = false
priority = 0
"""


def _percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "requests": len(values),
        "p50_ms": round(_percentile(values, 50), 2),
        "p99_ms": round(_percentile(values, 99), 2),
    }


def _in_low_priority_thread(work: Callable[[], Any]) -> Any:
    """Run `work` in a thread at nice 10: the clients stand in for machines elsewhere,
    so on a shared machine the server, not the load generator, comes first."""
    outcome: list[Any] = []

    def target() -> None:
        lower_priority({threading.get_native_id()})
        try:
            outcome.append(work())
        except BaseException as exc:  # re-raised in the caller's thread
            outcome.append(exc)

    thread = threading.Thread(target=target, name="ima-bench-load")
    thread.start()
    thread.join()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    """Poll `url` until it answers 200; fail early if `process` exits."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            stderr = process.stderr.read().decode()[-2000:] if process.stderr else ""
            raise RuntimeError(f"{url} did not come up: {stderr}")
        time.sleep(0.2)


def run(
    *,
    duration: float = 60,
    clients: int = 50,
    rate: float = 2000,
    posts: int = 50_000,
    think: float = 0.5,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    say = progress or (lambda _m: None)
    with tempfile.TemporaryDirectory(prefix="ima-bench-serve-") as tmp:
        data = Path(tmp) / "data"
        stream = Stream(posts + int(rate * duration) + 10_000, seed=5)
        records = iter(stream)
        seed_file = Path(tmp) / "seed.jsonl"
        with open(seed_file, "w") as fh:
            for _ in range(posts):
                fh.write(json.dumps(next(records)) + "\n")
        say(f"ingesting {posts:,} posts to search over")
        subprocess.run(
            [sys.executable, "-m", "ima", "--data-dir", str(data), "ingest", str(seed_file)],
            check=True, capture_output=True,
        )  # fmt: skip
        tiers = Path(tmp) / "tiers.toml"
        tiers.write_text(_TIERS)
        keys = KeyStore(data / "keys.sqlite3")
        load_key, free_key = keys.create("load", "load")[1], keys.create("free", "free")[1]
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "ima", "--data-dir", str(data), "serve", "--port", str(port),
             "--tiers", str(tiers), "--no-embed", "--no-default-source"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(f"{base}/healthz", server)
            say(f"{clients} clients for {duration:.0f}s while posting {rate:,.0f} posts/s")
            figures = _in_low_priority_thread(
                lambda: asyncio.run(
                    _load(base, stream, records, load_key, free_key, duration, clients, rate,
                          think)
                )
            )  # fmt: skip
        finally:
            server.terminate()
            server.wait(30)
    return figures


async def _load(
    base: str,
    stream: Stream,
    records: Any,
    load_key: str,
    free_key: str,
    duration: float,
    clients: int,
    rate: float,
    think: float,
) -> dict[str, Any]:
    words = stream.en_vocab[30:400]
    since = (stream.end - stream.duration / 2).strftime("%Y-%m-%dT%H:%M:%SZ")
    search_ms: list[float] = []
    chat_ms: list[float] = []
    ingest_ms: list[float] = []
    statuses: dict[str, int] = {}
    errors: list[str] = []
    ingested = [0]
    warm = time.monotonic() + WARM_UP_S  # threads, taggers and caches start cold
    end = warm + duration
    limits = httpx.Limits(max_connections=clients + 8, max_keepalive_connections=clients + 8)

    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as http:

        async def client(number: int) -> None:
            rng = random.Random(number)
            key = free_key if number == 0 else load_key
            headers = {"Authorization": f"Bearer {key}"}
            while time.monotonic() < end:
                chat = rng.random() < 0.3
                started = time.perf_counter()
                if chat:
                    body = {
                        "model": "ima",
                        "messages": [
                            {"role": "user", "content": f"What's new about {rng.choice(words)}?"}
                        ],
                    }
                    response = await http.post("/v1/chat/completions", json=body, headers=headers)
                else:
                    query = f"{rng.choice(words)} {rng.choice(words)} since:{since}"
                    response = await http.get("/v1/search", params={"q": query}, headers=headers)
                elapsed = (time.perf_counter() - started) * 1000
                code = str(response.status_code)
                statuses[code] = statuses.get(code, 0) + 1
                if response.status_code == 200:
                    if time.monotonic() > warm:
                        (chat_ms if chat else search_ms).append(elapsed)
                elif not (response.status_code == 429 and number == 0):
                    errors.append(f"{code}: {response.text[:200]}")
                await asyncio.sleep(max(think, 0.5 if response.status_code == 429 else 0))

        async def feeder() -> None:
            batch = max(1, int(rate / 10))  # ten posts a second, each a batch
            headers = {
                "Authorization": f"Bearer {load_key}",
                "Content-Type": "application/x-ndjson",
            }
            tick = time.monotonic()
            while time.monotonic() < end:
                payload = b"\n".join(json.dumps(next(records)).encode() for _ in range(batch))
                started = time.perf_counter()
                response = await http.post("/v1/posts", content=payload, headers=headers)
                ingest_ms.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    errors.append(f"ingest {response.status_code}: {response.text[:200]}")
                elif time.monotonic() > warm:
                    ingested[0] += batch
                tick += 0.1
                await asyncio.sleep(max(0.0, tick - time.monotonic()))

        await asyncio.gather(feeder(), *(client(n) for n in range(clients)))
        elapsed = time.monotonic() - warm

    return {
        "duration_s": round(elapsed, 1),
        "clients": clients,
        "think_s": think,
        "offered_ingest_per_s": rate,
        "ingested_per_s": round(ingested[0] / elapsed, 1),
        "ingest_batch": _summary(ingest_ms),
        "search": _summary(search_ms),
        "chat": _summary(chat_ms),
        "requests_per_s": round((len(search_ms) + len(chat_ms)) / elapsed, 1),
        "statuses": statuses,
        "intended_429": statuses.get("429", 0),
        "errors": len(errors),
        "error_examples": errors[:5],
    }
