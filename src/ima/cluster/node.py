"""`ima node`: one machine of the cluster. It keeps its lease, claims partitions that
have fewer than `copies` live owners, and runs a `Replica` for each partition it owns.

Claims go through the directory's compare-and-set, and a node claims only while it
holds no more partitions than the least loaded live node that could take the same one
(a `quiet` node, one that stopped renewing its lease, is not waited for), so partitions
spread over the nodes without anyone deciding for the others; a partition the stream
has reached that no live node holds goes to the first node that sees it. A node that
stops renewing its lease drops out of `live` when the lease runs out, its places become
free, and the survivors fill them from the stream.

Run as `python -m ima.cluster.node` as well as `ima node`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
from pathlib import Path
from typing import Any

import click
from nats.errors import Error as NatsError
from nats.js.errors import KeyNotFoundError, NotFoundError

from ima.cluster.fabric import Fabric
from ima.cluster.ownership import Directory, Partition
from ima.cluster.replica import Replica
from ima.fleet.connection import connect, redacted

log = logging.getLogger(__name__)

DEFAULT_SPAN = 5_000_000
_COLLECT_S = 5.0  # seconds between looks for the consumers of departed nodes


def node_id(data_dir: Path) -> str:
    """This node's name, kept in its data directory so a restart is the same node."""
    path = data_dir / "node-id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        data_dir.mkdir(parents=True, exist_ok=True)
        name = "n" + secrets.token_hex(6)
        path.write_text(name)
        return name


class Node:
    """Holds partitions under `data_dir`; `run` until `stop` is set."""

    def __init__(
        self,
        url: str,
        data_dir: Path,
        fabric: Fabric,
        *,
        span: int = DEFAULT_SPAN,
        copies: int = 2,
        lease_s: float = 3.0,
        commit_interval: float = 1.0,
    ) -> None:
        self.url = url
        self.data_dir = data_dir
        self.fabric = fabric
        self.span = span
        self.copies = copies
        self.lease_s = lease_s
        self.commit_interval = commit_interval
        self.name = node_id(data_dir)
        self.replicas: dict[int, Replica] = {}
        self.nc: Any = None
        self.directory: Directory | None = None

    async def run(self, stop: asyncio.Event) -> None:
        self.nc = await connect(self.url, f"ima-node-{self.name}")
        js = self.nc.jetstream()
        while True:  # a JetStream cluster takes a few seconds to elect its leaders
            try:
                await self.fabric.ensure_stream(js)
                directory = await Directory(js, self.fabric, self.lease_s).open(self.span)
                await directory.heartbeat(self.name)
                break
            except (NatsError, TimeoutError) as exc:
                log.info("JetStream not ready (%s); retrying", type(exc).__name__)
                await asyncio.sleep(0.5)
        self.directory = directory
        beat = asyncio.create_task(self._beat(stop))
        collector = asyncio.create_task(self._collecting(js, directory, stop))
        try:
            while not stop.is_set():
                try:
                    await self._round(js, directory)
                except (NatsError, TimeoutError) as exc:  # NATS briefly away: next round
                    log.warning("round skipped: %s", type(exc).__name__)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.5)
        finally:
            beat.cancel()
            collector.cancel()
            for replica in list(self.replicas.values()):
                await replica.stop()
            await directory.close()
            await self.nc.close()

    async def _beat(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            serving = [i for i, r in self.replicas.items() if r.serving]
            with contextlib.suppress(Exception):
                await self.directory.heartbeat(self.name, serving)
            await asyncio.sleep(self.lease_s / 3)

    async def _round(self, js: Any, directory: Directory) -> None:
        """Record new partitions, claim free places, start and stop replicas."""
        try:
            last_seq = (await js.stream_info(self.fabric.stream)).state.last_seq
        except NotFoundError:
            last_seq = 0
        # the partitions the stream has reached, and the next: claimed and served (empty)
        # before its first post arrives, so a new partition is never a silent one
        for index in range((last_seq - 1) // directory.span + 2 if last_seq else 1):
            if index not in directory.partitions:
                await directory.create(index)
                await directory.fresh(index)
        live = await directory.live_nodes() | {self.name}
        by_need = sorted(
            directory.partitions.values(),  # the least held first
            key=lambda p: (sum(o in live for o in p.owners), p.index),
        )
        for part in by_need:
            if self.name not in part.owners and self._should_claim(part, live, directory, last_seq):
                holders = tuple([o for o in part.owners if o in live or await directory.alive(o)])
                if len(holders) >= self.copies:
                    continue  # its owners are alive after all (a short listing)
                claimed = await directory.change(part, owners=(*holders, self.name))
                if claimed is not None:
                    log.info("claimed partition %d", part.index)
                    break  # one a round: the others see the new load before claiming more
        for part in directory.partitions.values():
            replica = self.replicas.get(part.index)
            if self.name in part.owners and (replica is None or replica.failed):
                if replica is not None:
                    log.error(
                        "partition %d failed: %r; restarting it",
                        part.index,
                        replica.failed,
                        exc_info=replica.failed,
                    )
                    await replica.stop()
                path = self.data_dir / f"p{part.index}"
                self.replicas[part.index] = Replica(
                    self.nc, self.fabric, directory, self.name, part, path, self.commit_interval
                ).start()
            elif self.name not in part.owners and replica is not None:
                del self.replicas[part.index]
                await replica.stop(drop=True)
                log.info("partition %d moved away", part.index)

    async def _collecting(self, js: Any, directory: Directory, stop: asyncio.Event) -> None:
        """`_collect` every few seconds, apart from the rounds: listing a stream's
        consumers waits on every consumer's leader (4 s when one is slow to answer), and
        rounds held up that long left the partition the stream had just reached unclaimed."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), _COLLECT_S)
            if stop.is_set():
                return
            try:
                live = await directory.live_nodes() | {self.name}
                await self._collect(js, directory, live)
            except (NatsError, TimeoutError) as exc:
                log.warning("consumer collection skipped: %s", type(exc).__name__)

    async def _collect(self, js: Any, directory: Directory, live: set[str]) -> None:
        """Delete the durable consumers of nodes that hold no lease and no longer own
        the partition (a dead node whose places were refilled): JetStream would keep
        them, and their unacknowledged state, forever. A node that gives a partition
        away deletes its own (`Replica.stop`). Ownership is read afresh: a consumer is
        never taken from a node that has just claimed its partition."""
        prefix = f"{self.fabric.cluster}_p"
        for info in await js.consumers_info(self.fabric.stream):
            index, _, node = info.name.removeprefix(prefix).partition("_")
            if not info.name.startswith(prefix) or not index.isdigit() or node in live:
                continue
            try:
                part = await directory.fresh(int(index))
            except KeyNotFoundError:
                continue
            if node not in part.owners:
                with contextlib.suppress(NotFoundError):
                    await js.delete_consumer(self.fabric.stream, info.name)
                log.info("deleted consumer %s of departed node %s", info.name, node)

    def _should_claim(
        self, part: Partition, live: set[str], directory: Directory, last_seq: int
    ) -> bool:
        """Free place, and no less loaded node that could take it instead, of those that
        renew their lease: a node that just died keeps it (and so its load) for up to
        `lease_s`, and waiting for it left partitions without a copy. A partition the
        stream has reached that no live node holds is taken by the first to see it."""
        held = sum(o in live for o in part.owners)
        if held >= self.copies:
            return False  # (a partition being moved has one more, for a moment)
        if not held and part.first <= last_seq:
            return True  # posts of it are there, and no copy answers: no time to weigh loads
        load = dict.fromkeys(live, 0)
        for p in directory.partitions.values():
            for owner in p.owners:
                if owner in load:
                    load[owner] += 1
        candidates = [n for n in live if n not in part.owners
                      and (n == self.name or not directory.quiet(n))]  # fmt: skip
        return load[self.name] <= min(load[n] for n in candidates)


@click.command("node")
@click.option(
    "--fabric",
    "url",
    required=True,
    metavar="URL",
    help="NATS servers, e.g. nats://a:4222,nats://b:4222.",
)
@click.option(
    "--cluster",
    default="ima",
    show_default=True,
    help="Names the cluster's subjects, stream and buckets.",
)
@click.option(
    "--data-dir",
    "data_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where partitions live.",
)
@click.option(
    "--span",
    type=click.IntRange(1, 2**31),
    default=DEFAULT_SPAN,
    show_default=True,
    help="Posts per partition (fixed by the cluster's first node).",
)
@click.option(
    "--copies",
    type=click.IntRange(1, 5),
    default=2,
    show_default=True,
    help="Nodes holding each partition.",
)
@click.option(
    "--stream-replicas",
    type=click.IntRange(1, 5),
    default=3,
    show_default=True,
    help="JetStream replicas of the stream and buckets (R3 on three servers).",
)
@click.option(
    "--commit-interval",
    type=click.FloatRange(0.01, 60),
    default=1.0,
    show_default=True,
    help="Seconds between index commits.",
)
def node_cmd(
    url: str,
    cluster: str,
    data_dir: Path,
    span: int,
    copies: int,
    stream_replicas: int,
    commit_interval: float,
) -> None:
    """Hold time partitions of the store for a cluster on NATS JetStream (README "Cluster")."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        fabric = Fabric(cluster, stream_replicas)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    node = Node(url, data_dir, fabric, span=span, copies=copies, commit_interval=commit_interval)
    click.echo(f"ima node {node.name}: cluster {cluster} on {redacted(url)}", err=True)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await node.run(stop)

    asyncio.run(main())


if __name__ == "__main__":
    node_cmd()
