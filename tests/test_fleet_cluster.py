"""The fleet on a NATS cluster of three real `nats-server` processes with real worker
processes: churn and a server killed (nothing lost), a slow worker (hedged), and a
lying worker (quarantined, nothing of it reaching a client)."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime

import numpy as np
import pytest

from ima.answer.llm import Request
from ima.bench.fleet import (
    SLOW_S,
    ChatLoad,
    NatsCluster,
    Workers,
    build_store,
    churn_run,
    hedging_run,
    stream_hedging_run,
    wait_live,
)
from ima.fleet.answer import FleetAnswerer
from ima.fleet.embed import FleetEmbedder
from ima.fleet.generate import FleetBackend
from ima.fleet.serving import local_answer
from ima.fleet.supervisor import HEDGE_MIN_SAMPLES, Supervisor
from ima.vectors.embedder import E5
from servers import ChatCompletions

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = build_store(tmp_path_factory.mktemp("fleet") / "data", 120, NOW)
    yield s
    s.close()


@pytest.fixture(scope="module")
def local():
    return E5()


@pytest.fixture
def cluster(tmp_path):
    c = NatsCluster(tmp_path / "nats").start()
    yield c
    c.close()


def test_nothing_is_lost_when_workers_and_a_server_are_killed(tmp_path, cluster, store, local):
    figures = churn_run(tmp_path, cluster, store, NOW, local, workers_n=4, churn=0.3,
                        minutes=0.3)  # fmt: skip
    assert figures["workers_killed"] >= 4
    assert figures["answered"] > 10
    assert (figures["lost"], figures["unverified"]) == (0, 0), figures["errors"]
    assert figures["embed"]["batches"] > 0
    assert (figures["embed"]["lost"], figures["embed"]["off_model"]) == (0, 0)
    assert None in cluster.processes  # a server was killed midway


def test_a_slow_worker_is_hedged(tmp_path, cluster, store):
    figures = hedging_run(tmp_path, cluster, store, NOW, requests=60)
    slow, fast = figures["one_slow_in_four"], figures["four_fast"]
    assert slow["hedges"] >= 1
    assert (slow["lost"], slow["unverified"], fast["lost"], fast["unverified"]) == (0, 0, 0, 0)
    assert slow["p99_ms"] < SLOW_S * 1000  # nobody waited out the slow worker


def test_a_worker_slow_to_its_first_piece_is_hedged(tmp_path, cluster):
    figures = stream_hedging_run(tmp_path, cluster, streams=40)
    slow, fast = figures["one_slow_in_four"], figures["four_fast"]
    assert slow["hedges"] >= 1
    assert (slow["lost"], slow["wrong"], fast["lost"], fast["wrong"]) == (0, 0, 0, 0)
    assert slow["answered"] == fast["answered"] == 40
    assert slow["p99_ms"] < SLOW_S * 1000  # nobody waited out the slow worker


def test_a_lying_worker_is_quarantined_and_none_of_its_output_gets_out(
    tmp_path, cluster, store, local
):
    workers = Workers(cluster.url, tmp_path)
    kept = tmp_path / "reputations.json"
    supervisor = Supervisor(cluster.url, seed=1, reputation_file=kept).start()
    again = None
    try:
        liar = workers.start(("compose", "embed"), fault="liar", name="liar")
        honest = [workers.start(("compose",)), workers.start(("embed",))]
        wait_live(supervisor, "compose", [liar, honest[0]])
        wait_live(supervisor, "embed", [liar, honest[1]])
        load = ChatLoad(store, FleetAnswerer(store, supervisor, local_answer(store, None, None)),
                        NOW)  # fmt: skip
        embedder = FleetEmbedder(supervisor, local, seed=2)
        texts = [f"the harbor bridge update number {i}" for i in range(16)]
        truth = local.passages(texts)
        rng = random.Random(2)
        for _ in range(20):  # until the liar is caught often enough (a copy it lost is not)
            load.run(8, 2, rng)
            vectors = embedder.passages(texts)
            assert float(np.min(np.sum(vectors * truth, axis=1))) >= 0.99
            if liar not in supervisor.live("compose"):
                break
        assert (load.lost, load.unverified, load.local) == (0, 0, 0), load.errors
        listed = {w["name"]: w for w in supervisor.snapshot()}
        assert listed[liar]["state"] == "quarantined", listed[liar]
        assert listed[liar]["checks_failed"] >= 3 and listed[liar]["reputation"] < 0.1
        assert all(listed[name]["state"] == "live" for name in honest)
        assert supervisor.registry.get_sample_value("ima_fleet_quarantines_total") == 1
        assert liar not in supervisor.live("compose") + supervisor.live("embed")

        # `ima serve` restarts: the liar, still connected, stays quarantined, and the
        # honest keep the trust they earned
        supervisor.close()
        again = Supervisor(cluster.url, reputation_file=kept).start()
        wait_live(again, "compose", [honest[0]])
        deadline = time.monotonic() + 10
        while liar not in (relisted := {w["name"]: w for w in again.snapshot()}):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert relisted[liar]["state"] == "quarantined"
        assert relisted[liar]["checks_failed"] == listed[liar]["checks_failed"]
        assert liar not in again.live("compose") + again.live("embed")
        assert relisted[honest[0]]["checks_passed"] == listed[honest[0]]["checks_passed"] > 0
    finally:
        supervisor.close()
        if again is not None:
            again.close()
        workers.close()


def test_a_worker_dying_mid_stream_is_continued_without_repeat_or_drop(tmp_path, cluster):
    full = ("The harbor bridge reopened at 9:15 [1]. Traffic is back to normal, police said "
            "[2]. The ferries that replaced it stop tonight [3].")  # fmt: skip

    def reply(body: dict) -> str:  # an LLM asked to go on from a partial answer does so
        last = body["messages"][-1]
        return full[len(last["content"]):] if last["role"] == "assistant" else full

    with ChatCompletions(reply) as llm:
        workers = Workers(cluster.url, tmp_path)
        supervisor = Supervisor(cluster.url).start()
        try:
            dying = workers.start(("generate",), fault="dies", name="dies", llm=llm.url("/v1"))
            wait_live(supervisor, "generate", [dying])
            stream = FleetBackend(supervisor).stream(
                Request([{"role": "user", "content": "Is the harbor bridge open?"}]))
            pieces = [next(stream)]  # the dying worker has the job: now a healthy one joins
            workers.start(("generate",), name="healthy", llm=llm.url("/v1"))
            pieces += list(stream)
        finally:
            supervisor.close()
            workers.close()
    assert "".join(pieces) == full  # nothing repeated, nothing dropped
    continued = [b["messages"][-1] for b in llm.bodies if b["messages"][-1]["role"] == "assistant"]
    assert len(continued) == 1 and 0 < len(continued[0]["content"]) < len(full)
    assert supervisor.count("continuations", "generate") == 1


def test_the_writer_embeds_new_posts_through_the_fleet(tmp_path, cluster, local):
    from prometheus_client import CollectorRegistry

    from conftest import feed, post
    from ima.fleet.registry import writer_metrics_file
    from ima.fleet.serving import WriterMetrics
    from ima.store import Store
    from ima.vectors.semantic import Vectors

    workers = Workers(cluster.url, tmp_path)
    watcher = Supervisor(cluster.url).start()
    store = Store(tmp_path / "data", commit_interval=0.05)
    vectors = None
    try:
        name = workers.start(("embed",))
        wait_live(watcher, "embed", [name])
        vectors = Vectors(store, local).follow(cluster.url)  # as the writer of `ima serve --fleet`
        # its own supervisor waits only so long for a first heartbeat, then embeds here
        wait_live(vectors.worker.embedder.supervisor, "embed", [name])
        feed(store, [post(i, f"the harbor bridge update number {i}", at=NOW.isoformat())
                     for i in range(40)])  # fmt: skip
        deadline = time.monotonic() + 60
        while vectors.index.count() < 40:
            assert time.monotonic() < deadline, vectors.index.count()
            time.sleep(0.05)
        embedder = vectors.worker.embedder
        assert isinstance(embedder, FleetEmbedder) and embedder.remote == 40
        hits = vectors.semantic("harbor bridge update number 7", 0, 2**62, 1)
        assert [p.id for p in hits] == ["test:7"]
        # what the API process's /metrics shows of the writer's embedding (another process
        # there: here, another registry reading the file the writer's supervisor writes)
        api = CollectorRegistry()
        api.register(WriterMetrics(writer_metrics_file(tmp_path / "data")))
        deadline = time.monotonic() + 10
        while api.get_sample_value("ima_embed_posts_total", {"by": "fleet"}) != 40:
            assert time.monotonic() < deadline, api.get_sample_value("ima_embed_posts_total",
                                                                     {"by": "fleet"})  # fmt: skip
            time.sleep(0.1)
        assert api.get_sample_value("ima_embed_posts_total", {"by": "here"}) == 0
        assert api.get_sample_value("ima_embed_queue_posts") == 0
        assert api.get_sample_value("ima_embed_failed_batches_total") == 0
        ok = {"kind": "embed", "outcome": "ok"}
        assert api.get_sample_value("ima_writer_fleet_jobs_total", ok) >= 3  # 40 in 16s
        assert api.get_sample_value("ima_writer_fleet_workers", {"state": "live"}) == 1
    finally:
        if vectors is not None:
            vectors.close()
        store.close()
        watcher.close()
        workers.close()


class StuckOnce(ChatCompletions):
    """An LLM server that, once `armed`, holds its next answer `SLOW_S` before the first
    byte (a stuck accelerator, a long queue): its worker is slow to a first token."""

    armed = False

    async def _chat(self, request):
        if self.armed:
            self.armed = False
            await asyncio.sleep(SLOW_S)
        return await super()._chat(request)


def test_a_slow_first_token_is_hedged_and_nothing_is_given_twice(tmp_path, cluster):
    full = "The harbor bridge reopened at 9:15 [1]. Traffic is back to normal, police said [2]."
    request = Request([{"role": "user", "content": "Is the harbor bridge open?"}])
    with StuckOnce(full) as llm:
        workers = Workers(cluster.url, tmp_path)
        supervisor = Supervisor(cluster.url, seed=5).start()
        try:
            names = [workers.start(("generate",), llm=llm.url("/v1")) for _ in range(2)]
            wait_live(supervisor, "generate", names)
            # the times to a first piece that a hedge waits for (p95: past the first jobs')
            for _ in range(3 * HEDGE_MIN_SAMPLES):
                assert "".join(FleetBackend(supervisor).stream(request)) == full
            deadline = time.monotonic() + 10
            while any(m.inflight for m in supervisor.members.values()):
                assert time.monotonic() < deadline  # a hedge goes only to an idle worker
                time.sleep(0.05)
            # the warm-up's own hedges may have spent what it earned: the budget holds one
            supervisor._hedge_tokens["generate"] = max(1.0, supervisor._hedge_tokens["generate"])
            hedges = supervisor.count("hedges", "generate")
            llm.armed = True
            started = time.monotonic()
            pieces = list(FleetBackend(supervisor).stream(request))
            took = time.monotonic() - started
            deadline = time.monotonic() + 10
            while any(m.inflight for m in supervisor.members.values()):
                assert time.monotonic() < deadline  # the loser is let go of, not leaked
                time.sleep(0.05)
            # the loser was timed to its end (the cancel stops it at its first word): its
            # worker is now known to be slow, and the next streams go to the other
            slowest = max(m.latency_s for m in supervisor.members.values())
        finally:
            supervisor.close()
            workers.close()
    assert "".join(pieces) == full  # one copy's pieces, none twice
    assert took < SLOW_S  # nobody waited out the stuck one
    assert supervisor.count("hedges", "generate") == hedges + 1
    assert supervisor.count("hedge_wins", "generate") >= 1
    assert supervisor.count("retries", "generate") == 0
    assert slowest >= SLOW_S
