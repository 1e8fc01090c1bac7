"""The writing side of `ima serve --fabric`: `POST /v1/posts` publishes to the cluster's
stream, and a request is acknowledged once JetStream has stored every good record on a
majority of its servers.

Records are checked here first (`normalize`, with the sender's source rights), so a bad
one is refused in the answer, as on one store, and never reaches the stream; a good one
is published as sent, with the source it was accepted under written in, so the nodes
store it under that source. An acknowledged post is then durable, and searchable once
the nodes holding its partition have committed it (their commit interval, about a
second): the status is `published`, not a single store's `inserted`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from nats.errors import Error as NatsError

from ima.cluster.fabric import Fabric, publish
from ima.fleet.connection import connect
from ima.ingest.normalize import JsonLine, RecordError, normalize
from ima.writer import Outcome, WriterUnavailable

PUBLISH_TIMEOUT_S = 10.0  # JetStream answers within this, or the request is refused


def checked(
    records: Sequence[Any], source: str, allowed: frozenset[str] | None, max_bytes: int
) -> tuple[list[Outcome], list[bytes]]:
    """Each record's outcome (published, or refused and why) and the messages to publish
    for the good ones, in order; a message is at most `max_bytes` (NATS's limit)."""
    outcomes: list[Outcome] = []
    messages: list[bytes] = []
    for record in records:
        try:
            fields = record.parse() if isinstance(record, JsonLine) else record
            post = normalize(fields, default_source=source, allowed_sources=allowed)
        except RecordError as exc:
            outcomes.append((None, "error", str(exc)))
            continue
        message = json.dumps({**fields, "source": post.source}).encode()
        if len(message) > max_bytes:
            outcomes.append((None, "error", f"record: over {max_bytes} bytes"))
            continue
        messages.append(message)
        outcomes.append((post.id, "published", None))
    return outcomes, messages


class FabricWriter:
    """Publishes to the cluster `fabric` on the NATS servers `url` (the `Writer` face).
    It runs no sources: on a cluster they publish to the stream themselves."""

    def __init__(self, url: str, fabric: Fabric) -> None:
        self.url = url
        self.fabric = fabric
        self._nc: Any = None
        self._js: Any = None

    async def start(self) -> None:
        self._nc = await connect(self.url, "ima-serve")
        self._js = self._nc.jetstream(timeout=PUBLISH_TIMEOUT_S)

    async def write(
        self, records: Sequence[Any], source: str, allowed: frozenset[str] | None = None
    ) -> list[Outcome]:
        reason = self.down()
        if reason is not None:
            raise WriterUnavailable(reason)
        limit = self._nc.max_payload - 1024  # (room for headers)
        outcomes, messages = await asyncio.to_thread(checked, records, source, allowed, limit)
        try:
            await publish(self._js, self.fabric, messages)
        except (NatsError, TimeoutError) as exc:
            raise WriterUnavailable(
                f"the cluster's stream {self.fabric.stream} did not store the posts "
                f"({type(exc).__name__})"
            ) from None
        return outcomes

    def sources(self) -> list[dict[str, Any]]:
        return []

    def down(self) -> str | None:
        if self._nc is None or not self._nc.is_connected:
            return "not connected to the cluster's NATS servers"
        return None

    async def stop(self) -> None:
        if self._nc is not None:
            await self._nc.close()
            self._nc = self._js = None
