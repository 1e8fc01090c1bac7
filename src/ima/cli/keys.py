"""`ima keys`: API keys for `ima serve`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from ima.config import Settings
from ima.ingest.normalize import RecordError


@click.group("keys")
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
    from ima.ingest.normalize import normalize

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


