"""The fleet's parts: its protocol's limits, trust, credentials checked by a real
nats-server, and `ima serve --fleet` answering through a real worker process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import UTC, datetime

import httpx
import nats
import pytest
from nats.errors import Error as NatsError

from conftest import feed, post
from ima.answer.compose import key_weights
from ima.api.keys import KeyStore
from ima.bench.fleet import NatsCluster, Workers, wait_live
from ima.bench.serve import free_port, wait_until_up
from ima.fleet import protocol
from ima.fleet.answer import FleetAnswerer
from ima.fleet.credentials import Credentials
from ima.fleet.protocol import Composed, ComposeJob, EmbedJob, Heartbeat, ProtocolError
from ima.fleet.reputation import QUARANTINE_AFTER, TRUSTED_AFTER, Reputation
from ima.fleet.supervisor import Supervisor
from ima.fleet.work import composed
from ima.post import Author, Post, to_us
from ima.text.question import understand

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_jobs_past_the_protocol_limits_are_refused():
    with pytest.raises(ProtocolError):
        EmbedJob.decode(b"not json")
    with pytest.raises(ProtocolError):
        EmbedJob.decode(EmbedJob(["x"] * (protocol.MAX_EMBED_TEXTS + 1), "m").encode())
    with pytest.raises(ProtocolError):
        EmbedJob.decode(EmbedJob(["x" * (protocol.MAX_TEXT_CHARS + 1)], "m").encode())
    with pytest.raises(ProtocolError):
        Heartbeat.decode(b'{"worker": "a.b", "kinds": []}')  # a subject token can't hold "."
    assert EmbedJob.decode(EmbedJob(["a", "b"], "m").encode()) == EmbedJob(["a", "b"], "m")


def test_a_new_worker_is_always_checked_and_a_repeated_liar_quarantined():
    import random

    rng = random.Random(0)
    reputation = Reputation()
    assert all(reputation.should_check(rng) for _ in range(50))
    for _ in range(TRUSTED_AFTER):
        reputation.passed_check()
    assert 0 < sum(reputation.should_check(rng) for _ in range(1000)) < 300
    assert not any(reputation.failed_check("wrong") for _ in range(QUARANTINE_AFTER - 1))
    assert reputation.failed_check("wrong") and reputation.quarantined


def test_reputations_kept_are_the_quarantined_and_the_recent(tmp_path):
    from ima.fleet import reputation

    liar, old, recent = Reputation(), Reputation(), Reputation()
    for _ in range(QUARANTINE_AFTER):
        liar.failed_check("a fabricated quote")
    old.passed_check()
    recent.passed_check()
    path = tmp_path / "reputations.json"
    reputation.save(path, {"liar": (liar, 100.0), "old": (old, 100.0), "recent": (recent, 900.0)})
    assert reputation.load(path, since=500.0, most=10) == {"liar": (liar, 100.0),
                                                           "recent": (recent, 900.0)}
    assert list(reputation.load(path, since=0.0, most=1)) == ["recent"]
    path.write_text('{"liar": {"passed": "many"}}')  # damaged: a fleet without a past
    assert reputation.load(path, since=0.0, most=10) == {}
    assert reputation.load(tmp_path / "absent.json", since=0.0, most=10) == {}


def test_routing_prefers_an_idle_worker_and_sends_copies_only_to_idle_ones():
    from ima.fleet.supervisor import Member

    supervisor = Supervisor("nats://127.0.0.1:1", seed=0)  # never started: routing only
    for name, latency, inflight in (("slow", 2.0, 0), ("busy", 0.2, 1), ("idle", 0.2, 0)):
        beat = Heartbeat(name, ("generate",), "", inflight, 0, 0, 1.0, 50.0, 0.0)
        supervisor.members[name] = Member(beat, time.monotonic(), inflight, latency)
    # of two sampled, slow and busy, busy looks better: the idle third is better still
    assert {supervisor._pick("generate", set()) for _ in range(50)} == {"idle"}
    assert supervisor._pick("generate", {"idle"}) == "busy"  # no idle one left: the better
    assert supervisor._pick("generate", {"idle"}, idle=True) == "slow"
    assert supervisor._pick("generate", {"idle", "slow"}, idle=True) is None  # no copy queued


def _post(n: int, text: str) -> Post:
    return Post(f"t:{n}", "t", Author(f"user{n}"), text, "en", NOW, NOW)


def test_the_verifier_passes_a_composition_and_catches_a_fabricated_one():
    posts = [_post(1, "The harbor bridge reopened at 9:15 after 12 hours of repairs."),
             _post(2, "Traffic on the harbor bridge is back to normal, police said.")]  # fmt: skip
    question = understand("Is the harbor bridge open?")
    weights = key_weights(question, 100, {"harbor": 3, "bridge": 3, "open": 10})
    honest = composed(ComposeJob(question.text, [], to_us(NOW), weights), posts)
    assert honest.found and FleetAnswerer.problems(honest, posts, NOW) is None
    claim = "Officials say 40 people were hurt on the harbor bridge"
    invented = Composed(f"{claim} [1].", True, [(0, claim)])
    assert FleetAnswerer.problems(invented, posts, NOW) is not None
    misquoted = Composed(honest.text, True, [(1, c[1]) for c in honest.citations])
    assert FleetAnswerer.problems(misquoted, posts, NOW) is not None


async def _connect(url: str) -> nats.NATS:
    return await nats.connect(url, allow_reconnect=False, connect_timeout=2)


def test_worker_credentials_are_checked_by_nats_and_revocable(tmp_path):
    data = tmp_path / "data"
    ima = [sys.executable, "-m", "ima", "--data-dir", str(data), "fleet"]
    added = subprocess.run([*ima, "add-worker", "pi-1"], capture_output=True, text=True, check=True)
    password = added.stdout.strip()
    credentials = Credentials(data)
    assert password and password not in credentials.auth_file.read_text()  # only the hash
    cluster = NatsCluster(tmp_path / "nats", servers=1, auth_file=credentials.auth_file).start()
    port = cluster.ports[0]

    async def scenario() -> None:
        with pytest.raises(NatsError):  # no credentials, or wrong ones
            await _connect(f"nats://127.0.0.1:{port}")
        with pytest.raises(NatsError):
            await _connect(f"nats://pi-1:wrong@127.0.0.1:{port}")
        worker = await _connect(f"nats://pi-1:{password}@127.0.0.1:{port}")
        serve = await _connect(credentials.serve_url(f"nats://127.0.0.1:{port}"))
        beats: list[str] = []

        async def seen(msg: nats.aio.msg.Msg) -> None:
            beats.append(msg.subject)

        await serve.subscribe(protocol.HEARTBEATS, cb=seen)
        await serve.flush()
        await worker.publish(protocol.heartbeat_subject("pi-1"), b"{}")
        await worker.publish(protocol.heartbeat_subject("someone-else"), b"{}")  # refused
        await worker.flush()
        deadline = time.monotonic() + 5
        while not beats and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        assert beats == [protocol.heartbeat_subject("pi-1")]
        reload = ["--reload-pid", str(cluster.pid_file(0))]
        removed = subprocess.run([*ima, "remove-worker", "pi-1", *reload], capture_output=True,
                                 text=True)  # fmt: skip
        assert removed.returncode == 0, removed.stderr
        deadline = time.monotonic() + 10
        while worker.is_connected and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not worker.is_connected  # the reload disconnected it
        with pytest.raises(NatsError):
            await _connect(f"nats://pi-1:{password}@127.0.0.1:{port}")
        await serve.close()

    try:
        asyncio.run(scenario())
        listed = subprocess.run([*ima, "list"], capture_output=True, text=True, check=True)
        assert "pi-1" in listed.stdout and "revoked" in listed.stdout
    finally:
        cluster.close()


def test_serve_answers_through_a_worker_and_falls_back_when_none_is_left(tmp_path):
    from ima.api import grants

    data = tmp_path / "data"
    data.mkdir()
    keys = KeyStore(data / "keys.sqlite3")
    operator, operator_secret = keys.create("ops", "premium")
    _, user_secret = keys.create("someone", "premium")
    keys.close()
    grants.grant(data / "keys.sqlite3", operator.id, [])  # it sends the posts
    cluster = NatsCluster(tmp_path / "nats", servers=1).start()
    workers = Workers(cluster.url, tmp_path)
    watcher = Supervisor(cluster.url).start()
    wait_live(watcher, "embed", [workers.start(("embed",))])  # the writer embeds through it
    watcher.close()
    port = free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "IMA_OPERATOR_KEYS": operator.id}
    with open(log, "wb") as out:
        serve = subprocess.Popen(
            [sys.executable, "-m", "ima", "--data-dir", str(data), "serve", "--port", str(port),
             "--no-default-source", "--answerers", "0", "--fleet", cluster.url],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    ask = {"model": "ima", "messages": [{"role": "user", "content": "Is the harbor bridge open?"}],
           "search_parameters": {"to_date": "2026-11-22"}}  # fmt: skip
    try:
        wait_until_up(f"{base}/healthz", serve, log=log)
        as_operator = {"authorization": f"Bearer {operator_secret}"}
        # the writer's supervisor waits only so long for a first heartbeat, then embeds
        # locally: the posts come once it knows the embed worker (its metrics, every 2 s)
        deadline = time.monotonic() + 30
        while 'ima_writer_fleet_workers{state="live"} 1.0' not in (
                metrics := httpx.get(f"{base}/metrics").text):  # fmt: skip
            assert time.monotonic() < deadline, metrics
            time.sleep(0.2)
        at = NOW.isoformat()
        sent = httpx.post(f"{base}/v1/posts", headers=as_operator, json=[
            post(1, "The harbor bridge reopened at 9:15 after the repairs.", at=at),
            post(2, "Harbor bridge traffic is back to normal.", at=at, author="bob"),
        ])  # fmt: skip
        assert sent.status_code == 200 and sent.json()["accepted"] == 2, sent.text
        deadline = time.monotonic() + 15
        while len(httpx.get(f"{base}/v1/search", params={"q": "harbor bridge"},
                            headers=as_operator).json()["hits"]) < 2:  # fmt: skip
            assert time.monotonic() < deadline
            time.sleep(0.5)  # (each look spends a request of the key's minute)
        name = workers.start(("compose",))
        deadline = time.monotonic() + 30
        while True:
            listed = httpx.get(f"{base}/v1/fleet", headers=as_operator).json()
            if any(w["name"] == name and w["state"] == "live" for w in listed["workers"]):
                break
            assert time.monotonic() < deadline, listed
            time.sleep(0.1)
        answer = httpx.post(f"{base}/v1/chat/completions", json=ask, headers=as_operator,
                            timeout=30)  # fmt: skip
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-ima-fleet"] == f"worker {name}"
        assert "[1]" in answer.json()["choices"][0]["message"]["content"]
        refused = httpx.get(f"{base}/v1/fleet", headers={"authorization": f"Bearer {user_secret}"})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "not_operator"

        workers.kill(name)  # the only worker: answers go on, locally, and say so
        deadline = time.monotonic() + 15
        while True:
            local = httpx.post(f"{base}/v1/chat/completions", json=ask, headers=as_operator,
                               timeout=30)  # fmt: skip
            if local.headers.get("x-ima-fleet") == "local":
                break
            assert time.monotonic() < deadline, local.headers
        assert local.status_code == 200
        assert local.json()["choices"][0]["message"]["content"] == (
            answer.json()["choices"][0]["message"]["content"])  # fmt: skip
        # the writer process embedded the two posts through the fleet: its metrics show here
        # (it writes them every 2 s)
        deadline = time.monotonic() + 15
        while 'ima_embed_posts_total{by="fleet"} 2.0' not in (
                metrics := httpx.get(f"{base}/metrics").text):  # fmt: skip
            assert time.monotonic() < deadline, metrics
            time.sleep(0.2)
        assert 'ima_fleet_local_fallbacks_total{kind="compose"}' in metrics
        assert 'ima_fleet_jobs_total{kind="compose",outcome="ok"} 1.0' in metrics
        assert 'ima_writer_fleet_jobs_total{kind="embed",outcome="ok"} 1.0' in metrics
        assert "ima_embed_queue_posts 0.0" in metrics
    finally:
        serve.terminate()
        serve.wait(15)
        workers.close()
        cluster.close()


def test_a_worker_composes_what_ask_composes_misspelled_widened_and_quoted(tmp_path):
    from ima.answer.ask import ask
    from ima.fleet.serving import local_answer
    from ima.fleet.supervisor import ROUTE
    from ima.store import Store

    store = Store(tmp_path / "data", commit_interval=0.05)
    feed(store, [
        post(1, "The Ukrainian delegation arrived in Geneva for the talks at 9:00.",
             at="2026-11-22T10:00:00Z"),
        post(2, "Ukrainian and Swiss officials met the delegation at the airport.",
             at="2026-11-22T10:30:00Z", author="bob"),
        post(3, "The old lighthouse on Cape Rocky reopened to visitors after repairs.",
             at="2026-11-19T10:00:00Z", author="carol"),
        post(4, "Visitors queued for hours at the lighthouse gift shop.",
             at="2026-11-19T11:00:00Z", author="dave"),
        post(5, "The dam on the Green river failed at noon, flooding two villages.",
             at="2026-11-17T12:00:00Z", author="erin"),
        post(6, "Villages near the Green river dam are still flooded today.",
             at="2026-11-22T09:00:00Z", author="fred", quote_of="test:5"),
        *(post(7 + i, text, at=f"2026-11-22T08:{i}0:00Z", author=f"u{i}") for i, text in
          enumerate(["The bakery on Main street closed early.", "The pool closed for cleaning.",
                     "The museum closed its east wing."])),
    ])  # fmt: skip
    cluster = NatsCluster(tmp_path / "nats", servers=1).start()
    workers = Workers(cluster.url, tmp_path)
    supervisor = Supervisor(cluster.url).start()
    try:
        name = workers.start(("compose",))
        wait_live(supervisor, "compose", [name])
        fleet = FleetAnswerer(store, supervisor, local_answer(store, None, None))
        for question in (
            "Did the ukranian delegation arrive?",  # read as the posts spell it
            "Is the lighthouse closed?",  # its posts are days old: one word is not enough
            "What happened to the green river villages?",  # a quote is as old as its news
        ):
            route: dict[str, str] = {}
            ROUTE.set(route)
            answer = fleet.answer(question, as_of=NOW, persona="regular")
            assert route == {"route": f"worker {name}"}
            assert answer.text == ask(store, question, as_of=NOW).text, question
    finally:
        supervisor.close()
        workers.close()
        cluster.close()
        store.close()


def test_a_worker_serves_only_its_own_subjects(tmp_path):
    import json

    cluster = NatsCluster(tmp_path / "nats", servers=1).start()
    workers = Workers(cluster.url, tmp_path)
    supervisor = Supervisor(cluster.url).start()

    async def info() -> dict:
        nc = await _connect(cluster.url)
        try:
            reply = await nc.request(f"$SRV.INFO.{protocol.SERVICE}", b"", timeout=5)
            return json.loads(reply.data)
        finally:
            await nc.close()

    try:
        name = workers.start(("compose",))
        wait_live(supervisor, "compose", [name])
        service = asyncio.run(info())
        assert service["metadata"]["worker"] == name
        # jobs go where the supervisor sends them (it routes, hedges and checks): no
        # subject takes a job for "any worker"
        assert [e["subject"] for e in service["endpoints"]] == [
            protocol.job_subject(name, "compose")]
    finally:
        supervisor.close()
        workers.close()
        cluster.close()


def test_a_fleet_url_names_a_cluster_and_its_credentials_stay_out_of_logs():
    from ima.fleet.connection import redacted, servers

    url = "nats://pi-1:s3cret@10.0.0.1:4222,10.0.0.2:4223,nats://other:pw@10.0.0.3:4222"
    assert servers(url) == ["nats://pi-1:s3cret@10.0.0.1:4222", "nats://pi-1:s3cret@10.0.0.2:4223",
                            "nats://other:pw@10.0.0.3:4222"]  # fmt: skip
    assert "s3cret" not in redacted(url) and "pw" not in redacted(url)
    for bad in ("", "http://host:4222", "nats://"):
        with pytest.raises(ValueError):
            servers(bad)


def test_a_cluster_whose_port_is_taken_meanwhile_starts_on_fresh_ports(tmp_path):
    """A port picked free can be taken by another process before nats-server binds it
    (it then exits at once): the servers start again on fresh ports."""
    import socket

    cluster = NatsCluster(tmp_path / "nats", servers=2)
    taken = socket.socket()
    taken.bind(("127.0.0.1", cluster.routes[1]))  # as another process might, meanwhile
    taken.listen()
    try:
        cluster.start()
        assert cluster.routes[1] != taken.getsockname()[1]

        async def round_trip() -> bytes:
            nc = await nats.connect(cluster.url_of(0))
            other = await nats.connect(cluster.url_of(1))
            try:
                async def pong(message) -> None:
                    await message.respond(b"pong")

                sub = await other.subscribe("ping", cb=pong)
                await other.flush()
                deadline = time.monotonic() + 10
                while True:  # until the two servers have routed to each other
                    try:
                        answer = (await nc.request("ping", b"", timeout=0.5)).data
                        break
                    except NatsError:
                        assert time.monotonic() < deadline
                await sub.unsubscribe()
                return answer
            finally:
                await nc.close()
                await other.close()

        assert asyncio.run(round_trip()) == b"pong"
    finally:
        cluster.close()
        taken.close()
