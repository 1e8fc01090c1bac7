"""The request supervisor in `ima serve --fleet`: routing, retries, hedging, trust.

Every job gets an id that survives its retries (workers drop a cancelled id's job).
It goes to the better of two random live workers of its kind (power of two choices:
jobs in flight per measured speed). A failure before the answer (no reply in time, the
worker gone from the heartbeats, "busy", a malformed reply or one that fails its
check) sends it to another worker, at most `MAX_RETRIES` times, after a little jitter.
When no answer has come by the recent p95 latency, a second copy goes to another
worker, within a budget of `HEDGE_BUDGET` extra jobs per job; the first good answer
wins and the other is cancelled. A stream (generate) is hedged the same way on its
first piece: the first copy to give one goes on alone. Results are checked by the
caller's `check` (always for malformed replies, and on a sample set by the worker's
reputation); failures cost reputation and, repeated, quarantine. With no worker,
`NoWorker` tells the caller to do the work locally (and say so). The NATS connection
lives in a thread of its own.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import queue
import random
import statistics
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nats.errors import Error as NatsError
from prometheus_client import CollectorRegistry, Counter, Gauge, write_to_textfile

from ima.errors import Unavailable
from ima.fleet import protocol, reputation
from ima.fleet.connection import connect
from ima.fleet.protocol import Heartbeat, ProtocolError
from ima.fleet.reputation import Reputation

log = logging.getLogger(__name__)

MAX_RETRIES = 2
HEDGE_BUDGET = 0.10
HEDGE_MIN_SAMPLES = 20
ATTEMPT_TIMEOUT_S = (2.0, 20.0)  # bounds of one attempt's wait: 5 x the recent p99 per job ahead
JOB_TIMEOUT_S = 30.0
FORGET_AFTER_S = 600.0  # a gone worker stays listed this long
MAX_MEMBERS = 10_000
STALL_S = 5.0  # a stream silent this long after its first piece goes on elsewhere
#: (reply body, whether this reply is to be checked) → what is wrong with it, or None
Check = Callable[[bytes, bool], str | None]
#: where the API notes how a request was served ("worker NAME" or "local"): a dict the
#: request's context holds, filled in by whichever thread answers it
ROUTE: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "ima_fleet_route", default=None
)


class NoWorker(Unavailable):
    """No worker could do the job (none live, or every try failed): do it locally."""


def note_route(route: str) -> None:
    holder = ROUTE.get()
    if holder is not None:
        holder["route"] = route


class FleetMetrics:
    """A supervisor's counters, named `PREFIX_…` (`ima_fleet` in the API process; the
    writer's, which embeds, reports as `ima_writer_fleet`: both show in /metrics)."""

    def __init__(self, registry: CollectorRegistry, prefix: str = "ima_fleet") -> None:
        def counter(name: str, text: str, labels: tuple[str, ...] = ("kind",)) -> Counter:
            return Counter(f"{prefix}_{name}_total", text, list(labels), registry=registry)

        self.jobs = counter("jobs", "Jobs by outcome", ("kind", "outcome"))
        self.retries = counter("retries", "Jobs sent again to another worker")
        self.hedges = counter("hedges", "Second copies sent past the p95")
        self.hedge_wins = counter("hedge_wins", "Hedges that answered first")
        self.failed_checks = counter("failed_checks", "Results that failed a check")
        self.quarantines = counter("quarantines", "Workers quarantined", ())
        self.local = counter("local_fallbacks", "Jobs done locally: no worker")
        self.continuations = counter("continuations", "Streams another worker went on with")
        self.workers = Gauge(f"{prefix}_workers", "Workers by state", ["state"], registry=registry)


@dataclass(slots=True)
class Member:
    """A worker as the supervisor knows it."""

    beat: Heartbeat
    seen: float  # monotonic time of the last heartbeat
    inflight: int = 0
    latency_s: float | None = None  # recent seconds per job, as measured here
    jobs: int = 0
    reputation: Reputation = field(default_factory=Reputation)

    def alive(self, now: float) -> bool:
        return now - self.seen <= protocol.GONE_AFTER_S

    def cost(self, prior_s: float) -> float:
        """Expected wait for one more job: jobs ahead of it times seconds per job."""
        return (self.inflight + 1) * (self.latency_s if self.latency_s is not None else prior_s)


class Supervisor:
    def __init__(
        self,
        url: str,
        registry: CollectorRegistry | None = None,
        *,
        state_file: Path | None = None,
        metrics_file: Path | None = None,
        reputation_file: Path | None = None,
        prefix: str = "ima_fleet",
        seed: int | None = None,
    ) -> None:
        self.url = url
        self.registry = registry or CollectorRegistry()
        self.prefix = prefix
        self.metrics = FleetMetrics(self.registry, prefix)
        self.members: dict[str, Member] = {}
        self.state_file = state_file
        self.metrics_file = metrics_file  # the registry, every 2 s, for another process
        self.reputation_file = reputation_file  # the workers' reputations, kept across restarts
        #: reputations from before a restart, of workers not heard from since
        self._known: reputation.Known = {} if reputation_file is None else reputation.load(
            reputation_file, time.time() - FORGET_AFTER_S, MAX_MEMBERS)  # fmt: skip
        self._rng = random.Random(seed)
        self._latencies: dict[str, deque[float]] = {k: deque(maxlen=200) for k in protocol.KINDS}
        self._hedge_tokens = dict.fromkeys(protocol.KINDS, 0.0)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ima-fleet",
                                         daemon=True)  # fmt: skip
        self._nc: Any = None
        self._connected = threading.Event()
        self._heard = threading.Event()  # set at the first heartbeat

    # life

    def start(self, wait_s: float = 10.0) -> Supervisor:
        """Connect (in the background: a fleet whose servers are down is a fleet with no
        worker, and jobs run locally meanwhile), then give the workers one heartbeat's
        time to be heard, so that the first jobs do not all run locally."""
        self._thread.start()
        self._main = asyncio.run_coroutine_threadsafe(self._run(), self._loop)
        if self._connected.wait(wait_s):
            self._heard.wait(1.5 * protocol.HEARTBEAT_S)
        return self

    async def _run(self) -> None:
        while self._nc is None:
            try:
                self._nc = await connect(self.url, "ima serve")
            except (OSError, NatsError, TimeoutError) as exc:
                log.warning("fleet: cannot reach %s yet (%s); retrying", self.url, exc)
                await asyncio.sleep(1)
        await self._nc.subscribe(protocol.HEARTBEATS, cb=self._heartbeat)
        self._connected.set()
        while True:
            await asyncio.sleep(2)
            self._publish_state()

    def close(self) -> None:
        async def stop() -> None:
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()
            if self._nc is not None:
                await self._nc.close()

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._publish_state()  # the last word: reputations earned since the last 2 s

    def count(self, metric: str, kind: str) -> float:
        """A counter's total for `kind` (`hedges`, `retries`, `local_fallbacks`…)."""
        value = self.registry.get_sample_value(f"{self.prefix}_{metric}_total", {"kind": kind})
        return value or 0.0

    # membership

    async def _heartbeat(self, msg: Any) -> None:
        try:
            beat = Heartbeat.decode(msg.data)
        except ProtocolError:
            return
        if msg.subject != protocol.heartbeat_subject(beat.worker):
            return  # a worker may speak only for itself (the server enforces it with auth)
        member = self.members.get(beat.worker)
        if member is None or member.beat.started != beat.started:  # new, or restarted
            old = member.reputation if member is not None else (
                self._known.pop(beat.worker, (Reputation(), 0.0))[0])  # fmt: skip
            # a restart keeps a quarantine: a liar cannot launder itself by reconnecting
            member = self.members[beat.worker] = Member(beat, time.monotonic(), reputation=old)
        member.beat, member.seen = beat, time.monotonic()
        self._heard.set()

    def _members(self) -> list[tuple[str, Member]]:
        """The members now, for other threads: the loop thread adds and drops them, and
        copying a dict's items is one step under the interpreter lock, iterating is not."""
        return list(self.members.items())

    def live(self, kind: str) -> list[str]:
        now = time.monotonic()
        return sorted(
            n for n, m in self._members()
            if kind in m.beat.kinds and m.alive(now) and not m.reputation.quarantined
        )  # fmt: skip

    def snapshot(self) -> list[dict[str, Any]]:
        """Every worker seen: kinds, throughput, reputation, last seen (`ima fleet list`)."""
        now_wall, now = time.time(), time.monotonic()
        out = []
        for name, m in sorted(self._members()):
            state = "quarantined" if m.reputation.quarantined else (
                "live" if m.alive(now) else "gone")  # fmt: skip
            out.append({
                "name": name, "kinds": list(m.beat.kinds), "state": state,
                "jobs_per_s": round(m.beat.rate, 2), "queue": m.beat.queue, "done": m.beat.done,
                "jobs_here": m.jobs, "latency_ms": None if m.latency_s is None
                else round(m.latency_s * 1000, 1), "rss_mb": round(m.beat.rss_mb, 1),
                "reputation": round(m.reputation.score, 3), "checks_passed": m.reputation.passed,
                "checks_failed": m.reputation.failed, "reason": m.reputation.reason,
                "last_seen": round(now_wall - (now - m.seen), 3),
            })  # fmt: skip
        return out

    def _forget(self) -> None:
        """Drop workers long gone (a quarantined one too, once past the cap): churn must
        not grow this for ever."""
        now = time.monotonic()
        for name, member in list(self.members.items()):
            if now - member.seen > FORGET_AFTER_S and not member.reputation.quarantined:
                del self.members[name]
        for name in sorted(self.members, key=lambda n: self.members[n].seen)[:-MAX_MEMBERS]:
            del self.members[name]

    def _publish_state(self) -> None:
        self._forget()
        snapshot = self.snapshot()
        for state in ("live", "gone", "quarantined"):
            self.metrics.workers.labels(state).set(sum(w["state"] == state for w in snapshot))
        if self.state_file is not None:
            partial = self.state_file.with_suffix(".tmp")
            partial.write_text(json.dumps({"at": time.time(), "workers": snapshot}))
            os.replace(partial, self.state_file)
        if self.metrics_file is not None:
            write_to_textfile(str(self.metrics_file), self.registry)  # whole, or not at all
        if self.reputation_file is not None:
            known = self._known | {w["name"]: (self.members[w["name"]].reputation, w["last_seen"])
                                   for w in snapshot if w["name"] in self.members}  # fmt: skip
            try:
                reputation.save(self.reputation_file, known)
            except OSError as exc:  # a full or read-only disk: reputations live in memory
                log.warning("fleet: cannot keep reputations in %s: %s", self.reputation_file, exc)

    # jobs

    def submit(self, kind: str, body: bytes, check: Check, timeout_s: float = JOB_TIMEOUT_S
               ) -> Future[tuple[str, bytes]]:  # fmt: skip
        """Start one job on the fleet, from any thread; its future gives (the worker that
        did it, its reply). Raises, or the future raises, NoWorker when it should be done
        locally."""
        if not self._connected.is_set() or not self.live(kind):
            self.metrics.local.labels(kind).inc()
            raise NoWorker(f"no live {kind} worker")
        return asyncio.run_coroutine_threadsafe(self._job(kind, body, check, timeout_s),
                                                self._loop)  # fmt: skip

    def result(self, kind: str, future: Future[tuple[str, bytes]],
               timeout_s: float = JOB_TIMEOUT_S) -> tuple[str, bytes]:  # fmt: skip
        """A submitted job's outcome; NoWorker (counted as a local fallback) if it failed."""
        try:
            return future.result(timeout_s + 1)
        except (NoWorker, FutureTimeout) as exc:
            future.cancel()
            self.metrics.local.labels(kind).inc()
            raise NoWorker(str(exc) or "the fleet did not answer in time") from None

    def call(self, kind: str, body: bytes, check: Check, timeout_s: float = JOB_TIMEOUT_S
             ) -> tuple[str, bytes]:  # fmt: skip
        """`submit` and wait for its `result`."""
        return self.result(kind, self.submit(kind, body, check, timeout_s), timeout_s)

    def _prior(self, kind: str) -> float:
        recent = self._latencies[kind]
        return statistics.median(recent) if recent else 0.5

    def _quantiles(self, kind: str, *qs: float) -> list[float | None]:
        """The recent latencies' quantiles `qs` (None each, with too short a history)."""
        recent = sorted(self._latencies[kind])
        if len(recent) < HEDGE_MIN_SAMPLES:
            return [None] * len(qs)
        return [recent[min(len(recent) - 1, int(q * len(recent)))] for q in qs]

    @staticmethod
    def _timed(member: Member, took: float) -> None:
        """A job the worker finished in `took` seconds: its recent speed."""
        member.latency_s = took if member.latency_s is None else (
            0.7 * member.latency_s + 0.3 * took)  # fmt: skip
        member.jobs += 1

    def _earn_hedges(self, kind: str) -> None:
        """Each job adds `HEDGE_BUDGET` of a second copy to the kind's budget."""
        self._hedge_tokens[kind] = min(10.0, self._hedge_tokens[kind] + HEDGE_BUDGET)

    def _hedge(self, kind: str, launch: Callable[[], bool]) -> bool:
        """Send a second copy (`launch`) if the budget holds one and a worker takes it."""
        if self._hedge_tokens[kind] < 1 or not launch():
            return False
        self._hedge_tokens[kind] -= 1
        self.metrics.hedges.labels(kind).inc()
        return True

    def _pick(self, kind: str, exclude: set[str], probe: bool = False, idle: bool = False
              ) -> str | None:  # fmt: skip
        """The better of two random candidates (power of two choices), idle ones drawn
        first: of two where one is slow and the other busy, the busy one looks better,
        yet an idle third would have been; a lone idle one is still weighed against a
        busy one (a slow worker is idle the most). A job goes to a worker
        already timed when there is one; a new worker is first sent copies of jobs
        (`probe`, within the hedge budget) until its first answer says how fast it is, so
        a slow newcomer delays nobody. Without a timed worker, any will do. A copy
        (`idle`, and every probe) goes only to a worker with nothing in flight: behind
        another job it would rarely be first, and would delay that worker's next."""
        untried = [n for n in self.live(kind) if n not in exclude]
        if idle or probe:
            untried = [n for n in untried if not self.members[n].inflight]
        fresh = [n for n in untried if self.members[n].latency_s is None]
        candidates = fresh if probe else [n for n in untried if n not in fresh] or untried
        if not candidates:
            return None
        idle = [n for n in candidates if not self.members[n].inflight]
        busy = [n for n in candidates if self.members[n].inflight]
        two = self._rng.sample(idle, min(2, len(idle)))
        two += self._rng.sample(busy, min(2 - len(two), len(busy)))
        prior = self._prior(kind)
        return min(two, key=lambda n: self.members[n].cost(prior))

    async def _job(self, kind: str, body: bytes, check: Check, timeout_s: float
                   ) -> tuple[str, bytes]:  # fmt: skip
        request_id = uuid.uuid4().hex
        deadline = time.monotonic() + timeout_s
        self._earn_hedges(kind)
        hedge_at, p99 = self._quantiles(kind, 0.95, 0.99)
        started = time.monotonic()
        running: dict[asyncio.Task, tuple[str, float, bool]] = {}  # task → worker, start, hedge
        tried: set[str] = set()
        retries = 0
        hedged = False
        problems: list[str] = []

        def launch(is_hedge: bool, probe: bool = False) -> bool:
            worker = self._pick(kind, tried, probe, idle=is_hedge)
            if worker is None:
                return False
            tried.add(worker)
            member = self.members[worker]
            # a job waits behind those sent before it; before there is a history (a model
            # warming up), it gets the longest wait. A dead worker is noticed sooner, by
            # its heartbeats stopping.
            wait_s = ATTEMPT_TIMEOUT_S[1] if p99 is None else min(
                max(5 * p99 * (member.inflight + 1), ATTEMPT_TIMEOUT_S[0]), ATTEMPT_TIMEOUT_S[1])
            member.inflight += 1
            wait_s = min(wait_s, max(0.1, deadline - time.monotonic()))
            task = asyncio.ensure_future(self._send(worker, kind, body, request_id, wait_s))
            running[task] = (worker, time.monotonic(), is_hedge)
            return True

        try:
            launch(False)
            self._hedge(kind, lambda: launch(True, probe=True))
            while running:
                now = time.monotonic()
                if now > deadline:
                    break
                wake = deadline - now
                if not hedged and hedge_at is not None:
                    wake = min(wake, max(0.0, started + hedge_at - now))
                done, _ = await asyncio.wait(running, timeout=min(wake, 0.25),
                                             return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
                for task in done:
                    worker, sent, is_hedge = running.pop(task)
                    member = self.members[worker]
                    member.inflight -= 1
                    outcome = await self._judge(kind, worker, task, check)
                    if isinstance(outcome, bytes):
                        took = time.monotonic() - sent
                        self._latencies[kind].append(took)
                        self._timed(member, took)
                        if is_hedge:
                            self.metrics.hedge_wins.labels(kind).inc()
                        self.metrics.jobs.labels(kind, "ok").inc()
                        return worker, outcome
                    problems.append(f"{worker}: {outcome}")
                    if retries < MAX_RETRIES and not running:
                        retries += 1
                        self.metrics.retries.labels(kind).inc()
                        await asyncio.sleep(self._rng.uniform(0.005, 0.05))  # jitter
                        launch(False)
                # a worker gone from the heartbeats will not answer: retry without waiting
                now = time.monotonic()
                for task, (worker, _, _) in list(running.items()):
                    if not self.members[worker].alive(now) and retries < MAX_RETRIES:
                        task.cancel()
                due = hedge_at is not None and now - started >= hedge_at
                if not hedged and due and running and self._hedge_tokens[kind] >= 1:
                    hedged = True
                    self._hedge(kind, lambda: launch(True))
            self.metrics.jobs.labels(kind, "failed").inc()
            raise NoWorker("; ".join(problems[-3:]) or "no worker answered in time")
        finally:
            for task, (worker, sent, _) in running.items():
                # the loser still holds the job (unless the cancel reaches it first): it
                # stays counted in flight, and its time, when it comes, says how slow it is
                task.add_done_callback(lambda t, w=worker, s=sent: self._lost_race(t, w, s))
                await self._cancel(request_id, worker)

    async def _cancel(self, request_id: str, worker: str) -> None:
        if self._nc is not None and self._nc.is_connected:
            await self._nc.publish(protocol.CANCEL, protocol.cancel_body(request_id, worker))

    def _lost_race(self, task: asyncio.Task, worker: str, sent: float) -> None:
        """A copy that lost a race has ended (answered late, or not at all): what it took
        is the least this worker takes, known before it counts out of flight."""
        _retrieved(task)  # a loser's failure is no news
        member = self.members.get(worker)
        if member is None:  # forgotten meanwhile
            return
        self._slow_at_least(member, time.monotonic() - sent)
        member.inflight -= 1

    @staticmethod
    def _slow_at_least(member: Member, took: float) -> None:
        member.latency_s = max(member.latency_s or 0.0, took)

    async def _send(self, worker: str, kind: str, body: bytes, request_id: str, wait_s: float
                    ) -> Any:  # fmt: skip
        return await self._nc.request(protocol.job_subject(worker, kind), body, timeout=wait_s,
                                      headers={protocol.REQUEST_ID: request_id})  # fmt: skip

    async def _judge(self, kind: str, worker: str, task: asyncio.Task, check: Check
                     ) -> bytes | str:  # fmt: skip
        """The reply's body when it is good, else what was wrong (counted against the
        worker when it was a bad result rather than a lost one). Checks recompute work
        here, in a thread: the loop keeps routing and hearing heartbeats meanwhile."""
        if task.cancelled():
            return "gone"
        exc = task.exception()
        if exc is not None:
            return f"no reply ({type(exc).__name__})"
        msg = task.result()
        error = (msg.headers or {}).get(protocol.ERROR)
        if error:
            return error[:200]
        trust = self.members[worker].reputation
        checked = trust.should_check(self._rng)
        problem = await asyncio.get_running_loop().run_in_executor(None, check, msg.data, checked)
        if problem is None:
            if checked:
                trust.passed_check()
            return msg.data
        self.metrics.failed_checks.labels(kind).inc()
        if trust.failed_check(problem):
            self.metrics.quarantines.inc()
            log.warning("fleet: worker %s quarantined: %s", worker, problem)
        return problem

    # streamed jobs (generate)

    def stream(self, kind: str, body: Callable[[str], bytes], stop: threading.Event,
               timeout_s: float = JOB_TIMEOUT_S) -> Iterator[str]:  # fmt: skip
        """The pieces of a streamed job, from any thread. `body(prefix)` is the job, asked
        to go on after `prefix`, the text already given out. Before the first piece, a
        failed job goes to another worker (at most `MAX_RETRIES` times), and a slow one is
        hedged (`_round`); after it, a worker that dies or stalls is replaced by another
        that continues from the text given, never repeating it (as many times). Raises
        NoWorker when it cannot go on; setting `stop` ends it (and the worker's job)."""
        if not self._connected.is_set() or not self.live(kind):
            self.metrics.local.labels(kind).inc()
            raise NoWorker(f"no live {kind} worker")
        pieces: queue.Queue[str | BaseException | None] = queue.Queue()
        asyncio.run_coroutine_threadsafe(
            self._stream(kind, body, pieces, stop, time.monotonic() + timeout_s), self._loop
        )
        try:
            while (item := pieces.get(timeout=timeout_s + 1)) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        except queue.Empty:
            raise NoWorker("the fleet did not answer in time") from None
        finally:
            stop.set()

    async def _stream(self, kind: str, body: Callable[[str], bytes],
                      pieces: queue.Queue[str | BaseException | None], stop: threading.Event,
                      deadline: float) -> None:  # fmt: skip
        request_id = uuid.uuid4().hex
        self._earn_hedges(kind)
        given = ""
        tried: set[str] = set()
        retries = continuations = 0
        while True:
            worker, text, outcome = None, "", None
            if time.monotonic() < deadline:
                worker, text, outcome = await self._round(kind, body(given), request_id, pieces,
                                                          stop, deadline, tried)  # fmt: skip
            if worker is None and given and time.monotonic() < deadline - 1:
                await asyncio.sleep(0.2)  # what a client saw must go on: wait for a worker
                continue
            if worker is None:
                self.metrics.jobs.labels(kind, "failed").inc()
                if not given:
                    self.metrics.local.labels(kind).inc()
                pieces.put(NoWorker(f"no {kind} worker could go on"))
                return
            given += text
            if outcome in ("done", "stopped"):
                self.metrics.jobs.labels(kind, "ok" if outcome == "done" else "stopped").inc()
                pieces.put(None)
                return
            await self._cancel(request_id, worker)
            log.info("fleet: %s job %s on %s: %s", kind, request_id, worker, outcome)
            if given:
                continuations += 1
                self.metrics.continuations.labels(kind).inc()
            else:
                retries += 1
                self.metrics.retries.labels(kind).inc()
            if max(continuations, retries) > MAX_RETRIES:
                pieces.put(NoWorker(f"{kind}: {outcome}"))
                return
            await asyncio.sleep(self._rng.uniform(0.005, 0.05))  # jitter

    async def _round(self, kind: str, body: bytes, request_id: str,
                     pieces: queue.Queue[str | BaseException | None], stop: threading.Event,
                     deadline: float, tried: set[str]) -> tuple[str | None, str, str]:  # fmt: skip
        """One go at a stream, from where it stands: a worker, and a second copy at another
        when the first piece has not come by the recent p95 time to a first piece (a new
        worker gets its copy at once, as a probe), within the hedge budget. The first copy
        to give a piece goes on alone and the other is cancelled, so nothing is given
        twice. Returns (the worker that went on, the text it gave, how it ended); no
        worker when none could take it."""
        started = time.monotonic()
        (hedge_at,) = self._quantiles(kind, 0.95)
        race = _Race()
        copies: dict[asyncio.Task, tuple[str, float, bool]] = {}  # task → worker, start, hedge

        def launch(is_hedge: bool, probe: bool = False) -> bool:
            worker = self._pick(kind, tried, probe, idle=is_hedge)
            if worker is None:
                return False
            tried.add(worker)
            task = asyncio.ensure_future(self._attempt(kind, worker, body, request_id, pieces,
                                                       stop, deadline, race))  # fmt: skip
            copies[task] = (worker, time.monotonic(), is_hedge)
            return True

        if not launch(False):
            return None, "", "no worker"
        self._hedge(kind, lambda: launch(True, probe=True))
        hedged = hedge_at is None
        decided = asyncio.ensure_future(race.decided.wait())
        try:
            while race.owner is None and (running := [t for t in copies if not t.done()]):
                wake = None if hedged else max(0.0, started + hedge_at - time.monotonic())
                await asyncio.wait([*running, decided], timeout=wake,
                                   return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
                if not hedged and race.owner is None and time.monotonic() - started >= hedge_at:
                    hedged = True
                    self._hedge(kind, lambda: launch(True))
        finally:
            decided.cancel()
        if race.owner is None:  # every copy ended before its first piece
            first = next(iter(copies))
            outcomes = [t.result()[1] for t in copies]
            return copies[first][0], "", "stopped" if "stopped" in outcomes else outcomes[0]
        winner = next(t for t, (w, _, _) in copies.items() if w == race.owner)
        for task, (worker, _, _) in copies.items():
            if task is not winner and not task.done():
                # the loser ends at its next word (the cancel stops it there), and its
                # attempt times itself then; how it ended is no news
                task.add_done_callback(_retrieved)
                await self._cancel(request_id, worker)
        if copies[winner][2]:
            self.metrics.hedge_wins.labels(kind).inc()
        text, outcome = await winner
        return race.owner, text, outcome

    async def _attempt(self, kind: str, worker: str, body: bytes, request_id: str,
                       pieces: queue.Queue[str | BaseException | None], stop: threading.Event,
                       deadline: float, race: _Race) -> tuple[str, str]:  # fmt: skip
        """One worker's part of a stream: (the text it gave, how it ended: done, stopped,
        or what went wrong). Its pieces are given only once it has won the `race`."""
        member = self.members[worker]
        inbox = self._nc.new_inbox()
        subscription = await self._nc.subscribe(inbox)
        member.inflight += 1
        text, seq = "", 0
        sent = waited_from = time.monotonic()
        try:
            await self._nc.publish(protocol.job_subject(worker, kind), body, reply=inbox,
                                   headers={protocol.REQUEST_ID: request_id})  # fmt: skip
            while True:
                # the first piece may wait behind other jobs; later ones should flow
                patience = ATTEMPT_TIMEOUT_S[1] if seq == 0 else STALL_S
                try:
                    msg = await subscription.next_msg(timeout=0.25)
                except TimeoutError:
                    if stop.is_set() and race.owner in (None, worker):  # a loser is timed
                        await self._cancel(request_id, worker)
                        return text, "stopped"
                    now = time.monotonic()
                    if not member.alive(now):
                        return text, "the worker is gone"
                    if now - waited_from > patience or now > deadline:
                        return text, "the worker stalled"
                    continue
                headers = msg.headers or {}
                if protocol.ERROR in headers:
                    return text, headers[protocol.ERROR][:200]
                if seq == 0 and not race.claim(worker):
                    return text, "another worker went on"
                if protocol.DONE in headers:
                    self._timed(member, time.monotonic() - sent)
                    return text, "done"
                if headers.get(protocol.SEQ) != str(seq):
                    return text, "a piece out of order"
                if seq == 0:  # the time to a first piece is what a hedge waits for
                    self._latencies[kind].append(time.monotonic() - sent)
                seq += 1
                waited_from = time.monotonic()
                piece = msg.data.decode(errors="replace")
                text += piece
                pieces.put(piece)
        finally:
            if race.owner not in (None, worker):
                # a loser: its time, as for a job's loser, says how slow it is (known
                # before it counts out of flight, so that no one sees it idle and unslow)
                self._slow_at_least(member, time.monotonic() - sent)
            member.inflight -= 1
            await subscription.unsubscribe()


def _retrieved(task: asyncio.Task) -> None:
    """Read a finished task's outcome (asyncio logs an exception nobody read)."""
    if not task.cancelled():
        task.exception()


@dataclass(slots=True)
class _Race:
    """Copies of one stream's next part: the first to give a piece goes on alone."""

    owner: str | None = None
    decided: asyncio.Event = field(default_factory=asyncio.Event)

    def claim(self, worker: str) -> bool:
        """Whether `worker` goes on: it is the first to ask, or was."""
        if self.owner is None:
            self.owner = worker
            self.decided.set()
        return self.owner == worker
