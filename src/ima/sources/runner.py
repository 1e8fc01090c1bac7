"""Runs any number of sources concurrently into one ingest pipeline.

Every source is a task on one event loop; they share the pipeline's bounded queue,
so together they can never outrun the store. Once a second the sources' health is
reported (the status line) and written to `status.json` beside their cursors,
where `ima stats` finds it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ima.ingest import Pipeline
from ima.sources.base import Sink, Source

log = logging.getLogger(__name__)

STATUS_FILE = "status.json"


def read_status(state_dir: Path) -> dict[str, Any] | None:
    """The last health report `run` wrote, or None if no stream has run here."""
    try:
        return json.loads((state_dir / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None


def _write_status(state_dir: Path, report: dict[str, Any]) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = state_dir / (STATUS_FILE + ".tmp")
    tmp.write_text(json.dumps(report))
    os.replace(tmp, state_dir / STATUS_FILE)


def status_line(report: dict[str, Any]) -> str:
    """One line for a terminal: each source's rate, lag and trouble, then ingest totals."""
    parts = []
    for s in report["sources"]:
        state = "up" if s["connected"] else ("done" if s.get("finished") else "down")
        lag = "" if s["lag_s"] is None else f" lag {s['lag_s']:.1f}s"
        errors = sum(s["errors"].values())
        trouble = f" err {errors}" if errors else ""
        reconnects = f" reconn {s['reconnects']}" if s["reconnects"] else ""
        parts.append(f"{s['name']} {state} {s['events_per_s']:.0f}/s{lag}{trouble}{reconnects}")
    ingest = report["ingest"]
    stored = ingest.get("new", 0) + ingest.get("edited", 0)
    parts.append(f"stored {stored:,} deleted {ingest.get('deleted', 0):,}")
    return " | ".join(parts)


async def run(
    sources: Sequence[Source],
    pipeline: Pipeline,
    *,
    state_dir: Path,
    stop: asyncio.Event,
    on_status: Callable[[dict[str, Any]], None] | None = None,
    status_every: float = 1.0,
    until_stopped: bool = False,
) -> None:
    """Run until `stop` is set or (unless `until_stopped`: the pipeline has other
    users) every source has finished (only files finish).

    Then, in order: sources stop reading, the pipeline commits everything queued and
    stops, and sources settle what waited on those commits (broker acknowledgements).
    """
    sink = Sink(pipeline, asyncio.get_running_loop())
    tasks = {asyncio.create_task(s.run(sink), name=s.name): s for s in sources}
    finished: set[str] = set()

    def report() -> dict[str, Any]:
        return {
            "at": time.time(),
            "sources": [{**s.health.snapshot(), "finished": s.name in finished} for s in sources],
            "ingest": pipeline.stats.as_dict(),
        }

    stopper = asyncio.create_task(stop.wait())
    try:
        pending = set(tasks)
        while (pending or until_stopped) and not stop.is_set():
            done, pending = await asyncio.wait(
                pending | {stopper}, timeout=status_every, return_when=asyncio.FIRST_COMPLETED
            )
            pending.discard(stopper)
            for task in done - {stopper}:
                source = tasks[task]
                finished.add(source.name)
                if not task.cancelled() and task.exception() is not None:
                    source.health.error("crashed", repr(task.exception())[:200])
                    log.error("source %s stopped: %r", source.name, task.exception())
            snapshot = report()
            _write_status(state_dir, snapshot)
            if on_status is not None:
                on_status(snapshot)
    finally:
        stopper.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(None, pipeline.close)
        await asyncio.sleep(0.01)  # commit callbacks run on this loop
        for source in sources:
            await source.finish()
        _write_status(state_dir, report())
