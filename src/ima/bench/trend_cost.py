"""`ima bench trends`: what keeping trends up adds to ingest's CPU time at a given rate.

Each run is a fresh process that feeds a synthetic stream (topic bursts, floods,
reposts) through the full pipeline at the offered rate, with or without trends
following. CPU time is that process's and its ingest workers' (user + system), from
the pipeline's start to its last commit and the trends thread's last story. Runs
alternate, without and with, so drift on a shared machine lands on both.

The figure is an upper bound. Windows only judge after learning what is usual, so
for stories to happen within a short run, stream time runs `STREAM_SPEED` times faster
than the wall clock (ticks, and story work, come that much more often than live) and
trends judge after 1.2 spans of the 5-minute window rather than two (noisier
baselines: more bursts).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

STREAM_SPEED = 10


def _cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # workers, once joined
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def measure(rate: float, seconds: float, with_trends: bool, workers: int) -> dict[str, Any]:
    """One run in this process (the parent starts a fresh one per run), which collects
    garbage as every `ima` process does (`tune_gc`, set by the command line): with
    Python's default thresholds the collector rescans all live objects ever more
    often, and posts counted for trends made it do so more."""
    from ima.ingest import Pipeline, tune_gc
    from ima.store import Store
    from ima.synthetic.chatter import Stream
    from ima.trends.bursts import BurstDetector
    from ima.trends.tracker import Trends

    tune_gc()
    posts = int(rate * seconds)
    span = timedelta(seconds=seconds * STREAM_SPEED)
    # generated before the clock starts
    records = list(Stream(posts, seed=5, end=datetime.now(UTC), duration=span))
    with tempfile.TemporaryDirectory(prefix="ima-bench-") as tmp:
        store = Store(Path(tmp) / "data")
        trends = None
        started_cpu = _cpu_s()
        if with_trends:
            trends = Trends(store, detector=BurstDetector(warm_up_spans=1.2))
            trends.follow()
        pipeline = Pipeline(store, workers=workers).start()
        started = time.perf_counter()
        chunk = max(1, int(rate / 1000))  # arrivals in ~1 ms groups, as from a socket
        for n in range(0, posts, chunk):
            due = started + n / rate
            if (wait := due - time.perf_counter()) > 0:
                time.sleep(wait)
            pipeline.submit_many(records[n : n + chunk], source="synthetic")
        offered_for = time.perf_counter() - started
        pipeline.close()
        stories = 0
        if trends is not None:
            stories = trends.update_seq
            trends.close()
        cpu = _cpu_s() - started_cpu
        store.close()
    return {"trends": with_trends, "posts": posts, "offered_per_s": round(posts / offered_for),
            "cpu_s": round(cpu, 2), "story_updates": stories}  # fmt: skip


def run(
    *,
    rate: float = 5000,
    seconds: float = 60,
    pairs: int = 2,
    workers: int = 2,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Alternate runs without and with trends; report CPU seconds and the overhead."""
    runs = []
    for pair in range(pairs):
        for with_trends in (False, True):
            if progress:
                which = "with" if with_trends else "without"
                progress(
                    f"run {pair + 1}/{pairs} {which} trends: {rate:,.0f} posts/s × {seconds:g} s"
                )
            args = json.dumps([rate, seconds, with_trends, workers])
            out = subprocess.run(
                [sys.executable, "-m", "ima.bench.trend_cost", args],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    without = sum(r["cpu_s"] for r in runs if not r["trends"])
    with_ = sum(r["cpu_s"] for r in runs if r["trends"])
    return {
        "rate": rate,
        "seconds": seconds,
        "workers": workers,
        "cpu_s_without": round(without / pairs, 2),
        "cpu_s_with": round(with_ / pairs, 2),
        "overhead": round(with_ / without - 1, 4),
        "runs": runs,
    }


if __name__ == "__main__":
    print(json.dumps(measure(*json.loads(sys.argv[1]))))
