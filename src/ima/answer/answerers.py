"""Extractive answers computed in worker processes beside `ima serve`.

An answer costs several times what a search does, all of it Python. In the API
process every answer held the interpreter lock that searches also need, so under
load a search waited behind answers. Each answerer is a process of its own with its
own lock, at a lower scheduling priority than the API process and the writer, so the
operating system runs searches, then ingest, first when cores are short. Each opens
the store read-only and catches up with what the writer committed (`Store.refresh`)
before every answer, so an answer sees every post acknowledged before it was asked.

Answers voiced by an LLM stay in the API process's threads (see `ima serve --answerers`):
they mostly wait on the LLM, and they stream its sentences as they come.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from pathlib import Path
from typing import Any

from ima.answer.ask import ask
from ima.answer.model import Answer
from ima.errors import Unavailable
from ima.ingest.worker_process import exit_with_parent

log = logging.getLogger(__name__)

NICENESS = 10  # below the API (0) and the writer (5): searches, then ingest, come first
DEADLINE_S = 20.0  # by default, an answer still working after this long is stopped


class AnswerFailed(Unavailable):
    """An answer was stopped: past its deadline, or it took its answerer down twice."""


_store: Any = None
_vectors: Any = None
_deadline_s = DEADLINE_S


def _open(data_dir: str, vectors: bool, deadline_s: float) -> None:
    """In each answerer: open the store read-only (and vectors, if the writer embeds)."""
    global _store, _vectors, _deadline_s
    _deadline_s = deadline_s
    from ima.store import Store

    # not permitted, or not POSIX: run at the API process's priority
    with contextlib.suppress(OSError, AttributeError):
        os.nice(NICENESS)
    exit_with_parent()
    signal.signal(signal.SIGALRM, _past_deadline)
    _store = Store(Path(data_dir))
    if vectors:
        from ima.vectors.semantic import Vectors

        _vectors = Vectors.open(_store)


def _past_deadline(_signum: int, _frame: Any) -> None:
    raise AnswerFailed(f"the answer took longer than {_deadline_s:g} s and was stopped")


def _answer(question: str, as_of: datetime, options: dict[str, Any]) -> Answer:
    """In an answerer, within its deadline: the timer interrupts the work wherever it is
    (between two bytecodes), so no request can hold an answerer for longer."""
    signal.setitimer(signal.ITIMER_REAL, _deadline_s)
    try:
        _store.refresh()
        semantic = _vectors.semantic if _vectors is not None else None
        return ask(_store, question, as_of=as_of, semantic=semantic, **options)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _ready() -> int:
    return os.getpid()


class Answerers:
    """A pool of answerer processes over the store in `data_dir` (written by another)."""

    def __init__(
        self, data_dir: Path, processes: int, *, vectors: bool, deadline_s: float = DEADLINE_S
    ) -> None:
        if processes < 1:
            raise ValueError("answerers need at least one process")
        self.processes = processes
        self._args = (str(data_dir), vectors, deadline_s)
        self._lock = threading.Lock()
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(
            self.processes,
            mp_context=multiprocessing.get_context("spawn"),  # never fork a threaded server
            initializer=_open,
            initargs=self._args,
        )
        # spawn them all now, not on the first questions
        for future in [pool.submit(_ready) for _ in range(self.processes)]:
            future.result()
        return pool

    def answer(self, question: str, *, as_of: datetime, **options: Any) -> Answer:
        """`ask` in an answerer; `options` are its keyword arguments but `semantic` and a
        backend. Blocks the calling thread (not the interpreter lock) until it is done;
        raises `AnswerFailed` past the deadline. If an answerer died (killed, out of
        memory), the pool is started afresh and the question asked once more; a question
        that takes an answerer down a second time is not asked again."""
        for _ in range(2):
            answer = self._once(question, as_of, options)
            if answer is not None:
                return answer
        raise AnswerFailed("answering this stopped an answerer twice")

    def _once(self, question: str, as_of: datetime, options: dict[str, Any]) -> Answer | None:
        """The answer, or None when the answerer died under it (the pool is restarted)."""
        pool = self._pool
        try:
            return pool.submit(_answer, question, as_of, options).result()
        except BrokenProcessPool:
            self._restart(pool)
            return None

    def _restart(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:  # not already restarted by another request
                log.warning("an answerer process died; starting the answerers again")
                broken.shutdown(wait=False, cancel_futures=True)
                self._pool = self._start()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
