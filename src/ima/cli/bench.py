"""`ima bench`: the benchmarks whose figures the README reports."""

from __future__ import annotations

import json

import click

from ima.cli import options


@click.group("bench")
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

    figures = run(
        posts=posts,
        rate=rate,
        fresh_posts=fresh_posts,
        queries=queries,
        workers=workers,
        progress=options.progress,
    )
    if as_json:
        click.echo(json.dumps(figures, indent=2))
        return
    fresh, latency = figures["freshness"], figures["search"]
    pauses = fresh["gc_pauses"]
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
            "  collector pauses meanwhile",
            f"{pauses['count']}, longest {pauses['max_ms']} ms, {pauses['total_ms']} ms in all",
        ),
        (
            "search, 2 words + time filter",
            f"p50 {latency['p50_ms']} ms, p99 {latency['p99_ms']} ms",
        ),
        ("peak RSS", f"{figures['peak_rss_mb']:,} MB"),
    ]
    options.echo_rows(rows)


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
                  progress=options.progress)  # fmt: skip
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
        progress=options.progress,
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
    options.echo_rows(rows)
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
                  progress=options.progress)  # fmt: skip
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
        options.echo_rows(rows)
        for failure in figures["failed"]:
            click.echo(f"failed: {failure}", err=True)
    if figures["failed"]:
        raise SystemExit(1)


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
                  progress=options.progress)  # fmt: skip
    click.echo(json.dumps(figures, indent=None if as_json else 2))
    loaded = figures["churn"]
    embedded = loaded["embed"]
    if loaded["lost"] or loaded["unverified"] or embedded["lost"] or embedded["off_model"]:
        raise SystemExit(1)





@bench.command("feed")
@click.option("--rate", type=click.FloatRange(100, 100_000), default=5000, show_default=True,
              help="Posts per second offered while measuring findability.")  # fmt: skip
@click.option("--seconds", type=click.FloatRange(1, 600), default=20, show_default=True,
              help="Length of each paced run, and of each flat-out run.")  # fmt: skip
@click.option("--nats", "nats_url", default="nats://127.0.0.1:4222", show_default=True,
              help="NATS server with JetStream, for the NATS path.")  # fmt: skip
@click.option("--paths", default="fts5,http,nats", show_default=True,
              help="The systems to measure, comma-separated.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON only.")
def bench_feed(rate: float, seconds: float, nats_url: str, paths: str, as_json: bool) -> None:
    """Posts into `ima serve` over HTTP and over NATS, beside SQLite FTS5 in-process in
    the same run: posts a second flat out, and how soon an acknowledged post is found
    at --rate (README "Benchmark")."""
    from ima.bench.feed import run

    chosen = tuple(name.strip() for name in paths.split(",") if name.strip())
    try:
        figures = run(rate=rate, seconds=seconds, nats_url=nats_url, paths=chosen,
                      progress=options.progress)  # fmt: skip
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--paths") from None
    if as_json:
        click.echo(json.dumps(figures, indent=2))
        return
    rows = []
    for name in chosen:
        system = figures[name]
        found = system["findable_ms"]
        rows.append((f"{name}: flat out", f"{system['flat_out'].get('posts_per_s')} posts/s"))
        rows.append((f"{name}: findable at {rate:,.0f}/s",
                     f"p50 {found['p50_ms']} ms, p99 {found['p99_ms']} ms, max "
                     f"{found['max_ms']} ms, {system['lost']} lost"))  # fmt: skip
    options.echo_rows(rows)
