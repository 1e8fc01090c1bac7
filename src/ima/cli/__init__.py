"""The `ima` command line: each module parses one family of commands' arguments and
hands `Settings` to the code that runs them (`ima.runtime` for the long-running ones)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from ima.bench.cluster import bench_cluster
from ima.bench.voice import bench_voice
from ima.cli import answers, bench, fleet, keys, serve, store, trends
from ima.cluster.node import node_cmd
from ima.config import Settings
from ima.ingest import tune_gc
from ima.voice.talk import talk


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


for command in (
    store.ingest_cmd, store.stream_cmd, store.publish_cmd, store.search_cmd, store.stats_cmd,
    store.reindex_cmd, store.embed_cmd, answers.ask_cmd, answers.eval_cmd, trends.trends_cmd,
    keys.keys_group, serve.serve_cmd, fleet.worker_cmd, fleet.fleet_group, talk, node_cmd,
    bench.bench,
):  # fmt: skip
    main.add_command(command)
bench.bench.add_command(bench_voice)
bench.bench.add_command(bench_cluster)
