"""`ima bench cluster`, and the harness its tests share: `ima node` processes on a NATS
cluster of three `nats-server`s, a stream of posts, and a single store fed the same stream.

The single store is the reference: it reads the cluster's stream in order and ingests
every record exactly as a node does, so for the same query the cluster must return
the same posts in the same order. The bench measures, in one run: the cluster's
ingest (publish to the stream until every partition is committed on both of its
nodes) against the single store's; search p50/p99 on both and the difference per
query (fan-out and merge); `agreement`, the fraction of queries whose hits and scores
equal the single store's; and the nodes' disk and memory per post held.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import nats

from ima.cluster.fabric import Fabric, message_id, publish
from ima.cluster.ownership import Directory
from ima.cluster.replica import SOURCE
from ima.fleet.connection import connect
from ima.ingest import Pipeline
from ima.ingest.normalize import JsonLine
from ima.store import Store

WORDS = tuple(
    "quake tokyo rain storm vote game cat dog launch rocket market coffee train "
    "river music film bridge harbor power outage".split()
)
_JA = ("地震", "東京", "台風", "選挙", "電車")
LANGS = ("en", "ja", "es")
AUTHORS = tuple(f"user{i}" for i in range(8))


def records(
    n: int, *, seed: int = 7, end: datetime | None = None, first: int = 0,
    words: Sequence[str] = WORDS, length: tuple[int, int] = (3, 9),
) -> list[bytes]:  # fmt: skip
    """`n` distinct posts numbered from `first` (each carries its number, so none is a
    copy of another) over the hour before `end`: a few authors, three languages, `length`
    words drawn from `words` (a small vocabulary, so that queries match many)."""
    rng = random.Random(seed)
    end = end or datetime.now(UTC)
    out = []
    for i in range(first, first + n):
        lang = rng.choice(LANGS)
        chosen = rng.choices(words, k=rng.randint(*length))
        if lang == "ja":
            chosen.append(rng.choice(_JA))
        created = end - timedelta(seconds=rng.uniform(0, 3600))
        out.append(json.dumps({
            "id": f"c{seed}-{i}", "text": f"{' '.join(chosen)} n{i}", "lang": lang,
            "created_at": created.isoformat().replace("+00:00", "Z"),
            "author": {"handle": rng.choice(AUTHORS), "followers": rng.randint(0, 10_000)},
            "metrics": {"likes": rng.randint(0, 50)}, "source": "synthetic",
        }).encode())  # fmt: skip
    return out


class Nodes:
    """`ima node` processes (`python -m ima.cluster.node`), node i under `root/node-i`."""

    def __init__(self, root: Path, url: str, fabric: Fabric, *, span: int,
                 commit_interval: float = 0.05) -> None:  # fmt: skip
        self.root = root
        self.url = url
        self.fabric = fabric
        self.span = span
        self.commit_interval = commit_interval
        self.processes: dict[int, subprocess.Popen] = {}

    def start(self, i: int) -> None:
        data = self.root / f"node-{i}"
        data.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "ima.cluster.node", "--fabric", self.url,
                   "--cluster", self.fabric.cluster, "--data-dir", str(data),
                   "--span", str(self.span), "--stream-replicas", str(self.fabric.replicas),
                   "--commit-interval", str(self.commit_interval)]  # fmt: skip
        log = open(data / "node.log", "ab")  # noqa: SIM115 (the process keeps it)
        self.processes[i] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def kill(self, i: int) -> None:
        process = self.processes.pop(i)
        process.send_signal(signal.SIGKILL)
        process.wait()

    def close(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()


def feed(url: str, fabric: Fabric, data: list[bytes]) -> int:
    """Publish `data` to the cluster's stream; returns how many JetStream acknowledged."""

    async def run() -> int:
        nc = await nats.connect(url.split(","))
        try:
            js = nc.jetstream()
            await _retry(lambda: fabric.ensure_stream(js))
            return await publish(js, fabric, data)
        finally:
            await nc.close()

    return asyncio.run(run())


class Producer:
    """Publishes `data` from a thread at about `rate` records a second, each retried until
    JetStream acknowledges it (what a producer does when a server dies under it).
    `acked`: the ids acknowledged; `latencies`: seconds each publish took to be."""

    def __init__(self, url: str, fabric: Fabric, data: list[bytes], rate: float) -> None:
        self.url = url
        self.fabric = fabric
        self.data = data
        self.rate = rate
        self.acked: list[str] = []
        self.retries = 0
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> Producer:
        self._thread.start()
        return self

    def join(self, timeout: float = 300) -> None:
        self._thread.join(timeout)

    async def _run(self) -> None:
        nc = await connect(self.url, "ima-bench-producer")
        try:
            js = nc.jetstream()
            started = time.monotonic()
            for n, data in enumerate(self.data):
                wait = started + n / self.rate - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                while True:
                    try:
                        await js.publish(self.fabric.posts_subject, data, timeout=2,
                                         headers=message_id(data))
                        break
                    except (nats.errors.Error, TimeoutError):
                        self.retries += 1
                        await asyncio.sleep(0.2)
                self.acked.append(json.loads(data)["id"])
        finally:
            await nc.close()


async def _retry(make: Any, timeout: float = 30) -> Any:
    """JetStream answers 'unavailable' while a new cluster elects its leaders."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await make()
        except (nats.errors.Error, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def _settled(js: Any, directory: Directory, fabric: Fabric, copies: int) -> bool:
    """Whether the partitions reach the stream's last post, and every one has `copies`
    owners that each serve it and committed (acknowledged) all of its range that the
    stream holds."""
    last = (await js.stream_info(fabric.stream)).state.last_seq
    await directory.resync()
    if last and not any(p.first <= last <= p.last for p in directory.partitions.values()):
        return False  # the nodes have not yet recorded the partition the stream has reached
    serving = await directory.serving()
    for part in directory.partitions.values():
        if len(part.owners) < copies:
            return False
        for owner in part.owners:
            if part.index not in serving.get(owner, ()):
                return False
            try:
                info = await js.consumer_info(fabric.stream, fabric.consumer(part.index, owner))
            except nats.js.errors.NotFoundError:
                return False
            if part.first <= last and info.ack_floor.stream_seq < min(part.last, last):
                return False
    return bool(directory.partitions) or last == 0


def wait_settled(url: str, fabric: Fabric, copies: int = 2, timeout: float = 60) -> float:
    """Seconds until every partition is fully committed on `copies` nodes."""
    started = time.monotonic()

    async def settle(js: Any) -> float:
        directory = await _retry(lambda: Directory(js, fabric).open())
        try:
            while True:
                try:
                    if await _settled(js, directory, fabric, copies):
                        return time.monotonic() - started
                except (nats.errors.Error, TimeoutError):
                    pass  # a server away: ask again
                await asyncio.sleep(0.2)
        finally:
            await directory.close()

    async def run() -> float:
        nc = await connect(url, "ima-bench-settle")
        try:
            return await asyncio.wait_for(settle(nc.jetstream()), timeout)
        except TimeoutError:
            raise TimeoutError("the cluster did not settle") from None
        finally:
            await nc.close()

    return asyncio.run(run())


def wait_nodes(url: str, fabric: Fabric, count: int, timeout: float = 60) -> None:
    """Until `count` nodes hold a lease."""

    async def run() -> None:
        nc = await connect(url, "ima-bench-nodes")
        try:
            directory = Directory(nc.jetstream(), fabric)
            deadline = time.monotonic() + timeout
            while True:
                try:
                    nodes = await directory.live_nodes()
                except (nats.errors.Error, TimeoutError):
                    nodes = set()  # the bucket is not there yet: nodes create it
                if len(nodes) >= count:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{len(nodes)} of {count} nodes came up")
                await asyncio.sleep(0.2)
        finally:
            await nc.close()

    asyncio.run(run())


def stream_records(url: str, fabric: Fabric) -> list[JsonLine]:
    """Every record in the cluster's stream, in the stream's order."""

    async def run() -> list[JsonLine]:
        nc = await nats.connect(url.split(","))
        try:
            js = nc.jetstream()
            last = (await js.stream_info(fabric.stream)).state.last_seq
            lines: list[JsonLine] = []
            done = asyncio.Event()

            async def got(message: Any) -> None:
                lines.append(JsonLine(message.metadata.sequence.stream, message.data))
                if len(lines) >= last:
                    done.set()

            subscription = await js.subscribe(fabric.posts_subject, cb=got, ordered_consumer=True)
            if last:
                await asyncio.wait_for(done.wait(), 60)
            await subscription.unsubscribe()
            return lines[:last]
        finally:
            await nc.close()

    return asyncio.run(run())


def reference_store(path: Path, lines: list[JsonLine]) -> Store:
    """A single store fed `lines` in order, as one node feeds one partition."""
    store = Store(path, commit_interval=0.05)
    with Pipeline(store, workers=0) as pipeline:
        for line in lines:
            pipeline.submit(line, source=SOURCE)
    return store


def _queries(n: int, seed: int) -> list[str]:
    """Queries of the kinds the property test draws: words, an author, a language, a
    phrase, an excluded word."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = rng.sample(WORDS, rng.randint(1, 2))
        if rng.random() < 0.4:
            parts.append(f"from:{rng.choice(AUTHORS)}")
        if rng.random() < 0.4:
            parts.append(f"lang:{rng.choice(LANGS)}")
        if rng.random() < 0.2:
            parts.append(f'"{" ".join(rng.sample(WORDS, 2))}"')
        if rng.random() < 0.2:
            parts.append(f"-{rng.choice(WORDS)}")
        out.append(" ".join(parts))
    return out


def run(*, nodes_n: int, posts: int, queries: int, progress: Any = print) -> dict[str, Any]:
    """The figures of `ima bench cluster` (see the module's docstring)."""
    from ima.bench.fleet import NatsCluster  # (numpy and the fleet: only when run)
    from ima.bench.serve import cpu_seconds, memory_mb, percentile
    from ima.cluster.partitioned import PartitionedStore
    from ima.search import search

    now = datetime.now(UTC)
    span = max(500, posts // (2 * nodes_n))
    with tempfile.TemporaryDirectory(prefix="ima-bench-cluster-") as tmp:
        root = Path(tmp)
        servers = NatsCluster(root / "nats", jetstream=True).start()
        fabric = Fabric("bench")
        nodes = Nodes(root, servers.url, fabric, span=span, commit_interval=1.0)
        store = single = None
        try:
            for i in range(nodes_n):
                nodes.start(i)
            wait_nodes(servers.url, fabric, nodes_n)
            data = records(posts, seed=3, end=now)
            cpu_before = sum(cpu_seconds(p.pid) for p in nodes.processes.values())
            started = time.monotonic()
            feed(servers.url, fabric, data)
            published_s = time.monotonic() - started
            wait_settled(servers.url, fabric, timeout=600)
            cluster_s = time.monotonic() - started
            node_cpu = sum(cpu_seconds(p.pid) for p in nodes.processes.values()) - cpu_before
            progress(f"cluster ingested {posts} posts (x2 replicas) in {cluster_s:.1f} s")
            lines = stream_records(servers.url, fabric)
            started = time.monotonic()
            single = reference_store(root / "single", lines)
            single_s = time.monotonic() - started
            progress(f"single store ingested the same stream in {single_s:.1f} s")
            store = PartitionedStore(servers.url, fabric).open()
            single_ms, cluster_ms, agree, alike, alike_agree = [], [], 0, 0, 0
            for text in _queries(queries, seed=5):
                t0 = time.perf_counter()
                expected = search(single, text, as_of=now, k=10)
                t1 = time.perf_counter()
                got = search(store, text, as_of=now, k=10)
                t2 = time.perf_counter()
                single_ms.append((t1 - t0) * 1000)
                cluster_ms.append((t2 - t1) * 1000)
                same = [(h.post.id, h.score) for h in got.hits] == [
                    (h.post.id, h.score) for h in expected.hits
                ]
                agree += same and not got.missing
                if got.candidates == expected.candidates:  # same candidates: the merge alone
                    alike += 1
                    alike_agree += same and not got.missing
            overhead = [c - s for c, s in zip(cluster_ms, single_ms, strict=True)]
            disk = sum(f.stat().st_size for f in root.glob("node-*/p*/**/*") if f.is_file())
            rss = sum(memory_mb(p.pid, "VmRSS") for p in nodes.processes.values())
            parts = store.partitions
            return {
                "nodes": nodes_n, "posts": posts, "span": span, "copies": 2,
                "partitions": len(parts), "queries": queries,
                "ingest": {
                    "publish_posts_per_s": round(posts / published_s),
                    "cluster_posts_per_s": round(posts / cluster_s),
                    "single_store_posts_per_s": round(posts / single_s),
                    "node_cpu_s_per_post_copy": round(node_cpu / (2 * posts), 6),
                },
                "search_ms": {
                    "single_p50": round(percentile(single_ms, 50), 2),
                    "single_p99": round(percentile(single_ms, 99), 2),
                    "cluster_p50": round(percentile(cluster_ms, 50), 2),
                    "cluster_p99": round(percentile(cluster_ms, 99), 2),
                    "merge_overhead_p50": round(percentile(overhead, 50), 2),
                },
                "agreement": round(agree / queries, 4),
                # queries for which both gathered the same number of candidates (every
                # partition's matches within its candidate list), and agreement among them
                "same_candidates": alike,
                "agreement_same_candidates": round(alike_agree / max(1, alike), 4),
                # single-store relevance cuts that stopped at their largest pool unproven
                "relevance_cuts_capped": single.relevance_cuts_capped,
                "disk_bytes_per_post_copy": round(disk / (2 * posts)),
                "node_rss_mb": rss,
                "node_rss_bytes_per_post_copy": round(rss * 2**20 / (2 * posts)),
            }  # fmt: skip
        finally:
            if store is not None:
                store.close()
            if single is not None:
                single.close()
            nodes.close()
            servers.close()


@click.command("cluster")
@click.option("--nodes", "nodes_n", type=click.IntRange(2, 16), default=3, show_default=True)
@click.option("--posts", type=click.IntRange(1000, 10_000_000), default=20_000,
              show_default=True)  # fmt: skip
@click.option("--queries", type=click.IntRange(10, 100_000), default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON only.")
def bench_cluster(nodes_n: int, posts: int, queries: int, as_json: bool) -> None:
    """The cluster against one store fed the same stream, in the same run: three NATS
    servers (R3), N `ima node`s; ingest rate, search p50/p99, merge overhead, agreement.
    Exits non-zero when agreement is below 1.0."""
    figures = run(nodes_n=nodes_n, posts=posts, queries=queries,
                  progress=lambda m: click.echo(f"… {m}", err=True))  # fmt: skip
    click.echo(json.dumps(figures, indent=None if as_json else 2))
    if figures["agreement"] < 1.0:
        raise SystemExit(1)
