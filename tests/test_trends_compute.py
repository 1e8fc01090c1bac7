"""Trends at an instant of a busy store: the benchmark's bulk fill makes a log the store
reads as its own, and a sample of it (past `MAX_POSTS`) reads every minute alike and
still finds the planted topic, never the one-account flood."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from ima.bench import trend_compute
from ima.store import Store
from ima.trends import instant
from ima.trends.bursts import MINUTE_US


def test_a_sampled_instant_of_a_bulk_filled_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    data = tmp_path / "data"
    posts = trend_compute.fill(data, rate=40, hours=3, say=lambda _: None)
    assert posts == 40 * 3 * 3600
    store = Store(data)
    try:
        assert store.counts()["posts"] == posts
        assert store.stats().indexed_seq == posts  # opening it indexed nothing more
        end = store.newest_created_us()
        assert end == trend_compute.END_US
        monkeypatch.setattr(instant, "MAX_POSTS", 20_000)
        low, stride = instant._lookback(store, end)
        rows = list(instant._read(store, low, end, stride, None))
    finally:
        store.close()
    assert low == end - instant.LOOKBACK_US  # too busy to learn from a week
    assert stride == 32  # 432,000 posts / 20,000, rounded up to a power of two
    assert posts / stride * 0.9 < len(rows) < posts / stride * 1.1
    per_minute = Counter(created // MINUTE_US for created, *_ in rows)
    full = [n for minute, n in per_minute.items() if minute != end // MINUTE_US]
    assert max(full) - min(full) <= 1  # a post every 25 ms: every minute sampled alike
    assert all(low <= created <= end for created, *_ in rows)
    figures = trend_compute.measure(data)
    assert figures["posts_in_lookback"] == posts
    assert figures["posts_read"] == len(rows)
    assert trend_compute.QUAKE in figures["planted_found"]
    assert not figures["flood_found"]
