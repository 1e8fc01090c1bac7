"""Trends counted in a process of their own, following the log as any reader does.

Beside the pipeline, counting (items, bursts, stories) shared one interpreter lock with
committing: fed flat out over HTTP, an eighth of the writer's time went to it, and the
writer process was what limited ingest. Here it runs on another core, at a lower
priority (it may lag a moment; ingest and search should not wait). It opens the store
read-only and unsearchable (`Store.searchable`): it counts a post once the writer's index
has it, a commit interval later (a look every `POLL_S`), and its stories search the
index. Keeping a searchable copy of the newest posts here too had cost as much as the
counting. History goes to the same file as before, so `StoryView` readers see no
difference.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import time
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
    store = settings.open_store(searchable=False)
    if store.writable:  # the writer has gone: counting must never write posts
        store.close()
        log.error("trends found no writer holding the store; not counting")
        return
    trends = Trends(store)
    try:
        trends.follow()  # hears of posts as each look at the log finds them indexed
        while not stop.wait(POLL_S):
            store.refresh()
            if trends.ready.is_set():
                ready.set()
        # stopping: the writer has committed its last batch; its index has it within a
        # commit interval
        deadline = time.monotonic() + 2 * settings.commit_interval + 5
        while next(store.changes_since(store.last_seq), None) is not None:
            if time.monotonic() > deadline:
                log.error("the index did not catch up; the newest posts are not counted")
                break
            time.sleep(POLL_S)
            store.refresh()
    finally:
        trends.close()
        store.close()
