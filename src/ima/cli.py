"""The `ima` command line: ingest files, search, inspect and rebuild the store, benchmark."""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from ima.config import Settings
from ima.ingest import Pipeline, ingest, tune_gc
from ima.normalize import RecordError
from ima.query import QuerySyntaxError, parse_as_of
from ima.search import MAX_K, SearchResult, search
from ima.sources import replay
from ima.store import ReadOnlyIndexError, Store


def _open_store(settings: Settings) -> Store:
    return Store(
        settings.data_dir,
        commit_interval=settings.commit_interval,
        synchronous=settings.synchronous,
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="IMA_DATA_DIR",
    help="Where the log and index live. Env: IMA_DATA_DIR. Default: the user data dir.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log what the store and pipeline do.")
@click.version_option(package_name="ima")
@click.pass_context
def main(ctx: click.Context, data_dir: Path | None, verbose: bool) -> None:
    """ima (今): posts from live streams, searchable the moment they arrive."""
    # Threads hand the GIL over every 0.5 ms instead of 5 ms: a freshly committed post
    # should not wait behind a busy indexer thread to become searchable.
    sys.setswitchinterval(0.0005)
    tune_gc()
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    ctx.obj = Settings.load(data_dir)


def _check_source(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_\-]{0,31}", value):
        raise click.BadParameter("a short lowercase name, like bluesky or news")
    return value


@main.command("ingest")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--speed",
    type=click.FloatRange(min=0, min_open=True),
    help="Replay paced by created_at, this many times real time (default: as fast as possible).",
)
@click.option(
    "--source",
    default="file",
    show_default=True,
    callback=_check_source,
    help="Source name for records without one (lowercase letters, digits, - and _).",
)
@click.option(
    "--workers",
    type=click.IntRange(0, 32),
    default=2,
    show_default=True,
    help="Processes that parse, normalize and analyze posts in parallel (0: all in one thread).",
)
@click.pass_obj
def ingest_cmd(
    settings: Settings, files: tuple[Path, ...], speed: float | None, source: str, workers: int
) -> None:
    """Ingest JSONL or CSV files of posts (schema: README "Post records").

    Bad records are counted by kind and skipped. Exit status 1 if any were rejected.
    """
    store = _open_store(settings)
    if not store.writable:
        store.close()
        raise click.ClickException("another ima process is writing this data directory")
    pipeline = Pipeline(
        store,
        batch_size=settings.batch_size,
        max_wait=settings.max_wait,
        workers=0 if speed else workers,
    )
    bar = tqdm(unit=" posts", desc="ingest", file=sys.stderr, dynamic_ncols=True)
    finished = threading.Event()

    def refresh() -> None:
        while not finished.wait(0.2):
            stats = pipeline.stats
            bar.n = stats.received
            bar.set_postfix(new=stats.new, copies=stats.copies, errors=sum(stats.errors.values()))

    ticker = threading.Thread(target=refresh, daemon=True)
    started = time.perf_counter()
    try:
        with pipeline:
            ticker.start()
            for path in files:
                records = replay.paced(replay.read(path), speed)
                ingest(pipeline, records, source=source, group=1 if speed else 256)
    except KeyboardInterrupt:
        click.echo("\ninterrupted: everything acknowledged so far is stored", err=True)
    finally:
        finished.set()
        store.close()
    stats = pipeline.stats
    bar.n = stats.received
    bar.close()
    elapsed = time.perf_counter() - started
    rate = stats.received / max(elapsed, 1e-9)
    click.echo(
        f"{stats.received:,} records in {elapsed:.1f}s ({rate:,.0f}/s): "
        f"{stats.new:,} new, {stats.updated:,} updated, {stats.copies:,} copied/reposted, "
        f"{sum(stats.errors.values()):,} rejected"
    )
    if stats.errors:
        for kind, count in sorted(stats.errors.items()):
            click.echo(f"  rejected {kind}: {count:,}", err=True)
        for message in list(stats.recent_errors)[-5:]:
            click.echo(f"  e.g. {message}", err=True)
        sys.exit(1)


def _age(created: datetime, now: datetime) -> str:
    seconds = max(0, int((now - created).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def _print_result(result: SearchResult, explain: bool) -> None:
    if not result.hits:
        click.echo(f"no posts match (as of {result.as_of:%Y-%m-%d %H:%M:%S} UTC)")
        return
    for rank, hit in enumerate(result.hits, 1):
        post = hit.post
        text = " ".join(post.text.split())
        text = text if len(text) <= 240 else text[:239] + "…"
        copies = f" · {post.copies} cop{'y' if post.copies == 1 else 'ies'}" if post.copies else ""
        click.echo(
            f"{rank:>2}. @{post.author.handle} · {post.created_at:%Y-%m-%d %H:%M:%S} UTC "
            f"({_age(post.created_at, result.as_of)}) · {post.metrics.likes} likes{copies}"
        )
        click.echo(f"    {text}")
        click.echo(f"    {post.url or post.id}")
        if explain:
            parts = ", ".join(f"{k}={v}" for k, v in hit.parts.items())
            click.echo(f"    score {hit.score:.4f}: {parts}")
    click.echo(f"{len(result.hits)} of {result.candidates} candidates in {result.took_ms:.1f} ms")


@main.command("search")
@click.argument("query")
@click.option("--as-of", "as_of", help="Search as of this instant (ISO 8601 or epoch seconds).")
@click.option(
    "-k",
    "--k",
    "k",
    type=click.IntRange(1, MAX_K),
    default=10,
    show_default=True,
    help="How many posts to show.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--explain", is_flag=True, help="Show each hit's score parts.")
@click.pass_obj
def search_cmd(
    settings: Settings, query: str, as_of: str | None, k: int, as_json: bool, explain: bool
) -> None:
    """Search posts: words, "phrases", OR, -word, from:, since:, until:, lang:, min_faves: …"""
    try:
        instant = parse_as_of(as_of)
    except RecordError as exc:
        raise click.BadParameter(str(exc), param_hint="--as-of") from None
    store = _open_store(settings)
    try:
        result = search(store, query, as_of=instant, k=k, ranking=settings.ranking())
    except QuerySyntaxError as exc:
        click.echo(f"ima: invalid query: {exc}", err=True)
        click.echo(f"  {query}\n  {' ' * (exc.column - 1)}^", err=True)
        sys.exit(2)
    finally:
        store.close()
    if as_json:
        payload: dict[str, Any] = {
            "query": result.query,
            "as_of": result.as_of.isoformat().replace("+00:00", "Z"),
            "took_ms": round(result.took_ms, 3),
            "candidates": result.candidates,
            "hits": [
                {"score": h.score, "parts": h.parts, "post": h.post.to_json()} for h in result.hits
            ],
        }
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
    else:
        _print_result(result, explain)


@main.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.pass_obj
def stats_cmd(settings: Settings, as_json: bool) -> None:
    """Posts stored, index lag, disk use and rejected records by kind."""
    store = _open_store(settings)
    try:
        figures = store.stats()
    finally:
        store.close()
    figures["data_dir"] = str(settings.data_dir)
    if as_json:
        click.echo(json.dumps(figures, indent=2))
        return
    rows = [
        ("data dir", figures["data_dir"]),
        ("posts in log", f"{figures['posts']:,}"),
        ("  originals (searchable)", f"{figures['originals']:,}"),
        ("  copies collapsed", f"{figures['copies']:,}"),
        ("index lag (posts)", f"{figures['index_lag_posts']:,}"),
        ("disk", f"{figures['disk_bytes'] / 1e6:,.1f} MB"),
    ]
    errors: dict[str, int] = figures["errors"]  # type: ignore[assignment]
    rows.append(("rejected records", f"{sum(errors.values()):,}"))
    rows += [(f"  {kind}", f"{count:,}") for kind, count in errors.items()]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        click.echo(f"{label:<{width}}  {value}")


@main.command("reindex")
@click.pass_obj
def reindex_cmd(settings: Settings) -> None:
    """Rebuild the search index from the log (the log is the source of truth)."""
    store = _open_store(settings)
    total = store.log.counts()["originals"]
    try:
        with tqdm(total=total, unit=" posts", desc="reindex", file=sys.stderr) as bar:
            done = store.reindex(progress=lambda n: bar.update(n - bar.n))
    except ReadOnlyIndexError:
        raise click.ClickException("another ima process is writing this data directory") from None
    finally:
        store.close()
    click.echo(f"reindexed {done:,} posts")


@main.group("bench")
def bench() -> None:
    """Benchmarks that report figures (the README's figures come from these)."""


@bench.command("ingest")
@click.option("--posts", type=click.IntRange(1000, 10_000_000), default=200_000, show_default=True)
@click.option(
    "--rate",
    type=click.FloatRange(1, 100_000),
    default=5000,
    show_default=True,
    help="Offered rate (posts/s) for the freshness phase.",
)
@click.option(
    "--fresh-posts", type=click.IntRange(100, 1_000_000), default=20_000, show_default=True
)
@click.option("--queries", type=click.IntRange(10, 100_000), default=500, show_default=True)
@click.option("--workers", type=click.IntRange(0, 32), default=2, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON only.")
def bench_ingest(
    posts: int, rate: float, fresh_posts: int, queries: int, workers: int, as_json: bool
) -> None:
    """Throughput, ingest→searchable latency and search latency on a synthetic stream."""
    from ima.bench.ingest import run

    def progress(message: str) -> None:
        click.echo(f"… {message}", err=True)

    figures = run(
        posts=posts,
        rate=rate,
        fresh_posts=fresh_posts,
        queries=queries,
        workers=workers,
        progress=progress,
    )
    if as_json:
        click.echo(json.dumps(figures, indent=2))
        return
    fresh, latency = figures["freshness"], figures["search"]
    rows = [
        ("posts", f"{figures['posts']:,}"),
        ("raw tantivy bulk indexing", f"{figures['raw_tantivy_posts_per_s']:,} posts/s"),
        ("ima sustained end-to-end", f"{figures['sustained_posts_per_s']:,} posts/s"),
        ("  fraction of raw tantivy", f"{figures['fraction_of_raw_tantivy']:.1%}"),
        (
            f"ingest→searchable @ {fresh['offered_rate']:,.0f}/s",
            (
                f"p50 {fresh['p50_ms']} ms, p99 {fresh['p99_ms']} ms, max {fresh['max_ms']} ms "
                f"({fresh['samples']} samples)"
            ),
        ),
        (
            "search, 2 words + time filter",
            f"p50 {latency['p50_ms']} ms, p99 {latency['p99_ms']} ms",
        ),
        ("peak RSS", f"{figures['peak_rss_mb']:,} MB"),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        click.echo(f"{label:<{width}}  {value}")
