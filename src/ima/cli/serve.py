"""`ima serve`: the API and the web app over a writer process (`ima.runtime.serve`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import click

from ima import runtime
from ima.cli.options import llm_options, with_llm
from ima.config import Settings
from ima.errors import BadInput, Unavailable
from ima.sources import spec as spec_module


@click.command("serve")
@click.argument("specs", nargs=-1, metavar="[SOURCE]...")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False,
              path_type=Path), help="TOML file declaring [[sources]].")  # fmt: skip
@click.option("--no-auth", is_flag=True, help="Local single-user mode: no keys, no limits.")
@click.option("--redis-url",
              help="Keep quotas in Redis (shared by replicas). Env: IMA_REDIS_URL.")  # fmt: skip
@click.option("--tiers", "tiers_file", type=click.Path(exists=True, dir_okay=False,
              path_type=Path), help="TOML file of tiers (default: the built-in ones).")  # fmt: skip
@llm_options
@click.option("--workers", type=click.IntRange(0, 32),
              help="Processes that prepare posts for ingest (0: the writer prepares them "
              "itself).  [default: 1]")  # fmt: skip
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
@click.option("--fabric", "fabric_url", metavar="URL",
              help="Serve the API over the cluster of `ima node`s on these NATS servers "
              "(nats://HOST:PORT[,HOST:PORT…]) instead of a store of its own (README "
              "\"Cluster\").")  # fmt: skip
@click.option("--cluster", default="ima", show_default=True,
              help="With --fabric: the cluster's name (as `ima node --cluster`).")  # fmt: skip
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
    fabric_url: str | None,
    cluster: str,
) -> None:
    """Run the sources into the store and serve the API and the web app (README "API",
    "Web app").

    OpenAI and xAI clients work by pointing base_url at http://HOST:PORT/v1; a browser
    at http://HOST:PORT/. With no source given, it follows Bluesky's public Jetstream
    (--no-default-source: none); --demo replays a generated stream instead. Sources and
    ingest run in a writer process of its own; this one serves HTTP and follows the store.
    """
    settings = with_llm(settings, llm, llm_model)
    settings = dataclasses.replace(
        settings, tiers_file=tiers_file, answerers=answerers, workers=workers, embed=embed,
        fleet_url=fleet_url, redis_url=redis_url or settings.redis_url,
    )  # fmt: skip

    def say(line: str) -> None:
        click.echo(line, err=True)

    if fabric_url:
        if specs or config_path or demo or fleet_url:
            raise click.UsageError("--fabric serves a cluster: sources, --config, --demo and "
                                   "--fleet do not apply (the nodes hold the posts; publish "
                                   "to the cluster's stream or POST /v1/posts)")  # fmt: skip
        from ima.cluster.serve import serve_fabric

        _run(lambda: serve_fabric(settings, url=fabric_url, cluster=cluster, host=host,
                                  port=port, no_auth=no_auth, public_url=public_url, say=say))
        return
    try:
        sources = runtime.declared_sources(config_path, specs)
    except BadInput as exc:
        raise click.UsageError(str(exc)) from None
    notice = None
    if not sources and not demo and default_source:
        sources.append(spec_module.parse("bluesky"))
        notice = runtime.NO_SOURCE_NOTICE
        click.echo(notice, err=True)
    _run(lambda: runtime.serve(settings, host=host, port=port, sources=sources,
                               no_auth=no_auth, public_url=public_url, demo=demo,
                               notice=notice, say=say))  # fmt: skip


def _run(serving: Callable[[], None]) -> None:
    """Serve until stopped; bad settings are usage errors, a part that cannot start an
    error that says which."""
    try:
        serving()
    except BadInput as exc:
        raise click.UsageError(str(exc)) from None
    except Unavailable as exc:
        raise click.ClickException(str(exc)) from None


