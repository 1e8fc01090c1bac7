"""Shared fixtures: real stores in temporary directories, fed through the real pipeline."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ima.ingest import Pipeline, ingest
from ima.store import Store

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def feed(store: Store, records: list[Any], **pipeline_options: Any) -> Pipeline:
    """Ingest `records` through a real pipeline and wait until they are committed."""
    pipeline = Pipeline(store, **pipeline_options)
    with pipeline:
        ingest(pipeline, records, source="test")
    return pipeline


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "data", commit_interval=0.05)
    yield s
    s.close()


def post(n: int | str, text: str, at: str = "2026-11-22T10:00:00Z", **extra: Any) -> dict:
    return {
        "id": str(n),
        "text": text,
        "created_at": at,
        "author": extra.pop("author", "alice"),
        **extra,
    }
