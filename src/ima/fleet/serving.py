"""`ima serve --fleet`: the supervisor, and answers and embeddings that go through it.

The API process answers through the fleet (`FleetAnswerer`, in place of the answerer
processes, which stay as its local fallback; with `--llm`, `FleetBackend` generates
on workers, the local LLM as the fallback); the writer process embeds through it
(`Settings.fleet_url`, handed to `ima.vectors.worker`). Each has
a supervisor of its own on the same fleet; the API's writes what it sees for
`ima fleet list`, the writer's its metrics for the API's /metrics (`WriterMetrics`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from ima.answer.ask import Semantic, ask
from ima.answer.llm import Backend
from ima.answer.model import Answer
from ima.fleet.answer import FleetAnswerer, LocalAnswer
from ima.fleet.credentials import Credentials
from ima.fleet.generate import FleetBackend
from ima.fleet.registry import reputation_file, state_file, writer_metrics_file
from ima.fleet.supervisor import Supervisor
from ima.search import PostStore


@dataclass(slots=True)
class ServingFleet:
    supervisor: Supervisor
    answerer: FleetAnswerer

    def backend(self, local: Backend) -> FleetBackend:
        """The LLM backend that generates on workers, `local` when there are none."""
        return FleetBackend(self.supervisor, local)

    def close(self) -> None:
        self.supervisor.close()


def fleet_url(url: str, data_dir: Path) -> str:
    """The URL `ima serve` connects with (its own credentials added when workers have
    some), also handed to the writer for embedding."""
    return Credentials(data_dir).serve_url(url)


def local_answer(store: PostStore, semantic: Semantic | None, pool: Any) -> LocalAnswer:
    """How to answer without the fleet: the answerer processes when there are some."""
    if pool is not None:
        return pool.answer

    def answer(question: str, *, as_of: datetime, **options: Any) -> Answer:
        return ask(store, question, as_of=as_of, semantic=semantic, **options)

    return answer


class WriterMetrics:
    """The writer's embedding metrics (its supervisor's, `ima_writer_fleet_…`, and its
    queue's, `ima_embed_…`) as it last wrote them, for this process's /metrics; none once
    they are `STALE_S` old (the writer gone, or embedding without the fleet)."""

    STALE_S = 30.0

    def __init__(self, path: Path) -> None:
        self.path = path

    def collect(self) -> Iterator[Metric]:
        try:
            if time.time() - self.path.stat().st_mtime > self.STALE_S:
                return
            text = self.path.read_text()
        except OSError:
            return
        try:
            yield from list(text_string_to_metric_families(text))
        except ValueError:  # a file of ours, yet not metrics: show none, never fail a scrape
            return


def join(url: str, data_dir: Path, store: PostStore, registry: CollectorRegistry,
         semantic: Semantic | None, pool: Any) -> ServingFleet:  # fmt: skip
    """Start the API process's supervisor on `url` and the answerer that uses it, and
    show the writer's embedding metrics in `registry`."""
    registry.register(WriterMetrics(writer_metrics_file(data_dir)))
    supervisor = Supervisor(url, registry, state_file=state_file(data_dir),
                            reputation_file=reputation_file(data_dir, "api")).start()  # fmt: skip
    answerer = FleetAnswerer(store, supervisor, local_answer(store, semantic, pool), semantic)
    return ServingFleet(supervisor, answerer)
