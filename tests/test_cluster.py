"""The store past one machine, on loopback: three real `nats-server`s in a JetStream
cluster (stream and buckets R3), three real `ima node` processes, and a single store
fed the same stream as the reference the cluster must agree with."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from datetime import UTC, datetime, timedelta

import nats
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ima.bench.cluster import (
    AUTHORS,
    LANGS,
    WORDS,
    Nodes,
    Producer,
    bench_cluster,
    feed,
    records,
    reference_store,
    stream_records,
    wait_nodes,
    wait_settled,
)
from ima.bench.fleet import NatsCluster
from ima.cluster.fabric import Fabric
from ima.cluster.ownership import Directory
from ima.cluster.partitioned import PartitionedStore
from ima.cluster.wire import unpack
from ima.planner import plan
from ima.post import to_us
from ima.query import parse
from ima.search import search
from ima.text import analysis

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SPAN = 200
POSTS = 3 * SPAN  # three sealed partitions, and 7 posts in a fourth


def _skewed() -> list[bytes]:
    """Each partition's posts unlike the others': long ones rich in a few words, short
    ones in others, then all words alike. A word's frequency and the average length then
    differ from partition to partition (so tantivy's scores in each do too), and common
    words match more posts than one candidate list holds."""
    return [
        *records(SPAN, seed=7, end=NOW, words=WORDS[:6] * 3 + WORDS, length=(12, 24)),
        *records(SPAN, seed=8, end=NOW, first=SPAN, words=WORDS[4:12] * 3 + WORDS, length=(1, 3)),
        *records(SPAN + 7, seed=9, end=NOW, first=2 * SPAN),
    ]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster")
    servers = NatsCluster(root / "nats", jetstream=True).start()
    fabric = Fabric("t_same")
    nodes = Nodes(root, servers.url, fabric, span=SPAN)
    root_store = None
    try:
        for i in range(3):
            nodes.start(i)
        wait_nodes(servers.url, fabric, 3)
        assert feed(servers.url, fabric, _skewed()) == POSTS + 7
        wait_settled(servers.url, fabric)
        single = reference_store(root / "single", stream_records(servers.url, fabric))
        root_store = PartitionedStore(servers.url, fabric, deadline_s=10).open()  # (a loaded host)
        yield servers, fabric, single, root_store
        single.close()
    finally:
        if root_store is not None:
            root_store.close()
        nodes.close()
        servers.close()


def test_each_partition_is_held_by_two_nodes_and_the_full_ones_are_sealed(cluster):
    _, _, single, root = cluster
    parts = root.partitions
    assert [p.index for p in parts] == [0, 1, 2, 3, 4]
    assert all(len(set(p.owners)) == 2 for p in parts)
    assert len({o for p in parts for o in p.owners}) == 3  # spread over all three nodes
    # three full, the fourth hot, the fifth held ready for the stream to reach it
    assert [p.sealed for p in parts] == [True, True, True, False, False]
    assert sum(p.posts for p in parts if p.sealed) == 3 * SPAN
    posts = {sp.post.id: sp for sp in single.recent_originals(1000)}
    for part in parts[:3]:  # a sealed partition's range covers exactly its posts
        created = [int(sp.post.created_at.timestamp() * 1e6) for sp in posts.values()
                   if part.first <= int(sp.post.id.split("-")[1]) + 1 <= part.last]  # fmt: skip
        assert (part.low_us, part.high_us) == (min(created), max(created))


_instants = st.integers(0, 3600).map(lambda s: NOW - timedelta(seconds=s))


def _day(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


@st.composite
def _queries(draw) -> tuple[str, datetime]:
    """A query with words or an author or both (a word may match more posts than one
    candidate list holds: see `_skewed`), with or without a language, a phrase, an
    excluded word and a time range."""
    parts = draw(st.lists(st.sampled_from(WORDS), min_size=0, max_size=2))
    if draw(st.booleans()) or not parts:
        parts.append(f"from:{draw(st.sampled_from(AUTHORS))}")
    if draw(st.booleans()):
        parts.append(f"lang:{draw(st.sampled_from(LANGS))}")
    if draw(st.booleans()):
        phrase = " ".join(draw(st.lists(st.sampled_from(WORDS), min_size=2, max_size=2)))
        parts.append(f'"{phrase}"')
    if draw(st.booleans()):
        parts.append(f"-{draw(st.sampled_from(WORDS))}")
    since, until = sorted(draw(st.lists(_instants, min_size=2, max_size=2)))
    if draw(st.booleans()):
        parts.append(f"since:{_day(since)}")
    if draw(st.booleans()):
        parts.append(f"until:{_day(until + timedelta(seconds=1))}")
    return " ".join(parts), draw(_instants)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(query=_queries(), k=st.integers(1, 12))
def test_the_cluster_returns_what_one_store_fed_the_same_stream_returns(cluster, query, k):
    _, _, single, root = cluster
    text, as_of = query
    expected = search(single, text, as_of=as_of, k=k)
    got = search(root, text, as_of=as_of, k=k)
    assert got.missing == []
    assert [(h.post.id, h.score) for h in got.hits] == [(h.post.id, h.score) for h in expected.hits]
    assert got.candidates == expected.candidates


def test_broad_queries_agree_where_partitions_would_rank_differently(cluster):
    """Every one- and two-word query: with each partition's own statistics, about one in
    four of these cut other candidates than one store does."""
    _, _, single, root = cluster
    queries = [*WORDS[:12], *(" ".join(pair) for pair in itertools.combinations(WORDS[:10], 2))]
    for text in queries:
        expected = search(single, text, as_of=NOW, k=10)
        got = search(root, text, as_of=NOW, k=10)
        assert got.missing == [], text
        assert [(h.post.id, h.score) for h in got.hits] == [
            (h.post.id, h.score) for h in expected.hits
        ], text
        assert got.candidates == expected.candidates


def test_common_words_match_more_posts_than_one_candidate_list(cluster):
    _, _, single, _ = cluster
    for word in ("quake", "rain", "launch"):  # rich in one partition, scarce in another
        node, wanted = plan(parse(word).root), analysis.terms(word)
        every = single.candidates(node, None, to_us(NOW), 1000, wanted)
        cut = single.candidates(node, None, to_us(NOW), 50, wanted)
        assert len(every.posts) > len(cut.posts) >= 50


def test_partitions_outside_the_time_range_are_asked_only_for_statistics(cluster):
    _, _, single, root = cluster
    sealed = root.partitions[1]
    since = datetime.fromtimestamp(sealed.high_us / 1e6, UTC) + timedelta(seconds=1)
    query = f"rain since:{_day(since)}"
    before = root.asked.copy()
    got = search(root, query, as_of=NOW, k=10)
    assert [h.post.id for h in got.hits] == [
        h.post.id for h in search(single, query, as_of=NOW).hits
    ]
    asked = root.asked - before
    full = sum(p.sealed and p.high_us >= int(since.timestamp() * 1e6) for p in root.partitions)
    assert full < 3  # the sealed partition before `since` was pruned
    assert asked["search"] == full + 2  # the overlapping sealed ones, the hot one, the next
    assert asked["stats"] <= 3 + 2  # statistics from all, sealed ones at most once
    again = root.asked.copy()
    search(root, query, as_of=NOW, k=10)
    assert root.asked["stats"] - again["stats"] == 2  # a sealed partition's are kept


def test_a_malformed_request_to_a_partition_gets_an_error_not_silence(cluster):
    servers, fabric, _, _ = cluster

    async def ask(data: bytes) -> dict:
        nc = await nats.connect(servers.url.split(","))
        try:
            return unpack((await nc.request(fabric.query_subject(0), data, timeout=5)).data)
        finally:
            await nc.close()

    for bad in (b"", b"not zlib", __import__("zlib").compress(b'{"plan": ["t", "x"]}')):
        assert "error" in asyncio.run(ask(bad))


def test_killing_a_node_and_a_server_under_ingest_loses_no_acknowledged_post(
    tmp_path, record_property
):
    servers = NatsCluster(tmp_path / "nats", jetstream=True).start()
    fabric = Fabric("t_kill")
    nodes = Nodes(tmp_path, servers.url, fabric, span=100)
    root = None
    try:
        for i in range(3):
            nodes.start(i)
        wait_nodes(servers.url, fabric, 3)
        producer = Producer(servers.url, fabric, records(900, seed=11, end=NOW), rate=60).start()
        root = PartitionedStore(servers.url, fabric).open()
        time.sleep(1.5)
        nodes.kill(0)  # SIGKILL, mid-ingest
        killed = time.monotonic()
        incomplete_until = killed
        while time.monotonic() - killed < 20:  # its lease runs out, its places are refilled
            if search(root, "rain", as_of=NOW, k=5).missing:
                incomplete_until = time.monotonic()
            time.sleep(0.1)
        # its partitions answer from the other copy, and the partitions the stream reaches
        # after the kill are claimed and served by the living nodes
        record_property("partial_s", round(incomplete_until - killed, 2))
        assert incomplete_until - killed < 10
        servers.kill(2)  # SIGKILL one of the three NATS servers, still mid-ingest
        producer.join()
        acked = set(producer.acked)
        assert len(acked) == 900
        wait_settled(servers.url, fabric, timeout=120)  # the dead node's places refilled
        deadline = time.monotonic() + 30  # sealing follows the last commit of a range
        while sum(p.sealed for p in root.partitions) < 9 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [p.posts for p in root.partitions if p.sealed] == [100] * 9  # each its range
        live = {o for p in root.partitions for o in p.owners}
        dead = (tmp_path / "node-0" / "node-id").read_text()
        assert dead not in live
        deadline = time.monotonic() + 30  # the dead node's consumers are deleted
        while _consumers(servers.url, fabric, dead) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _consumers(servers.url, fabric, dead) == []
        assert _consumers(servers.url, fabric, next(iter(live)))  # the living keep theirs
        found: set[str] = set()
        numbers = sorted(int(post_id.split("-")[1]) for post_id in acked)
        for at in range(0, len(numbers), 40):
            query = " OR ".join(f"n{n}" for n in numbers[at : at + 40])
            result = search(root, query, as_of=NOW, k=40)
            assert result.missing == []
            found |= {h.post.id.removeprefix("synthetic:") for h in result.hits}
        assert found == acked  # every acknowledged post, once
    finally:
        if root is not None:
            root.close()
        nodes.close()
        servers.close()


def _consumers(url: str, fabric: Fabric, node: str) -> list[str]:
    """The names of `node`'s durable consumers on the cluster's stream."""

    async def ask() -> list[str]:
        nc = await nats.connect(url.split(","))
        try:
            infos = await nc.jetstream().consumers_info(fabric.stream)
            return [i.name for i in infos if i.name.endswith(f"_{node}")]
        finally:
            await nc.close()

    return asyncio.run(ask())


def test_a_sealed_partition_moves_to_another_node_while_queries_run(cluster):
    _, _, single, root = cluster
    part = root.partitions[1]
    assert part.sealed
    everyone = {o for p in root.partitions for o in p.owners}
    source, target = part.owners[0], next(iter(everyone - set(part.owners)))
    queries = ["rain", "quake from:user1", "lang:ja storm", '"power outage"', "cat -dog"]
    expected = {q: [h.post.id for h in search(single, q, as_of=NOW).hits] for q in queries}
    seen: list[bool] = []
    wrong: list[tuple[float, str, tuple, list[str]]] = []  # when, query, missing, hits
    stop = threading.Event()
    start = time.monotonic()

    def ask() -> None:
        while not stop.is_set():
            for q in queries:
                got = search(root, q, as_of=NOW)
                ids = [h.post.id for h in got.hits]
                seen.append(not got.missing and ids == expected[q])
                if not seen[-1]:
                    wrong.append((round(time.monotonic() - start, 2), q, got.missing, ids))

    asker = threading.Thread(target=ask)
    asker.start()
    try:
        root.move(1, source, target)
        moved_at = round(time.monotonic() - start, 2)
        time.sleep(2)  # the source drops its copy after the move
    finally:
        stop.set()
        asker.join()
    moved = root.partitions[1]
    assert source not in moved.owners and target in moved.owners and len(moved.owners) == 2
    # complete and the same, throughout (the move's end, and the first wrong answers, if not)
    assert len(seen) > 10 and all(seen), (moved_at, wrong[:3])


def test_the_benchmark_runs_and_the_cluster_agrees_with_one_store():
    result = CliRunner().invoke(
        bench_cluster, ["--nodes", "3", "--posts", "1000", "--queries", "10", "--json"]
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["agreement"] == 1.0
    assert figures["partitions"] >= 2 and figures["search_ms"]["cluster_p50"] > 0


def test_a_copy_serves_only_once_it_holds_every_post_of_its_range(tmp_path, monkeypatch):
    """A pull that comes back empty because the server answered late (a loaded host) is
    not the end of the stream: the copy must not answer searches with part of its posts."""
    from ima.cluster import replica as replica_module

    monkeypatch.setattr(replica_module, "_FETCH_WAIT_S", 0.001)  # every answer is late
    servers = NatsCluster(tmp_path / "nats", jetstream=True).start()
    fabric = Fabric("t_late", replicas=1)

    async def run() -> list[int]:
        nc = await nats.connect(servers.url.split(","))
        js = nc.jetstream()
        await fabric.ensure_stream(js)
        directory = await Directory(js, fabric).open(SPAN)
        await directory.create(0)
        part = await directory.fresh(0)
        copy = replica_module.Replica(nc, fabric, directory, "n1", part, tmp_path / "p0", 0.05)
        held: list[int] = []  # the posts searchable when it began to serve
        serve = copy._serve

        async def counted() -> None:
            if not copy.serving:
                held.append(copy.store.counts()["originals"])
            await serve()

        copy._serve = counted  # type: ignore[method-assign]
        copy.start()
        try:
            for _ in range(600):
                if copy.serving or copy.failed:
                    break
                await asyncio.sleep(0.05)
            assert copy.failed is None, copy.failed
            return list(held)  # as it began to serve (stopping is not serving again)
        finally:
            await copy.stop()
            await directory.close()
            await nc.close()

    try:
        assert feed(servers.url, fabric, records(SPAN, seed=3, end=NOW)) == SPAN
        assert asyncio.run(run()) == [SPAN]
    finally:
        servers.close()


def test_a_node_that_stopped_renewing_its_lease_holds_no_claim_back(tmp_path):
    """A node SIGKILLed keeps its lease, and so its load, for a few seconds: partitions
    must not wait for it to take them."""
    from nats.js.kv import KeyValue

    from ima.cluster.node import Node
    from ima.cluster.ownership import Partition

    node = Node("nats://127.0.0.1:1", tmp_path, Fabric("t_claim"))
    directory = Directory(None, Fabric("t_claim"))
    me, other, dead = node.name, "n-other", "n-dead"  # `dead` holds the fewest
    held = [(me, other), (me, other), (other, dead)]
    directory.partitions = {i: Partition(i, SPAN, owners) for i, owners in enumerate(held)}
    live = {me, other, dead}
    for revision, name in enumerate((me, other, dead), 1):
        directory._heard(KeyValue.Entry("b", name, b"{}", revision, None, None, None))
    new, second = Partition(3, SPAN), Partition(3, SPAN, (other,))
    # while `dead` renews its lease, the least loaded takes the place
    assert not node._should_claim(new, live, directory, 0)
    assert not node._should_claim(second, live, directory, 0)
    # but the stream has reached a partition nobody holds: the first to see it takes it
    assert node._should_claim(new, live, directory, new.first)
    directory._beats[dead] = (3, time.monotonic() - directory.lease_s)  # silent a whole lease
    assert directory.quiet(dead) and not directory.quiet(other)
    assert node._should_claim(new, live, directory, 0)
    assert node._should_claim(second, live, directory, 0)
