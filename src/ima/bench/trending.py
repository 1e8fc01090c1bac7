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

import statistics
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ima.answer.verify import problems
from ima.post import Post, to_us
from ima.synthetic.events import HOURS, Generated, generate
from ima.text import analysis

WINDOW = "5m"


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


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
