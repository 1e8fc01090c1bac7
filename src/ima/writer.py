"""The writer: the store's writing side, which `ima serve` runs in a process of its own.

The writer owns the sources, the ingest pipeline (and its preparing processes), the
index commits and embeddings; trends count in a process it starts
(`ima.trends.process`). `ima serve`'s API process opens the same store
read-only and catches up with it (`Store.refresh`) each time the writer says it
committed. Searches then never wait for the interpreter lock behind a batch being
written: the operating system decides who runs, and the writer runs at a lower
priority (`NICENESS`), so when cores are short, queries go first and ingest queues
(bounded: sources are pushed back, never memory grown).

`POST /v1/posts` is forwarded to the writer, which acknowledges a request's records
once their batch is committed; the API process catches up before it answers, so an
acknowledged post is searchable by the very next request, as in one process.

`InProcessWriter` offers the same face over a pipeline in the caller's own process
(tests, and programs that embed the API and run their own sources).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Protocol

from ima import runtime
from ima.config import Settings
from ima.errors import Unavailable
from ima.ingest import Ack, Pipeline, ingest, tune_gc
from ima.ingest.worker_process import exit_with_parent
from ima.sources import runner
from ima.sources import spec as spec_module
from ima.sources.base import Source
from ima.store import Store

log = logging.getLogger(__name__)

NICENESS = 5  # below the API process (0): when cores are short, queries run first
RESTART_MAX_WAIT_S = 30.0  # a writer that keeps dying is started again at most this often
START_TIMEOUT_S = 600  # opening a big store, or storing the demo's history, takes a while

#: One record's outcome, as `Ack` reports it: (post id or None, status, error or None)
Outcome = tuple[str | None, str, str | None]


# -- the messages between the API process and the writer (pickled over a pipe) -----------


@dataclass(frozen=True, slots=True)
class Write:
    """To the writer: ingest `records` as `source` (and the other sources `allowed`)."""

    number: int
    records: Sequence[Any]
    source: str
    allowed: frozenset[str] | None


@dataclass(frozen=True, slots=True)
class Stop:
    """To the writer: stop the sources, commit what was received, and end."""


@dataclass(frozen=True, slots=True)
class Ready:
    """From the writer: it holds the store and runs; each source's health."""

    sources: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Failed:
    """From the writer: it could not start, and why."""

    reason: str


@dataclass(frozen=True, slots=True)
class Committed:
    """From the writer: a batch was committed (catch up with the store)."""


@dataclass(frozen=True, slots=True)
class Status:
    """From the writer, every second: each source's health."""

    sources: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Acked:
    """From the writer: write request `number` is committed, with each record's outcome."""

    number: int
    outcomes: list[Outcome]


@dataclass(frozen=True, slots=True)
class Refused:
    """From the writer: write request `number` was not taken, and why."""

    number: int
    reason: str


FromWriter = Ready | Failed | Committed | Status | Acked | Refused


class WriterUnavailable(Unavailable):
    """The writer cannot take records (it failed, or it is stopping)."""


class Writer(Protocol):
    """What the API needs of the store's writing side."""

    async def start(self) -> None: ...

    async def write(
        self, records: Sequence[Any], source: str, allowed: frozenset[str] | None = None
    ) -> list[Outcome]:
        """Ingest `records` as `source` (records may claim only it and `allowed`, when
        given); returns each one's outcome once all are committed, and searchable by
        this process."""
        ...

    def sources(self) -> list[dict[str, Any]]:
        """Each source's health (`SourceHealth.snapshot`)."""
        ...

    def down(self) -> str | None:
        """Why the writer cannot take records now, or None when it can."""
        ...

    async def stop(self) -> None:
        """Stop the sources and commit everything received."""
        ...


def _collector(count: int, done: Callable[[list[Outcome]], None]) -> Ack:
    """An ack for `count` records that calls `done` with their outcomes, in order, once
    the last one is committed (the pipeline acknowledges in submission order)."""
    outcomes: list[Outcome] = []

    def ack(post_id: str | None, status: str, error: str | None) -> None:
        outcomes.append((post_id, status, error))
        if len(outcomes) == count:
            done(outcomes)

    return ack


def _resolve(future: asyncio.Future, value: Any) -> None:
    if not future.done():  # the request may have gone (its client disconnected)
        future.set_result(value)


def _fail(future: asyncio.Future, error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


class InProcessWriter:
    """Ingest through a pipeline in this process: for tests, and for programs that embed
    the API and feed the pipeline themselves (it runs no sources)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    async def start(self) -> None:
        """Nothing to start: the pipeline is running."""

    async def write(
        self, records: Sequence[Any], source: str, allowed: frozenset[str] | None = None
    ) -> list[Outcome]:
        loop = asyncio.get_running_loop()
        committed: asyncio.Future = loop.create_future()
        ack = _collector(
            len(records), lambda outcomes: loop.call_soon_threadsafe(_resolve, committed, outcomes)
        )
        try:
            await self.pipeline.submit_async(records, ack, source=source, allowed_sources=allowed)
        except RuntimeError as exc:
            raise WriterUnavailable(str(exc)) from exc
        return await committed

    def sources(self) -> list[dict[str, Any]]:
        return []

    def down(self) -> str | None:
        failure = self.pipeline.failure
        return None if failure is None else f"ingest failed: {type(failure).__name__}"

    async def stop(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.pipeline.close)


@dataclass
class WriterConfig:
    """What the writer process is to run (everything here crosses a process boundary)."""

    settings: Settings
    specs: list[spec_module.SourceSpec] = field(default_factory=list)
    workers: int = 1
    demo: bool = False
    log_level: int = logging.WARNING


class WriterProcess:
    """The writer in a child process; this process follows the store it writes.

    Should the writer die (killed, out of memory, a store it cannot write), requests in
    flight are refused with `WriterUnavailable`, `down` says why, and the writer is
    started again (after 1 s, doubling up to `RESTART_MAX_WAIT_S` while it keeps failing)."""

    def __init__(self, config: WriterConfig) -> None:
        self._config = config
        self._send_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future]] = {}
        self._health: list[dict[str, Any]] = []
        self._gone: str | None = None
        self._closing = threading.Event()
        self.restarts = 0
        self._conn, self._process = self._launch()
        self._store: Store | None = config.settings.open_store()
        self._receiver = threading.Thread(target=self._receive, name="ima-writer-link", daemon=True)
        self._receiver.start()

    def _launch(self) -> tuple[Connection, multiprocessing.process.BaseProcess]:
        """Start a writer process and wait until it has the store and runs."""
        context = multiprocessing.get_context("spawn")
        conn, child_end = context.Pipe()
        # not a daemon: it has processes of its own (ingest's preparers)
        process = context.Process(
            target=_writer_main, args=(child_end, self._config), name="ima-writer"
        )
        process.start()
        child_end.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not conn.poll(0.1):  # in steps: a server stopping meanwhile abandons the start
            if self._closing.is_set() or time.monotonic() > deadline:
                process.kill()
                process.join()
                raise WriterUnavailable(
                    "the server is stopping" if self._closing.is_set()
                    else f"the writer did not start within {START_TIMEOUT_S} s"
                )  # fmt: skip
        try:
            message = conn.recv()
        except EOFError:
            process.join()
            raise WriterUnavailable(
                f"the writer ended while starting (exit code {process.exitcode}; see its log)"
            ) from None
        if isinstance(message, Failed):
            process.join()
            raise WriterUnavailable(message.reason)
        self._health = message.sources
        return conn, process

    @property
    def store(self) -> Store:
        """The store, read-only, kept up with the writer."""
        assert self._store is not None
        return self._store

    @property
    def pid(self) -> int | None:
        return self._process.pid

    async def start(self) -> None:
        """Nothing to do: the writer runs from construction (it had to take the store)."""

    def _send(self, message: Write | Stop) -> None:
        with self._send_lock:
            self._conn.send(message)

    async def write(
        self, records: Sequence[Any], source: str, allowed: frozenset[str] | None = None
    ) -> list[Outcome]:
        if self._gone is not None:
            raise WriterUnavailable(self._gone)
        loop = asyncio.get_running_loop()
        number = next(self._ids)
        done: asyncio.Future = loop.create_future()
        self._pending[number] = (loop, done)
        try:
            # in a thread: when ingest pushes back, sending blocks, and it must not block
            # the event loop
            message = Write(number, records, source, allowed)
            await loop.run_in_executor(None, self._send, message)
            return await done
        except (BrokenPipeError, OSError) as exc:
            raise WriterUnavailable("the writer has stopped") from exc
        finally:
            self._pending.pop(number, None)

    def down(self) -> str | None:
        return self._gone

    def _receive(self) -> None:
        """Follows the writer, and starts it again whenever it dies."""
        wait = 1.0
        while True:
            started = time.monotonic()
            self._follow()
            if self._closing.is_set():  # `close` reaps it: one thread waits for a child
                self._gone = "the writer has stopped"
                self._fail_pending()
                return
            self._process.join(5)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
            self._gone = f"the writer stopped (exit code {self._process.exitcode}); restarting"
            self._fail_pending()
            log.error("%s", self._gone)
            ran = time.monotonic() - started  # a writer that ran a while is not crash-looping
            wait = 1.0 if ran > RESTART_MAX_WAIT_S else min(wait * 2, RESTART_MAX_WAIT_S)
            while not self._closing.wait(wait):
                try:
                    conn, process = self._launch()
                except WriterUnavailable as exc:
                    self._gone = f"{exc}; retrying"
                    log.error("could not restart the writer: %s", exc)
                    wait = min(wait * 2, RESTART_MAX_WAIT_S)
                    continue
                with self._send_lock:
                    self._conn, self._process = conn, process
                self.restarts += 1
                self._gone = None
                log.warning("the writer was restarted")
                break

    def _fail_pending(self) -> None:
        for loop, future in list(self._pending.values()):
            loop.call_soon_threadsafe(_fail, future, WriterUnavailable(self._gone or "stopped"))

    def _follow(self) -> None:
        """Catches the store up after every message from the writer (each follows a
        commit), then settles the requests it acknowledged; returns when it ends."""
        conn = self._conn
        while True:
            try:
                messages = [conn.recv()]
                while conn.poll():
                    messages.append(conn.recv())
            except (EOFError, OSError):
                return
            try:
                self.store.refresh()
            except Exception:  # a failed look is retried at the next commit
                log.exception("could not catch up with the writer")
            for message in messages:
                self._settle(message)

    def _settle(self, message: FromWriter) -> None:
        if isinstance(message, Status):
            self._health = message.sources
        elif isinstance(message, Acked | Refused):
            waiting = self._pending.get(message.number)
            if waiting is None:
                return
            loop, future = waiting
            if isinstance(message, Acked):
                loop.call_soon_threadsafe(_resolve, future, message.outcomes)
            else:
                error = WriterUnavailable(message.reason)
                loop.call_soon_threadsafe(_fail, future, error)

    def sources(self) -> list[dict[str, Any]]:
        return self._health

    async def stop(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    def close(self) -> None:
        """Ask the writer to finish (its sources stop, what it received is committed) and
        wait for it; then close the store this process follows."""
        self._closing.set()  # no restart begins now, and one under way is abandoned
        while True:
            with self._send_lock:
                process = self._process
                with contextlib.suppress(OSError):
                    self._conn.send(Stop())
            process.join(120)
            if process.is_alive():
                log.error("the writer did not stop within 120 s; killing it")
                process.kill()
                process.join()
            self._receiver.join(5)
            with self._send_lock:
                if self._process is process:  # not replaced by a restart meanwhile
                    break
        if self._store is not None:
            self._store.close()
            self._store = None


# -- in the writer process ---------------------------------------------------------------


class _Link:
    """The writer's end of the pipe; the pipeline, source and request threads all send."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._lock = threading.Lock()

    def send(self, message: FromWriter) -> None:
        with self._lock, contextlib.suppress(OSError):  # the API process is gone: we end too
            self.conn.send(message)


def _writer_main(conn: Connection, config: WriterConfig) -> None:
    exit_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the API process, which stops us
    with contextlib.suppress(OSError, AttributeError):  # not permitted, or not POSIX
        os.nice(NICENESS)
    tune_gc()
    sys.setswitchinterval(0.0005)  # as `ima` itself: commits do not wait behind counting
    logging.basicConfig(level=config.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    link = _Link(conn)
    store = config.settings.open_store(searchable=False)  # the API process searches
    if not store.writable:
        store.close()
        link.send(Failed("another ima process is writing this data directory"))
        return
    settings = config.settings
    try:
        with runtime.writing(store, settings, config.workers) as pipeline:
            sources = runtime.build_sources(config.specs)
            if config.demo:
                from ima import demo as demo_stream

                history, replay_source = demo_stream.prepare(settings.data_dir)
                ingest(pipeline, history, source=demo_stream.SOURCE)
                sources.append(replay_source)
            store.listeners.append(lambda _originals: link.send(Committed()))
            link.send(Ready([s.health.snapshot() for s in sources]))
            asyncio.run(_run(link, pipeline, sources))
    except RuntimeError as exc:  # the store failed: the API process starts us again
        log.error("%s", exc)
    finally:
        store.close()


async def _run(link: _Link, pipeline: Pipeline, sources: list[Source]) -> None:
    """Runs the sources until the API process says stop (or goes); a thread takes its
    requests meanwhile."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    threading.Thread(
        target=_take_requests, args=(link, pipeline, lambda: loop.call_soon_threadsafe(stop.set)),
        name="ima-writer-requests", daemon=True,
    ).start()  # fmt: skip
    await runner.run(
        sources, pipeline, state_dir=pipeline.store.data_dir / "sources", stop=stop,
        on_status=lambda report: link.send(Status(report["sources"])), until_stopped=True,
    )  # fmt: skip


def _take_requests(link: _Link, pipeline: Pipeline, stop: Callable[[], None]) -> None:
    while True:
        try:
            message = link.conn.recv()
        except (EOFError, OSError):
            break
        if not isinstance(message, Write):
            break

        def acked(outcomes: list[Outcome], number: int = message.number) -> None:
            link.send(Acked(number, outcomes))

        try:  # blocks while ingest's queue is full: the API process waits, in a thread
            ack = _collector(len(message.records), acked)
            pipeline.submit_many(
                message.records, ack, source=message.source, allowed_sources=message.allowed
            )
        except RuntimeError as exc:  # the store failed: end, and be started again
            link.send(Refused(message.number, str(exc)))
            break
    stop()
