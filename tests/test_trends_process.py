"""Trends counted in a process of their own, beside a store that only writes."""

from __future__ import annotations

import itertools
import time
from datetime import timedelta

from conftest import feed
from ima.config import Settings
from ima.post import to_us
from ima.trends.process import TrendsProcess
from ima.trends.view import TICK_US, StoryView
from test_trends import START, chatter, event


def test_trends_in_their_own_process_count_every_commit_and_record_the_story(tmp_path):
    settings = Settings(tmp_path / "data", commit_interval=0.05)
    store = settings.open_store(searchable=False)
    view = StoryView(store)
    burst_at = START + timedelta(minutes=25)
    try:
        feed(store, chatter(5))  # committed before trends start: read back from the log
        counting = TrendsProcess(settings)
        try:
            assert counting.ready.wait(60)
            records = sorted(chatter(32)[300:] + event(burst_at), key=lambda r: r["created_at"])
            # a minute at a time, each recorded before the next: a counter far ahead of
            # the stories skips the ticks between (only the newest is built)
            for _, minute in itertools.groupby(records, key=lambda r: r["created_at"][:16]):
                chunk = list(minute)
                feed(store, chunk)
                newest = store.newest_created_us()
                assert newest is not None
                deadline = time.monotonic() + 30
                while view.history.state("tick_us") < newest // TICK_US * TICK_US:
                    assert time.monotonic() < deadline
                    time.sleep(0.02)
        finally:
            counting.close()  # counts what was committed, then records it
        newest = store.newest_created_us()
        assert newest is not None  # every tick up to the newest post's was counted, recorded
        assert view.history.state("tick_us") == newest // TICK_US * TICK_US
        recorded = view.history.at("5m", to_us(burst_at + timedelta(minutes=3)),
                                   view.spans_us["5m"])  # fmt: skip
        assert len(recorded) == 1
        assert {"kellerman", "street", "water"} <= set(recorded[0]["items"])
        assert all(c["post_id"].startswith("test:w") for c in recorded[0]["citations"])
    finally:
        view.close()
        store.close()
