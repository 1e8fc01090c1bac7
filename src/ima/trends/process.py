"""Trends counted in a process of their own, following the log as any reader does.

Beside the pipeline, counting (items, bursts, stories) shared one interpreter lock with
committing: fed flat out over HTTP, an eighth of the writer's time went to it, and the
writer process was what limited ingest. Here it runs on another core, at a lower
priority (it may lag a moment; ingest and search should not wait). It opens the store
read-only, catches up with each commit (a look at the log every `POLL_S`, the posts
with the terms ingest stored: nothing is analyzed twice) and records
history to the same file as before, so `StoryView` readers see no difference.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
from multiprocessing.synchronize import Event

from ima.config import Settings
from ima.ingest.worker_process import exit_with_parent

log = logging.getLogger(__name__)

POLL_S = 0.05  # how often the log is looked at for new commits
NICENESS = 10  # below the writer (5) and the API process (0)
STOP_S = 60.0  # to count what was committed before stopping, then record it


class TrendsProcess:
    """Counts trends over the store in `settings.data_dir` until `close`; start it after
    the writer holds the store (this one only reads it)."""

    def __init__(self, settings: Settings) -> None:
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        #: set once the counts are current: the log read back, new commits followed
        self.ready = context.Event()
        self._process = context.Process(
            target=_main, args=(settings, self._stop, self.ready), name="ima-trends", daemon=True
        )
        self._process.start()

    def close(self) -> None:
        """Count everything committed so far, record it, and end (a reading back of the
        log still under way is cut short: a later start reads it again)."""
        self._stop.set()
        self._process.join(STOP_S)
        if self._process.is_alive():
            log.error("trends did not stop within %.0f s; ending them", STOP_S)
            self._process.kill()
            self._process.join()


def _main(settings: Settings, stop: Event, ready: Event) -> None:
    from ima.ingest import tune_gc
    from ima.trends.tracker import Trends

    exit_with_parent()
    with contextlib.suppress(OSError, AttributeError):  # not permitted, or not POSIX
        os.nice(NICENESS)
    tune_gc()
    store = settings.open_store()
    if store.writable:  # the writer has gone: counting must never write posts
        store.close()
        log.error("trends found no writer holding the store; not counting")
        return
    trends = Trends(store)
    try:
        trends.follow()  # hears what each look at the log finds
        while True:
            stopping = stop.wait(POLL_S)
            store.refresh()  # stories search the newest posts too
            if trends.ready.is_set():
                ready.set()
            if stopping:
                break
    finally:
        trends.close()
        store.close()
