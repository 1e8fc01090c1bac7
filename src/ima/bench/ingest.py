"""`ima bench ingest`: throughput, freshness and search latency, against raw tantivy.

The synthetic stream is written to a JSONL file first (untimed); then, in phases:
1. raw tantivy: the stream file parsed and its text bulk-indexed by tantivy alone,
   committed once;
2. sustained: the same file through the full pipeline as fast as it goes (parse,
   normalize, dedup, log, index, ack), into a store as `ima ingest` writes it (no fresh
   segment: nothing in its process searches; other processes read the log);
3. search: two-word queries with a time filter over the store phase 2 built;
4. freshness: a fresh store fed at an offered rate (by default half the rate phase 2
   sustained, so that the figure is of a pipeline with headroom, on this machine as it
   is during the run) while another thread, once a marked post is acknowledged,
   searches for it until it appears; latency is submit → first found. The garbage
   collector's pauses in that phase are reported beside it: each stops every thread.
"""

from __future__ import annotations

import gc
import json
import os
import random
import resource
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import tantivy

from ima.ingest import Pipeline, ingest
from ima.search import search
from ima.sources import replay
from ima.store import Store
from ima.synthetic.chatter import Stream

Progress = Callable[[str], None]
PROBES_PER_S = 200  # marked posts the freshness phase offers (and searches for) a second


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> tuple[float, float]:
    """CPU seconds used so far by this process (all its threads), and by its children
    that have ended (the pipeline's preparing processes, once it is closed)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, children.ru_utime + children.ru_stime


def write_stream(stream: Stream, path: Path) -> None:
    """The stream as JSON Lines (what the benchmark, and a profile of `ima ingest`, read)."""
    with open(path, "w", encoding="utf-8") as out:
        for record in stream:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


def _raw_tantivy(stream_file: Path, posts: int, workdir: Path) -> tuple[float, float]:
    """Parse the same JSONL and bulk-index its text with tantivy's defaults, committing
    once; (posts/s, CPU µs a post)."""
    workdir.mkdir(parents=True)
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("text")
    index = tantivy.Index(builder.build(), path=str(workdir))
    writer = index.writer(256_000_000)
    started, cpu = time.perf_counter(), sum(_cpu_s())
    with open(stream_file, encoding="utf-8") as lines:
        for line in lines:
            writer.add_document(tantivy.Document(text=json.loads(line).get("text", "")))
    writer.commit()
    writer.wait_merging_threads()
    return posts / (time.perf_counter() - started), (sum(_cpu_s()) - cpu) / posts * 1e6


def _sustained(
    stream_file: Path, posts: int, store: Store, workers: int
) -> tuple[float, tuple[float, float], dict]:
    """(posts/s, CPU µs a post in this process and in the preparing processes, ingest's
    counts) of the whole pipeline."""
    pipeline = Pipeline(store, workers=workers)
    started, (mine, theirs) = time.perf_counter(), _cpu_s()
    with pipeline:
        ingest(pipeline, replay.read(stream_file), source="synthetic", group=256)
    store.close()  # the final index commit is part of the work
    elapsed = time.perf_counter() - started
    mine_after, theirs_after = _cpu_s()
    cpu = ((mine_after - mine) / posts * 1e6, (theirs_after - theirs) / posts * 1e6)
    return posts / elapsed, cpu, pipeline.stats.as_dict()


def _search_latency(store: Store, stream: Stream, queries: int) -> dict[str, float]:
    rng = random.Random(11)
    words = stream.en_vocab[30:400]
    since = (stream.end - stream.duration / 2).strftime("%Y-%m-%dT%H:%M:%SZ")
    timings = []
    hits = 0
    for _ in range(queries):
        query = f"{rng.choice(words)} {rng.choice(words)} since:{since}"
        started = time.perf_counter()
        result = search(store, query, as_of=stream.end, k=10)
        timings.append((time.perf_counter() - started) * 1000)
        hits += bool(result.hits)
    return {
        "queries": queries,
        "with_hits": hits,
        "p50_ms": round(_percentile(timings, 50), 3),
        "p99_ms": round(_percentile(timings, 99), 3),
    }


class GcPauses:
    """The collector's pauses while the block runs (each stops every thread of the
    process), from `gc.callbacks`."""

    def __init__(self) -> None:
        self.pauses_ms: list[float] = []
        self._started = 0.0

    def _callback(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses_ms.append((time.perf_counter() - self._started) * 1000)

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *_exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def figures(self) -> dict[str, float]:
        pauses = self.pauses_ms
        return {"count": len(pauses), "total_ms": round(sum(pauses), 1),
                "max_ms": round(max(pauses, default=0.0), 1)}  # fmt: skip


def _freshness(
    store: Store,
    posts: int,
    rate: float,
    workers: int = 0,
    poll: float = 0.001,
) -> dict[str, Any]:
    """Offer `posts` at `rate`/s; posts `PROBES_PER_S` times a second (every fifth post
    at most) carry a unique marker word.

    The watcher waits for each marked post's acknowledgement (nothing is searchable
    before its batch commits), then searches for its marker every `poll` seconds until
    it appears; latency is submit → first found, so figures include up to `poll` of
    detection delay. The searches run in the process they measure, as a reader's
    would: marking every tenth post, as this once did, made them grow with the rate
    offered, to a thousand a second and a quarter of the process's interpreter time at
    10,000 posts/s; searching from submission on, they had taken more still.
    """
    sample_every = max(5, round(rate / PROBES_PER_S))
    pipeline = Pipeline(store, workers=workers).start()
    submitted: dict[int, float] = {}
    acknowledged: dict[int, threading.Event] = {}
    latencies: list[float] = []
    done = threading.Event()

    def watch() -> None:
        n = 0
        while n < posts and not done.is_set():
            if not acknowledged[n].wait(poll):
                continue
            result = search(store, f"zqmark{n}", k=1)
            if result.hits:
                latencies.append((time.perf_counter() - submitted[n]) * 1000)
                n += sample_every
            else:
                time.sleep(poll)

    records = list(Stream(posts, seed=99))  # generated beforehand: not part of the load
    for n in range(0, posts, sample_every):  # a probe: always an original, never a copy
        record = {k: v for k, v in records[n].items() if k != "repost_of"}
        record.update(id=f"probe{n}", text=f"zqmark{n} freshness probe {n}")
        records[n] = record
        acknowledged[n] = threading.Event()
    probes = {f"synthetic:probe{n}": event for n, event in acknowledged.items()}

    def ack(post_id: str | None, _status: str, _error: str | None) -> None:
        if post_id in probes:
            probes[post_id].set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    with GcPauses() as pauses:
        started = time.perf_counter()
        n = 0
        while n < posts:  # arrivals come in ticks of ~1 ms, as from a socket read: each
            now = time.perf_counter()  # tick hands over the posts due by then, as one group
            due = min(posts, int((now - started) * rate) + 1)
            if due <= n:
                time.sleep(max(started + n / rate - now, 0.001))
                continue
            for marked in range(-(-n // sample_every) * sample_every, due, sample_every):
                submitted[marked] = now
            pipeline.submit_many(records[n:due], ack, source="synthetic")
            n = due
        offered_for = time.perf_counter() - started
        pipeline.close()
        watcher.join(timeout=5)
        done.set()
    return {
        "offered_rate": rate,
        "achieved_offer_rate": round(posts / offered_for),
        "marked_every": sample_every,
        "samples": len(latencies),
        "p50_ms": round(_percentile(latencies, 50), 3),
        "p99_ms": round(_percentile(latencies, 99), 3),
        "max_ms": round(max(latencies, default=float("nan")), 3),
        "gc_pauses": pauses.figures(),
    }


def run(
    *,
    posts: int,
    rate: float | None,
    fresh_posts: int,
    queries: int,
    workers: int,
    progress: Progress = lambda _: None,
) -> dict[str, Any]:
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)

    def stream() -> Stream:
        return Stream(posts, end=end)

    workdir = Path(tempfile.mkdtemp(prefix="ima-bench-"))
    try:
        progress(f"generating {posts:,} posts")
        stream_file = workdir / "stream.jsonl"
        write_stream(stream(), stream_file)
        os.sync()  # each phase starts with no write-back of the last one pending
        progress(f"raw tantivy bulk indexing of {posts:,} posts")
        raw_rate, raw_cpu = _raw_tantivy(stream_file, posts, workdir / "raw")
        os.sync()
        progress(f"ima pipeline, {posts:,} posts as fast as possible ({workers} workers)")
        rate_ours, cpu_ours, ingest_stats = _sustained(  # a store as `ima ingest` writes it
            stream_file, posts, Store(workdir / "store", searchable=False), workers
        )
        os.sync()
        progress(f"search latency, {queries} two-word queries with a time filter")
        store = Store(workdir / "store")
        latency = _search_latency(store, stream(), queries)
        store.close()
        os.sync()
        offered = rate_ours / 2 if rate is None else rate
        progress(f"freshness, {fresh_posts:,} posts offered at {offered:,.0f}/s")
        fresh_store = Store(workdir / "fresh")
        freshness = _freshness(fresh_store, fresh_posts, offered, workers)
        fresh_store.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "posts": posts,
        "raw_tantivy_posts_per_s": round(raw_rate),
        "sustained_posts_per_s": round(rate_ours),
        "fraction_of_raw_tantivy": round(rate_ours / raw_rate, 4),
        # CPU a post, all threads and processes: on a machine shared with other work,
        # the rates above move with the load; these move much less
        "raw_tantivy_cpu_us_per_post": round(raw_cpu, 1),
        "sustained_cpu_us_per_post": round(sum(cpu_ours), 1),
        "sustained_cpu_us_per_post_by_process": {
            "pipeline": round(cpu_ours[0], 1),
            "preparing": round(cpu_ours[1], 1),
        },
        "ingest": ingest_stats,
        "search": latency,
        "freshness": freshness,
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }
