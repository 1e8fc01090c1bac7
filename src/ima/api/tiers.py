"""Tiers: what a key may do, and how much. Defaults below; a TOML file can redefine them.

```toml
[tiers.free]
requests_per_minute = 5
requests_per_day = 100
fun = false
priority = 0
ingest = false   # optional: may POST /v1/posts (default false)
audio_seconds_per_day = 600   # optional: speech transcribed and synthesized
```
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from ima.errors import BadInput


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    requests_per_minute: int
    requests_per_day: int
    fun: bool  # may use the fun persona
    priority: int  # higher goes first when the server is busy
    ingest: bool = False  # may POST /v1/posts (else only keys granted it: `ima keys grant`)
    audio_seconds_per_day: int = 600  # speech in and out (`/v1/audio/*`)


DEFAULT_TIERS = {
    "free": Tier("free", 5, 100, False, 0),
    "premium": Tier("premium", 60, 5_000, False, 1, audio_seconds_per_day=3_600),
    "premium_plus": Tier("premium_plus", 300, 50_000, True, 2, audio_seconds_per_day=36_000),
}
#: `--no-auth`: one local user, every feature, no limits worth hitting
LOCAL = Tier("local", 1_000_000, 1_000_000_000, True, 2, ingest=True,
             audio_seconds_per_day=1_000_000_000)  # fmt: skip
_OPTIONAL = frozenset({"ingest", "audio_seconds_per_day"})


def load(path: Path | None) -> dict[str, Tier]:
    """Tiers from a TOML file's `[tiers.NAME]` tables (defaults when `path` is None)."""
    if path is None:
        return dict(DEFAULT_TIERS)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise BadInput(f"{path}: {exc}") from None
    tables = data.get("tiers")
    if not isinstance(tables, dict) or not tables:
        raise BadInput(f"{path}: declare at least one [tiers.NAME] table")
    names = {f.name for f in fields(Tier)} - {"name"}
    required = names - _OPTIONAL
    tiers = {}
    for name, table in tables.items():
        if not isinstance(table, dict) or not required <= set(table) <= names:
            raise BadInput(
                f"{path}: [tiers.{name}] needs {', '.join(sorted(required))} "
                f"(and may set {', '.join(sorted(_OPTIONAL))})"
            )
        tiers[name] = Tier(name=name, **table)
        if tiers[name].requests_per_minute < 1 or tiers[name].requests_per_day < 1:
            raise BadInput(f"{path}: [tiers.{name}] limits must be at least 1")
    return tiers
