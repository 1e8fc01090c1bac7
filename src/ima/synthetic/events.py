"""A generated stream with planted events: hours of chatter in English and Japanese
(Zipf-distributed words, thousands of authors), events that burst by distinct
authors within ten minutes (several sizes, shapes and languages, worded in many
ways), and two floods (one account posting hundreds of times; one text copied by
hundreds of accounts). Deterministic for a seed. `ima serve --demo` replays it;
`ima eval trends` scores the stories found in it against what was planted.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ima.post import iso, to_us
from ima.synthetic.chatter import Stream as Chatter


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
