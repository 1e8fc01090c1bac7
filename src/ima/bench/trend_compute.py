"""How long the stories at an instant take to compute from the log alone.

A store is filled with `--hours` of a synthetic stream at `--rate` posts/s (topic
bursts, floods, reposts; `ima.bench.synth`) through the ingest pipeline, with no
trends running; then the stories of all windows at its last instant are asked for
with an empty history, so they are computed from the log (`ima.trends.instant`):
wall and CPU seconds, posts read, and posts read per second.

    python -m ima.bench.trend_compute --rate 20 --hours 48 [--data DIR] [--json]

`--data` keeps the filled store, to measure again without filling it again.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any


def _cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def fill(data: Path, rate: float, hours: float) -> int:
    """Fill a store at `data` with the synthetic stream; returns the posts offered."""
    from ima.bench.synth import Stream
    from ima.ingest import Pipeline, ingest
    from ima.store import Store

    posts = int(rate * hours * 3600)
    end = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    store = Store(data)
    try:
        with Pipeline(store, workers=2) as pipeline:
            stream = Stream(posts, seed=5, end=end, duration=timedelta(hours=hours))
            ingest(pipeline, stream, source="synthetic", group=256)
    finally:
        store.close()
    return posts


def measure(data: Path) -> dict[str, Any]:
    """Compute the stories at the store's newest instant with no history recorded."""
    from ima.store import Store
    from ima.trends.view import FILE, StoryView

    (data / FILE).unlink(missing_ok=True)
    for suffix in ("-wal", "-shm"):
        (data / (FILE + suffix)).unlink(missing_ok=True)
    store = Store(data)
    view = StoryView(store)
    read = [0]
    try:
        at_us = view.now()
        cpu, wall = _cpu_s(), time.perf_counter()
        stories = view.across(at_us, lambda n: read.__setitem__(0, n))
        wall, cpu = time.perf_counter() - wall, _cpu_s() - cpu
    finally:
        view.close()
        store.close()
    return {"posts_read": read[0], "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "posts_per_s": round(read[0] / wall), "stories": len(stories)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=20, help="posts per second")
    parser.add_argument("--hours", type=float, default=48, help="hours of stream before T")
    parser.add_argument("--data", type=Path, help="keep (or reuse) the filled store here")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    tmp = None if args.data else Path(tempfile.mkdtemp(prefix="ima-bench-"))
    data = args.data or tmp / "data"
    try:
        filled = None
        if not (data / "log.sqlite3").exists():
            started = time.perf_counter()
            filled = fill(data, args.rate, args.hours)
            print(f"filled {filled:,} posts in {time.perf_counter() - started:.0f} s", flush=True)
        figures = {"rate": args.rate, "hours": args.hours, **measure(data)}
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(figures))
        return
    print(f"computed the stories at T from {figures['posts_read']:,} posts in "
          f"{figures['wall_s']} s ({figures['cpu_s']} CPU s, {figures['posts_per_s']:,} "
          f"posts/s): {figures['stories']} stories")  # fmt: skip


if __name__ == "__main__":
    main()
