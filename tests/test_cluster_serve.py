"""`ima serve --fabric` on loopback: three real `nats-server`s (JetStream, R3), two real
`ima node`s, and the API over them (`ima.cluster.serve`) served by uvicorn, asked by a
real HTTP client and by the official `openai` client."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx
import openai
import pytest

from api_server import running
from ima.bench.cluster import Nodes, feed, records, wait_nodes, wait_settled
from ima.bench.fleet import NatsCluster
from ima.bench.serve import free_port
from ima.cluster.fabric import Fabric
from ima.cluster.serve import fabric_app, open_cluster
from ima.config import Settings

SPAN = 50
CLUSTER = "t_serve"


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    servers = NatsCluster(root / "nats", jetstream=True).start()
    fabric = Fabric(CLUSTER)
    nodes = Nodes(root, servers.url, fabric, span=SPAN)
    store = None
    try:
        for i in range(2):
            nodes.start(i)
        wait_nodes(servers.url, fabric, 2)
        end = datetime.now(UTC) - timedelta(minutes=5)
        assert feed(servers.url, fabric, records(2 * SPAN + 5, end=end)) == 2 * SPAN + 5
        wait_settled(servers.url, fabric)
        store = open_cluster(servers.url, CLUSTER, deadline_s=10)  # (a loaded host)
        port = free_port()
        app = fabric_app(Settings(root / "api"), store, no_auth=True,
                         public_url=f"http://127.0.0.1:{port}")  # fmt: skip
        with running(app, port), httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            yield http, nodes, store, servers
    finally:
        if store is not None:
            store.close()
        nodes.close()
        servers.close()


def _lighthouse() -> list[dict]:
    now = datetime.now(UTC)
    texts = [
        "The zyxquartz lighthouse reopened this morning after the storm repairs.",
        "Crowds at the zyxquartz lighthouse, reopened and lit again tonight.",
        "Ferries run again now that the zyxquartz lighthouse is back on.",
    ]
    return [{"id": f"lh{i}", "text": text, "lang": "en", "author": f"keeper{i}",
             "created_at": (now - timedelta(minutes=3 - i)).isoformat()}
            for i, text in enumerate(texts)]  # fmt: skip


def _search(http: httpx.Client, q: str, want: int, timeout: float = 30) -> dict:
    """The search's answer once it holds `want` hits (committed by the nodes), or the
    last one after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        found = http.get("/v1/search", params={"q": q, "k": 10}).json()
        if len(found["hits"]) >= want or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_posts_sent_over_http_are_published_and_then_found(api):
    http, *_, servers = api
    huge = {**_lighthouse()[0], "id": "huge", "extra": "x" * 1_100_000}  # past NATS's 1 MB
    sent = http.post("/v1/posts",
                     json=[*_lighthouse(), {"id": "bad", "text": "no date"}, huge])  # fmt: skip
    assert sent.status_code == 200, sent.text
    body = sent.json()
    assert (body["accepted"], body["rejected"]) == (3, 2)
    assert [i["status"] for i in body["items"]] == ["published"] * 3 + ["error"] * 2
    assert body["items"][0]["id"] == "api:lh0"
    assert "created_at" in body["items"][3]["error"]
    assert "bytes" in body["items"][4]["error"]
    # each query goes to one of a partition's two copies: both have them before asking
    wait_settled(servers.url, Fabric(CLUSTER))
    found = _search(http, "zyxquartz", 3)
    assert {h["post"]["id"] for h in found["hits"]} == {"api:lh0", "api:lh1", "api:lh2"}
    assert found["partial"] is False and found["missing"] == []
    assert _search(http, "date", 1, timeout=0)["hits"] == []  # the refused one never went
    one = http.get("/v1/posts/api:lh1")
    assert one.status_code == 200 and "lit again" in one.json()["text"]
    assert http.get("/v1/posts/api:nothing").status_code == 404
    health = http.get("/healthz").json()
    assert health["status"] == "ok" and health["posts"] == 2 * SPAN + 5 + 3


def test_search_over_the_cluster_filters_by_time_and_author(api):
    http, *_ = api
    _search(http, "zyxquartz", 3)
    by_keeper = http.get("/v1/search", params={"q": "zyxquartz from:keeper1"}).json()
    assert [h["post"]["id"] for h in by_keeper["hits"]] == ["api:lh1"]
    earlier = (datetime.now(UTC) - timedelta(hours=3)).isoformat()
    assert http.get("/v1/search", params={"q": "zyxquartz", "as_of": earlier}).json()["hits"] == []


def test_a_chat_completion_cites_posts_found_in_the_cluster(api):
    http, *_ = api
    _search(http, "zyxquartz", 3)
    base = str(http.base_url).rstrip("/")
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0, timeout=60)
    completion = client.chat.completions.create(
        model="ima", messages=[{"role": "user", "content": "Is the zyxquartz lighthouse open?"}]
    )
    text = completion.choices[0].message.content
    citations = completion.model_extra["citations"]
    assert "[1]" in text and "reopened" in text
    assert citations and all("/v1/posts/api:lh" in c for c in citations)
    assert completion.model_extra["partial"] is False  # every partition answered


def test_routes_that_need_a_whole_store_say_so(api):
    http, *_ = api
    for path in ("/v1/trends", "/v1/feed?topic=storm", "/2/news/search?query=storm"):
        refused = http.get(path)
        assert refused.status_code == 501, path
        error = refused.json()["error"]
        assert error["code"] == "needs_local_store" and "whole store" in error["message"]


def test_serve_fabric_serves_the_cluster_until_sigterm(api, tmp_path):
    """`ima serve --fabric`, as an operator runs it."""
    http, _, store, _ = api
    _search(http, "zyxquartz", 3)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "ima", "--data-dir", str(tmp_path), "serve", "--fabric",
         store.url, "--cluster", CLUSTER, "--no-auth", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                found = httpx.get(f"http://127.0.0.1:{port}/v1/search", params={"q": "zyxquartz"})
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.2)
        assert found.status_code == 200 and len(found.json()["hits"]) == 3
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=30)
    # uvicorn ends by raising the signal it caught again, once shut down
    assert process.returncode == -signal.SIGTERM, out
    assert f"over cluster {CLUSTER!r}" in out and "Traceback" not in out


def test_search_says_which_ranges_are_missing_when_the_nodes_are_gone(api):
    """Last: it stops the nodes. The stream still takes posts (it is on NATS)."""
    http, nodes, store, _ = api
    ranges = {(p.low_us, p.high_us) for p in store.partitions if p.sealed}
    nodes.close()
    found = http.get("/v1/search", params={"q": "storm"})
    assert found.status_code == 200
    body = found.json()
    assert body["partial"] is True and body["hits"] == []
    sealed = [(m["since"], m["until"]) for m in body["missing"] if m["until"] is not None]
    assert len(sealed) == len(ranges) == 2 and all(since for since, _ in sealed)
    assert len(body["missing"]) == 3  # and the hot partition's range, open-ended
    # an answer composed from such a search says so, streamed or not
    question = {"role": "user", "content": "Is the zyxquartz lighthouse open?"}
    chat = http.post("/v1/chat/completions", json={"model": "ima", "messages": [question]})
    assert chat.status_code == 200 and chat.json()["partial"] is True
    streaming = {"model": "ima", "stream": True, "messages": [question]}
    with http.stream("POST", "/v1/chat/completions", json=streaming) as streamed:
        chunks = [json.loads(line[5:]) for line in streamed.iter_lines()
                  if line.startswith("data: {")]  # fmt: skip
    assert chunks[-1]["partial"] is True
    response = http.post("/v1/responses", json={"model": "ima", "input": question["content"]})
    assert response.status_code == 200 and response.json()["partial"] is True
    sent = http.post("/v1/posts", json=_lighthouse()[:1])
    assert sent.status_code == 200 and sent.json()["accepted"] == 1


def test_health_is_down_and_posts_refused_while_nats_is_unreachable(api):
    """Last: it stops the NATS servers."""
    http, *_, servers = api
    servers.close()
    deadline = time.monotonic() + 15
    while (health := http.get("/healthz")).status_code != 503:
        assert time.monotonic() < deadline, health.text
        time.sleep(0.2)
    assert "NATS" in health.json()["reason"]
    refused = http.post("/v1/posts", json=_lighthouse()[:1])
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "ingest_unavailable"
