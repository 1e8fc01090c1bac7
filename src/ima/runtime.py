"""The running parts, built from `Settings`: the command line parses arguments and
calls these, so `ima stream`, `ima serve` and the writer process run one loop.

- `declared_sources`: the sources a command names (specs and a TOML file), checked.
- `llm_backend`: the LLM the settings name, as an answer backend.
- `writing`: a pipeline into a store with vectors and trends following it; what
  `ima stream` runs in its own process and `ima serve` in its writer process.
- `serve`: `ima serve`'s API process over a writer process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ima.config import LlmSettings, Settings
from ima.errors import BadInput, Unavailable
from ima.ingest import Pipeline
from ima.sources import spec as spec_module
from ima.sources.base import Source
from ima.store import Store

log = logging.getLogger(__name__)

NO_SOURCE_NOTICE = (
    "No source was given, so ima follows Bluesky's public Jetstream (no account needed). "
    'To follow something else: ima serve SOURCE… (README "Live sources"); '
    "to try it offline: ima serve --demo."
)


def declared_sources(
    config_path: Path | None, specs: Sequence[str]
) -> list[spec_module.SourceSpec]:
    """The sources of a TOML file's [[sources]] and of specs, each built once to fail here,
    plainly (`SpecError`), not later in a writer; repeated names get a suffix (`rss`,
    `rss-2`), since names key cursors and status."""
    declared = spec_module.load(config_path) if config_path else []
    declared += [spec_module.parse(text) for text in specs]
    seen: dict[str, int] = {}
    for spec in declared:
        count = seen[spec.name] = seen.get(spec.name, 0) + 1
        if count > 1:
            spec.name = f"{spec.name}-{count}"
        spec_module.build(spec)
    return declared


def build_sources(specs: Sequence[spec_module.SourceSpec]) -> list[Source]:
    return [spec_module.build(spec) for spec in specs]


def llm_backend(llm: LlmSettings) -> tuple[Any, str]:
    """(backend, mode) for the configured LLM: a server at a base URL answers from the
    posts ("answer"); the embedded model rephrases the extractive answer ("rephrase");
    no LLM is (None, "rephrase"). Raises `BadInput` naming what `llm.url` may be."""
    from ima.answer.llm import EMBEDDED, BackendError, LlamaCpp, OpenAICompatible

    url = llm.url
    if not url:
        return None, "rephrase"
    if url == "embedded" or url.startswith("embedded:"):
        try:
            return LlamaCpp(url.partition(":")[2] or None), "rephrase"
        except BackendError as exc:
            raise BadInput(str(exc)) from None
    if not url.startswith(("http://", "https://")):
        raise BadInput(
            f"a base URL (http://…/v1), 'embedded' or 'embedded:MODEL' ({', '.join(EMBEDDED)})"
        )
    return OpenAICompatible(url, api_key=llm.api_key, model=llm.model, tools=llm.tools), "answer"


def writable_store(settings: Settings, *, searchable: bool = True) -> Store:
    """The store in `settings.data_dir`, for writing; `Unavailable` while another process
    writes it. `searchable=False`: nothing in this process searches it (`Store`)."""
    store = settings.open_store(searchable=searchable)
    if not store.writable:
        store.close()
        raise Unavailable("another ima process is writing this data directory")
    return store


def follow_with_vectors(store: Store, fleet_url: str | None = None) -> Any:
    """Embed new posts as they are committed (and the last day's backlog), if the
    embedder loads, through the fleet at `fleet_url` when given; otherwise answers use
    lexical search only."""
    from ima.vectors.semantic import Vectors

    vectors = Vectors.open(store)
    if vectors is None:
        return None
    vectors.follow(fleet_url).backfill(20_000)
    return vectors


@contextlib.contextmanager
def writing(store: Store, settings: Settings, workers: int) -> Iterator[Pipeline]:
    """A started pipeline into `store` (batches as `settings` say, `workers` preparing
    processes), with trends (in a process of their own) and, when `settings.embed`,
    vectors following what it commits; the pipeline is drained and closed at the end,
    then its followers."""
    from ima.trends.process import TrendsProcess

    pipeline = Pipeline(
        store, batch_size=settings.batch_size, max_wait=settings.max_wait, workers=workers
    ).start()
    vectors = follow_with_vectors(store, settings.fleet_url) if settings.embed else None
    trends = TrendsProcess(settings)
    try:
        yield pipeline
    finally:
        try:
            pipeline.close()
        finally:
            if vectors is not None:
                vectors.close()
            trends.close()


def quotas(settings: Settings) -> tuple[dict[str, Any], Any]:
    """The tiers on offer and the limiter that counts requests against them (in Redis when
    `settings.redis_url` names one, else in SQLite in `data_dir`)."""
    from ima.api import tiers as tier_module
    from ima.api.quota import Limiter, RedisLimiter, SqliteLimiter

    try:
        offered = tier_module.load(settings.tiers_file)
    except ValueError as exc:
        raise BadInput(f"--tiers: {exc}") from None
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.redis_url:
        try:
            limiter: Limiter = RedisLimiter(settings.redis_url)
        except Exception as exc:  # redis unreachable: say so plainly
            raise Unavailable(f"cannot use Redis at {settings.redis_url}: {exc}") from None
    else:
        limiter = SqliteLimiter(settings.data_dir / "quota.sqlite3")
    return offered, limiter


def services(
    settings: Settings,
    store: Any,
    writer: Any,
    backend: tuple[Any, str],
    quota: tuple[dict[str, Any], Any],
    *,
    no_auth: bool,
    public_url: str,
    **parts: Any,
) -> Any:
    """The API's services over `store` (a store's face) and `writer`: keys and ranking as
    `settings` say, `backend` (`llm_backend`'s pair), `quota` (`quotas`' pair, made
    before anything starts so that bad settings fail first), and `parts`, what a whole
    local store adds (vectors, trends, answerers, a gate…)."""
    from ima.api.keys import KeyStore
    from ima.api.service import Services

    offered, limiter = quota
    return Services(
        store=store, writer=writer, keys=KeyStore(settings.data_dir / "keys.sqlite3"),
        limiter=limiter, tiers=offered, no_auth=no_auth, backend=backend[0],
        backend_mode=backend[1], public_url=public_url.rstrip("/"),
        ranking=settings.ranking(), **parts,
    )  # fmt: skip


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    sources: list[spec_module.SourceSpec],
    no_auth: bool,
    public_url: str | None,
    demo: bool,
    notice: str | None,
    say: Callable[[str], None],
) -> None:
    """`ima serve`: a writer process runs `sources` into the store; this process serves
    the API and the web app over it until SIGTERM or Ctrl-C. Bad settings raise
    `BadInput`, a part that cannot start `Unavailable`, before anything is served.
    `notice` is shown to every client (the source `ima serve` chose by itself)."""
    from ima.api import server
    from ima.api.app import create_app
    from ima.api.gate import PriorityGate
    from ima.trends.view import StoryView
    from ima.vectors.semantic import Vectors
    from ima.writer import WriterConfig, WriterProcess

    server.limit_malloc_arenas()  # before any thread starts (README "Hardening")
    quota = quotas(settings)
    backend, mode = llm_backend(settings.llm)
    if settings.fleet_url:
        from ima.fleet import serving

        try:
            fleet_url = serving.fleet_url(settings.fleet_url, settings.data_dir)
        except ValueError as exc:
            raise BadInput(f"--fleet: {exc}") from None
        settings = dataclasses.replace(settings, fleet_url=fleet_url)
    # one preparing process even on two cores: preparing in the writer's own thread made
    # the writer's interpreter lock the limit of ingest (README "Performance notes")
    workers = 1 if settings.workers is None else settings.workers
    config = WriterConfig(settings, sources, workers=workers, demo=demo,
                          log_level=logging.getLogger().level)  # fmt: skip
    if demo:
        say("storing the demo stream's history…")
    writer = WriterProcess(config)  # takes the store; this process follows it
    store = writer.store
    embed = settings.embed
    vectors = Vectors.open(store) if embed and (backend is not None or settings.fleet_url) else None
    answer_pool = None
    if settings.answerers and backend is None:
        from ima.answer.answerers import Answerers

        answer_pool = Answerers(settings.data_dir, settings.answerers, vectors=embed)
    svc = services(
        settings, store, writer, (backend, mode), quota, no_auth=no_auth,
        public_url=public_url or f"http://{host}:{port}", vectors=vectors,
        trends=StoryView(store), demo=demo, notice=notice, answerers=answer_pool,
        # the gate orders answers by tier: as many run at once as there are answerers
        gate=PriorityGate(slots=settings.answerers) if answer_pool else PriorityGate(),
    )  # fmt: skip
    fleet = None
    if settings.fleet_url:  # workers compose, or with an LLM generate (it is the fallback)
        from ima.api.fleet import FleetView
        from ima.fleet import serving

        fleet = serving.join(settings.fleet_url, settings.data_dir, store,
                             svc.metrics.registry, vectors.semantic if vectors else None,
                             answer_pool)  # fmt: skip
        if backend is None:
            svc.answerers = fleet.answerer
        else:
            svc.backend = fleet.backend(backend)
    quotas_in = f"keys required, quotas in {svc.limiter.name}"
    mode_line = "no auth (local mode)" if no_auth else quotas_in
    say(f"ima serving http://{host}:{port}/ (API at /v1) · {mode_line} · "
        f"{len(sources) + demo} sources{' · demo stream' if demo else ''}")  # fmt: skip
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
