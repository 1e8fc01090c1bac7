"""`ima bench serve`: a real `ima serve` process under mixed load while posts stream in.

The server runs as its own process (as in production); this process is the load:
`clients` concurrent HTTP clients loop over search (two words and a time filter)
and chat questions for `duration` seconds (after 5 s of warm-up), each pausing
`think` seconds between requests as a person would (0: back to back), while
another task posts `rate` posts/s to `POST /v1/posts` (NDJSON, ten batches a
second, each sent on time whether or not the one before was answered). One client
uses a key of a small tier, so some 429s are intended; every other non-2xx response
counts as an error, and so does every error the server logs.

The clients stand in for machines elsewhere but share this one's cores, so they are
kept lean (`ima.bench.http_client`) and run at the server's priority: run at a lower
one, they measured their own wait for a core as server latency. Latencies are
reported as the clients saw them and as the server accounts for them (its
`Server-Timing` header), with the CPU both sides used.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import uvloop

from ima.api.keys import KeyStore
from ima.bench.http_client import Connection, HttpError, Response
from ima.synthetic.chatter import Stream

WARM_UP_S = 5.0  # load runs this long before measuring starts
FEEDERS = 4  # ingest batches that may be unanswered at once
STOP_S = 120.0  # SIGTERM to exit, at most, before a server is killed

_TIERS = """
[tiers.load]
requests_per_minute = 1000000
requests_per_day = 100000000
fun = true
priority = 2
ingest = true

[tiers.free]
requests_per_minute = 5
requests_per_day = 100
fun = false
priority = 0
"""


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def summary(values: list[float]) -> dict[str, float]:
    """How many, the median, the 99th percentile and the worst of `values` (ms)."""
    return {
        "requests": len(values),
        "p50_ms": round(percentile(values, 50), 2),
        "p99_ms": round(percentile(values, 99), 2),
        "max_ms": round(max(values, default=0.0), 2),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(
    url: str, process: subprocess.Popen, timeout: float = 60, log: Path | None = None
) -> None:
    """Poll `url` until it answers 200; fail early if `process` exits, with the end of
    its stderr (piped, or written to `log`)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            if process.stderr:
                stderr = process.stderr.read().decode()[-2000:]
            else:
                stderr = log.read_text(errors="replace")[-2000:] if log else ""
            raise RuntimeError(f"{url} did not come up: {stderr}")
        time.sleep(0.2)


def seed(data: Path, tmp: Path, records: Iterator[dict[str, Any]], posts: int) -> None:
    """Store the next `posts` of `records` in `data` with `ima ingest`, as an operator would."""
    seed_file = tmp / "seed.jsonl"
    with open(seed_file, "w") as fh:
        for _ in range(posts):
            fh.write(json.dumps(next(records)) + "\n")
    subprocess.run(
        [sys.executable, "-m", "ima", "--data-dir", str(data), "ingest", str(seed_file)],
        check=True, capture_output=True,
    )  # fmt: skip


def sendable(record: dict[str, Any]) -> dict[str, Any]:
    """A record as a key without grants may send it: its posts belong to the key's own
    source, so it names none."""
    return {name: value for name, value in record.items() if name != "source"}


@dataclass(slots=True)
class Served:
    """A running `ima serve` process and the file its log goes to; `stop_s`, once it has
    stopped, how long SIGTERM took to end it (killed after `STOP_S`)."""

    process: subprocess.Popen
    port: int
    log: Path
    stop_s: float | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def failures(self) -> list[str]:
        """Lines of its log that say something broke: tracebacks and errors."""
        return [line for line in self.log_text().splitlines()
                if line.startswith(("Traceback", "ERROR")) or " ERROR " in line]  # fmt: skip


@contextlib.contextmanager
def served(data: Path, tmp: Path, *options: str) -> Iterator[Served]:
    """A real `ima serve` over `data` on a free loopback port, with the bench's tiers
    (`load`: unlimited, with ingest; `free`), no embedder and no source, until the block
    ends (then SIGTERM)."""
    tiers = tmp / "tiers.toml"
    tiers.write_text(_TIERS)
    port = free_port()
    log = tmp / "server.log"  # a file, not a pipe: a full pipe would stall it
    with log.open("wb") as sink:  # the server keeps its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "ima", "--data-dir", str(data), "serve", "--port", str(port),
             "--tiers", str(tiers), "--no-embed", "--no-default-source", *options],
            stdout=subprocess.DEVNULL, stderr=sink,
        )  # fmt: skip
    running = Served(process, port, log)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", process, log=log)
        yield running
    finally:
        stopping = time.monotonic()
        process.terminate()
        try:  # it commits what it acknowledged first: a long queue takes a while
            process.wait(STOP_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        running.stop_s = round(time.monotonic() - stopping, 1)


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
        batch = max(1, int(rate / 10))  # ten batches a second
        batches = int((WARM_UP_S + duration) * 10) + FEEDERS
        stream = Stream(posts + batch * batches, seed=5)
        records = iter(stream)
        say(f"ingesting {posts:,} posts to search over")
        seed(data, Path(tmp), records, posts)
        # made now, not during the run: generating and encoding posts cost the load more
        # CPU than all its HTTP, and the producers it stands for run elsewhere
        say(f"preparing {batch * batches:,} posts to send")
        payloads = [b"\n".join(json.dumps(sendable(next(records))).encode() for _ in range(batch))
                    for _ in range(batches if rate else 0)]  # fmt: skip
        keys = KeyStore(data / "keys.sqlite3")
        load_key, free_key = keys.create("load", "load")[1], keys.create("free", "free")[1]
        keys.close()
        with served(data, Path(tmp)) as server:
            say(f"{clients} clients for {duration:.0f}s while posting {rate:,.0f} posts/s")
            figures = uvloop.run(
                _load(server.port, server.process.pid, stream, payloads, load_key, free_key,
                      duration, clients, rate, think)
            )  # fmt: skip
        # what went wrong inside the server counts too, not only what clients saw
        failures = server.failures()
        figures["server_errors"] = len(failures)
        figures["server_log_tail"] = server.log_text()[-3000:] if failures else ""
    return figures


def _server_ms(response: Response) -> float:
    """The server's time to the start of its response, from `Server-Timing: app;dur=MS`."""
    timing = response.headers.get(b"server-timing", b"")
    return float(timing.partition(b"dur=")[2] or 0)


def processes() -> dict[int, list[str]]:
    """Every process's fields of /proc/PID/stat after its name (Linux; none elsewhere)."""
    found = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    found[int(entry)] = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
    return found


def process_tree(pid: int, table: dict[int, list[str]]) -> set[int]:
    """`pid` and its descendants, in a `processes()` table."""
    tree, todo = set(), [pid]
    while todo:
        current = todo.pop()
        tree.add(current)
        todo += [child for child, fields in table.items() if int(fields[1]) == current]
    return tree & table.keys()


def memory_mb(pid: int, field_name: str) -> int:
    """A memory figure of /proc/PID/status (VmRSS, RssAnon…), in MB; 0 if it has gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) >> 10
    except OSError:
        pass
    return 0


def open_fds(pid: int) -> int:
    """How many files `pid` has open (0 if it has gone)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by `pid` and its descendants (Linux /proc; 0 elsewhere)."""
    tick = os.sysconf("SC_CLK_TCK")
    table = processes()
    return sum((int(table[p][11]) + int(table[p][12])) / tick for p in process_tree(pid, table))


async def _load(
    port: int,
    server_pid: int,
    stream: Stream,
    payloads: list[bytes],
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
    search_server_ms: list[float] = []  # the server's own account (Server-Timing)
    chat_ms: list[float] = []
    ingest_ms: list[float] = []
    statuses: dict[str, int] = {}
    errors: list[str] = []
    ingested = [0]
    cpu: dict[str, float] = {}
    warm = time.monotonic() + WARM_UP_S  # threads, taggers and caches start cold
    end = warm + duration

    async def client(number: int) -> None:
        rng = random.Random(number)
        key = free_key if number == 0 else load_key
        connection = Connection("127.0.0.1", port)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        while time.monotonic() < end:
            chat = rng.random() < 0.3
            started = time.perf_counter()
            try:
                if chat:
                    question = f"What's new about {rng.choice(words)}?"
                    body = {"model": "ima", "messages": [{"role": "user", "content": question}]}
                    response = await connection.request(
                        "POST", "/v1/chat/completions", headers, json.dumps(body).encode()
                    )
                else:
                    query = f"{rng.choice(words)} {rng.choice(words)} since:{since}"
                    target = "/v1/search?" + urlencode({"q": query})
                    response = await connection.request("GET", target, headers)
            except HttpError as exc:
                errors.append(str(exc))
                await asyncio.sleep(think)
                continue
            elapsed = (time.perf_counter() - started) * 1000
            status = response.status
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            if status == 200:
                if time.monotonic() > warm:
                    (chat_ms if chat else search_ms).append(elapsed)
                    if not chat:
                        search_server_ms.append(_server_ms(response))
            elif not (status == 429 and number == 0):
                errors.append(f"{status}: {response.body[:200].decode(errors='replace')}")
            await asyncio.sleep(max(think, 0.5 if status == 429 else 0))
        await connection.close()

    async def feeder() -> None:
        """Open loop, as a producer sends: a batch leaves every 0.1 s whether or not the
        ones before were answered yet (at most `FEEDERS` unanswered, one per connection);
        waiting for each answer would make the offered rate depend on the latency."""
        idle = [Connection("127.0.0.1", port) for _ in range(FEEDERS)]
        slots = asyncio.Semaphore(FEEDERS)
        headers = {"Authorization": f"Bearer {load_key}", "Content-Type": "application/x-ndjson"}

        async def send(payload: bytes) -> None:
            connection = idle.pop()
            sent_at = time.monotonic()
            started = time.perf_counter()
            try:
                response = await connection.request("POST", "/v1/posts", headers, payload)
                status, content = response.status, response.body
            except HttpError as exc:
                status, content = 0, str(exc).encode()
            finally:
                idle.append(connection)
                slots.release()
            ingest_ms.append((time.perf_counter() - started) * 1000)
            if status != 200:
                errors.append(f"ingest {status}: {content[:200].decode(errors='replace')}")
            elif warm <= sent_at < end:  # sent in the window; answered before or after its end
                ingested[0] += json.loads(content)["accepted"]

        sending: set[asyncio.Task] = set()
        tick = time.monotonic()
        for payload in payloads:
            if time.monotonic() >= end:
                break
            await slots.acquire()
            task = asyncio.create_task(send(payload))
            sending.add(task)
            task.add_done_callback(sending.discard)
            tick += 0.1
            await asyncio.sleep(max(0.0, tick - time.monotonic()))
        await asyncio.gather(*sending)
        for connection in idle:
            await connection.close()

    async def meter() -> None:
        """CPU used by the server (with its worker processes) and by this load, measured."""
        await asyncio.sleep(max(0.0, warm - time.monotonic()))
        server, load = cpu_seconds(server_pid), time.process_time()
        await asyncio.sleep(max(0.0, end - time.monotonic()))
        cpu["server"] = (cpu_seconds(server_pid) - server) / duration
        cpu["load"] = (time.process_time() - load) / duration

    await asyncio.gather(meter(), feeder(), *(client(n) for n in range(clients)))
    elapsed = time.monotonic() - warm

    return {
        "duration_s": round(elapsed, 1),
        "clients": clients,
        "think_s": think,
        "offered_ingest_per_s": rate,
        "ingested_per_s": round(ingested[0] / elapsed, 1),
        "ingest_batch": summary(ingest_ms),
        "search": summary(search_ms),
        "search_server_side": summary(search_server_ms),
        "chat": summary(chat_ms),
        "requests_per_s": round((len(search_ms) + len(chat_ms)) / elapsed, 1),
        "server_cpu_cores": round(cpu.get("server", 0.0), 2),
        "load_cpu_cores": round(cpu.get("load", 0.0), 2),
        "statuses": statuses,
        "intended_429": statuses.get("429", 0),
        "errors": len(errors),
        "error_examples": errors[:5],
    }
