"""`ima bench soak`: a real `ima serve` under mixed and partly hostile load for a while,
its writer and answerers killed (SIGKILL) at random moments, then checked.

The load, all at once: searches (some with `as_of` at the edges of years 1 and 9999),
chats and responses (some with `search_parameters.from_date` "0001-01-01"), live feeds
held open, and posts in batches of valid records mixed with poison ones (created_at
"0001-01-01T00:00:00+12:00" and "9999-12-31T23:59:59-12:00", huge text, `javascript:`
urls, non-objects, bad UTF-8, JSON nested 100,000 deep) and with records already
acknowledged, sent again. Beside them, hostile requests: whole bodies nested 100,000
deep, bodies that are not objects, and chunked bodies over the limits.

What it reports, and what should hold:
- every post id acknowledged with 2xx is in the store at the end (`lost`: 0), none
  stored twice (`duplicated`: 0: no acknowledged id "new" twice, no more searchable
  posts than stored ones after the store reopens and catches up);
- no response ≥ 500 but 503 (`unexpected_5xx`: 0; 503s are counted by their code: the
  writer restarting, answers busy), no traceback in the server's log;
- open file descriptors and memory of the API process and of the whole server flat
  (within 10%) from the end of warm-up to the end. Warm-up lasts until the writer and
  an answerer have each been killed and restarted once, and at least a tenth of the run
  (at most 30 s): what the first restart of each costs (the code paths and buffers it
  runs for the first time) is paid once, like a cache filling; what a leak costs comes
  again with every restart and every request after it;
- latencies by kind, restarts observed, and how long SIGTERM took with feeds open.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import uvloop

from ima.api.keys import KeyStore
from ima.bench.http_client import Connection, HttpError, Response, read_head, send_chunked
from ima.bench.serve import (
    Served,
    memory_mb,
    open_fds,
    process_tree,
    processes,
    seed,
    sendable,
    served,
    summary,
)
from ima.synthetic.chatter import Stream

SEED_POSTS = 20_000  # a store of some size: its caches warm, growth small beside it
BATCH = 20  # records a post request carries
POST_EVERY_S = 0.25
WRITER_NICE, ANSWERER_NICE = 5, 10  # how the server's helpers are told apart
FLAT = 0.10  # fds and memory may move this much between warm-up's end and the end
DEEP = 100_000
STORED = frozenset({"new", "updated", "edited", "copy"})  # outcomes that leave a post stored

_YEAR_EDGES = ("0001-01-01T00:00:00+12:00", "9999-12-31T23:59:59-12:00")
_AS_OF_EDGES = ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00+12:00",
                "9999-12-31T23:59:59Z", "9999-12-31T23:59:59-12:00")  # fmt: skip


def _poison(rng: random.Random, n: int) -> bytes:
    """One NDJSON line that ingest must refuse (or, a `javascript:` url, clean) by itself."""
    base = {"id": f"poison-{n}", "text": "poison", "author": "mallory",
            "created_at": "2026-11-30T00:00:00Z"}  # fmt: skip
    kind = rng.randrange(7)
    if kind < 2:
        return json.dumps({**base, "created_at": _YEAR_EDGES[kind]}).encode()
    if kind == 2:
        return json.dumps({**base, "text": "x" * 2_000_000}).encode()
    if kind == 3:
        return json.dumps({**base, "url": "javascript:alert(1)"}).encode()
    if kind == 4:
        return rng.choice([b'"a string"', b"42", b"[1, 2]", b"null"])
    if kind == 5:
        return b'{"id": "bad-utf8-%d", "text": "\xff\xfe\xc3", "author": "m"}' % n
    return b"[" * DEEP + b"]" * DEEP


def _hostile(rng: random.Random) -> tuple[str, str, bytes, str]:
    """(kind, path, body, content type) of a whole request that must be refused cleanly."""
    kind = rng.choice(["deep_json_posts", "deep_json_chat", "not_an_object", "bad_utf8_body",
                       "deep_ndjson"])  # fmt: skip
    deep = b"[" * DEEP + b"]" * DEEP
    if kind == "deep_json_posts":
        return kind, "/v1/posts", deep, "application/json"
    if kind == "deep_json_chat":
        return kind, "/v1/chat/completions", b'{"messages": ' + deep + b"}", "application/json"
    if kind == "not_an_object":
        return kind, "/v1/posts", rng.choice([b'"text"', b"7", b"true"]), "application/json"
    if kind == "bad_utf8_body":
        return kind, "/v1/chat/completions", b'{"messages": "\xff\xff"}', "application/json"
    return kind, "/v1/posts", deep + b"\n" + deep, "application/x-ndjson"


def _code(response: Response, status: int) -> str:
    if status != 503:
        return ""
    try:
        return f" {json.loads(response.body)['error']['code']}"
    except (ValueError, KeyError, TypeError):
        return " (no JSON error)"


@dataclass
class _Tally:
    """What the clients saw."""

    ms: dict[str, list[float]] = field(default_factory=dict)
    statuses: dict[str, Counter] = field(default_factory=dict)
    unexpected_5xx: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # refused valid requests, broken links
    acked: dict[str, bytes] = field(default_factory=dict)  # post id -> its record, as sent
    acked_order: list[str] = field(default_factory=list)
    acked_new_twice: int = 0  # acknowledged as new, when an earlier request had stored it

    def acknowledged(self, response: Response, lines: list[bytes]) -> None:
        this_time: set[str] = set()
        for item in json.loads(response.body)["items"]:
            post_id = item["id"]
            if item["status"] not in STORED or post_id is None:
                continue
            if item["status"] == "new" and post_id in self.acked and post_id not in this_time:
                self.acked_new_twice += 1
            if post_id not in self.acked:
                self.acked_order.append(post_id)
            this_time.add(post_id)
            self.acked[post_id] = lines[item["index"]]

    def saw(self, kind: str, response: Response, started: float, *, hostile: bool) -> None:
        status = response.status
        # a 503 says why (the writer restarting, answers busy): counted by its code
        self.statuses.setdefault(kind, Counter())[str(status) + _code(response, status)] += 1
        if status == 200:
            self.ms.setdefault(kind, []).append((time.perf_counter() - started) * 1000)
        elif status >= 500 and status != 503:
            self.unexpected_5xx.append(f"{kind} {status}: {response.body[:200]!r}")
        elif not hostile and status != 503:
            self.errors.append(f"{kind} {status}: {response.body[:200]!r}")


async def _search(tally: _Tally, port: int, key: str, words: list[str], end: float) -> None:
    rng, connection = random.Random(), Connection("127.0.0.1", port)
    headers = {"Authorization": f"Bearer {key}"}
    while time.monotonic() < end:
        query: dict[str, str] = {"q": f"{rng.choice(words)} {rng.choice(words)}"}
        edge = rng.random() < 0.1
        if edge:
            query["as_of"] = rng.choice(_AS_OF_EDGES)
        started = time.perf_counter()
        try:
            response = await connection.request("GET", "/v1/search?" + urlencode(query), headers)
            # an edge instant may be refused with a clear 400, never with a 5xx
            tally.saw("search", response, started, hostile=edge)
        except HttpError as exc:
            tally.errors.append(f"search: {exc}")
        await asyncio.sleep(0.2)
    await connection.close()


async def _chat(tally: _Tally, port: int, key: str, words: list[str], end: float) -> None:
    rng, connection = random.Random(), Connection("127.0.0.1", port)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    while time.monotonic() < end:
        question = f"What's new about {rng.choice(words)}?"
        if rng.random() < 0.3:
            kind, path = "responses", "/v1/responses"
            tool = {"type": "x_search", "from_date": "0001-01-01"}
            body: dict[str, Any] = {"model": "ima", "input": question, "tools": [tool]}
        else:
            kind, path = "chat", "/v1/chat/completions"
            body = {"model": "ima", "messages": [{"role": "user", "content": question}]}
            if rng.random() < 0.3:
                body["search_parameters"] = {"from_date": "0001-01-01", "to_date": "9999-12-31"}
        started = time.perf_counter()
        try:
            response = await connection.request("POST", path, headers, json.dumps(body).encode())
            tally.saw(kind, response, started, hostile=False)
        except HttpError as exc:
            tally.errors.append(f"{kind}: {exc}")
        await asyncio.sleep(0.5)
    await connection.close()


async def _feed(tally: _Tally, port: int, key: str, topic: str, gone: asyncio.Event) -> None:
    """Holds a live feed open until the server ends it (the soak's SIGTERM)."""
    counts = tally.statuses.setdefault("feed", Counter())
    while not gone.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return  # the server has gone
        target = "/v1/feed?" + urlencode({"topic": topic})
        writer.write(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     f"Authorization: Bearer {key}\r\n\r\n".encode())  # fmt: skip
        try:
            status, _ = await read_head(reader)
            counts[str(status)] += 1
            while line := await reader.readline():
                if line.startswith(b"event: post"):
                    counts["events"] += 1
        except (OSError, HttpError, ValueError):
            pass
        finally:
            writer.close()
        await asyncio.sleep(0.5)


async def _post(
    tally: _Tally, port: int, key: str, records: list[dict[str, Any]], end: float,
    rng: random.Random,
) -> None:  # fmt: skip
    """Batches of valid records, some poison and some already acknowledged, as NDJSON or
    a JSON array; every id acknowledged is remembered."""
    connection = Connection("127.0.0.1", port, timeout=60)
    poison = 0
    for start in range(0, len(records), BATCH):
        if time.monotonic() >= end:
            break
        lines = [json.dumps(r).encode() for r in records[start : start + BATCH]]
        if tally.acked_order:
            lines += [tally.acked[rng.choice(tally.acked_order)] for _ in range(2)]
        poisoned = rng.random() < 0.5  # a poison line goes in NDJSON: refused alone
        if poisoned:
            poison += 1
            lines.insert(rng.randrange(len(lines)), _poison(rng, poison))
        ndjson = poisoned or rng.random() < 0.5
        body = b"\n".join(lines) if ndjson else b"[" + b",".join(lines) + b"]"
        kind = "post_ndjson" if ndjson else "post_json"
        content_type = "application/x-ndjson" if ndjson else "application/json"
        headers = {"Authorization": f"Bearer {key}", "Content-Type": content_type}
        started = time.perf_counter()
        try:
            response = await connection.request("POST", "/v1/posts", headers, body)
        except HttpError as exc:
            tally.errors.append(f"{kind}: {exc}")
            continue
        tally.saw(kind, response, started, hostile=False)
        if response.status == 200:
            tally.acknowledged(response, lines)
        await asyncio.sleep(POST_EVERY_S)
    await connection.close()


async def _attack(tally: _Tally, port: int, key: str, end: float, rng: random.Random) -> None:
    """Whole requests that must be refused cleanly, chunked bodies over the limits among them."""
    connection = Connection("127.0.0.1", port)
    headers = {"Authorization": f"Bearer {key}"}
    while time.monotonic() < end:
        started = time.perf_counter()
        try:
            if rng.random() < 0.25:
                kind = "chunked_over_limit"
                path = rng.choice(["/v1/posts", "/v1/chat/completions"])
                response, _ = await send_chunked(
                    "127.0.0.1", port, path, {**headers, "Content-Type": "application/json"},
                    b"[" * 65536, 160,  # 10 MiB: over the 8 MiB of /v1/posts, the 1 MiB else
                )  # fmt: skip
                if response.status != 413:
                    tally.errors.append(f"{kind} {path}: {response.status}")
            else:
                kind, path, body, content_type = _hostile(rng)
                response = await connection.request(
                    "POST", path, {**headers, "Content-Type": content_type}, body
                )
            tally.saw(kind, response, started, hostile=True)
        except HttpError as exc:
            tally.errors.append(f"hostile: {exc}")
        await asyncio.sleep(0.5)
    await connection.close()


@dataclass
class _Watch:
    """The server's helpers as they come and go, and its health as it reports it."""

    writers: set[int] = field(default_factory=set)
    answerers: set[int] = field(default_factory=set)
    kills: Counter = field(default_factory=Counter)
    healthz: Counter = field(default_factory=Counter)
    down_s: list[float] = field(default_factory=list)
    most_answerers: int = 0

    def helpers(self, server_pid: int) -> tuple[list[int], list[int]]:
        """The writer and answerer processes of the server now (told apart by niceness)."""
        table = processes()
        children = [pid for pid, fields in table.items() if int(fields[1]) == server_pid]
        spawned = [pid for pid in children if b"spawn_main" in _cmdline(pid)]
        writers = [pid for pid in spawned if int(table[pid][16]) == WRITER_NICE]
        answerers = [pid for pid in spawned if int(table[pid][16]) == ANSWERER_NICE]
        self.writers.update(writers)
        self.answerers.update(answerers)
        self.most_answerers = max(self.most_answerers, len(answerers))
        return writers, answerers

    def restarted_once(self, server_pid: int) -> bool:
        """The writer and an answerer have each been killed, and all are back."""
        writers, answerers = self.helpers(server_pid)
        killed = self.kills["writer"] and self.kills["answerer"]
        return bool(killed and writers and len(answerers) >= self.most_answerers)


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read()
    except OSError:
        return b""


async def _kill(watch: _Watch, server_pid: int, every: float, start: float, end: float) -> None:
    """SIGKILL the writer, then an answerer, and so on, at random moments `every` seconds
    apart on average."""
    rng = random.Random(11)
    roles = itertools.cycle(("writer", "answerer"))
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    while (pause := rng.uniform(0.5, 1.5) * every) < end - time.monotonic():
        await asyncio.sleep(pause)
        role = next(roles)
        writers, answerers = watch.helpers(server_pid)
        victims = writers if role == "writer" else answerers
        if victims:  # none while one restarts: the next turn comes
            with contextlib.suppress(ProcessLookupError):
                os.kill(rng.choice(victims), signal.SIGKILL)
                watch.kills[role] += 1


async def _watch_health(watch: _Watch, port: int, server_pid: int, gone: asyncio.Event) -> None:
    connection = Connection("127.0.0.1", port, timeout=10)
    down_since: float | None = None
    while not gone.is_set():
        watch.helpers(server_pid)
        try:
            status = (await connection.request("GET", "/healthz", {})).status
        except HttpError:
            break
        watch.healthz[str(status)] += 1
        now = time.monotonic()
        if status != 200 and down_since is None:
            down_since = now
        elif status == 200 and down_since is not None:
            watch.down_s.append(round(now - down_since, 2))
            down_since = None
        await asyncio.sleep(0.25)
    await connection.close()


def _footprint(server_pid: int) -> dict[str, int]:
    """Open fds and memory of the API process and of all the server's processes. Anonymous
    memory is what a leak grows; resident memory also counts the index's files mapped in,
    which grow with the posts and are the kernel's to reclaim."""
    tree = process_tree(server_pid, processes())
    return {
        "api_fds": open_fds(server_pid),
        "api_rss_mb": memory_mb(server_pid, "VmRSS"),
        "api_anon_mb": memory_mb(server_pid, "RssAnon"),
        "all_fds": sum(open_fds(p) for p in tree),
        "all_anon_mb": sum(memory_mb(p, "RssAnon") for p in tree),
        "processes": len(tree),
    }


async def _soak(
    server: Served, key: str, stream: Stream, records: list[dict[str, Any]],
    duration: float, warm_up: float, kill_every: float,
) -> dict[str, Any]:  # fmt: skip
    tally, watch, rng = _Tally(), _Watch(), random.Random(5)
    port, pid = server.port, server.process.pid
    words = stream.en_vocab[30:400]
    began = time.monotonic()
    # the kills begin at once; the run is long enough that the span measured after
    # warm-up is about `duration` (the first kill of each kind lands within ~2 kill_every)
    warm, end = began + warm_up, began + warm_up + 2 * kill_every + duration
    gone = asyncio.Event()
    feeds = [asyncio.create_task(_feed(tally, port, key, rng.choice(words), gone))
             for _ in range(4)]  # fmt: skip
    health = asyncio.create_task(_watch_health(watch, port, pid, gone))
    footprint: dict[str, dict[str, int]] = {}
    timeline: list[tuple[int, int]] = []
    warmed = {"at": warm}

    async def sample() -> None:
        """At warm-up's end, and nine times more: the API process's fds and anonymous memory."""
        await asyncio.sleep(max(0.0, warm - time.monotonic()))
        while not watch.restarted_once(pid) and time.monotonic() < end:
            await asyncio.sleep(0.5)
        footprint["start"] = _footprint(pid)
        warmed["at"] = time.monotonic()
        for _ in range(9):
            await asyncio.sleep(max(0.0, end - warmed["at"]) / 10)
            now = _footprint(pid)
            timeline.append((now["api_fds"], now["api_anon_mb"]))

    await asyncio.gather(
        sample(),
        _kill(watch, pid, kill_every, began, end),
        _post(tally, port, key, records, end, rng),
        _attack(tally, port, key, end, random.Random(9)),
        *(_search(tally, port, key, words, end) for _ in range(4)),
        *(_chat(tally, port, key, words, end) for _ in range(2)),
    )
    await asyncio.sleep(3)  # let the last restart settle before the closing sample
    footprint["end"] = _footprint(pid)
    # SIGTERM with the feeds still open: the server should end them and exit promptly
    stopping = time.monotonic()
    server.process.terminate()
    while server.process.poll() is None and time.monotonic() - stopping < 60:
        await asyncio.sleep(0.05)
    stop_s = time.monotonic() - stopping
    gone.set()
    await asyncio.gather(*feeds, health)
    footprint["api_fds_anon_mb_every_tenth"] = timeline  # type: ignore[assignment]
    return {"tally": tally, "watch": watch, "footprint": footprint,
            "stop_s": round(stop_s, 2), "seconds": round(time.monotonic() - warmed["at"], 1),
            "warm_up_s": round(warmed["at"] - began, 1)}  # fmt: skip


def _flat(start: dict[str, int], end: dict[str, int]) -> dict[str, bool]:
    return {name: end[name] <= start[name] * (1 + FLAT)
            for name in ("api_fds", "api_anon_mb", "all_fds")}  # fmt: skip


def _check_store(data: Path, acked: dict[str, bytes]) -> dict[str, int]:
    """Reopen the store (catching up as after a crash) and look for every acknowledged
    post; no more posts may be searchable than are stored."""
    from ima.store import Store

    store = Store(data)
    try:
        lost = sum(1 for post_id in acked if store.get(post_id) is None)
        stored = store.counts()["posts"]
        searchable = store.term_stats([])[0]
    finally:
        store.close()
    return {"lost": lost, "stored": stored, "index_excess": max(0, searchable - stored)}


def run(
    *,
    minutes: float = 10,
    kill_every: float = 30,
    posts: int = SEED_POSTS,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    say = progress or (lambda _m: None)
    duration = minutes * 60
    warm_up = min(30.0, max(3.0, duration / 10))
    with tempfile.TemporaryDirectory(prefix="ima-bench-soak-") as tmp:
        data = Path(tmp) / "data"
        sends = int((warm_up + 2 * kill_every + duration) / POST_EVERY_S + 10) * BATCH
        stream = Stream(posts + sends, seed=3)
        records = iter(stream)
        say(f"storing {posts:,} posts")
        seed(data, Path(tmp), records, posts)
        valid = [sendable(next(records)) for _ in range(sends)]
        keys = KeyStore(data / "keys.sqlite3")
        key = keys.create("soak", "load")[1]
        keys.close()
        with served(data, Path(tmp)) as server:
            say(f"soaking for about {duration:.0f} s after a warm-up of {warm_up:.0f} s or "
                f"more (until the writer and an answerer have each restarted once), killing "
                f"one of them every ~{kill_every:.0f} s")  # fmt: skip
            seen = uvloop.run(_soak(server, key, stream, valid, duration, warm_up, kill_every))
        say(f"checking {len(seen['tally'].acked):,} acknowledged posts in the store")
        checked = _check_store(data, seen["tally"].acked)
        log = server.log_text()
    tally, watch, footprint = seen["tally"], seen["watch"], seen["footprint"]
    statuses = {kind: dict(counts) for kind, counts in sorted(tally.statuses.items())}
    flat = _flat(footprint["start"], footprint["end"])
    duplicated = tally.acked_new_twice + checked["index_excess"]
    failed = [what for what, bad in (
        (f"{checked['lost']} acknowledged posts lost", checked["lost"]),
        (f"{duplicated} posts stored twice", duplicated),
        (f"{len(tally.unexpected_5xx)} responses 5xx but 503", tally.unexpected_5xx),
        (f"{log.count('Traceback')} tracebacks logged", "Traceback" in log),
        (f"not flat: {[name for name, held in flat.items() if not held]}", not all(flat.values())),
    ) if bad]  # fmt: skip
    return {
        "failed": failed,
        "minutes": minutes,
        "seconds_measured": seen["seconds"],
        "warm_up_s": seen["warm_up_s"],
        "acknowledged": len(tally.acked),
        "lost": checked["lost"],
        "duplicated": duplicated,
        "stored": checked["stored"],
        "unexpected_5xx": len(tally.unexpected_5xx),
        "unexpected_5xx_examples": tally.unexpected_5xx[:5],
        "errors": len(tally.errors),
        "error_examples": tally.errors[:5],
        "tracebacks": log.count("Traceback"),
        "log_errors": sum(1 for line in log.splitlines() if " ERROR " in line),
        "statuses": statuses,
        "latency": {kind: summary(ms) for kind, ms in sorted(tally.ms.items())},
        "kills": dict(watch.kills),
        "restarts": {
            "writer": max(0, len(watch.writers) - 1),
            "answerer_processes": max(0, len(watch.answerers) - 2),
        },
        "healthz": dict(watch.healthz),
        "writer_down_s": watch.down_s,
        "footprint": footprint,
        "flat": flat,
        "stop_s": seen["stop_s"],
        "log_tail": log[-3000:] if "Traceback" in log else "",
    }
