"""`ima serve` through the official `openai` client and plain HTTP: only base_url and
api_key change for existing OpenAI/xAI code."""

import json
from pathlib import Path

import httpx
import openai
import pytest

from api_server import serving
from conftest import feed, post
from ima.api import grants
from ima.api.keys import KeyStore

NOW_POSTS = [
    post("n1", "The Harbour Bridge is closed after a crash, traffic diverted",
         "2026-11-22T22:00:00Z", author="citynews", url="https://news.example/bridge"),
    post("n2", "Update: the Harbour Bridge reopened to traffic at 22:40",
         "2026-11-22T22:45:00Z", author="traffic_live"),
]  # fmt: skip


def _now_posts() -> list[dict]:
    """The posts, moved to the last hour so that 'now' questions find them."""
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    moved = []
    for minutes, record in zip((50, 5), NOW_POSTS, strict=True):
        moved.append({**record, "created_at": (now - timedelta(minutes=minutes)).isoformat()})
    return moved


@pytest.fixture
def api(tmp_path: Path):
    with serving(tmp_path / "data") as (base, svc):
        feed(svc.store, _now_posts())
        keys = {tier: svc.keys.create(f"test {tier}", tier)[1]
                for tier in ("free", "premium_plus", "tiny", "daily2")}  # fmt: skip
        yield base, svc, keys


def _client(base: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base, api_key=key, max_retries=0)


def test_chat_completions_with_the_openai_client(api):
    base, _svc, keys = api
    client = _client(base, keys["free"])
    completion = client.chat.completions.create(
        model="ima",
        messages=[{"role": "user", "content": "Is the Harbour Bridge open now?"}],
    )
    text = completion.choices[0].message.content
    assert "reopened" in text and "[1]" in text
    extra = completion.model_extra
    assert extra["citations"][0].endswith("/v1/posts/test:n2")
    assert "https://news.example/bridge" in extra["citations"]
    assert completion.usage.total_tokens > 0


def test_streaming_carries_citations_in_the_last_chunk(api):
    base, _svc, keys = api
    stream = _client(base, keys["free"]).chat.completions.create(
        model="ima",
        messages=[{"role": "user", "content": "Is the Harbour Bridge open now?"}],
        stream=True,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "reopened" in text
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.model_extra["citations"] and last.usage.model_extra["num_sources_used"] >= 1


def test_search_parameters_narrow_by_handle_and_follow_ups_use_the_conversation(api):
    base, _svc, keys = api
    client = _client(base, keys["free"])
    only_city = client.chat.completions.create(
        model="ima",
        messages=[{"role": "user", "content": "What happened to the Harbour Bridge?"}],
        extra_body={"search_parameters": {"mode": "on", "sources": [
            {"type": "x", "included_x_handles": ["citynews"]}]}},
    )  # fmt: skip
    assert only_city.model_extra["citations"] == ["https://news.example/bridge"]
    follow_up = client.chat.completions.create(
        model="ima",
        messages=[
            {"role": "user", "content": "What happened to the Harbour Bridge?"},
            {"role": "assistant", "content": "It closed."},
            {"role": "user", "content": "and is it open again now?"},
        ],
    )
    assert "reopened" in follow_up.choices[0].message.content
    off = client.chat.completions.create(
        model="ima", messages=[{"role": "user", "content": "Bridge?"}],
        extra_body={"search_parameters": {"mode": "off"}},
    )  # fmt: skip
    assert off.model_extra["citations"] == []


def test_responses_with_x_search_and_exact_annotations(api):
    base, _svc, keys = api
    client = _client(base, keys["free"])
    response = client.responses.create(
        model="ima",
        input="Is the Harbour Bridge open now?",
        tools=[{"type": "x_search", "excluded_x_handles": ["citynews"]}],
    )
    text = response.output_text
    annotations = response.output[0].content[0].annotations
    assert annotations and "[[1]](" in text
    for note in annotations:
        assert (
            text[note.start_index : note.end_index]
            == f"[[{text[note.start_index + 2]}]]({note.url})"
        )
        assert note.type == "url_citation"
    assert all("news.example" not in note.url for note in annotations)  # excluded handle
    assert response.usage.model_extra["num_searches"] == 1
    events = list(client.responses.create(model="ima", input="Harbour Bridge now?", stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == events[-1].response.output_text


def test_errors_are_openai_shaped(api, tmp_path):
    base, svc, keys = api
    with pytest.raises(openai.AuthenticationError) as missing:
        _client(base, "ima-00000000-nope").models.list()
    assert missing.value.body["code"] == "invalid_api_key"
    with pytest.raises(openai.PermissionDeniedError) as fun:
        _client(base, keys["free"]).chat.completions.create(
            model="ima-fun", messages=[{"role": "user", "content": "bridge?"}]
        )
    assert fun.value.body["code"] == "tier_lacks_fun" and fun.value.body["param"] == "model"
    allowed = _client(base, keys["premium_plus"]).chat.completions.create(
        model="ima-fun", messages=[{"role": "user", "content": "Is the Harbour Bridge open?"}]
    )
    assert allowed.model_extra["citations"]
    with pytest.raises(openai.BadRequestError) as bad:
        _client(base, keys["premium_plus"]).chat.completions.create(
            model="ima", messages=[{"role": "user", "content": "x"}], temperature=7
        )
    assert bad.value.body["param"] == "temperature"
    for day in ("2026-02-30", "0000-01-01"):  # the right shape, but no such day
        with pytest.raises(openai.BadRequestError) as no_day:
            _client(base, keys["premium_plus"]).chat.completions.create(
                model="ima", messages=[{"role": "user", "content": "bridge?"}],
                extra_body={"search_parameters": {"from_date": day}},
            )  # fmt: skip
        assert no_day.value.body["param"] == "search_parameters.from_date"
    earliest = _client(base, keys["premium_plus"]).chat.completions.create(
        model="ima", messages=[{"role": "user", "content": "Is the Harbour Bridge open?"}],
        extra_body={"search_parameters": {"to_date": "0001-01-01"}},
    )  # a window reaching back before year 1 is cut there, not an error  # fmt: skip
    assert earliest.model_extra["citations"] == []
    with pytest.raises(openai.NotFoundError):
        _client(base, keys["premium_plus"]).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}]
        )
    for _ in range(2):
        httpx.get(f"{base}/models", headers={"Authorization": f"Bearer {keys['daily2']}"})
    over = httpx.get(f"{base}/models", headers={"Authorization": f"Bearer {keys['daily2']}"})
    assert over.status_code == 429 and int(over.headers["Retry-After"]) >= 1
    assert over.json()["error"]["code"] == "quota_exceeded"
    svc.keys.revoke(keys["tiny"].split("-")[1])
    with pytest.raises(openai.AuthenticationError):
        _client(base, keys["tiny"]).models.list()
    huge = httpx.post(f"{base}/chat/completions", content=b"x" * (2 * 1024 * 1024),
                      headers={"Authorization": f"Bearer {keys['premium_plus']}"})  # fmt: skip
    assert huge.status_code == 413 and huge.json()["error"]["param"] == "body"


def test_posts_search_and_metrics_over_http(api):
    base, svc, keys = api
    auth = {"Authorization": f"Bearer {keys['premium_plus']}"}
    key_id = keys["premium_plus"].split("-")[1]
    grants.grant(svc.keys.path, key_id, [])  # no tier includes ingest by default
    source = grants.own_source(key_id)
    records = [
        {"id": "p1", "text": "Ferry timetable changes from Monday", "created_at": 1795300000,
         "author": "port"},
        {"id": "p2", "text": "missing a date", "author": "port"},
    ]  # fmt: skip
    result = httpx.post(f"{base}/posts", json=records, headers=auth).json()
    assert result["accepted"] == 1 and result["rejected"] == 1
    assert result["items"][0] == {"index": 0, "id": f"{source}:p1", "status": "new",
                                  "error": None}  # fmt: skip
    assert "created_at" in result["items"][1]["error"]
    ndjson = (
        b'{"id": "p3", "text": "Ferry fares rise", "created_at": 1795300000, "author": "a"}\n{bad\n'
    )
    result = httpx.post(
        f"{base}/posts", content=ndjson, headers={**auth, "content-type": "application/x-ndjson"}
    ).json()
    assert [i["status"] for i in result["items"]] == ["new", "error"]
    searched = httpx.get(f"{base}/search", params={"q": "ferry"}, headers=auth)
    found = searched.json()
    assert {h["post"]["id"] for h in found["hits"]} == {f"{source}:p1", f"{source}:p3"}
    timing = searched.headers["server-timing"]  # the server's own time, for clients
    assert timing.startswith("app;dur=") and float(timing.split("=")[1]) >= found["took_ms"]
    one = httpx.get(f"{base}/posts/{source}:p1", headers=auth)
    assert one.status_code == 200 and one.json()["text"] == "Ferry timetable changes from Monday"
    assert httpx.get(f"{base}/posts/api:zzz", headers=auth).status_code == 404
    bad_query = httpx.get(f"{base}/search", params={"q": '"unclosed'}, headers=auth)
    assert bad_query.status_code == 400 and bad_query.json()["error"]["param"] == "q"
    root = base.removesuffix("/v1")
    assert httpx.get(f"{root}/healthz").json()["status"] == "ok"
    metrics = httpx.get(f"{root}/metrics").text
    assert "ima_request_seconds_bucket" in metrics and "ima_ingested_posts_total" in metrics
    assert "ima_ingest_to_searchable_seconds_count 2.0" in metrics  # the two POSTs above


def test_no_auth_mode_needs_no_key(tmp_path):
    with serving(tmp_path / "data", no_auth=True) as (base, svc):
        feed(svc.store, _now_posts())
        reply = _client(base, "anything").chat.completions.create(
            model="ima-fun", messages=[{"role": "user", "content": "Is the Harbour Bridge open?"}]
        )
        assert reply.model_extra["citations"]


def test_keys_are_stored_hashed(tmp_path):
    keys = KeyStore(tmp_path / "keys.sqlite3")
    key, secret = keys.create("alice", "premium")
    assert keys.verify(secret) == key
    raw = (tmp_path / "keys.sqlite3").read_bytes()
    assert secret.encode() not in raw and secret.split("-", 2)[2].encode() not in raw
    assert keys.verify(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    assert keys.revoke(key.id) and keys.verify(secret) is None
    assert json.dumps([k.id for k in keys.list()]) == json.dumps([key.id])


def test_keys_commands_and_bench_serve(tmp_path):
    from click.testing import CliRunner

    from ima.cli import main

    runner = CliRunner()
    data = ["--data-dir", str(tmp_path / "data")]
    created = runner.invoke(main, [*data, "keys", "create", "--tier", "premium", "--name", "bo"])
    assert created.exit_code == 0
    secret = created.stdout.strip()
    assert secret.startswith("ima-")
    listed = runner.invoke(main, [*data, "keys", "list"]).stdout
    assert "premium" in listed and "bo" in listed and secret not in listed
    key_id = secret.split("-")[1]
    assert runner.invoke(main, [*data, "keys", "revoke", key_id]).exit_code == 0
    assert "revoked" in runner.invoke(main, [*data, "keys", "list"]).stdout
    assert runner.invoke(main, [*data, "keys", "revoke", key_id]).exit_code == 1
    bad = runner.invoke(main, [*data, "keys", "create", "--tier", "gold", "--name", "x"])
    assert bad.exit_code == 2 and "premium_plus" in bad.output
    bench = runner.invoke(
        main,
        ["bench", "serve", "--duration", "5", "--clients", "4", "--posts", "1000",
         "--rate", "100", "--json"],
    )  # fmt: skip
    figures = json.loads(bench.stdout)
    assert figures["errors"] == 0, figures["error_examples"]
    assert figures["server_errors"] == 0, figures["server_log_tail"]
    assert figures["search"]["requests"] > 0 and figures["search_server_side"]["requests"] > 0
    assert figures["search_server_side"]["p50_ms"] <= figures["search"]["p50_ms"]
    assert figures["server_cpu_cores"] > 0 and figures["load_cpu_cores"] > 0
    assert figures["chat"]["requests"] > 0 and figures["ingested_per_s"] > 0


@pytest.mark.parametrize(
    ("half_life_hours", "first", "other"),
    [(0.1, "fresh", "thorough"), (10_000, "thorough", "fresh")],
)
def test_search_ranks_recency_by_the_configured_half_life(
    tmp_path: Path, half_life_hours, first, other
):
    """`IMA_HALF_LIFE_HOURS` (Settings.ranking) reaches GET /v1/search: with a short
    half-life the day-newer post leads, with a long one the post that matches better."""
    from datetime import timedelta

    from ima.search import Ranking

    ranking = Ranking(half_life=timedelta(hours=half_life_hours))
    with serving(tmp_path / "data", no_auth=True, ranking=ranking) as (base, svc):
        feed(svc.store, [
            post("thorough", "ferry strike: every ferry route closed",
                 "2026-11-20T12:00:00Z"),
            post("fresh", "a ferry delay downtown", "2026-11-21T12:00:00Z"),
        ])  # fmt: skip
        hits = httpx.get(f"{base}/search", params={"q": "ferry", "as_of": "2026-11-21T12:00:00Z"})
        assert [h["post"]["id"] for h in hits.json()["hits"]] == [f"test:{first}", f"test:{other}"]
