"""Who holds which partition: JetStream key-value buckets, changed only by compare-and-set.

The `parts` bucket has one key per partition (its owners, whether it is sealed, and
once sealed the range of creation times it holds) and the `layout` (how many posts a
partition spans, fixed when the cluster is first used). The `nodes` bucket is the
membership: each node puts its key every `lease / 3` seconds, and the bucket's TTL
drops a node that stops, so a lease is just an entry that has not expired (a node whose
key has not changed for half a lease is `quiet`: perhaps dead, its lease not yet out).
Every change to a partition's key names the revision it read (`update(..., last=rev)`),
so two nodes racing for the same slot cannot both win: JetStream decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from ima.cluster.fabric import Fabric

log = logging.getLogger(__name__)

LAYOUT = "layout"
RESYNC_S = 5.0


def _key(index: int) -> str:
    return f"p.{index}"


@dataclass(frozen=True, slots=True)
class Partition:
    """Partition `index` holds stream positions [first, last] (1-based) of the posts."""

    index: int
    span: int
    owners: tuple[str, ...] = ()
    sealed: bool = False
    low_us: int | None = None  # oldest and newest creation time held (known once sealed)
    high_us: int | None = None
    posts: int = 0
    revision: int = field(default=0, compare=False)

    @property
    def first(self) -> int:
        return self.index * self.span + 1

    @property
    def last(self) -> int:
        return (self.index + 1) * self.span

    def overlaps(self, low_us: int | None, high_us: int) -> bool:
        """Whether posts created in [low_us, high_us] may be here (a hot partition's
        range is not known yet: it may hold anything)."""
        if not self.sealed or self.low_us is None or self.high_us is None:
            return True
        return self.low_us <= high_us and (low_us is None or self.high_us >= low_us)

    def encode(self) -> bytes:
        body = asdict(self)
        del body["revision"], body["index"], body["span"]
        return json.dumps(body).encode()

    @classmethod
    def decode(cls, index: int, span: int, data: bytes, revision: int) -> Partition:
        body = json.loads(data)
        return cls(
            index,
            span,
            tuple(body["owners"]),
            body["sealed"],
            body["low_us"],
            body["high_us"],
            body["posts"],
            revision,
        )


class Directory:
    """The partitions as the `parts` bucket holds them, kept current by a watcher."""

    def __init__(self, js: Any, fabric: Fabric, lease_s: float = 3.0) -> None:
        self.js = js
        self.fabric = fabric
        self.lease_s = lease_s
        self.span = 0
        self.partitions: dict[int, Partition] = {}
        self._parts: Any = None
        self._nodes: Any = None
        self._beats: dict[str, tuple[int, float]] = {}  # node -> its key's revision, first seen
        self._watches: list[asyncio.Task] = []

    async def open(self, span: int | None = None) -> Directory:
        """Open (or create) the buckets; the layout is fixed by the first to give `span`.
        Without `span` (a reader), waits for a node to have fixed it."""
        self._parts = await self.fabric.bucket(self.js, self.fabric.parts_bucket)
        self._nodes = await self.fabric.bucket(self.js, self.fabric.nodes_bucket, self.lease_s)
        if span is not None:
            with contextlib.suppress(KeyWrongLastSequenceError):
                await self._parts.create(LAYOUT, json.dumps({"span": span}).encode())
        while True:
            try:
                self.span = json.loads((await self._parts.get(LAYOUT)).value)["span"]
                break
            except KeyNotFoundError:
                await asyncio.sleep(0.2)
        await self.resync()
        self._watches = [asyncio.create_task(self._follow(self._parts, self._apply)),
                         asyncio.create_task(self._follow(self._nodes, self._heard))]  # fmt: skip
        return self

    async def resync(self) -> None:
        """Read every partition's key now: they are numbered from 0 without gaps, so
        each is read directly (listing a bucket's keys can come back short)."""
        index = 0
        while True:
            try:
                self._apply(await self._parts.get(_key(index)))
            except KeyNotFoundError:
                return
            index += 1

    def _apply(self, entry: Any) -> None:
        if not entry.key.startswith("p.") or entry.value is None or entry.operation:
            return
        index = int(entry.key[2:])
        current = self.partitions.get(index)
        if current is None or entry.revision > current.revision:
            self.partitions[index] = Partition.decode(index, self.span, entry.value, entry.revision)

    async def _follow(self, bucket: Any, apply: Callable[[Any], None]) -> None:
        """Apply `bucket`'s changes as they come; the watcher's consumer can be lost with a
        server, so every few seconds a new watcher starts from the current values."""
        while True:
            try:
                watcher = await bucket.watchall()
                try:
                    deadline = asyncio.get_running_loop().time() + RESYNC_S
                    while (left := deadline - asyncio.get_running_loop().time()) > 0:
                        with contextlib.suppress(NatsTimeout):
                            entry = await watcher.updates(timeout=left)
                            if entry is not None:
                                apply(entry)
                finally:
                    with contextlib.suppress(Exception):
                        await watcher.stop()
            except (NatsError, TimeoutError):
                await asyncio.sleep(0.5)

    async def close(self) -> None:
        for watch in self._watches:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch

    # -- membership ------------------------------------------------------------------

    async def heartbeat(self, node: str, serving: Iterable[int] = ()) -> None:
        """Renew `node`'s lease, saying which partitions it answers searches for."""
        await self._nodes.put(node, json.dumps({"serving": sorted(serving)}).encode())

    def _heard(self, entry: Any) -> None:
        """A heartbeat: when each node's latest one was first seen here (a new watcher
        hands the latest ones over again: they are not new)."""
        if entry.value is None or entry.operation:
            return
        now = time.monotonic()
        seen = self._beats.get(entry.key)
        if seen is None:  # a node new here: forget those silent for long (bounded)
            self._beats = {n: b for n, b in self._beats.items() if now - b[1] < 20 * self.lease_s}
        if seen is None or entry.revision > seen[0]:
            self._beats[entry.key] = (entry.revision, now)

    def quiet(self, node: str) -> bool:
        """Whether `node` has not renewed its lease for half of it: perhaps dead, and
        holding its lease (so counted live) until it runs out."""
        seen = self._beats.get(node)
        return seen is None or time.monotonic() - seen[1] > self.lease_s / 2

    async def live_nodes(self) -> set[str]:
        """Nodes holding a lease: the subjects the bucket's stream holds, in one request
        (listing keys through a watcher needs a consumer, slow while a server is away)."""
        bucket = self.fabric.nodes_bucket
        info = await self.js.stream_info(f"KV_{bucket}", subjects_filter=f"$KV.{bucket}.>")
        prefix = len(f"$KV.{bucket}.")
        return {subject[prefix:] for subject in (info.state.subjects or {})}

    async def alive(self, node: str) -> bool:
        """Whether `node` holds a lease, asked of its key directly."""
        try:
            await self._nodes.get(node)
            return True
        except KeyNotFoundError:
            return False

    async def serving(self) -> dict[str, set[int]]:
        """Live node -> the partitions it answers searches for."""
        out = {}
        for node in await self.live_nodes():
            with contextlib.suppress(KeyNotFoundError):
                out[node] = set(json.loads((await self._nodes.get(node)).value)["serving"])
        return out

    # -- partitions -----------------------------------------------------------------

    async def create(self, index: int) -> None:
        """Record partition `index` (unowned) unless it already is."""
        with contextlib.suppress(KeyWrongLastSequenceError):
            await self._parts.create(_key(index), Partition(index, self.span).encode())

    async def change(self, part: Partition, **changes: Any) -> Partition | None:
        """`part` with `changes`, if nobody changed it since it was read; else None."""
        new = replace(part, **changes)
        try:
            revision = await self._parts.update(_key(part.index), new.encode(), last=part.revision)
        except KeyWrongLastSequenceError:
            return None
        new = replace(new, revision=revision)
        self._apply_local(new)
        return new

    def _apply_local(self, part: Partition) -> None:
        current = self.partitions.get(part.index)
        if current is None or part.revision > current.revision:
            self.partitions[part.index] = part

    async def fresh(self, index: int) -> Partition:
        """Partition `index` as stored now (not as last watched)."""
        entry = await self._parts.get(_key(index))
        part = Partition.decode(index, self.span, entry.value, entry.revision)
        self._apply_local(part)
        return part

    async def move(self, index: int, source: str, target: str, timeout: float = 60) -> None:
        """Move partition `index` from node `source` to node `target` without a gap: the
        target is added as a third owner, and `source` removed only once the target
        answers searches for it (then `source` drops its copy)."""
        await self._set_owners(index, lambda owners: (*owners, target) if target not in owners
                               else owners)  # fmt: skip
        deadline = asyncio.get_running_loop().time() + timeout
        while index not in (await self.serving()).get(target, set()):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"node {target} did not take partition {index}")
            await asyncio.sleep(0.2)
        await self._set_owners(index, lambda owners: tuple(o for o in owners if o != source))

    async def _set_owners(self, index: int, change: Any) -> None:
        while True:
            part = await self.fresh(index)
            if await self.change(part, owners=change(part.owners)) is not None:
                return
