"""Settings: one typed object, read once from flags and the environment, passed down."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import platformdirs

from ima.search import Ranking
from ima.store import Store


def _env_float(name: str, default: float, low: float, high: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"ima: {name} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise SystemExit(f"ima: {name} must be between {low:g} and {high:g}, got {raw}")
    return value


#: posts, keys and quota counts are nobody else's business: directories ima creates are
#: 0700 and files 0600 (SQLite gives a database's journal and WAL the database's mode)
PRIVATE_UMASK = 0o077


def private_file(path: Path) -> Path:
    """`path`, created empty and for this user only if it is not there yet, in a directory
    created for this user only: for databases that a library caller opens without
    `Settings.load` having set the umask."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    return path


@dataclass(frozen=True, slots=True)
class LlmSettings:
    """Which LLM writes answers: `url` is an OpenAI-compatible base URL, `embedded` or
    `embedded:MODEL`, or None for the extractive composer alone."""

    url: str | None = None
    model: str = "default"
    api_key: str = field(default="", repr=False)
    #: the server's model calls tools itself (it decides when to search)
    tools: bool = False


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob, with its environment variable in the README's settings table. Flags
    override what the environment says (`dataclasses.replace`), once, in the command
    line; everything below it is handed this object."""

    data_dir: Path
    commit_interval: float = 1.0
    batch_size: int = 1000
    max_wait: float = 0.001
    synchronous: str = "NORMAL"
    half_life_hours: float = 6.0
    #: keys (their ids) that may see the fleet's workers (GET /v1/fleet)
    operator_keys: frozenset[str] = frozenset()
    llm: LlmSettings = LlmSettings()
    #: quotas in Redis (shared by replicas) instead of SQLite in `data_dir`
    redis_url: str | None = None
    #: TOML file of tiers; None: the built-in ones
    tiers_file: Path | None = None
    #: processes composing answers without an LLM (0: in the API process)
    answerers: int = 2
    #: processes preparing posts for ingest; None: the command's default
    workers: int | None = None
    embed: bool = True
    #: `ima serve --fleet`: NATS servers of the workers that share the inference
    fleet_url: str | None = None

    @classmethod
    def load(cls, data_dir: str | Path | None = None) -> Settings:
        """The settings of this process, which from now on creates files for its user only."""
        os.umask(PRIVATE_UMASK)
        chosen = data_dir or os.environ.get("IMA_DATA_DIR") or platformdirs.user_data_dir("ima")
        synchronous = os.environ.get("IMA_SYNCHRONOUS", "NORMAL").upper()
        if synchronous not in ("NORMAL", "FULL"):
            raise SystemExit(f"ima: IMA_SYNCHRONOUS must be NORMAL or FULL, got {synchronous!r}")
        return cls(
            data_dir=Path(chosen).expanduser(),
            commit_interval=_env_float("IMA_COMMIT_INTERVAL", 1.0, 0.01, 60),
            batch_size=int(_env_float("IMA_BATCH_SIZE", 1000, 1, 100_000)),
            max_wait=_env_float("IMA_BATCH_WAIT_MS", 1.0, 0, 10_000) / 1000,
            synchronous=synchronous,
            half_life_hours=_env_float("IMA_HALF_LIFE_HOURS", 6.0, 0.01, 24 * 365),
            operator_keys=frozenset(
                k.strip() for k in os.environ.get("IMA_OPERATOR_KEYS", "").split(",") if k.strip()
            ),
            llm=LlmSettings(
                url=os.environ.get("IMA_LLM") or None,
                model=os.environ.get("IMA_LLM_MODEL") or "default",
                api_key=os.environ.get("IMA_LLM_API_KEY", ""),
                tools=os.environ.get("IMA_LLM_TOOLS") == "1",
            ),
            redis_url=os.environ.get("IMA_REDIS_URL") or None,
        )

    def open_store(self, *, searchable: bool = True) -> Store:
        """The store in `data_dir`, read-only when another process is writing it;
        `searchable=False` for one that only writes (`Store`)."""
        return Store(self.data_dir, commit_interval=self.commit_interval,
                     synchronous=self.synchronous, searchable=searchable)  # fmt: skip

    def ranking(self) -> Ranking:
        return Ranking(half_life=timedelta(hours=self.half_life_hours))
