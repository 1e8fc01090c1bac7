"""The names one cluster uses on NATS, and the JetStream stream and buckets behind them.

`--cluster NAME` picks them, so several clusters can share one NATS. Creating any of
them is idempotent: every node (and every publisher) makes sure they exist.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from nats.js.api import KeyValueConfig, StorageType, StreamConfig
from nats.js.errors import BucketNotFoundError, NotFoundError

from ima.errors import BadInput

_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")


@dataclass(frozen=True, slots=True)
class Fabric:
    """One cluster's subjects, stream and buckets; `replicas` is JetStream's (R3 on three
    servers), not the number of nodes holding a partition."""

    cluster: str = "ima"
    replicas: int = 3

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.cluster):
            raise BadInput(f"a cluster name is 1-32 of A-Z a-z 0-9 _ -, got {self.cluster!r}")
        if not 1 <= self.replicas <= 5:
            raise BadInput(f"JetStream replicas must be 1..5, got {self.replicas}")

    @property
    def posts_subject(self) -> str:
        return f"ima.{self.cluster}.posts"

    @property
    def stream(self) -> str:
        return f"IMA_{self.cluster}_POSTS"

    @property
    def parts_bucket(self) -> str:
        return f"ima_{self.cluster}_parts"

    @property
    def nodes_bucket(self) -> str:
        return f"ima_{self.cluster}_nodes"

    def query_subject(self, index: int) -> str:
        return f"ima.{self.cluster}.q.{index}"

    def consumer(self, index: int, node: str) -> str:
        """The durable consumer through which `node` fills partition `index`."""
        return f"{self.cluster}_p{index}_{node}"

    async def ensure_stream(self, js: Any) -> None:
        try:
            await js.stream_info(self.stream)
        except NotFoundError:
            config = StreamConfig(
                name=self.stream,
                subjects=[self.posts_subject],
                num_replicas=self.replicas,
                storage=StorageType.FILE,
            )
            await js.add_stream(config)

    async def bucket(self, js: Any, name: str, ttl: float | None = None) -> Any:
        """The key-value bucket `name`, created (replicated like the stream) if missing."""
        try:
            return await js.key_value(name)
        except BucketNotFoundError:
            config = KeyValueConfig(
                bucket=name, history=1, ttl=ttl, replicas=self.replicas, storage=StorageType.FILE
            )
            return await js.create_key_value(config)


def message_id(data: bytes) -> dict[str, str]:
    """The header that makes a retried publish of the same record land once: JetStream
    drops a message whose id it stored within its duplicate window (2 minutes). A
    publisher whose acknowledgement was lost (a server died) sends again, and without
    it the stream would hold the record twice. The id is the record's content, so an
    edit (other bytes) is never taken for a retry."""
    return {"Nats-Msg-Id": hashlib.blake2b(data, digest_size=16).hexdigest()}


async def publish(js: Any, fabric: Fabric, records: Iterable[bytes], window: int = 256) -> int:
    """Publish raw JSON records to the cluster's stream, each confirmed by JetStream (stored
    on a majority of its replicas) before this returns; at most `window` in flight. The
    stream's order is the order confirmations come back in, close to `records`' order."""
    pending: list[asyncio.Future] = []
    done = 0
    for data in records:
        pending.append(asyncio.ensure_future(
            js.publish(fabric.posts_subject, data, headers=message_id(data))
        ))  # fmt: skip
        if len(pending) >= window:
            await asyncio.gather(*pending)
            done += len(pending)
            pending = []
    await asyncio.gather(*pending)
    return done + len(pending)
