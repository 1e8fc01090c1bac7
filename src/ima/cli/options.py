"""Options and helpers the commands share: the LLM options, instants, the writable store,
tables of figures."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import click

from ima import runtime
from ima.config import Settings
from ima.errors import BadInput, Unavailable
from ima.query import parse_as_of
from ima.store import Store


def writable_store(settings: Settings, *, searchable: bool = True) -> Store:
    try:
        return runtime.writable_store(settings, searchable=searchable)
    except Unavailable as exc:
        raise click.ClickException(str(exc)) from None


def check_source(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_\-]{0,31}", value):
        raise click.BadParameter("a short lowercase name, like bluesky or news")
    return value


def instant(as_of: str | None) -> datetime | None:
    """`--as-of`, parsed (None: now)."""
    try:
        return parse_as_of(as_of)
    except BadInput as exc:
        raise click.BadParameter(str(exc), param_hint="--as-of") from None


def with_llm(settings: Settings, llm: str | None, llm_model: str | None) -> Settings:
    """`settings` with what `--llm` and `--llm-model` say over what the environment said."""
    chosen = settings.llm
    if llm is not None:
        chosen = dataclasses.replace(chosen, url=llm or None)
    if llm_model is not None:
        chosen = dataclasses.replace(chosen, model=llm_model)
    return dataclasses.replace(settings, llm=chosen)


def backend(settings: Settings) -> tuple[Any, str]:
    """(backend, mode) of the settings' LLM (`runtime.llm_backend`)."""
    try:
        return runtime.llm_backend(settings.llm)
    except BadInput as exc:
        raise click.BadParameter(str(exc), param_hint="--llm") from None


def vectors_of(store: Store) -> Any:
    """The store's vectors, when there are any and the embedder loads."""
    from ima.vectors.semantic import FILE, Vectors

    if not (store.data_dir / FILE).exists():
        return None
    return Vectors.open(store)


def llm_options(command: Callable) -> Callable:
    """--llm and --llm-model, shared by `ask`, `eval`, `serve` and `worker`."""
    command = click.option(
        "--llm-model", help="The model name the server is asked for. Env: IMA_LLM_MODEL. "
        "Default: default."
    )(command)  # fmt: skip
    return click.option(
        "--llm",
        help="An OpenAI-compatible base URL (e.g. http://127.0.0.1:8080/v1; key from "
        "IMA_LLM_API_KEY; IMA_LLM_TOOLS=1 when its model calls tools) or 'embedded' "
        "(SmolLM2-135M-Instruct; 'embedded:gemma3-270m' for Gemma 3 270M). Env: IMA_LLM. "
        "Default: the extractive composer.",
    )(command)


def answer_options(command: Callable) -> Callable:
    """--persona and the LLM options, shared by `ask` and `eval`."""
    return click.option(
        "--persona",
        type=click.Choice(["regular", "fun"]),
        default="regular",
        show_default=True,
        help="The voice: regular (concise) or fun (sarcastic; never about tragedies).",
    )(llm_options(command))


def progress(message: str) -> None:
    """A long command's progress, on standard error."""
    click.echo(f"… {message}", err=True)


def echo_rows(rows: Sequence[tuple[str, str]]) -> None:
    """Labelled figures, one a line, the values aligned."""
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        click.echo(f"{label:<{width}}  {value}")
