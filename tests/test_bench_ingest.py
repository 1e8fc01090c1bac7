"""`ima bench ingest`: the freshness phase is offered half the rate the pipeline
sustained in the same run, both rates are reported, and every marked post is found."""

from __future__ import annotations

import gc

from ima.bench.ingest import GcPauses, run


def test_freshness_is_offered_half_the_sustained_rate_by_default():
    figures = run(posts=2000, rate=None, fresh_posts=200, queries=10, workers=0)
    sustained, fresh = figures["sustained_posts_per_s"], figures["freshness"]
    assert sustained > 0 and figures["raw_tantivy_posts_per_s"] > 0
    assert abs(fresh["offered_rate"] - sustained / 2) <= 1  # sustained is rounded
    # marked posts 200 a second (every fifth at most), each one found
    assert fresh["marked_every"] == max(5, round(fresh["offered_rate"] / 200))
    assert fresh["samples"] == len(range(0, 200, fresh["marked_every"]))
    assert figures["sustained_cpu_us_per_post"] > 0
    split = figures["sustained_cpu_us_per_post_by_process"]
    assert split["preparing"] == 0 < split["pipeline"]  # no preparing processes here
    assert figures["raw_tantivy_cpu_us_per_post"] > 0
    assert figures["ingest"]["received"] == 2000


def test_an_offered_rate_given_is_kept():
    figures = run(posts=1000, rate=300, fresh_posts=100, queries=10, workers=0)
    assert figures["freshness"]["offered_rate"] == 300
    assert figures["freshness"]["samples"] == 20  # every fifth post marked, all found


def test_collector_pauses_are_counted_only_while_watched():
    with GcPauses() as pauses:
        gc.collect()
        gc.collect(0)
    gc.collect()  # after the block: not counted
    figures = pauses.figures()
    assert figures["count"] == 2 and figures["max_ms"] >= 0
    assert figures["total_ms"] == round(sum(pauses.pauses_ms), 1)
    assert pauses._callback not in gc.callbacks
