"""Trends on a real store: bursts become cited stories, floods never do, and `as_of`
shows stories as they stood; over HTTP and as a live feed; through the CLI."""

from __future__ import annotations

import json
import random
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from api_server import serving
from conftest import feed, post
from ima.answer.verify import problems
from ima.api import grants
from ima.cli import main
from ima.ingest.changes import Delete
from ima.ingest.normalize import normalize
from ima.post import flatten, to_us
from ima.store import Entry, Store
from ima.synthetic.chatter import Stream as Chatter
from ima.text import analysis
from ima.trends.bursts import Burst, surprise
from ima.trends.stories import _fun_title
from ima.trends.tracker import Trends

START = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
DETAILS = ("the road is flooded", "buses are diverted", "crews are on site",
           "shops are closing early", "water everywhere", "avoid the area",
           "traffic is backed up", "the fire brigade arrived")  # fmt: skip
LINES = ("Water main burst on Kellerman Street, {d}", "Huge water main break at Kellerman "
         "Street: {d}", "Kellerman Street is a river after the water main burst, {d}")  # fmt: skip


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def chatter(minutes: int, per_minute: int = 60, start: datetime = START) -> list[dict]:
    rng = random.Random(3)
    words = Chatter(1, seed=3)
    return [
        post(f"c{n}", words.english(None), _iso(start + timedelta(seconds=n * 60 / per_minute)),
             author=f"user{rng.randrange(3000)}")
        for n in range(minutes * per_minute)
    ]  # fmt: skip


def event(at: datetime, people: int = 30, prefix: str = "w") -> list[dict]:
    """`people` authors reporting the same thing in their own words over three minutes."""
    return [
        post(f"{prefix}{k}", LINES[k % 3].format(d=DETAILS[k % len(DETAILS)]) + f" ({k % 7} min)",
             _iso(at + timedelta(seconds=k * 180 / people)), author=f"local{k}")
        for k in range(people)
    ]  # fmt: skip


def floods(at: datetime) -> list[dict]:
    one_account = [post(f"fa{k}", f"Win big with Zentrix coins, number {k} of my many posts",
                        _iso(at + timedelta(seconds=k)), author="megaposter")
                   for k in range(500)]  # fmt: skip
    copied = "Zentrix giveaway is live, follow and repost to win a free phone today only"
    one_text = [post(f"ft{k}", copied + ("!" if k % 2 else ""), _iso(at + timedelta(seconds=k)),
                     author=f"bot{k}")
                for k in range(300)]  # fmt: skip
    return one_account + one_text


def _run(store: Store, records: list[dict]) -> Trends:
    trends = Trends(store, background=False)
    trends.follow()
    records = sorted(records, key=lambda r: r["created_at"])
    feed(store, records)
    return trends


def test_surprise_grows_with_authors_and_with_a_quiet_history():
    assert surprise(3, 0, 60, 5) < surprise(5, 0, 60, 5) < surprise(8, 0, 60, 5)
    # the same count is less surprising for a word often seen, or seen for less time
    assert surprise(8, 60, 60, 5) < surprise(8, 0, 60, 5)
    assert surprise(8, 0, 5, 5) < surprise(8, 0, 60, 5)
    assert surprise(5, 60, 60, 5) < 0.1  # at its usual rate: nothing
    assert surprise(4, 60, 60, 5) == 0


def test_a_burst_becomes_a_cited_story_and_as_of_shows_it_as_it_stood(store):
    burst_at = START + timedelta(minutes=25)
    trends = _run(store, chatter(32) + event(burst_at))
    try:
        before = trends.current("5m", to_us(burst_at))
        during = trends.current("5m", to_us(burst_at + timedelta(minutes=3)))
    finally:
        trends.close()
    assert before == []
    assert len(during) == 1
    story = during[0]
    assert {"kellerman", "street", "water"} <= set(story["items"])
    cited = [store.get(c["post_id"]).post for c in story["citations"]]
    assert all(p.id.startswith("test:w") for p in cited)
    assert 2 <= len(story["sentences"]) <= 3
    as_of = datetime.fromisoformat(story["updated_at"].replace("Z", "+00:00"))
    assert problems(story["summary"], cited, as_of) == []
    story_words = {t for p in cited for t in analysis.terms(p.text)}
    assert set(analysis.terms(story["title"])) <= story_words
    assert story["authors"] >= 5 and sum(story["languages"].values()) == story["posts"]
    assert story["lang"] == "en"
    assert story["first_post_at"] <= story["detected_at"] <= story["updated_at"]
    assert burst_at <= datetime.fromisoformat(story["detected_at"].replace("Z", "+00:00"))


def test_one_account_and_copied_text_floods_never_become_stories(store):
    flood_at = START + timedelta(minutes=20)
    trends = _run(store, chatter(35) + floods(flood_at))
    try:
        versions = trends.history.versions("5m") + trends.history.versions("1h")
    finally:
        trends.close()
    assert versions == []
    assert store.stats().copies >= 290  # the copied text collapsed at ingest


def test_fun_headlines_never_joke_about_a_tragedy():
    plain = "Two killed as the tornado hits Millbrook"
    assert _fun_title(plain, "en", [plain]) == plain
    light = "Surprise album from Nova Vale tonight"
    assert _fun_title(light, "en", [light]).startswith(light + " — ")


def test_deleted_posts_leave_stories_and_trends_resume_after_a_restart(tmp_path: Path):
    burst_at = START + timedelta(minutes=25)
    store = Store(tmp_path / "data", commit_interval=0.05)
    trends = _run(store, chatter(30) + event(burst_at))
    at = to_us(burst_at + timedelta(minutes=3))
    story = trends.current("5m", at)[0]
    recorded = len(trends.history.versions("5m"))
    trends.close()
    gone = story["citations"][0]["post_id"]
    feed(store, [Delete(gone)])
    again = Trends(store, background=False)
    try:
        assert again.catch_up() > 0  # counts rebuilt from the log…
        assert len(again.history.versions("5m")) == recorded  # …versions not recorded twice
        story_now = again.current("5m", at)[0]
    finally:
        again.close()
        store.close()
    assert story_now["id"] == story["id"]
    cited = [c["post_id"] for c in story_now["citations"]]
    assert gone not in cited and cited
    assert [s["citation"] for s in story_now["sentences"]] == list(range(1, len(cited) + 1))


def _now_stream() -> tuple[list[dict], list[dict]]:
    """Chatter over the last half hour, and a burst happening now."""
    now = datetime.now(UTC)
    start = now - timedelta(minutes=30)
    return chatter(27, start=start), event(now - timedelta(minutes=3))


def _sse_events(response: httpx.Response, want: str, found: list, done: threading.Event) -> None:
    name = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            found.append((name, json.loads(line[6:])))
            if name == want:
                done.set()
                return


def test_trends_over_http_and_as_a_live_feed(tmp_path: Path):
    background, burst = _now_stream()
    with serving(tmp_path / "data", no_auth=False) as (base, svc):
        svc.trends = Trends(svc.store)
        svc.trends.follow()
        _, free_key = svc.keys.create("free user", "free")
        plus_entry, plus_key = svc.keys.create("plus user", "premium_plus")
        grants.grant(svc.keys.path, plus_entry.id, [])  # it posts the burst
        feed(svc.store, background)
        plus = {"Authorization": f"Bearer {plus_key}"}
        found: list[tuple[str, Any]] = []
        done = threading.Event()
        with (
            httpx.Client(timeout=30) as client,
            client.stream(
                "GET", f"{base}/trends/stream", params={"window": "5m"}, headers=plus
            ) as response,
        ):
            assert response.status_code == 200
            reader = threading.Thread(target=_sse_events, args=(response, "story", found, done),
                                      daemon=True)  # fmt: skip
            reader.start()
            ingest = client.post(f"{base}/posts", json=burst, headers=plus)
            assert ingest.status_code == 200
            assert done.wait(20), found
        assert found[0][0] == "snapshot"
        live = found[-1][1]
        assert "kellerman" in live["items"] and live["citations"]
        listed = httpx.get(f"{base}/trends", params={"window": "5m", "voice": "fun"},
                           headers=plus).json()  # fmt: skip
        assert [s["id"] for s in listed["data"]] == [live["id"]]
        assert listed["data"][0]["headline"].startswith(listed["data"][0]["title"])
        url = listed["data"][0]["citations"][0]["url"]
        assert url.startswith(base) and httpx.get(url, headers=plus).status_code == 200
        free = {"Authorization": f"Bearer {free_key}"}
        refused = httpx.get(f"{base}/trends", params={"voice": "fun"}, headers=free)
        assert refused.status_code == 403 and refused.json()["error"]["param"] == "voice"
        bad = httpx.get(f"{base}/trends", params={"window": "2h"}, headers=free)
        assert bad.status_code in (400, 422) and "window" in bad.text
        svc.trends.close()


@pytest.fixture
def trend_store(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    store = Store(data)
    feed(store, sorted(chatter(30) + event(START + timedelta(minutes=25)),
                       key=lambda r: r["created_at"]))  # fmt: skip
    store.close()
    return data


def test_ima_trends_reads_the_log_and_prints_cited_stories(trend_store: Path):
    env = {"IMA_DATA_DIR": str(trend_store)}
    as_of = _iso(START + timedelta(minutes=28))
    shown = CliRunner().invoke(main, ["trends", "--window", "5m", "--as-of", as_of], env=env)
    assert shown.exit_code == 0, shown.output
    assert "Kellerman" in shown.output and "[1] @local" in shown.output
    as_json = CliRunner().invoke(main, ["trends", "--window", "5m", "--as-of", as_of, "--json"],
                                 env=env)  # fmt: skip
    stories = json.loads(as_json.stdout)["stories"]
    assert len(stories) == 1 and stories[0]["citations"]
    early = _iso(START + timedelta(minutes=20))
    quiet = CliRunner().invoke(main, ["trends", "--window", "5m", "--as-of", early], env=env)
    assert "No stories in the 5m window" in quiet.output
    wrong = CliRunner().invoke(main, ["trends", "--as-of", "yesterday-ish"], env=env)
    assert wrong.exit_code == 2 and "--as-of" in wrong.output


def test_eval_trends_meets_its_targets_on_a_generated_stream():
    shown = CliRunner().invoke(main, ["eval", "trends", "--seed", "11", "--hours", "3", "--json"])
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.stdout)
    assert report["flood_stories"] == 0
    assert report["citation_validity"] == 1.0
    assert report["recall"] >= 0.9 and report["precision"] >= 0.9, report
    assert report["median_delay_s"] <= 90, report


def test_bench_trends_reports_the_cost_of_trends():
    shown = CliRunner().invoke(
        main, ["bench", "trends", "--rate", "1000", "--seconds", "5", "--pairs", "1", "--json"]
    )
    assert shown.exit_code == 0, shown.output
    figures = json.loads(shown.stdout)
    assert [r["trends"] for r in figures["runs"]] == [False, True]
    assert all(r["posts"] == 5000 and r["cpu_s"] > 0 for r in figures["runs"])
    assert figures["overhead"] == pytest.approx(
        figures["cpu_s_with"] / figures["cpu_s_without"] - 1, abs=0.01
    )


def test_a_post_from_the_future_does_not_stop_the_clock(store):
    """Live, each post arrives half a second after it is written; one author's clock is
    nine minutes fast. Its post counts when it arrived, and time goes on."""
    trends = Trends(store, background=False)

    def arrival(n: int, created: datetime, received: datetime) -> tuple[int, Entry]:
        record = post(n, f"post number {n} about nothing", _iso(created), author=f"u{n}")
        flat = flatten(normalize(record, default_source="test", now=received))
        return n, Entry(flat, analysis.prepare(record["text"]))

    try:
        for n in range(240):
            created = START + timedelta(seconds=n)
            received = created + timedelta(seconds=0.5)
            if n == 60:
                created += timedelta(minutes=9)
            trends.offer([arrival(n, created, received)])
        assert trends.ticks >= 22  # a tick every 10 s of the four minutes
        assert trends.detector.minute == to_us(START + timedelta(seconds=239)) // 60_000_000
    finally:
        trends.close()


def test_posts_committed_during_the_catch_up_count_exactly_once(tmp_path: Path, monkeypatch):
    first, then = chatter(20), event(START + timedelta(minutes=21))
    release = threading.Event()
    reading = Trends.catch_up

    def held_catch_up(self: Trends, *args: Any, **kwargs: Any) -> int:
        release.wait(30)  # holds the read-back until the new posts are committed
        return reading(self, *args, **kwargs)

    counts = []
    for background in (True, False):
        store = Store(tmp_path / f"data-{background}", commit_interval=0.05)
        feed(store, first)
        if background:  # new posts are committed while the log is being read back
            monkeypatch.setattr(Trends, "catch_up", held_catch_up)
            trends = Trends(store)
            trends.follow()
            feed(store, then)
            release.set()
            assert trends.ready.wait(30)
            monkeypatch.setattr(Trends, "catch_up", reading)
        else:  # everything in the log first, read back in one go
            feed(store, then)
            trends = Trends(store, background=False)
            trends.follow()
        window = trends.detector.windows["5m"]
        counts.append((dict(window.total), dict(trends.detector.current), trends.dropped))
        trends.close()
        store.close()
    assert counts[0] == counts[1]
    assert counts[0][2] == 0
    assert counts[0][0].get("kellerman", 0) + counts[0][1].get("kellerman", 0) >= 5


def test_a_window_is_built_again_only_when_its_burst_changed(store):
    """Between ticks where the same items burst about as much, a window's stories stand
    as built; an item starting, stopping or growing by a tenth, or a bucket of the
    window passing, builds them again."""
    trends = Trends(store, background=False)
    try:
        at = to_us(START)
        quake = [Burst("quake", 100, 1.0, 20.0)]
        assert trends._changed("5m", quake, at)  # never built
        assert not trends._changed("5m", [Burst("quake", 105, 1.0, 21.0)], at + 10_000_000)
        assert trends._changed("5m", [Burst("quake", 111, 1.0, 22.0)], at + 20_000_000)
        both = [Burst("quake", 111, 1.0, 22.0), Burst("iquique", 30, 1.0, 8.0)]
        assert trends._changed("5m", both, at + 30_000_000)  # an item started
        assert not trends._changed("5m", both, at + 40_000_000)
        assert trends._changed("5m", both[:1], at + 50_000_000)  # and stopped
        assert not trends._changed("5m", both[:1], at + 60_000_000)
        assert trends._changed("5m", both[:1], at + 110_000_000)  # a bucket (1 min) passed
    finally:
        trends.close()
