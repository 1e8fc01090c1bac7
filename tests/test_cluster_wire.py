"""What travels between the cluster's root and its partitions: plans and posts survive the
trip unchanged, and what a partition decodes is bounded (depth, sizes, inflated bytes)."""

from __future__ import annotations

import json
import zlib

import pytest

from conftest import feed, post
from ima.cluster.wire import MAX_INFLATED, Ask, pack, plan_in, plan_out, post_in, post_out
from ima.errors import BadInput
from ima.planner import plan
from ima.query import parse
from ima.store import AllOf, Statistics, Terms


@pytest.mark.parametrize("text", [
    "quake", '"power outage" -cat', "from:alice lang:ja (rain OR storm)", "#tag @bob -from:eve",
])  # fmt: skip
def test_a_plan_comes_back_as_it_went(text):
    node = plan(parse(text).root)
    assert plan_in(json.loads(json.dumps(plan_out(node)))) == node
    ask = Ask(node, 5, 10, 50, ("quak",))
    assert Ask.decode(ask.encode()) == ask
    ask = Ask(node, 5, 10, 50, ("quak", "quak"), stats=Statistics(9, {"quak": 3}, 10, 70))
    assert Ask.decode(ask.encode()) == ask
    lookup = Ask(None, None, 0, 1, (), ids=("x:1", "bsky:at://did/post/2"))
    assert Ask.decode(lookup.encode()) == lookup


def test_a_stored_post_comes_back_with_its_position_shifted(store):
    feed(store, [post(1, "the first post about rain")])
    stored = store.recent_originals(1)[0]
    back = post_in(json.loads(json.dumps(post_out(stored, 1 << 32))))
    assert back.seq == (1 << 32) + stored.seq
    assert (back.post, back.indexed_text) == (stored.post, stored.indexed_text)


def _nested(depth: int) -> list:
    node: list = ["t", "text", ["a"]]
    for _ in range(depth):
        node = ["all", [node], []]
    return node


@pytest.mark.parametrize("body", [
    {"plan": ["t", "secret_field", ["a"]], "high": 1, "limit": 1, "terms": []},
    {"plan": ["t", "text", []], "high": 1, "limit": 1, "terms": []},
    {"plan": _nested(40), "high": 1, "limit": 1, "terms": []},
    {"plan": None, "high": "1", "limit": 1, "terms": []},
    {"plan": None, "high": 1, "limit": 10_000, "terms": []},
    {"plan": None, "high": 1, "limit": 1, "terms": ["x"] * 1000},
    {"plan": None, "high": 1, "limit": 1, "terms": [7]},
    {"plan": None, "high": 1, "limit": 1, "terms": [], "global": {"doc_count": 1}},
    {"plan": None, "high": 1, "limit": 1, "terms": [], "global": {
        "doc_count": -1, "doc_freq": {}, "length_docs": 0, "length_terms": 0}},
    {"plan": None, "high": 1, "limit": 1, "terms": [], "global": {
        "doc_count": 1, "doc_freq": {"a": "1"}, "length_docs": 0, "length_terms": 0}},
    {"plan": None, "high": 1, "limit": 1, "terms": [], "ids": "x:1"},
    {"plan": None, "high": 1, "limit": 1, "terms": [], "ids": ["x:1"] * 101},
    {"plan": None, "high": 1, "limit": 1, "terms": [], "ids": ["x" * 301]},
    [1, 2, 3],
])  # fmt: skip
def test_a_malformed_request_is_refused(body):
    with pytest.raises(BadInput):
        Ask.decode(pack(body))


def test_a_plan_as_deep_as_the_limit_is_taken():
    assert isinstance(plan_in(_nested(31)), AllOf)
    assert plan_in(["t", "lang", ["ja"]]) == Terms("lang", ("ja",))


def test_what_would_inflate_past_the_limit_is_refused_without_inflating_it():
    bomb = zlib.compress(b"[" + b"0," * (MAX_INFLATED // 2) + b"0]", 9)
    assert len(bomb) < MAX_INFLATED // 100
    with pytest.raises(BadInput):
        Ask.decode(bomb)
    with pytest.raises(BadInput):
        Ask.decode(b"not compressed")


def test_a_retried_publish_lands_once_and_an_edit_does_not_count_as_a_retry():
    """A publisher whose acknowledgement was lost sends the same record again: the
    cluster's stream (real JetStream on 127.0.0.1:4222) keeps it once; the same post
    with other words is a new message."""
    import asyncio
    import os

    import nats

    from ima.cluster.fabric import Fabric, publish

    fabric = Fabric(f"retry{os.getpid()}", replicas=1)
    record = json.dumps({"id": "p1", "text": "ferry cancelled", "author": "a"}).encode()
    edited = json.dumps({"id": "p1", "text": "ferry resumed", "author": "a"}).encode()

    async def run() -> int:
        nc = await nats.connect("nats://127.0.0.1:4222")
        js = nc.jetstream()
        try:
            await fabric.ensure_stream(js)
            await publish(js, fabric, [record, record, edited])
            await publish(js, fabric, [record])  # again, as after a lost acknowledgement
            return (await js.stream_info(fabric.stream)).state.messages
        finally:
            await js.delete_stream(fabric.stream)
            await nc.close()

    assert asyncio.run(run()) == 2
