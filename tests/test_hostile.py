"""Hostile input: each probe is the request a hostile client sent, against a real server
(uvicorn on loopback, real HTTP), a real store and the real ingest pipeline.

What must hold: a bad record is refused by itself with a reason (and kept as a dead
letter), the records beside it are stored, the pipeline keeps running, every bad value
gets a 4xx naming its field, no request's work is unbounded, and a key can only write
into its own source."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api_server import serving
from conftest import feed, post
from ima.api import grants
from ima.cli import main
from ima.ingest.normalize import JsonLine, RecordError, normalize
from ima.query import QuerySyntaxError, parse
from ima.store.log import READERS
from ima.trends.view import StoryView

POISON_DATE = {"id": "x", "text": "t", "created_at": "0001-01-01T00:00:00+12:00", "author": "a"}
DEEP_LINE = b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"


def _recent(minutes: int = 30) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat()


@pytest.fixture
def local(tmp_path: Path):
    """A server in local mode (no keys): any client may send posts as the source `api`."""
    with serving(tmp_path / "data", no_auth=True) as (base, svc):
        svc.trends = StoryView(svc.store)  # trends read from the log, as ima serve's are
        yield base.removesuffix("/v1"), svc


def test_a_poison_record_is_refused_alone_and_ingest_goes_on(local):
    root, svc = local
    good = {"id": "g1", "text": "Ferry to the island resumes", "created_at": _recent(),
            "author": "port"}  # fmt: skip
    sent = httpx.post(f"{root}/v1/posts", json=[POISON_DATE, good], timeout=10)
    assert sent.status_code == 200
    items = sent.json()["items"]
    assert items[0]["status"] == "error" and "created_at" in items[0]["error"]
    assert items[1] == {"index": 1, "id": "api:g1", "status": "new", "error": None}
    # the pipeline still runs: a later post is acknowledged, and health says so
    later = {**good, "id": "g2", "text": "Second ferry leaves at noon"}
    assert httpx.post(f"{root}/v1/posts", json=[later], timeout=10).json()["accepted"] == 1
    health = httpx.get(f"{root}/healthz").json()
    assert health["status"] == "ok" and health["dead_letters"] == 1
    letter = svc.store.log.dead_letters(1)[0]
    assert letter.kind == "bad_timestamp" and json.loads(letter.raw) == POISON_DATE
    metrics = httpx.get(f"{root}/metrics").text
    assert 'ima_rejected_records{kind="bad_timestamp"} 1.0' in metrics
    assert "ima_dead_letters 1.0" in metrics and "ima_writer_up 1.0" in metrics


def test_a_line_nested_100000_deep_is_refused_alone(local):
    root, _svc = local
    good = json.dumps({"id": "g3", "text": "Harbour lights are back", "created_at": _recent(),
                       "author": "port"}).encode()  # fmt: skip
    sent = httpx.post(f"{root}/v1/posts", content=DEEP_LINE + b"\n" + good,
                      headers={"content-type": "application/x-ndjson"}, timeout=10)  # fmt: skip
    assert sent.status_code == 200
    assert [i["status"] for i in sent.json()["items"]] == ["error", "new"]
    assert "nested deeper" in sent.json()["items"][0]["error"]
    deep_array = b"[" * 1000 + b"]" * 1000
    refused = httpx.post(f"{root}/v1/posts", content=deep_array,
                         headers={"content-type": "application/json"})  # fmt: skip
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "body"


def test_ima_ingest_keeps_the_good_records_beside_a_poison_line(tmp_path):
    data = ["--data-dir", str(tmp_path / "data")]
    stream = tmp_path / "stream.jsonl"
    good = [post(n, f"river level reading {n} at the weir", "2026-11-22T10:00:00Z")
            for n in range(3)]  # fmt: skip
    stream.write_bytes(
        json.dumps(good[0]).encode() + b"\n" + DEEP_LINE + b"\n"
        + json.dumps(POISON_DATE).encode() + b"\n"
        + b"\n".join(json.dumps(g).encode() for g in good[1:]) + b"\n"
    )  # fmt: skip
    runner = CliRunner()
    ingested = runner.invoke(main, [*data, "ingest", "--workers", "0", str(stream)])
    assert ingested.exit_code == 1  # some records were rejected: said, not fatal
    stats = json.loads(runner.invoke(main, [*data, "stats", "--json", "--dead", "5"]).stdout)
    assert stats["originals"] == 3
    assert stats["errors"] == {"bad_timestamp": 1, "too_deep": 1}
    assert sorted(d["kind"] for d in stats["dead_letter_records"]) == ["bad_timestamp", "too_deep"]


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/search", {"q": "ferry", "as_of": "9999-12-31T23:59:59-12:00"}, "as_of"),
        ("/v1/search", {"q": "ferry", "as_of": "0001-01-01T00:00:00+12:00"}, "as_of"),
        ("/v1/search", {"q": "ferry since:0001-01-01T00:00:00+12:00"}, "q"),
        ("/v1/search", {"q": "ferry until:9999-12-31T23:59:59-12:00"}, "q"),
        ("/v1/search", {"q": "!!! ..."}, "q"),
        ("/v1/trends", {"as_of": "9999-12-31T23:59:59-12:00"}, "as_of"),
    ],
)
def test_instants_at_the_edges_get_a_4xx_naming_the_field(local, path, params, field):
    root, _svc = local
    answer = httpx.get(root + path, params=params)
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == field
    assert httpx.get(f"{root}/healthz").status_code == 200  # and the server is fine


def test_far_instants_that_parse_are_clamped_not_refused(local):
    root, svc = local
    feed(svc.store, [post("c1", "Clamped ferry news", _recent())])
    for as_of in ("0001-01-01T00:00:00Z", "9999-12-31T00:00:00Z"):
        found = httpx.get(f"{root}/v1/search", params={"q": "ferry", "as_of": as_of})
        assert found.status_code == 200
    assert found.json()["hits"][0]["post"]["id"] == "test:c1"  # year 9999 means now


def test_a_date_range_from_year_1_costs_what_its_posts_do(local):
    root, svc = local
    feed(svc.store, [post("r1", "Ferry timetable changes on Monday", _recent())])
    started = time.monotonic()
    reply = httpx.post(f"{root}/v1/chat/completions", timeout=30, json={
        "model": "ima", "messages": [{"role": "user", "content": "ferry timetable?"}],
        "search_parameters": {"from_date": "0001-01-01", "to_date": "9999-12-31"},
    })  # fmt: skip
    assert reply.status_code == 200, reply.text
    assert time.monotonic() - started < 10
    assert reply.json()["citations"]


def test_post_urls_that_are_not_http_never_reach_clients(local):
    root, svc = local
    records = [
        {"id": "j1", "text": "Lighthouse keeper rescues a seal", "created_at": _recent(),
         "author": "coast", "url": "javascript:alert(1)"},
        {"id": "j2", "text": "Lighthouse open to visitors again", "created_at": _recent(20),
         "author": "tour", "url": "data:text/html,<script>alert(1)</script>"},
    ]  # fmt: skip
    assert httpx.post(f"{root}/v1/posts", json=records).json()["accepted"] == 2
    assert svc.store.log.error_counts() == {"url_not_http": 2}
    reply = httpx.post(f"{root}/v1/responses", timeout=30, json={
        "model": "ima", "input": "lighthouse?", "tools": [{"type": "x_search"}]})  # fmt: skip
    assert reply.status_code == 200
    text = reply.text.lower()
    assert "javascript:" not in text and "data:text" not in text
    assert f"{root}/v1/posts/api:j" in reply.text  # cited through our own copy instead


def test_ingest_needs_a_grant_and_writes_only_the_keys_own_source(tmp_path):
    with serving(tmp_path / "data") as (base, svc):
        _key, free = svc.keys.create("free user", "free")
        granted_key, relay = svc.keys.create("relay", "premium")
        feed(svc.store, [{**post("p", "Harbour cam shows fog", _recent()), "likes": 88}])
        record = {"id": "test:p", "source": "test", "text": "Harbour cam shows fog",
                  "created_at": _recent(), "author": "cam", "metrics": {"likes": 999999}}
        forbidden = httpx.post(f"{base}/posts", json=[record],
                               headers={"Authorization": f"Bearer {free}"})  # fmt: skip
        assert forbidden.status_code == 403
        assert forbidden.json()["error"]["code"] == "ingest_not_permitted"

        grants.grant(svc.keys.path, granted_key.id, [])
        auth = {"Authorization": f"Bearer {relay}"}
        claimed = httpx.post(f"{base}/posts", json=[record], headers=auth).json()
        assert claimed["items"][0]["status"] == "error"
        assert "not granted" in claimed["items"][0]["error"]
        assert svc.store.get("test:p").post.metrics.likes == 88  # the owner's count stands
        own = {k: v for k, v in record.items() if k != "source"}
        stored = httpx.post(f"{base}/posts", json=[own], headers=auth).json()
        assert stored["items"][0]["id"] == f"api-{granted_key.id}:test:p"  # not test:p
        assert svc.store.get("test:p").post.metrics.likes == 88

        grants.grant(svc.keys.path, granted_key.id, ["test"])  # a relay of that source
        relayed = httpx.post(f"{base}/posts", json=[record], headers=auth).json()
        assert relayed["items"][0] == {"index": 0, "id": "test:p", "status": "updated",
                                       "error": None}  # fmt: skip


def test_keys_grant_and_ungrant_commands(tmp_path):
    data = ["--data-dir", str(tmp_path / "data")]
    runner = CliRunner()
    secret = runner.invoke(main, [*data, "keys", "create", "--name", "relay"]).stdout.strip()
    key_id = secret.split("-")[1]
    granted = runner.invoke(main, [*data, "keys", "grant", key_id, "--source", "bluesky"])
    assert granted.exit_code == 0 and f"api-{key_id}" in granted.stdout
    keys_db = tmp_path / "data" / "keys.sqlite3"
    assert grants.granted(keys_db, key_id) == frozenset({"bluesky"})
    bad = runner.invoke(main, [*data, "keys", "grant", key_id, "--source", "Not A Source"])
    assert bad.exit_code == 2 and "source" in bad.output
    assert runner.invoke(main, [*data, "keys", "grant", "nokey"]).exit_code == 1
    assert runner.invoke(main, [*data, "keys", "ungrant", key_id]).exit_code == 0
    assert grants.granted(keys_db, key_id) is None
    assert runner.invoke(main, [*data, "keys", "ungrant", key_id]).exit_code == 1


def test_log_readers_do_not_pile_up_as_threads_come_and_go(store):
    feed(store, [post(n, f"reading {n}") for n in range(20)])

    def read_a_little() -> None:
        for n in range(20):
            store.get(f"test:{n}")

    def burst() -> None:
        threads = [threading.Thread(target=read_a_little) for _ in range(45)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def log_fds() -> int:  # descriptors open on the log's files (database, WAL, index)
        fds = Path("/proc/self/fd")
        return sum("log.sqlite3" in os.readlink(fd) for fd in fds.iterdir() if fd.exists())

    for _ in range(6):
        burst()
    # the writer's connection, a checkpointer's and the readers', 2-3 descriptors each
    assert log_fds() <= 3 * (READERS + 2)


def test_a_query_of_only_punctuation_is_an_error_not_everything():
    with pytest.raises(QuerySyntaxError, match="no words"):
        parse("!!! ??? ...")
    assert parse("ferry !!!").positive_terms[0].text == "ferry"


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
_EDGE_INSTANTS = st.sampled_from([
    "0001-01-01T00:00:00+12:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-12:00",
    "9999-12-31T23:59:59Z", "1969-12-31T23:59:59Z", "1970-01-01T00:00:00Z", "-1", "1e300",
    "nan", "inf", "253402300800", "2026-02-30T00:00:00Z", "", "2026-11-30T24:00:00",
]) | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40)  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fields=st.dictionaries(
        st.sampled_from(["id", "text", "created_at", "author", "url", "metrics", "source",
                         "lang", "reply_to", "likes", "user", "timestamp"]),
        _JSON, max_size=8,
    ),
    created=_EDGE_INSTANTS,
)
def test_any_record_becomes_a_post_or_a_record_error(fields, created):
    record = {"id": "1", "text": "t", "author": "a", **fields, "created_at": created}
    try:
        made = normalize(record)
    except RecordError:
        return
    assert made.created_at.year >= 1970 and made.url[:4] in ("", "http")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300) | st.builds(lambda n, s: s * n, st.integers(0, 5000),
                                           st.sampled_from([b"[", b"{", b'{"a":'])))  # fmt: skip
def test_any_line_parses_or_is_a_record_error(data):
    with contextlib.suppress(RecordError):
        JsonLine(1, data).parse()
