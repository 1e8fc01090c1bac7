"""Which sources to run: short specs on the command line, or a TOML file.

A spec is `TYPE` or `TYPE:TARGET` (README "Live sources"):
`bluesky`, `bluesky:ws://127.0.0.1:6008/subscribe`, `mastodon:https://host#public`,
`x`, `x:https://api.x.com`, `rss:https://example.com/feed.xml`,
`nats:nats://127.0.0.1:4222/posts`, `file:PATH`.
A TOML file declares `[[sources]]` tables with `type`, optional `name` and `url`,
and the type's options; `IMA_SOURCE_<NAME>_<OPTION>` in the environment overrides
any option (lists comma-separated). Secrets never go in the file: tokens are read
from the environment variable the source names (`token_env`).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ima.errors import BadInput
from ima.sources import jetstream, mastodon, nats, replay, rss, xapi
from ima.sources.base import Source


def _list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise BadInput("expected a list of strings")


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise BadInput("expected a string")
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise BadInput("expected a number")
    number = float(value)
    if not number >= 0:
        raise BadInput("expected a non-negative number")
    return number


def _whole(value: Any) -> int:
    number = _number(value)
    if not number.is_integer():
        raise BadInput("expected a whole number")
    return int(number)


#: type → (default URL or None when required, {option: converter})
_TYPES: dict[str, tuple[str | None, dict[str, Callable[[Any], Any]]]] = {
    "bluesky": (
        jetstream.DEFAULT_URL,
        {
            "collections": _list,
            "dids": _list,
            "dictionary": _str,
            "rewind_s": _number,
            "max_frame_bytes": _whole,
        },
    ),
    "mastodon": (
        None,
        {"streams": _list, "token_env": _str, "max_frame_bytes": _whole},
    ),
    "x": (xapi.DEFAULT_URL, {"rules": _list, "token_env": _str, "max_frame_bytes": _whole}),
    "rss": (None, {"interval_s": _number}),
    "nats": (
        "nats://127.0.0.1:4222/posts",
        {"durable": _str, "ack_wait_s": _number},
    ),
    "file": (None, {"speed": _number}),
}
_TOKEN_ENV = {"mastodon": "IMA_MASTODON_TOKEN", "x": "IMA_X_BEARER_TOKEN"}
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class SpecError(BadInput):
    """A source spec or config entry that cannot be run, with what to fix."""


@dataclass
class SourceSpec:
    type: str
    name: str
    url: str
    options: dict[str, Any] = field(default_factory=dict)


def parse(text: str) -> SourceSpec:
    """One command-line spec, e.g. `mastodon:https://mastodon.social#hashtag:python`."""
    kind, _, target = text.strip().partition(":")
    if kind not in _TYPES:
        raise SpecError(f"unknown source type {kind!r} in {text!r}; one of {', '.join(_TYPES)}")
    options: dict[str, Any] = {}
    if kind == "mastodon" and "#" in target:
        target, _, streams = target.partition("#")
        options["streams"] = _list(streams)
    return declare({"type": kind, "url": target, **options} if target else {"type": kind})


def declare(table: Mapping[str, Any], env: Mapping[str, str] | None = None) -> SourceSpec:
    """One `[[sources]]` table (or a parsed spec), with environment overrides applied."""
    env = os.environ if env is None else env
    kind = table.get("type")
    if kind not in _TYPES:
        raise SpecError(f"source type must be one of {', '.join(_TYPES)}, got {kind!r}")
    default_url, converters = _TYPES[kind]
    name = str(table.get("name") or kind)
    if not _NAME.match(name):
        raise SpecError(f"source name {name!r}: use lowercase letters, digits, - and _")
    prefix = f"IMA_SOURCE_{name.upper().replace('-', '_')}_"
    merged = dict(table)
    for key, value in env.items():
        if key.startswith(prefix):
            merged[key[len(prefix) :].lower()] = value
    url = merged.pop("url", None) or merged.pop("path", None) or default_url
    if not url:
        raise SpecError(f"source {name!r} ({kind}) needs a url")
    options = {}
    for key, value in merged.items():
        if key in ("type", "name"):
            continue
        if key not in converters:
            known = ", ".join(["url", *converters]) or "url"
            raise SpecError(f"source {name!r}: unknown option {key!r} (options: {known})")
        try:
            options[key] = converters[key](value)
        except (ValueError, TypeError) as exc:
            raise SpecError(f"source {name!r}: option {key!r}: {exc}") from None
    return SourceSpec(kind, name, _str(url), options)


def load(path: Path) -> list[SourceSpec]:
    """The `[[sources]]` of a TOML file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: {exc}") from None
    tables = data.get("sources")
    if not isinstance(tables, list) or not tables:
        raise SpecError(f"{path}: declare at least one [[sources]] table")
    return [declare(t) for t in tables]


def build(spec: SourceSpec, env: Mapping[str, str] | None = None) -> Source:
    """The runnable source for a spec."""
    env = os.environ if env is None else env
    opts = dict(spec.options)
    try:
        if spec.type == "bluesky":
            dictionary = opts.pop("dictionary", None)
            return jetstream.Jetstream(
                spec.name,
                spec.url,
                dictionary=Path(dictionary).expanduser() if dictionary else None,
                **opts,
            )
        if spec.type in _TOKEN_ENV:
            token = env.get(opts.pop("token_env", _TOKEN_ENV[spec.type]), "")
            if spec.type == "mastodon":
                return mastodon.Mastodon(spec.name, spec.url, token=token or None, **opts)
            return xapi.XStream(spec.name, spec.url, token=token, **opts)
        if spec.type == "rss":
            return rss.Feed(spec.name, spec.url, **opts)
        if spec.type == "nats":
            return nats.NatsSource(spec.name, spec.url, **opts)
        return replay.ReplayFile(spec.name, Path(spec.url).expanduser(), **opts)
    except (ValueError, OSError) as exc:
        raise SpecError(f"source {spec.name!r}: {exc}") from None
