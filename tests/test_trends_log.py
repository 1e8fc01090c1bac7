"""Trends as a question over the log: any instant, however the store was filled; cold
and quiet streams; real tweets (retweets, handles, cut links, several languages); the
X-compatible news endpoints."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from api_server import serving
from conftest import feed, post
from ima.answer.verify import problems
from ima.cli import main
from ima.post import to_us
from ima.store import Store
from ima.text import analysis
from ima.trends import history, instant
from ima.trends.bursts import BurstDetector
from ima.trends.items import Tellings, _Tokens, items_of
from ima.trends.stories import _title
from ima.trends.tracker import Trends
from ima.trends.view import FILE, StoryView
from test_trends import START, _iso, chatter, event

QUIET_START = datetime(2014, 4, 1, 0, 0, tzinfo=UTC)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _cards(story: dict) -> list[dict]:
    return story["citations"] + story["top_posts"]


def _chile(at: datetime, people: int = 40, minutes: int = 60) -> list[dict]:
    """An earthquake told in Spanish and in English by different people over an hour."""
    spanish = (
        "Fuerte terremoto en Iquique, Chile: {d}",
        "Terremoto de 8,2 en el norte de Chile, Iquique sin luz y {d}",
        "Alerta de tsunami en Chile tras el terremoto, {d}",
    )
    english = (
        "Huge earthquake hits Iquique in northern Chile, {d}",
        "Magnitude 8.2 quake off Chile near Iquique: {d}",
        "Tsunami warning for Chile after the Iquique earthquake, {d}",
    )
    details_es = ("evacuan la costa", "cinco muertos", "cortes de luz", "la gente en la calle")
    details_en = ("coast evacuated", "five dead", "power is out", "people in the streets")
    out = []
    for k in range(people):
        lines, details, lang = ((spanish, details_es, "es") if k % 2 else
                                (english, details_en, "en"))  # fmt: skip
        text = lines[k % 3].format(d=details[k % 4]) + f" #{k % 5}"
        out.append(post(f"q{k}", text, _iso(at + timedelta(seconds=k * minutes * 60 / people)),
                        author=f"witness{k}", lang=lang))  # fmt: skip
    return out


def _long_ago() -> list[dict]:
    """A few posts weeks before anything happens: the stream was on, and quiet."""
    return [post(f"old{k}", f"Quiet day number {k} at the harbour",
                 _iso(QUIET_START - timedelta(days=20, minutes=k)), author=f"old{k}")
            for k in range(5)]  # fmt: skip


def test_items_are_words_not_retweet_prefixes_handles_or_cut_links():
    text = "RT @NWS_PTWC: Tsunami warning for #Chile http://t.co/F4… via @reuters bit.ly/2xYz htt…"
    assert items_of(analysis.prepare(text)) == {"tsunami", "warning", "#chile"}
    spanish = "Víctimas del terremoto en Perú según el gobierno"
    assert items_of(analysis.prepare(spanish)) == {"víctimas", "terremoto", "perú", "gobierno"}
    # a token's items are remembered as written: asked again, or in another text, the same
    assert items_of(analysis.prepare(spanish)) == {"víctimas", "terremoto", "perú", "gobierno"}
    assert items_of("Terremoto: www.sismo.cl, según Perú") == {"terremoto", "perú"}


def test_a_title_takes_no_link_and_no_lone_marks():
    sentence = "» http://t.co/s0P3CC8QUR Cyclone Pam #CyclonePam Watching out for Cyclone Pam »"
    assert (
        _title(sentence, {"pam", "#cyclonepam"})
        == "Cyclone Pam #CyclonePam Watching out for Cyclone Pam"
    )
    assert _title("http://t.co/x", {"pam"}) == ""  # then the story's items name it


def test_remembered_tokens_stay_bounded():
    tokens = _Tokens(limit=50, longest=10)
    for k in range(1_000):
        assert tokens[f"Quake{k}!"] == (f"quake{k}",)
    assert tokens["x" * 11 + "quake"] == ("x" * 11 + "quake",)  # judged, not kept
    assert tokens["@quake"] == ()  # a handle is no word
    assert 0 < len(tokens) <= 50
    assert all(len(token) <= 10 for token in tokens)


def test_a_retweet_counts_once_for_the_author_it_credits():
    tellings = Tellings()
    original = "Bridge collapsed on the Napa road, avoid the area http://t.co/abc"
    assert tellings.author_of(original, "reporter") == "reporter"
    assert tellings.author_of(f"RT @reporter: {original}", "fan1") is None
    first = "RT @mayor: Shelters open at the Napa high school gym tonight http://t.co/x…"
    assert tellings.author_of(first, "fan2") == "mayor"  # the original never came by
    assert tellings.author_of("RT @mayor: Shelters open at the Napa high school gym tonight",
                              "fan3") is None  # fmt: skip


def test_retweets_of_one_post_are_not_a_story(tmp_path: Path):
    """Sixty accounts retweeting one post are one telling, not sixty authors."""
    store = Store(tmp_path / "data", commit_interval=0.05)
    at = START + timedelta(minutes=25)
    copied = "Zentrix coin to the moon, huge airdrop announced for holders tonight"
    retweets = [post(f"rt{k}", f"RT @zentrix_official: {copied} http://t.co/{k}a",
                     _iso(at + timedelta(seconds=k * 3)), author=f"fan{k}")
                for k in range(60)]  # fmt: skip
    feed(store, sorted(chatter(35) + retweets, key=lambda r: r["created_at"]))
    view = StoryView(store)
    try:
        found = [s for w in ("5m", "1h") for s in view.current(w, to_us(at + timedelta(minutes=4)))]
    finally:
        view.close()
        store.close()
    assert found == []


def test_trends_after_ima_ingest_alone(tmp_path: Path):
    """A store filled by `ima ingest` only: `ima trends --as-of` computes the stories
    from the log, records them, and never shows a post from after the instant."""
    data = tmp_path / "data"
    posts = tmp_path / "posts.jsonl"
    records = sorted(chatter(35) + event(START + timedelta(minutes=25)),
                     key=lambda r: r["created_at"])  # fmt: skip
    posts.write_text("".join(json.dumps(r) + "\n" for r in records))
    env = {"IMA_DATA_DIR": str(data)}
    ingested = CliRunner().invoke(main, ["ingest", str(posts), "--workers", "0"], env=env)
    assert ingested.exit_code == 0, ingested.output
    as_of = START + timedelta(minutes=27)
    shown = CliRunner().invoke(main, ["trends", "--as-of", _iso(as_of), "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    stories = json.loads(shown.stdout)["stories"]
    assert stories and "kellerman" in stories[0]["items"]
    assert stories[0]["window"] in ("5m", "1h")
    assert all(_at(c["created_at"]) <= as_of for s in stories for c in _cards(s))
    store = Store(data)
    view = StoryView(store)
    try:
        assert view.history.answer("5m", to_us(as_of)) is not None  # recorded for next time
        cited = [store.get(c["post_id"]).post for c in stories[0]["citations"]]
        assert problems(stories[0]["summary"], cited, as_of) == []
    finally:
        view.close()
        store.close()
    text = CliRunner().invoke(main, ["trends", "--as-of", _iso(as_of)], env=env)
    assert "window ·" in text.output and "Kellerman" in text.output


def test_an_instant_older_than_any_recorded_history(tmp_path: Path, monkeypatch):
    """Live trends recorded a story, then retention pruned it: asked about that instant,
    the story is computed again from the log. A post created before an answered instant
    but logged after it makes the answer be computed again."""
    monkeypatch.setattr(history, "RETENTION_US", 10 * 60 * 1_000_000)
    store = Store(tmp_path / "data", commit_interval=0.05)
    burst_at = START + timedelta(minutes=25)
    trends = Trends(store, background=False)
    trends.follow()
    feed(store, sorted(chatter(70) + event(burst_at), key=lambda r: r["created_at"]))
    at = to_us(burst_at + timedelta(minutes=3))
    try:
        assert trends.history.tick_near(at, 60_000_000) is None  # pruned
        assert trends.history.versions("5m") == []
        story = trends.current("5m", at)[0]
        assert "kellerman" in story["items"]
        late = post("late1", "Kellerman Street water main: the whole block is flooded now",
                    _iso(burst_at + timedelta(minutes=1)), author="latecomer")  # fmt: skip
        feed(store, [late])
        again = trends.current("5m", at)
        assert {c["post_id"] for c in _cards(again[0])} != set() and again[0]["id"] == story["id"]
        assert trends.history.answer("5m", at)[0] == store.log.newest_seq()  # recomputed
    finally:
        trends.close()
        store.close()


def test_a_cold_start_shows_a_topic_most_people_are_on(tmp_path: Path):
    """A stream that starts with a crisis (no baseline at all) still has its story; a
    stream that starts with ordinary chatter has none."""
    store = Store(tmp_path / "data", commit_interval=0.05)
    start = QUIET_START
    feed(store, _chile(start, people=60))
    view = StoryView(store)
    try:
        cold = view.across(to_us(start + timedelta(minutes=59)))
    finally:
        view.close()
        store.close()
    assert cold and {"chile", "iquique"} & set(cold[0]["items"])
    store = Store(tmp_path / "chatter", commit_interval=0.05)
    feed(store, chatter(20))
    view = StoryView(store)
    try:
        assert view.across(to_us(START + timedelta(minutes=19))) == []
    finally:
        view.close()
        store.close()


def test_a_young_stream_shows_a_topic_fifty_people_took_up_among_many(tmp_path: Path):
    """Forty minutes into a stream, 50 people take up an earthquake among 250 others
    chatting: one poster in six, the stream an hour old, so that the 1h window has not
    learned what is usual; yet that window has the story. The chatter alone has none."""
    start = QUIET_START
    talk = chatter(70, per_minute=5, start=start)
    quake = _chile(start + timedelta(minutes=40), people=50, minutes=20)
    at = start + timedelta(minutes=62)
    found = _with_and_without(tmp_path, talk, quake, at)
    since, until = _iso(at - timedelta(hours=1)), _iso(at)
    hour = {r["author"] for r in talk if since < r["created_at"] <= until}
    assert 50 / (len(hour) + 50) < 0.2
    hourly = found["quake"][0]
    assert hourly and {"chile", "iquique"} & set(hourly[0]["items"])
    assert found["chatter"] == ([], [])


def test_after_days_of_quiet_an_event_told_in_two_languages(tmp_path: Path):
    """Weeks of silence since the last post are history, not a cold start; the summary
    quotes both languages the event is told in, in their own words."""
    store = Store(tmp_path / "data", commit_interval=0.05)
    quake = QUIET_START + timedelta(hours=3)
    feed(store, _long_ago() + _chile(quake, people=24))
    view = StoryView(store)
    try:
        stories = view.current("1h", to_us(quake + timedelta(minutes=59)))
    finally:
        view.close()
        store.close()
    assert stories
    story = stories[0]
    assert {c["lang"] for c in story["citations"]} >= {"es", "en"}
    words = {t for c in _cards(story) for t in analysis.terms(c["text"])}
    assert set(analysis.terms(story["title"])) <= words
    assert story["hook"] and story["hook"] in story["summary"]
    assert "Iquique" in story["entities"]["places"] or "Chile" in story["entities"]["places"]


def _cyclone(start: datetime, hours: float, people: int, first: int) -> list[dict]:
    """A cyclone told by `people` people, evenly over `hours` from `start`."""
    lines = (
        "Cyclone Pam heads for Vanuatu, {d}",
        "Vanuatu braces as cyclone Pam nears: {d}",
        "Thinking of Vanuatu tonight, cyclone Pam {d}",
        "Pam, a category 5 cyclone, {d}",
    )
    details = (
        "shelters open in Port Vila",
        "winds of 250 km/h",
        "families on the move",
        "flights cancelled",
        "red alert for the islands",
    )
    step = timedelta(hours=hours) / people
    return [post(f"pam{first + k}", lines[k % 4].format(d=details[k % 5]) + f" #{first + k}",
                 _iso(start + k * step), author=f"islander{first + k}")
            for k in range(people)]  # fmt: skip


def test_a_story_building_for_a_day_is_judged_against_the_week_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Where the last week's posts fit the read unsampled, the 24h window learns what is
    usual from the week: a cyclone a few people spoke of on its first day and many on its
    second is a story, where the day before alone made its first day its baseline."""
    store = Store(tmp_path / "data", commit_interval=0.05)
    at = QUIET_START + timedelta(days=5)
    feed(store, _long_ago() + _cyclone(at - timedelta(hours=46), 20, 10, 0)
         + _cyclone(at - timedelta(hours=23), 22, 30, 100))  # fmt: skip
    asked: dict[str, list[dict]] = {}
    try:
        for reads in ("a week", "two days"):
            for suffix in ("", "-wal", "-shm"):  # nothing recorded: computed from the log
                (tmp_path / "data" / f"{FILE}{suffix}").unlink(missing_ok=True)
            view = StoryView(store)
            asked[reads] = view.current("24h", to_us(at))
            view.close()
            monkeypatch.setattr(instant, "LEARN_US", instant.LOOKBACK_US)
    finally:
        store.close()
    named = [s for s in asked["a week"] if {"vanuatu", "pam"} & set(s["items"])]
    assert named and all(c["post_id"].startswith("test:pam") for c in _cards(named[0]))
    assert not asked["two days"]


def test_news_endpoints_in_the_shape_of_x(tmp_path: Path):
    """`/2/news/search` and `/2/news/{id}` over a store no live trends ever ran on."""
    quake = QUIET_START + timedelta(hours=3)
    with serving(tmp_path / "data", no_auth=True) as (base, svc):
        feed(svc.store, _long_ago() + _chile(quake, people=24))
        svc.trends = StoryView(svc.store)
        root = base.removesuffix("/v1")
        as_of = _iso(quake + timedelta(minutes=59))
        listed = httpx.get(f"{base}/trends", params={"as_of": as_of}).json()
        assert listed["window"] is None and listed["data"]
        assert {s["window"] for s in listed["data"]} <= {"5m", "1h", "24h"}
        found = httpx.get(f"{root}/2/news/search", params={"query": "Iquique earthquake",
                                                           "max_age_hours": 48}).json()  # fmt: skip
        assert found["meta"]["result_count"] == len(found["data"]) >= 1
        news = found["data"][0]
        assert news["name"] and news["hook"] and news["summary"].startswith(news["hook"])
        assert set(news["contexts"]["entities"]) == {"people", "organizations", "places"}
        assert "verify" in news["disclaimer"]
        assert int(news["last_updated_at_ms"]) <= to_us(_at(as_of)) // 1000
        posts = {p["post_id"] for p in news["cluster_posts_results"]}
        assert posts and all(svc.store.get(p) is not None for p in posts)
        one = httpx.get(f"{root}/2/news/{news['id']}").json()["data"]
        assert one["id"] == news["id"] and one["name"] == news["name"]
        assert httpx.get(f"{root}/2/news/1h-000000000000").status_code == 404
        nothing = httpx.get(f"{root}/2/news/search", params={"query": "volcano"}).json()
        assert nothing["data"] == []
        for bad in ({"query": "!!"}, {"query": "quake", "max_results": 500}, {}):
            refused = httpx.get(f"{root}/2/news/search", params=bad)
            assert refused.status_code in (400, 422), (bad, refused.text)
        svc.trends.close()


@pytest.mark.parametrize("as_of", ["2026-13-01", "soon"])
def test_bad_instants_are_refused_with_a_clear_error(tmp_path: Path, as_of: str):
    with serving(tmp_path / "data", no_auth=True) as (base, svc):
        svc.trends = StoryView(svc.store)
        refused = httpx.get(f"{base}/trends", params={"as_of": as_of})
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "as_of"
        svc.trends.close()


def test_crisis_stream_builder_dates_tweets_by_their_ids(tmp_path: Path):
    from ima.bench.crisis_stream import build, created_at

    rows = ["tweet_id\ttweet_text\tlabel",
            "'451223986031316992'\tTsunami warning for Chile &amp; Peru\tcaution_and_advice",
            "'451236676631666688'\tAl menos cinco muertos dejó el terremoto de Chile en el "
            "norte\tinjured_or_dead_people",
            "'451240000000000000'\tmy cat is asleep\tnot_related_or_irrelevant"]  # fmt: skip
    (tmp_path / "2014_Chile_Earthquake_cl_labeled_data.tsv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "stream.jsonl"
    assert build(tmp_path, out) == 3
    records = [json.loads(line) for line in out.read_text().splitlines()]
    # the X API documentation's example post: created Tue Dec 31 19:26:16 +0000 2019
    assert created_at(1212092628029698048).replace(microsecond=0) == datetime(
        2019, 12, 31, 19, 26, 16, tzinfo=UTC
    )
    assert records[0]["created_at"].startswith("2014-04-02T05:05:56")
    assert [r["event"] for r in records] == ["2014_Chile_Earthquake"] * 2 + [None]
    assert records[0]["text"] == "Tsunami warning for Chile & Peru"
    assert records[1]["lang"] == "es" and "lang" not in records[0]


def test_eval_trends_on_a_real_labelled_stream(tmp_path: Path):
    """The real-stream mode, on a small labelled file written here: two events weeks
    apart, each named by a story, the planted flood never one."""
    chile = [{**r, "event": "2014_Chile_Earthquake"} for r in _chile(QUIET_START, people=60)]
    napa_at = QUIET_START + timedelta(days=20)
    napa = [{**r, "event": "2014_California_Earthquake"} for r in
            event(napa_at, people=60, prefix="n")]  # fmt: skip
    for r in napa:
        r["text"] = r["text"].replace("Kellerman Street", "Napa, California")
    records = sorted(chile + napa, key=lambda r: r["created_at"])
    path = tmp_path / "labelled.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    shown = CliRunner().invoke(main, ["eval", "trends", "--real", str(path), "--json"])
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.stdout)
    assert report["recall"] == 1.0, report["per_event"]
    assert report["flood_stories"] == 0 and report["future_leaks"] == 0
    assert report["citation_validity"] == 1.0 and report["precision"] >= 0.9
    text = CliRunner().invoke(main, ["eval", "trends", "--real", str(path)])
    assert "events named" in text.output and "2014_California_Earthquake" in text.output
    unlabelled = tmp_path / "unlabelled.jsonl"
    unlabelled.write_text(json.dumps(post("1", "a post", _iso(START))) + "\n")
    refused = CliRunner().invoke(main, ["eval", "trends", "--real", str(unlabelled)])
    assert refused.exit_code == 2 and 'line 1: no "event" label' in refused.output


def test_a_stream_that_starts_late_in_its_first_minute_is_judged_by_what_it_heard():
    """A stream starting 50 s into a minute heard 10 s of that minute: read as a whole
    minute's worth, its ordinary words would seem to quadruple and burst until the
    window warmed up. Steady chatter stays quiet; a word people take up later still
    bursts while the window is cold."""
    rng = random.Random(5)
    detector = BurstDetector(warm_up_spans=2.0)
    start = to_us(START) + 50_000_000
    common = [f"word{k}" for k in range(10)]
    held = []
    for second in range(8 * 60):
        at = start + second * 1_000_000
        if second and second % 10 == 0:
            detector.advance(at)
            # held back by the first bucket, the common words go on to stories only
            # if their posts show a topic (`stories.group`), which chatter's do not
            held.append((second, [b.item for b in detector.bursts("5m") if not b.held]))
        for k in range(20):
            items = {rng.choice(common), f"rare{rng.randrange(5000)}"}
            if second >= 180 and k < 3:
                items.add("quake")
            detector.add(at + k * 40_000, f"user{rng.randrange(5000)}", items)
    assert detector.warming_up("5m")
    assert all(set(found) <= {"quake"} for _, found in held)
    assert any("quake" in found for second, found in held if second < 300)


def test_a_cold_stream_shows_a_topic_fewer_than_a_fifth_were_on_from_its_start(tmp_path: Path):
    """From a stream's first minute, 50 people post about an earthquake among about 260
    others chatting: under a fifth of the posters, at the same rate all along, so its
    first bucket cannot tell it from chatter. Its posts say the same words together
    (Chile, Iquique), which a stream's common words do not: twenty minutes in, the 1h
    window, still learning, has the story. The chatter alone has none."""
    start = QUIET_START
    talk = chatter(22, per_minute=12, start=start)
    quake = _chile(start, people=50, minutes=20)
    at = start + timedelta(minutes=21)
    found = _with_and_without(tmp_path, talk, quake, at)
    bucket = _iso(start + timedelta(minutes=12))  # the 1h window's first bucket
    on, off = ({r["author"] for r in rs if r["created_at"] < bucket} for rs in (quake, talk))
    assert len(on) / (len(on) + len(off)) < 0.2
    others = {r["author"] for r in talk if r["created_at"] <= _iso(at)}
    assert 50 / (len(others) + 50) < 0.2
    hourly = found["quake"][0]
    assert hourly and {"chile", "iquique"} <= set(hourly[0]["items"])
    assert found["chatter"] == ([], [])


def _with_and_without(tmp_path, talk: list, quake: list, at: datetime) -> dict:
    """(the 1h window's stories, every window's) at `at`, for the chatter with the quake
    and for the chatter alone, each in a store of its own."""
    found = {}
    for name, records in (("quake", talk + quake), ("chatter", talk)):
        store = Store(tmp_path / name, commit_interval=0.05)
        feed(store, records)
        view = StoryView(store)
        try:
            found[name] = view.current("1h", to_us(at)), view.across(to_us(at))
        finally:
            view.close()
            store.close()
    return found
