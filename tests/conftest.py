"""Shared fixtures: real stores in temporary directories, fed through the real pipeline."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
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


def stream_until(
    store: Store,
    sources: list,
    until: Callable[[], bool],
    *,
    timeout: float = 15.0,
    **pipeline_options: Any,
) -> Pipeline:
    """Run live sources into `store` through a real pipeline until `until()` holds
    (checked against what is committed), then stop them and commit what is queued."""
    from ima.sources import runner

    pipeline = Pipeline(store, **pipeline_options)

    async def main() -> None:
        stop = asyncio.Event()

        async def watch() -> None:
            deadline = time.monotonic() + timeout
            try:
                while not await asyncio.to_thread(until):
                    if time.monotonic() > deadline:
                        health = [s.health.snapshot() for s in sources]
                        raise AssertionError(f"condition not met in {timeout}s: {health}")
                    await asyncio.sleep(0.02)
            finally:
                stop.set()

        watcher = asyncio.create_task(watch())
        await runner.run(
            sources, pipeline, state_dir=store.data_dir / "sources", stop=stop, status_every=0.05
        )
        await watcher

    with pipeline:
        asyncio.run(main())
    return pipeline


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 15) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def cited_ids(answer: Any) -> list[str]:
    """The ids of the posts an answer cites, in its order."""
    return [c.post.id for c in answer.citations]


def assert_verified(answer: Any) -> None:
    """Every sentence of the answer is backed by the posts it cites (`ima.answer.verify`)."""
    from ima.answer import verify

    assert verify.problems(answer.text, [c.post for c in answer.citations], answer.as_of) == []
