"""`ima bench fleet`: the fleet under churn, with slow and lying workers, on real processes.

A NATS cluster of three `nats-server` processes (cluster routes on loopback), real
`ima worker` processes, and the supervisor and verifier of `ima serve` over a real
store of generated posts. It measures: embedding throughput with 1, 2 and 4 workers
(and each worker's CPU seconds per text, so the figure for N machines can be
computed) and an embedding worker's peak memory, an LLM worker's, chat latency with
four fast compose workers and with one of them slow (2 s before it answers), the same
run, and so for streamed answers (generate: the slow one 2 s before its first piece, the
LLM a stand-in that streams a fixed answer at a steady pace, so that only the fleet
is measured); then a steady load of chats and embedding
jobs while 30% of the workers are SIGKILLed every few seconds and new ones start, and
one NATS server is SIGKILLed midway. Every chat answer is compared with the answer the
local composer gives (an unverified output is one that differs); a lost request is one
that raised. The module is also the program of the slow and lying workers
(`python -m ima.bench.fleet URL NAME KINDS FAULT LLM_URL`).
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from ima.bench.serve import cpu_seconds, free_port, memory_mb, percentile
from ima.fleet.protocol import Composed, ComposeJob, EmbedJob, GenerateJob
from ima.fleet.worker import Worker, rss_mb

SLOW_S = 2.0
KILL_EVERY_S = 4.0
CANNED = "canned"  # `Workers.start(llm=CANNED)`: a worker whose LLM is `CannedLLM`
Progress = Callable[[str], None]


def _quiet(_message: str) -> None:
    """Progress nobody reads."""


class ServerExited(RuntimeError):
    """A nats-server process ended while it was awaited."""


class NatsCluster:
    """`servers` nats-server processes routed to each other on loopback, in `root`."""

    def __init__(self, root: Path, servers: int = 3, auth_file: Path | None = None,
                 jetstream: bool = False) -> None:  # fmt: skip
        self.root = root
        self.auth_file = auth_file
        self.jetstream = jetstream  # each server keeps its JetStream files under root
        self.ports = [free_port() for _ in range(servers)]
        self.routes = [free_port() for _ in range(servers)]
        self.processes: list[subprocess.Popen | None] = [None] * servers
        root.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return ",".join(self.url_of(i) for i in range(len(self.ports)))

    def url_of(self, i: int) -> str:
        return f"nats://127.0.0.1:{self.ports[i]}"

    def pid_file(self, i: int) -> Path:
        return self.root / f"nats-{i}.pid"

    def start(self, attempts: int = 3) -> NatsCluster:
        """Start every server. A port picked free may be taken by another process before
        its server binds it (that server then exits at once): all start again, on fresh
        ports, with nothing kept from the try."""
        for attempt in range(attempts):
            for i in range(len(self.ports)):
                self.start_server(i)
            try:
                for i in range(len(self.ports)):
                    self.wait_up(i)
                return self
            except ServerExited:
                self.close()
                if attempt == attempts - 1:
                    raise
                self.ports = [free_port() for _ in self.ports]
                self.routes = [free_port() for _ in self.routes]
                for i in range(len(self.ports)):
                    shutil.rmtree(self.root / f"js-{i}", ignore_errors=True)
        return self

    def start_server(self, i: int) -> None:
        routes = [f"nats://127.0.0.1:{p}" for j, p in enumerate(self.routes) if j != i]
        conf = self.root / f"nats-{i}.conf"
        text = (f"listen: 127.0.0.1:{self.ports[i]}\nserver_name: ima-{i}\n"
                f"pid_file: {self.pid_file(i)}\n"
                f"cluster {{\n  name: ima\n  listen: 127.0.0.1:{self.routes[i]}\n"
                f"  routes: [{', '.join(routes)}]\n}}\n")  # fmt: skip
        if self.jetstream:
            text += f"jetstream {{\n  store_dir: {self.root / f'js-{i}'}\n}}\n"
        if self.auth_file is not None:
            text += f"include {os.path.relpath(self.auth_file, self.root)}\n"  # relative only
        conf.write_text(text)
        log = open(self.root / f"nats-{i}.log", "ab")  # noqa: SIM115 (the process keeps it)
        self.processes[i] = subprocess.Popen(["nats-server", "-c", str(conf)], stdout=log,
                                             stderr=subprocess.STDOUT)  # fmt: skip
        log.close()

    def wait_up(self, i: int, timeout: float = 15) -> None:
        """Until server `i` listens on its client and route ports; `ServerExited` (with
        its log's last line) if it has ended instead."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.ports[i]), timeout=0.5).close()
                if self._routing(i):
                    return
            except OSError:
                pass
            process = self.processes[i]
            if process is not None and process.poll() is not None:
                lines = (self.root / f"nats-{i}.log").read_text(errors="replace").splitlines()
                raise ServerExited(f"nats-server {i} exited: {lines[-1] if lines else '?'}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"nats-server {i} did not start")
            time.sleep(0.05)

    def _routing(self, i: int) -> bool:
        """Whether server `i` says it listens on its route port (it binds that one after
        its client port, and exits if it cannot; a connection would not tell it from the
        process that took the port)."""
        said = f"Listening for route connections on 127.0.0.1:{self.routes[i]}"
        return said in (self.root / f"nats-{i}.log").read_text(errors="replace")

    def kill(self, i: int) -> None:
        process = self.processes[i]
        if process is not None:
            process.send_signal(signal.SIGKILL)
            process.wait()
            self.processes[i] = None

    def reload(self) -> None:
        for i, process in enumerate(self.processes):
            if process is not None:
                os.kill(int(self.pid_file(i).read_text()), signal.SIGHUP)

    def close(self) -> None:
        for i in range(len(self.processes)):
            process = self.processes[i]
            if process is not None:
                process.terminate()
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    self.kill(i)
                self.processes[i] = None


@dataclass
class Workers:
    """Worker processes of a fleet, started and killed by name."""

    url: str
    log_dir: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    kinds: dict[str, tuple[str, ...]] = field(default_factory=dict)
    started: int = 0

    def start(self, kinds: tuple[str, ...], fault: str = "", name: str = "", llm: str = ""
              ) -> str:  # fmt: skip
        """Start a worker (`llm`: the LLM server a generating one fronts)."""
        self.started += 1
        name = name or f"{fault or 'w'}{self.started}"
        if fault or llm == CANNED:
            command = [sys.executable, "-m", "ima.bench.fleet", self.url, name, ",".join(kinds),
                       fault, llm]  # fmt: skip
        else:
            command = [sys.executable, "-m", "ima", "worker", "--fleet", self.url, "--name", name,
                       *(f"--{k}" for k in kinds if k != "generate"),
                       *(["--llm", llm] if "generate" in kinds else [])]  # fmt: skip
        log = open(self.log_dir / f"worker-{name}.log", "ab")  # noqa: SIM115
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.processes[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                env=env)  # fmt: skip
        self.kinds[name] = kinds
        log.close()
        return name

    def kill(self, name: str) -> None:
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait()

    def cpu_s(self, name: str) -> float:
        """CPU seconds (user + system) the worker has used so far."""
        return cpu_seconds(self.processes[name].pid)

    def peak_rss_mb(self, name: str) -> float:
        return memory_mb(self.processes[name].pid, "VmHWM")

    def close(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.clear()


def wait_live(supervisor: Any, kind: str, names: list[str], timeout: float = 60) -> None:
    """Until every worker named is live for `kind` at the supervisor."""
    deadline = time.monotonic() + timeout
    while not set(names) <= set(supervisor.live(kind)):
        if time.monotonic() > deadline:
            raise RuntimeError(f"workers {names} did not join: live {supervisor.live(kind)}")
        time.sleep(0.05)


# a store of generated posts about a few events, and questions about them

_EVENTS = [
    ("harbor bridge", "The harbor bridge {v} at {h}:{m:02d} after {n} hours of repairs, "
                      "officials said."),
    ("river festival", "The river festival {v}: {n} thousand people came to the east bank."),
    ("metro line", "The metro line 4 {v} at {h}:{m:02d}; {n} trains are running late."),
    ("stadium", "The stadium roof {v} during the storm, {n} fans were moved to safety."),
    ("airport", "The airport terminal B {v} at {h}:{m:02d} with {n} flights delayed."),
    ("water supply", "The water supply in the old town {v}; {n} streets are affected."),
]  # fmt: skip
_VERBS = ["reopened", "closed", "was damaged", "was inspected", "is back to normal"]
QUESTIONS = [
    "Is the harbor bridge open?", "How many people came to the river festival?",
    "What happened on metro line 4?", "What happened to the stadium roof?",
    "How many flights are delayed at the airport?", "What about the water supply in the old town?",
]  # fmt: skip


def corpus(posts: int, now: datetime, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(posts):
        _, template = _EVENTS[i % len(_EVENTS)]
        at = now - timedelta(minutes=rng.randint(1, 600))
        text = template.format(v=rng.choice(_VERBS), h=rng.randint(0, 23), m=rng.randint(0, 59),
                               n=rng.randint(2, 90))  # fmt: skip
        out.append({"id": str(i), "text": text, "created_at": at.isoformat(),
                    "author": f"user{rng.randint(1, posts)}"})  # fmt: skip
    return out


def build_store(data_dir: Path, posts: int, now: datetime) -> Any:
    from ima.ingest import Pipeline, ingest
    from ima.store import Store

    store = Store(data_dir, commit_interval=0.05)
    with Pipeline(store) as pipeline:
        ingest(pipeline, corpus(posts, now), source="bench")
    return store


# the slow and the lying workers


class CannedLLM:
    """Stands for an LLM in the streaming benchmark: `ANSWER`, a piece each `PIECE_S`
    (about 100 tokens a second), whatever the prompt: the fleet is what is measured."""

    name = CANNED
    ANSWER = ("The harbor bridge reopened at 9:15 after 12 hours of repairs [1]. Traffic "
              "is back to normal, police said [2].")  # fmt: skip
    PIECE_S = 0.01

    def stream(self, request: Any, cancel: threading.Event | None = None) -> Iterator[str]:
        for start in range(0, len(self.ANSWER), 7):
            time.sleep(self.PIECE_S)
            yield self.ANSWER[start : start + 7]


class SlowWorker(Worker):
    """Adds `SLOW_S` seconds before each answer, or a stream's first piece (a loaded or
    far-away machine)."""

    def compose(self, job: ComposeJob) -> Composed:
        time.sleep(SLOW_S)
        return super().compose(job)

    def embed(self, job: EmbedJob) -> np.ndarray:
        time.sleep(SLOW_S)
        return super().embed(job)

    def generate(self, job: GenerateJob) -> Iterator[str]:
        time.sleep(SLOW_S)
        yield from super().generate(job)


class LyingWorker(Worker):
    """Fabricates: a cited claim the post does not make, and vectors of its own."""

    def compose(self, job: ComposeJob) -> Composed:
        claim = "Officials confirmed 999 people were hurt at the harbor bridge"
        return Composed(f"{claim} [1].", True, [(0, claim)])

    def embed(self, job: EmbedJob) -> np.ndarray:
        vectors = np.random.default_rng().standard_normal((len(job.texts), self.embedder.dim))
        return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


class DyingWorker(Worker):
    """Streams half an answer, then dies (SIGKILL: a machine switched off mid-answer)."""

    def generate(self, job: GenerateJob) -> Iterator[str]:
        pieces = list(super().generate(job))
        yield from pieces[: len(pieces) // 2]
        time.sleep(0.2)  # let the pieces go out before the end
        os.kill(os.getpid(), signal.SIGKILL)


class _ModelName:
    """Stands for the embedder of a lying worker that never runs the model (it says it
    does: its vectors are what give it away)."""

    def __init__(self) -> None:
        from ima.vectors.embedder import E5

        self.name, self.dim = E5.name, 384


def faulty_main(argv: list[str]) -> None:
    from ima.answer.llm import OpenAICompatible

    url, name, kinds, fault, llm = argv
    kinds_tuple = tuple(kinds.split(","))
    embedder: Any = None
    if "embed" in kinds_tuple:
        if fault == "liar":
            embedder = _ModelName()
        else:
            from ima.vectors.embedder import E5

            embedder = E5()
    backend = CannedLLM() if llm == CANNED else OpenAICompatible(llm) if llm else None
    faulty = {"slow": SlowWorker, "liar": LyingWorker, "dies": DyingWorker}.get(fault, Worker)
    worker = faulty(url, name, kinds_tuple, embedder, backend)

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await worker.run(stop)

    asyncio.run(main())


# the benchmark


@dataclass
class ChatLoad:
    """Chats through the fleet's answerer, each compared with the local composer's answer."""

    store: Any
    answerer: Any
    now: datetime
    latencies: list[float] = field(default_factory=list)
    asked: int = 0
    lost: int = 0
    unverified: int = 0
    local: int = 0
    errors: list[str] = field(default_factory=list)
    _expected: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def expected(self, question: str) -> str:
        from ima.answer.ask import ask

        with self._lock:
            if question not in self._expected:
                self._expected[question] = ask(self.store, question, as_of=self.now).text
            return self._expected[question]

    def one(self, question: str) -> None:
        from ima.fleet.supervisor import ROUTE

        holder: dict[str, str] = {}
        ROUTE.set(holder)
        started = time.perf_counter()
        try:
            answer = self.answerer.answer(question, as_of=self.now, persona="regular")
        except Exception as exc:  # a lost request: counted, and the first few kept
            with self._lock:
                self.lost += 1
                if len(self.errors) < 5:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
            return
        took = time.perf_counter() - started
        with self._lock:
            self.asked += 1
            self.latencies.append(took)
            self.local += holder.get("route") == "local"
        if answer.text != self.expected(question):
            with self._lock:
                self.unverified += 1

    def run(self, requests: int, clients: int, rng: random.Random) -> None:
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(self.one, [rng.choice(QUESTIONS) for _ in range(requests)]))

    def run_for(self, seconds: float, clients: int, rng: random.Random) -> None:
        end = time.monotonic() + seconds

        def client(seed: int) -> None:
            mine = random.Random(seed)
            while time.monotonic() < end:
                self.one(mine.choice(QUESTIONS))

        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(client, [rng.randrange(1 << 30) for _ in range(clients)]))

    def summary(self) -> dict[str, Any]:
        return {"answered": self.asked, "lost": self.lost, "unverified": self.unverified,
                "local_fallbacks": self.local,
                "p50_ms": round(percentile(self.latencies, 50) * 1000, 1),
                "p99_ms": round(percentile(self.latencies, 99) * 1000, 1),
                "errors": self.errors}  # fmt: skip


def _texts(n: int, rng: random.Random) -> list[str]:
    return [t["text"] for t in corpus(n, datetime.now(UTC), seed=rng.randrange(1000))]


def _embedding(root: Path, cluster: NatsCluster, local: Any, progress: Progress,
               texts: int) -> dict[str, Any]:  # fmt: skip
    """Texts per second with 1, 2 and 4 embedding workers, and per worker CPU seconds per
    text; the local model's rate in the same run as the baseline."""
    from ima.fleet.embed import FleetEmbedder
    from ima.fleet.supervisor import Supervisor

    rng = random.Random(1)
    sample = _texts(texts, rng)
    started = time.perf_counter()
    local.passages(sample)
    local_rate = round(texts / (time.perf_counter() - started), 1)
    figures: dict[str, Any] = {"texts": texts, "local_texts_per_s": local_rate}
    rows = []
    rss = 0.0
    for count in (1, 2, 4):
        workers = Workers(cluster.url, root)
        supervisor = Supervisor(cluster.url).start()
        try:
            names = [workers.start(("embed",), name=f"e{count}-{i}") for i in range(count)]
            wait_live(supervisor, "embed", names)
            embedder = FleetEmbedder(supervisor, local, seed=count)
            embedder.passages(sample[: 16 * count])  # warm up: each worker's first job
            cpu = {n: workers.cpu_s(n) for n in names}
            started = time.perf_counter()
            embedder.passages(sample)
            took = time.perf_counter() - started
            used = sum(workers.cpu_s(n) - cpu[n] for n in names)
            rss = max([rss, *(workers.peak_rss_mb(n) for n in names)])
            rows.append({"workers": count, "texts_per_s": round(texts / took, 1),
                         "worker_cpu_s_per_text": round(used / texts, 4),
                         "embedded_locally": embedder.fallback})  # fmt: skip
            progress(f"embedding with {count} workers: {rows[-1]['texts_per_s']} texts/s")
        finally:
            supervisor.close()
            workers.close()
    figures["by_workers"] = rows
    figures["worker_peak_rss_mb"] = round(rss, 1)
    return figures


def _fast_then_one_slow(root: Path, cluster: NatsCluster, kind: str, what: str,
                        measure: Callable[[Any, Any, str, str], dict[str, Any]],
                        progress: Progress) -> dict[str, Any]:  # fmt: skip
    """`measure(workers, supervisor, label, fault)` with four fast workers of `kind`, then
    with one of the four slow (`fault` "slow"); each run's summary and the p99 ratio."""
    from ima.fleet.supervisor import Supervisor

    out: dict[str, Any] = {}
    for label, fault in (("four_fast", ""), ("one_slow_in_four", "slow")):
        workers = Workers(cluster.url, root)
        supervisor = Supervisor(cluster.url, seed=3).start()
        try:
            out[label] = measure(workers, supervisor, label, fault)
            out[label]["hedges"] = supervisor.count("hedges", kind)
            progress(f"{what}, {label}: p99 {out[label]['p99_ms']} ms")
        finally:
            supervisor.close()
            workers.close()
    fast, slow = out["four_fast"]["p99_ms"], out["one_slow_in_four"]["p99_ms"]
    out["p99_ratio"] = round(slow / fast, 2) if fast else None
    return out


def hedging_run(root: Path, cluster: NatsCluster, store: Any, now: datetime, requests: int,
                progress: Progress = _quiet) -> dict[str, Any]:  # fmt: skip
    """Chat p99 with four fast compose workers, then with one of the four slow: it joins
    after the warm-up, as a new worker whose speed is not known yet."""
    from ima.fleet.answer import FleetAnswerer
    from ima.fleet.serving import local_answer

    def measure(workers: Any, supervisor: Any, label: str, fault: str) -> dict[str, Any]:
        names = [workers.start(("compose",), name=f"{label[:4]}{i}") for i in range(3)]
        wait_live(supervisor, "compose", names)
        answerer = FleetAnswerer(store, supervisor, local_answer(store, None, None))
        load = ChatLoad(store, answerer, now)
        load.run(30, 2, random.Random(5))  # warm-up: the p95 the hedges wait for
        fourth = workers.start(("compose",), fault=fault, name=f"{label[:4]}3{fault}")
        wait_live(supervisor, "compose", [fourth])
        load = ChatLoad(store, load.answerer, now, _expected=load._expected)
        load.run(requests, 2, random.Random(6))
        return load.summary()

    return _fast_then_one_slow(root, cluster, "compose", "chats", measure, progress)


@dataclass
class StreamLoad:
    """Streamed answers through the fleet, each compared with `CannedLLM.ANSWER`: a piece
    repeated or dropped is a wrong stream."""

    supervisor: Any
    first_piece: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    lost: int = 0
    wrong: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def one(self, _: int) -> None:
        from ima.answer.llm import Request
        from ima.fleet.generate import FleetBackend

        request = Request([{"role": "user", "content": "Is the harbor bridge open?"}])
        started = time.perf_counter()
        pieces: list[str] = []
        try:
            for piece in FleetBackend(self.supervisor).stream(request):
                if not pieces:
                    first = time.perf_counter() - started
                pieces.append(piece)
        except Exception:  # a lost stream: counted
            with self._lock:
                self.lost += 1
            return
        with self._lock:
            self.latencies.append(time.perf_counter() - started)
            self.first_piece.append(first)
            self.wrong += "".join(pieces) != CannedLLM.ANSWER

    def run(self, streams: int, clients: int) -> None:
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(self.one, range(streams)))

    def summary(self) -> dict[str, Any]:
        return {"answered": len(self.latencies), "lost": self.lost, "wrong": self.wrong,
                "first_piece_p50_ms": round(percentile(self.first_piece, 50) * 1000, 1),
                "first_piece_p99_ms": round(percentile(self.first_piece, 99) * 1000, 1),
                "p99_ms": round(percentile(self.latencies, 99) * 1000, 1)}  # fmt: skip


def stream_hedging_run(root: Path, cluster: NatsCluster, streams: int,
                       progress: Progress = _quiet) -> dict[str, Any]:  # fmt: skip
    """Streamed answers' p99 with four fast generate workers, then with one of the four
    slow to its first piece, joining after the warm-up (`hedging_run`, for streams)."""

    def measure(workers: Any, supervisor: Any, label: str, fault: str) -> dict[str, Any]:
        names = [workers.start(("generate",), name=f"g{label[:4]}{i}", llm=CANNED)
                 for i in range(3)]  # fmt: skip
        wait_live(supervisor, "generate", names)
        StreamLoad(supervisor).run(30, 2)  # warm-up: the p95 the hedges wait for
        fourth = workers.start(("generate",), fault=fault, name=f"g{label[:4]}3{fault}",
                               llm=CANNED)  # fmt: skip
        wait_live(supervisor, "generate", [fourth])
        load = StreamLoad(supervisor)
        load.run(streams, 2)
        return load.summary()

    return _fast_then_one_slow(root, cluster, "generate", "streams", measure, progress)


def churn_run(root: Path, cluster: NatsCluster, store: Any, now: datetime, local: Any,
              workers_n: int, churn: float, minutes: float, progress: Progress = _quiet
              ) -> dict[str, Any]:  # fmt: skip
    """Chats and embedding jobs while `churn` of the workers are SIGKILLed every few
    seconds (and as many new ones started), and one NATS server is SIGKILLed midway."""
    from ima.fleet.answer import FleetAnswerer
    from ima.fleet.embed import FleetEmbedder
    from ima.fleet.serving import local_answer
    from ima.fleet.supervisor import Supervisor

    rng = random.Random(11)
    workers = Workers(cluster.url, root)
    supervisor = Supervisor(cluster.url, seed=4).start()
    kills = 0
    embed_jobs = {"batches": 0, "lost": 0, "off_model": 0}
    try:
        kinds = [("compose",) if i % 2 == 0 else ("embed",) for i in range(workers_n)]
        names = [workers.start(k) for k in kinds]
        composers = [n for n, k in zip(names, kinds, strict=True) if k == ("compose",)]
        wait_live(supervisor, "compose", composers)
        answerer = FleetAnswerer(store, supervisor, local_answer(store, None, None))
        load = ChatLoad(store, answerer, now)
        embedder = FleetEmbedder(supervisor, local, seed=9)
        sample = _texts(64, rng)
        truth = local.passages(sample[:16])
        seconds = minutes * 60
        end = time.monotonic() + seconds
        stop = threading.Event()

        def embed_load() -> None:
            while not stop.is_set():
                try:
                    vectors = embedder.passages(sample[:16])
                    embed_jobs["batches"] += 1
                    if float(np.min(np.sum(vectors * truth, axis=1))) < 0.99:
                        embed_jobs["off_model"] += 1
                except Exception:  # a lost job: counted
                    embed_jobs["lost"] += 1

        def chaos() -> None:
            nonlocal kills
            server_killed = False
            while not stop.wait(KILL_EVERY_S):
                alive = list(workers.processes)
                for name in rng.sample(alive, max(1, math.ceil(churn * len(alive)))):
                    kinds = workers.kinds[name]
                    workers.kill(name)
                    kills += 1
                    workers.start(kinds)
                if not server_killed and time.monotonic() > end - seconds / 2:
                    server_killed = True
                    victim = rng.randrange(len(cluster.ports))
                    cluster.kill(victim)
                    progress(f"SIGKILLed nats-server {victim}")

        threads = [threading.Thread(target=embed_load), threading.Thread(target=chaos)]
        for thread in threads:
            thread.start()
        load.run_for(seconds, 2, rng)
        stop.set()
        for thread in threads:
            thread.join()
        figures = load.summary()
        figures.update(workers=workers_n, churn=churn, minutes=minutes, workers_killed=kills,
                       embed=embed_jobs,
                       retries=supervisor.count("retries", "compose"),
                       hedges=supervisor.count("hedges", "compose"),
                       quarantined=[w["name"] for w in supervisor.snapshot()
                                    if w["state"] == "quarantined"])  # fmt: skip
        return figures
    finally:
        supervisor.close()
        workers.close()


def llm_worker_rss(root: Path, cluster: NatsCluster, progress: Progress = _quiet,
                   wait_s: float = 180) -> dict[str, Any]:  # fmt: skip
    """Peak memory of `ima worker --llm embedded` once its model is loaded and generating
    (llama-cpp-python and the bundled gemma3-270m model; skipped when not installed)."""
    import importlib.util

    from ima.answer.llm import Request
    from ima.fleet.generate import FleetBackend
    from ima.fleet.supervisor import Supervisor

    if importlib.util.find_spec("llama_cpp") is None:
        return {"skipped": "llama-cpp-python is not installed (pip install 'ima[llm]')"}
    workers = Workers(cluster.url, root)
    supervisor = Supervisor(cluster.url).start()
    try:
        name = workers.start(("generate",), name="llm", llm="embedded")
        wait_live(supervisor, "generate", [name])
        started = time.monotonic()
        request = Request([{"role": "user", "content": "Say: the harbor bridge reopened."}],
                          max_tokens=16)  # fmt: skip
        answered: list[str] = []

        def ask() -> None:
            try:
                answered.append("".join(FleetBackend(supervisor).stream(request)))
            except Exception as exc:  # slow first token on a busy machine: reported
                answered.append(f"({type(exc).__name__}: {exc})")

        asker = threading.Thread(target=ask)
        asker.start()
        asker.join(wait_s)
        peak = workers.peak_rss_mb(name)
        progress(f"llm worker: {peak:.0f} MB")
        return {"peak_rss_mb": round(peak, 1), "answer": answered[0][:200] if answered else "",
                "seconds": round(time.monotonic() - started, 1)}  # fmt: skip
    finally:
        supervisor.close()
        workers.close()


def run(*, workers: int = 4, churn: float = 0.3, minutes: float = 10.0, posts: int = 600,
        embed_texts: int = 256, chats: int = 200, progress: Progress = _quiet
        ) -> dict[str, Any]:  # fmt: skip
    from ima.vectors.embedder import E5

    now = datetime.now(UTC).replace(microsecond=0)
    with tempfile.TemporaryDirectory(prefix="ima-bench-fleet-") as tmp:
        root = Path(tmp)
        cluster = NatsCluster(root / "nats").start()
        store = build_store(root / "data", posts, now)
        local = E5()
        try:
            figures: dict[str, Any] = {"cores": os.cpu_count(), "bench_rss_mb": round(rss_mb(), 1)}
            progress("embedding throughput with 1, 2 and 4 workers")
            figures["embedding"] = _embedding(root, cluster, local, progress, embed_texts)
            progress("an LLM worker's memory")
            figures["llm_worker"] = llm_worker_rss(root, cluster, progress)
            progress("chat latency: four fast workers, then one slow in four")
            figures["hedging"] = hedging_run(root, cluster, store, now, chats, progress)
            progress("streamed answers: four fast workers, then one slow in four")
            figures["stream_hedging"] = stream_hedging_run(root, cluster, chats, progress)
            progress(f"churn: {workers} workers, {churn:.0%} SIGKILLed every {KILL_EVERY_S:g} s")
            figures["churn"] = churn_run(root, cluster, store, now, local, workers, churn, minutes,
                                      progress)  # fmt: skip
        finally:
            store.close()
            cluster.close()
    return figures


if __name__ == "__main__":
    faulty_main(sys.argv[1:])
