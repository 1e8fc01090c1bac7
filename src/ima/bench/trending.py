"""`ima eval trends`: a generated stream with planted events, floods and chatter, scored.

The stream (deterministic for a seed) is hours of steady chatter in English and
Japanese (Zipf-distributed words, thousands of authors), with planted events: each
a burst of posts by distinct authors within ten minutes, of several sizes, shapes and
languages, worded in many ways; and floods: one account posting hundreds of times,
and one text copied by hundreds of accounts (with trivial variations). It is fed
through ingest with trends following, in stream order, and the stories recorded are
scored: recall and precision against the planted events, detection delay (an
event's first post → the first story version about it, in stream time), floods that became stories,
and whether every summary sentence and title holds up against the story's posts.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ima import analysis
from ima.answer.model import iso
from ima.answer.verify import problems
from ima.bench.synth import Stream as Chatter
from ima.post import Post, to_us

WINDOW = "5m"


@dataclass(frozen=True, slots=True)
class Event:
    name: str
    lang: str
    lines: tuple[str, ...]  # ways people say it; {place} and {detail} vary per post
    places: tuple[str, ...]
    details: tuple[str, ...]


EVENTS = (
    Event("tornado", "en", (
        "Tornado just touched down near {place}, {detail}",
        "A tornado went through {place} minutes ago. {detail}",
        "Sirens everywhere in {place}, tornado on the ground, {detail}",
        "Confirmed tornado in {place}: {detail}",
        "Huge funnel cloud over {place} right now and {detail}",
    ), ("Millbrook", "Millbrook county", "east Millbrook"),
       ("roofs are gone", "trees down on every street", "power is out", "stay inside",
        "the school lost its roof", "no injuries reported so far")),
    Event("transfer", "en", (
        "{place} has signed Okonkwo from Ajax, {detail}",
        "Okonkwo to {place} is done! {detail}",
        "Official: Okonkwo joins {place}. {detail}",
        "Can't believe {place} actually got Okonkwo, {detail}",
    ), ("Arsenal", "the Gunners"),
       ("five year deal", "fee around 60 million", "medical done this morning",
        "unveiling tomorrow", "what a signing", "fans are going wild")),
    Event("outage", "en", (
        "Is {place} down for everyone? {detail}",
        "{place} outage: {detail}",
        "{place} not loading at all, {detail}",
        "Looks like {place} is having a major outage, {detail}",
    ), ("Streamly", "the Streamly app"),
       ("error 503 on every page", "login fails", "support page also dead",
        "started ten minutes ago", "status page says investigating", "videos won't play")),
    Event("launch", "en", (
        "The Helios rocket just launched from {place}! {detail}",
        "Liftoff of Helios at {place}, {detail}",
        "Watching the Helios launch from {place}, {detail}",
        "Helios is off the pad at {place}: {detail}",
    ), ("Cape Verity", "the Cape Verity pad"),
       ("booster landed", "perfect ascent", "stage separation confirmed",
        "the crowd is cheering", "orbit reached", "sonic boom heard downtown")),
    Event("verdict", "en", (
        "Jury finds Marlowe guilty in {place}, {detail}",
        "Marlowe verdict is in: guilty. {detail}",
        "Guilty on all counts for Marlowe in {place}; {detail}",
    ), ("the Hartford trial", "Hartford court"),
       ("sentencing set for March", "appeal expected", "courtroom silent",
        "the defense looked stunned", "prosecutors pleased")),
    Event("album", "en", (
        "Nova Vale dropped a surprise album {detail}",
        "The new Nova Vale album is out {detail}",
        "Listening to the surprise Nova Vale album {detail}",
        "Nova Vale surprise release: {detail}",
    ), ("",),
       ("and track three is incredible", "with twelve songs", "at midnight",
        "and it is already top of the charts", "with no announcement at all")),
    Event("jishin", "ja", (
        "{place}で強い揺れ、{detail}",
        "今の地震、{place}でかなり揺れた。{detail}",
        "{place}で地震発生、{detail}",
        "地震速報：{place}で震度5弱、{detail}",
    ), ("仙台", "宮城県仙台市"),
       ("棚から物が落ちた", "電車が止まっています", "津波の心配はなし",
        "停電している地域あり", "エレベーターが停止", "みなさん無事ですか")),
    Event("shinkansen", "ja", (
        "{place}で新幹線が運転見合わせ、{detail}",
        "新幹線止まってる。{place}の架線トラブルらしい、{detail}",
        "{place}の新幹線、運転再開の見込み立たず。{detail}",
    ), ("東海道新幹線", "名古屋駅付近"),
       ("ホームが人でいっぱい", "再開は未定", "払い戻しの列が長い", "車内に2時間閉じ込め")),
    Event("matsuri", "ja", (
        "{place}で花火大会が始まった！{detail}",
        "{place}の花火、{detail}",
        "花火大会なう、{place}、{detail}",
    ), ("隅田川", "隅田川沿い"),
       ("すごくきれい", "人が多すぎる", "音が響いてる", "ハートの形の花火があった")),
)  # fmt: skip

SIZES = (50, 60, 80, 120, 200, 400, 1000)
CHATTER_PER_S = 6
HOURS = 5.0
FLOOD_POSTS = 500


@dataclass
class Planted:
    event: Event
    size: int
    shape: str  # "front-loaded" or "steady"
    first_us: int
    ids: set[str] = field(default_factory=set)


@dataclass
class Generated:
    records: list[dict[str, Any]]
    planted: list[Planted]
    floods: dict[str, set[str]]  # flood name → its post ids
    start: datetime


def _at(instant: datetime) -> str:
    return iso(instant)


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def generate(seed: int = 7, hours: float = HOURS) -> Generated:
    """The stream: chatter throughout, events from the first hour on, two floods."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)
    span = timedelta(hours=hours)
    chatter = Chatter(1, seed=seed)
    records: list[dict[str, Any]] = []
    count = int(span.total_seconds() * CHATTER_PER_S)
    authors = 20_000
    for n in range(count):
        at = start + timedelta(seconds=rng.uniform(0, span.total_seconds()))
        japanese = rng.random() < 0.3
        text = chatter.japanese(None) if japanese else chatter.english(None)
        records.append({"id": f"c{n}", "text": text, "created_at": _at(at),
                        "author": f"user{rng.randrange(authors)}"})  # fmt: skip
    planted: list[Planted] = []
    usable = span - timedelta(minutes=75)  # events start after 1 h of warm-up, end in time
    for index, event in enumerate(EVENTS * 2):
        size = SIZES[(index * 3 + seed) % len(SIZES)]
        begin = (
            start + timedelta(hours=1) + usable * (index + rng.random() * 0.5) / (2 * len(EVENTS))
        )
        front_loaded = index % 2 == 0
        event_posts = Planted(event, size, "front-loaded" if front_loaded else "steady", 0)
        times = sorted(
            min(600.0, rng.expovariate(1 / 150)) if front_loaded else rng.uniform(0, 600)
            for _ in range(size)
        )
        for k, offset in enumerate(times):
            text = rng.choice(event.lines).format(
                place=rng.choice(event.places), detail=rng.choice(event.details)
            )
            if rng.random() < 0.5:  # people add their own words
                extra = chatter.japanese(None) if event.lang == "ja" else chatter.english(None)
                text = f"{text} {extra}"
            post_id = f"ev{index}-{k}"
            event_posts.ids.add(post_id)
            records.append({"id": post_id, "text": text, "author": f"ev{index}_{k}",
                            "created_at": _at(begin + timedelta(seconds=offset)),
                            "likes": rng.randrange(50)})  # fmt: skip
        event_posts.first_us = to_us(begin + timedelta(seconds=times[0]))
        planted.append(event_posts)
    floods: dict[str, set[str]] = {"one account": set(), "one text": set()}
    flood_at = start + timedelta(hours=1.5)
    for k in range(FLOOD_POSTS):  # one account, many posts
        at = flood_at + timedelta(seconds=rng.uniform(0, 600))
        post_id = f"fa{k}"
        floods["one account"].add(post_id)
        text = f"Follow me for the best Zentrix deals, {chatter.english(None)}"
        records.append({"id": post_id, "author": "megaposter", "created_at": _at(at), "text": text})
    copied = "Zentrix giveaway is live, retweet and follow to win a free phone today only"
    flood_at = start + timedelta(hours=2.5)
    for k in range(FLOOD_POSTS):  # one text, many accounts
        at = flood_at + timedelta(seconds=rng.uniform(0, 600))
        post_id = f"ft{k}"
        floods["one text"].add(post_id)
        records.append({"id": post_id, "author": f"bot{k}", "created_at": _at(at),
                        "text": copied + rng.choice(["", "!", "!!", " 🔥", " #win"])})  # fmt: skip
    records.sort(key=lambda r: r["created_at"])
    return Generated(records, planted, floods, start)


def _holds(story: dict[str, Any], posts: dict[str, Post]) -> list[str]:
    """What is wrong with a story's title and summary, against its own posts."""
    cited = [posts[c["post_id"]] for c in story["citations"] if c["post_id"] in posts]
    if len(cited) != len(story["citations"]):
        return ["a cited post is missing"]
    as_of = _instant(story["updated_at"])
    found = problems(story["summary"], cited, as_of)
    words = set()
    for post in [*cited, *(posts.get(p["post_id"]) for p in story["top_posts"])]:
        if post is not None:
            words |= set(analysis.terms(post.text))
    missing = [t for t in analysis.terms(story["title"]) if t not in words]
    if missing:
        found.append(f"title words not in the story's posts: {missing}")
    if not 2 <= len(story["sentences"]) <= 3 and len(story["citations"]) >= 2:
        found.append(f"summary has {len(story['sentences'])} sentences")
    return found


def score(
    generated: Generated,
    versions: list[dict[str, Any]],
    lookup: Callable[[list[str]], dict[str, Post]],
) -> dict[str, Any]:
    """Score the recorded story versions of `WINDOW` against what was planted."""
    owner: dict[str, str] = {}  # native post id → what it belongs to
    for index, planted in enumerate(generated.planted):
        owner.update((i, f"event{index}") for i in planted.ids)
    for name, ids in generated.floods.items():
        owner.update((i, f"flood:{name}") for i in ids)

    def verdict(bodies: list[dict[str, Any]]) -> str:
        """What most of these versions' cited and top posts belong to."""
        ids = {c["post_id"] for b in bodies for c in b["citations"]}
        ids |= {p["post_id"] for b in bodies for p in b["top_posts"]}
        owners = [owner.get(i.partition(":")[2], "chatter") for i in ids]
        top = max(set(owners), key=owners.count)
        return top if owners.count(top) > len(owners) / 2 else "chatter"

    stories: dict[str, list[dict[str, Any]]] = {}
    shown: dict[str, int] = {}  # event → when a version about it first appeared
    for body in versions:
        stories.setdefault(body["id"], []).append(body)
        about = verdict([body])
        at = to_us(_instant(body["updated_at"]))
        shown[about] = min(shown.get(about, at), at)
    verdicts = {sid: verdict(bodies) for sid, bodies in stories.items()}
    delays = []
    found_events = []
    per_event = []
    for index, planted in enumerate(generated.planted):
        label = f"event{index}"
        delay = None
        if label in shown:
            delay = (shown[label] - planted.first_us) / 1e6
            delays.append(delay)
            found_events.append(index)
        per_event.append({"event": planted.event.name, "lang": planted.event.lang,
                          "posts": planted.size, "shape": planted.shape,
                          "delay_s": None if delay is None else round(delay, 1),
                          "stories": sum(v == label for v in verdicts.values())})  # fmt: skip
    about_events = sum(v.startswith("event") for v in verdicts.values())
    final = [bodies[-1] for bodies in stories.values()]
    posts = lookup(sorted({c["post_id"] for s in final for c in s["citations"]}
                          | {p["post_id"] for s in final for p in s["top_posts"]}))  # fmt: skip
    faults = {s["id"]: f for s in final if (f := _holds(s, posts))}
    return {
        "window": WINDOW,
        "posts": len(generated.records),
        "events": len(generated.planted),
        "stories": len(stories),
        "recall": len(found_events) / len(generated.planted),
        "precision": about_events / len(stories) if stories else 1.0,
        "median_delay_s": statistics.median(delays) if delays else None,
        "max_delay_s": max(delays) if delays else None,
        "stories_per_event": about_events / max(1, len(found_events)),
        "flood_stories": sum(v.startswith("flood") for v in verdicts.values()),
        "citation_validity": 1 - len(faults) / len(final) if final else 1.0,
        "per_event": per_event,
        "not_about_events": [
            s["title"] for s in final if not verdicts[s["id"]].startswith("event")
        ],
        "faults": faults,
    }


def run(store_factory: Callable[[], Any], *, seed: int = 7, hours: float = HOURS,
        progress: Callable[[str], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """Generate, ingest with trends following in stream order, and score."""
    from ima.ingest import Pipeline, ingest
    from ima.trends.tracker import Trends

    generated = generate(seed, hours)
    store = store_factory()
    trends = Trends(store, background=False)
    versions: list[dict[str, Any]] = []
    try:
        trends.follow()
        if progress:
            progress(f"generated {len(generated.records)} posts; ingesting with trends following")
        with Pipeline(store) as pipeline:
            ingest(pipeline, generated.records, source="eval")
        versions = trends.history.versions(WINDOW)

        def lookup(ids: list[str]) -> dict[str, Post]:
            found = {}
            for post_id in ids:
                stored = store.get(post_id)
                if stored is not None:
                    found[post_id] = stored.post
            return found

        report = score(generated, versions, lookup)
    finally:
        trends.close()
        store.close()
    report["seed"] = seed
    return report
