"""Embedding through the fleet: an `Embedder` that sends batches to workers and
spot-checks them against the local model (cosine >= `MIN_COSINE`).

Every reply is checked for shape and unit length; on the sample the worker's
reputation calls for, one text of the batch is embedded here and compared. A batch
that fails goes to another worker; with no worker, the batch is embedded locally.
Questions are embedded locally: one short text is cheaper than a round trip.
"""

from __future__ import annotations

import random
from concurrent.futures import Future
from pathlib import Path

import numpy as np
from prometheus_client.registry import Collector

from ima.fleet import protocol
from ima.fleet.protocol import EmbedJob
from ima.fleet.registry import reputation_file, writer_metrics_file
from ima.fleet.supervisor import NoWorker, Supervisor
from ima.vectors.embedder import Embedder

MIN_COSINE = 0.99
JOBS_AT_ONCE = 8
WRITER_PREFIX = "ima_writer_fleet"  # the writer's supervisor's metrics: ima_writer_fleet_…


def fleet_batch() -> int:
    """Texts a background embedder should hand over at once: several jobs' worth."""
    return protocol.EMBED_BATCH * JOBS_AT_ONCE


def writer_embedder(url: str, local: Embedder, data_dir: Path | None,
                    *collectors: Collector) -> FleetEmbedder:  # fmt: skip
    """The writer's embedder under `ima serve --fleet`: a supervisor of its own, whose
    metrics, with `collectors`' (the embedding queue's), it writes into `data_dir` every
    2 s for the API process's /metrics (`ima.fleet.serving.WriterMetrics`), and its
    workers' reputations, kept across restarts."""
    report = None if data_dir is None else writer_metrics_file(data_dir)
    kept = None if data_dir is None else reputation_file(data_dir, "writer")
    supervisor = Supervisor(url, prefix=WRITER_PREFIX, metrics_file=report, reputation_file=kept)
    for collector in collectors:
        supervisor.registry.register(collector)
    return FleetEmbedder(supervisor.start(wait_s=5), local)


class FleetEmbedder:
    def __init__(self, supervisor: Supervisor, local: Embedder, seed: int | None = None) -> None:
        self.supervisor = supervisor
        self.local = local
        self.name = local.name
        self.dim = local.dim
        self._rng = random.Random(seed)
        self.remote = 0  # texts embedded by workers
        self.fallback = 0  # texts embedded here because no worker could

    def close(self) -> None:
        self.supervisor.close()

    def query(self, text: str) -> np.ndarray:
        return self.local.query(text)

    def passages(self, texts: list[str]) -> np.ndarray:
        """Unit vectors for `texts`, from the fleet where it can, else from the local model.
        Batches go out at once, so as many workers as there are batches share them."""
        step = protocol.EMBED_BATCH
        chunks = [[t[: protocol.MAX_TEXT_CHARS] for t in texts[start : start + step]]
                  for start in range(0, len(texts), step)]  # fmt: skip
        sent = [self._send(chunk) for chunk in chunks]
        parts = [self._receive(chunk, job) for chunk, job in zip(chunks, sent, strict=True)]
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)

    def _send(self, texts: list[str]) -> tuple[Future | None, dict[str, np.ndarray]]:
        """Submit one batch; its future (None: no worker) and where its checked vectors go."""
        checked: dict[str, np.ndarray] = {}

        def check(data: bytes, sample: bool) -> str | None:
            if len(data) != len(texts) * self.dim * 4:
                return f"{len(data)} bytes for {len(texts)} vectors of {self.dim}"
            vectors = np.frombuffer(data, dtype="<f4").reshape(len(texts), self.dim)
            norms = np.linalg.norm(vectors, axis=1)
            if not np.all(np.isfinite(norms)) or np.any(np.abs(norms - 1) > 0.01):
                return "vectors are not of unit length"
            if sample:
                i = self._rng.randrange(len(texts))
                truth = self.local.passages([texts[i]])[0]
                cosine = float(vectors[i] @ truth)
                if cosine < MIN_COSINE:
                    return f"vector {i} is off the model's (cosine {cosine:.3f})"
            checked["vectors"] = vectors
            return None

        job = EmbedJob(texts, self.name).encode()
        try:
            return self.supervisor.submit("embed", job, check), checked
        except NoWorker:
            return None, checked

    def _receive(self, texts: list[str], sent: tuple[Future | None, dict[str, np.ndarray]]
                 ) -> np.ndarray:  # fmt: skip
        future, checked = sent
        if future is not None:
            try:
                self.supervisor.result("embed", future)
                self.remote += len(texts)
                return checked["vectors"].copy()
            except NoWorker:
                pass
        self.fallback += len(texts)
        return self.local.passages(texts)
