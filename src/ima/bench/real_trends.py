"""`ima eval trends --real FILE`: trends on a real stream of labelled posts.

The file is JSONL of post records, each with an `event` label (null: about no event);
`python -m ima.bench.crisis_stream` builds one from a public collection of crisis
tweets. One account's flood is planted in a quiet stretch (the collection has no
authors, so it cannot have one). The posts, labels left out, are stored by `ima
ingest` alone, in a fresh store, in a process of its own: no trends run while they
are. Then the stories are asked for at chosen instants, as a user would with `ima
trends --as-of T`:

- an event is *named* when, one hour after its 50th post, a story of the 1h or 24h
  window carries one of its names (places, storm or disease names) in its title, key
  words or summary, and most of that story's cited and top posts are the event's;
- its *delay* is from its first post to the first of the hourly instants after it
  (up to a day) at which it is named;
- precision is the share of the stories shown at all those instants that are mostly
  one labelled event's posts; a story mostly of the planted flood is a flood story;
- every story is checked for posts created after the instant asked, and its summary
  and title against its posts (`ima.bench.trending`'s check).

The same instants are also answered by a simple baseline: the five items most said
(by distinct authors, copies counted once) in the window, no burst test; an event is
named by it when one of those is one of its names.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ima.bench.crisis_stream import EVENTS
from ima.bench.trending import _holds
from ima.post import from_us, iso, to_us
from ima.store import Store
from ima.text import analysis
from ima.trends.bursts import MINUTE_US
from ima.trends.items import Tellings, items_of
from ima.trends.view import StoryView

WINDOWS = ("1h", "24h")
HOUR_US = 3600 * 1_000_000
AFTER_50TH_US = HOUR_US  # events are judged this long after their 50th post
DELAY_STEPS = 24  # hourly instants after an event's first post asked for its delay
FLOOD = "flood: one account"
FLOOD_POSTS = 400
BASELINE_TOP = 5
_FLOOD_LINES = ("Donate now to help the earthquake victims, link in my bio",
                "Earthquake relief: every share helps, donate today",
                "Please donate for flood and earthquake relief, we need you")  # fmt: skip
_FLOOD_WORDS = ("please", "share", "friends", "today", "now", "help", "urgent", "thanks")
_FLOOD_ONLY = frozenset({"donate", "bio", "relief", "urgent", "friends", "thanks"})


def _instant(text: str) -> int:
    return to_us(datetime.fromisoformat(text.replace("Z", "+00:00")))


def plant_flood(records: list[dict[str, Any]]) -> int:
    """One account posting `FLOOD_POSTS` times in an hour, in the quietest day of the
    stream; returns when it starts (µs)."""
    times = sorted(_instant(r["created_at"]) for r in records)
    gap, start = max((b - a, a) for a, b in itertools.pairwise(times))
    begin = start + gap // 2
    rng = random.Random(5)
    for k in range(FLOOD_POSTS):
        at = from_us(begin + int(rng.uniform(0, HOUR_US)))
        text = f"{rng.choice(_FLOOD_LINES)} {' '.join(rng.sample(_FLOOD_WORDS, 3))} #{k}"
        records.append({"id": f"flood{k}", "text": text, "author": "relief_now_official",
                        "created_at": iso(at), "event": FLOOD})  # fmt: skip
    return begin


def _ingest(records: list[dict[str, Any]], data_dir: Path, tmp: Path) -> None:
    """Store the posts with `ima ingest`, in a process of its own, labels left out."""
    posts = tmp / "posts.jsonl"
    with posts.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps({k: v for k, v in record.items() if k != "event"},
                                    ensure_ascii=False) + "\n")  # fmt: skip
    env = {**os.environ, "IMA_DATA_DIR": str(data_dir)}
    done = subprocess.run([sys.executable, "-m", "ima", "ingest", str(posts), "--source", "x"],
                          env=env, capture_output=True, text=True)  # fmt: skip
    if done.returncode not in (0, 1):  # 1: some records were rejected, the rest stored
        raise LabelledError(f"ima ingest failed: {done.stderr.strip()[-500:]}")


def _names(story: dict[str, Any]) -> set[str]:
    """The words a story names: its key words, and those of its title and summary."""
    text = analysis.prepare(" ".join([story["title"], story["summary"]]))
    return {w.lstrip("#") for w in [*story["items"], *items_of(text)]}


def _baseline(store: Store, at_us: int, span_us: int) -> list[str]:
    """The items most said by distinct authors in (at_us - span_us, at_us]."""
    said: dict[str, set[str]] = {}
    tellings = Tellings()
    rows = sorted((c, a, t) for _, c, a, _, t in store.originals_created(at_us - span_us, at_us))
    for _, author, text in rows:
        if teller := tellings.author_of(text, author.lower()):
            for item in items_of(text):
                said.setdefault(item, set()).add(teller)
    ranked = sorted(said, key=lambda item: (-len(said[item]), item))  # ties: the same each run
    return [item.lstrip("#") for item in ranked[:BASELINE_TOP]]


class LabelledError(ValueError):
    """The labelled file cannot be scored: what is wrong, and where."""


def _record(line: str, number: int) -> dict[str, Any]:
    try:
        record = json.loads(line)
        if not isinstance(record, dict) or not isinstance(record.get("id"), str):
            raise ValueError("not a post record with a string id")
        if "event" not in record or not isinstance(record["event"], str | None):
            raise ValueError('no "event" label (a string, or null for none)')
        if not isinstance(record.get("created_at"), str):
            raise ValueError("no created_at (ISO 8601)")
        _instant(record["created_at"])
    except (ValueError, TypeError) as exc:
        raise LabelledError(f"line {number}: {exc}") from None
    return record


@dataclass
class Labelled:
    """The stream's labels: each event's post times, and those of the posts whose
    language the file declares (`told_in`), the posts' owners, the planted flood."""

    records: list[dict[str, Any]]
    flood_us: int
    owner: dict[str, str | None] = field(default_factory=dict)
    times: dict[str, list[int]] = field(default_factory=dict)
    told_in: dict[str, list[int]] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> Labelled:
        records = []
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if line.strip():
                    records.append(_record(line, number))
        if not records:
            raise LabelledError(f"{path}: no posts")
        labelled = cls(records, plant_flood(records))
        for record in records:
            event, at = record["event"], _instant(record["created_at"])
            labelled.owner[record["id"]] = event
            if event not in (None, FLOOD):
                labelled.times.setdefault(event, []).append(at)
                if record.get("lang"):
                    labelled.told_in.setdefault(event, []).append(at)
        for times in [*labelled.times.values(), *labelled.told_in.values()]:
            times.sort()
        return labelled


def run(path: Path, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Ingest the labelled stream into a fresh store and score the stories asked for."""
    stream = Labelled.read(path)
    with tempfile.TemporaryDirectory(prefix="ima-eval-real-") as tmp:
        data = Path(tmp) / "data"
        if progress:
            progress(f"ima ingest: {len(stream.records):,} posts ({len(stream.times)} events, "
                     "one flood)")  # fmt: skip
        _ingest(stream.records, data, Path(tmp))
        store = Store(data)
        view = StoryView(store)
        try:
            report = _score(store, view, stream, progress)
        finally:
            view.close()
            store.close()
    report["posts"] = len(stream.records)
    return report


def _score(
    store: Store, view: StoryView, stream: Labelled, progress: Callable[[str], None] | None
) -> dict[str, Any]:
    shown: dict[tuple[int, str], list[dict[str, Any]]] = {}

    def stories(at_us: int) -> list[dict[str, Any]]:
        for window in WINDOWS:
            if (at_us, window) not in shown:
                shown[at_us, window] = view.current(window, at_us)
        return [s for w in WINDOWS for s in shown[at_us, w]]

    def owner(story: dict[str, Any]) -> str | None:
        ids = {c["post_id"] for c in story["citations"] + story["top_posts"]}
        owners = [stream.owner.get(i.partition(":")[2]) for i in ids]
        top = max(set(owners), key=owners.count, default=None)
        return top if owners.count(top) > len(owners) / 2 else None

    def named(event: str, at_us: int) -> dict[str, Any] | None:
        wanted = set(EVENTS[event])
        return next((s for s in stories(at_us) if owner(s) == event and _names(s) & wanted),
                    None)  # fmt: skip

    per_event = []
    base_named = 0
    multilingual = []
    for event, times in sorted(stream.times.items(), key=lambda kv: kv[1][0]):
        if progress:
            progress(f"{event}: {len(times)} posts")
        at = times[min(49, len(times) - 1)] + AFTER_50TH_US
        story = named(event, at)
        first = times[0]
        delay = next((k for k in range(1, DELAY_STEPS + 1) if named(event, first + k * HOUR_US)),
                     None)  # fmt: skip
        top = {w for span in (60, 1440) for w in _baseline(store, at, span * MINUTE_US)}
        base_named += bool(top & set(EVENTS[event]))
        declared = stream.told_in.get(event, [])
        if len(declared) >= 50:  # also told in another language: asked once it is
            told = named(event, declared[49] + AFTER_50TH_US)
            languages = {c["lang"] for c in told["citations"]} - {"und"} if told else set()
            multilingual.append({"event": event, "cited_languages": sorted(languages)})
        per_event.append({"event": event, "posts": len(times), "at": iso(from_us(at)),
                          "posts_last_hour": sum(at - HOUR_US < t <= at for t in times),
                          "named": story is not None,
                          "window": story["window"] if story else None,
                          "title": story["title"] if story else None,
                          "delay_h": delay, "baseline_top": sorted(top)})  # fmt: skip
    flood_at = stream.flood_us + HOUR_US
    stories(flood_at)
    flood_top = _baseline(store, flood_at, HOUR_US)
    distinct: dict[str, dict[str, Any]] = {}
    leaks = 0
    for (at_us, _), found in shown.items():
        for story in found:
            distinct[story["id"]] = story
            leaks += any(_instant(c["created_at"]) > at_us for c in _cards(story))
    verdicts = {sid: owner(s) for sid, s in distinct.items()}
    ids = sorted({c["post_id"] for s in distinct.values() for c in _cards(s)})
    posts = {i: sp.post for i in ids if (sp := store.get(i)) is not None}
    faults = {sid: f for sid, s in distinct.items() if (f := _holds(s, posts))}
    found = [e for e in per_event if e["named"]]
    delays = [e["delay_h"] for e in per_event if e["delay_h"] is not None]
    about = sum(v not in (None, FLOOD) for v in verdicts.values())
    return {
        "events": len(per_event),
        "recall": len(found) / len(per_event),
        "baseline_recall": base_named / len(per_event),
        "baseline_flood_words": [w for w in flood_top if w in _FLOOD_ONLY],
        "stories": len(distinct),
        "precision": about / len(distinct) if distinct else 1.0,
        "flood_stories": sum(v == FLOOD for v in verdicts.values()),
        "future_leaks": leaks,
        "citation_validity": 1 - len(faults) / len(distinct) if distinct else 1.0,
        "median_delay_h": statistics.median(delays) if delays else None,
        "multilingual": multilingual,
        "per_event": per_event,
        "not_about_events": [
            s["title"] for sid, s in distinct.items() if verdicts[sid] in (None, FLOOD)
        ],
        "faults": faults,
        "instants_asked": len({at for at, _ in shown}),
    }


def _cards(story: dict[str, Any]) -> list[dict[str, Any]]:
    return story["citations"] + story["top_posts"]


def lines(report: dict[str, Any]) -> list[str]:
    """The report as `ima eval trends --real` prints it."""
    delay = report["median_delay_h"]
    rows = [
        ("stream", f"{report['posts']:,} posts, {report['events']} labelled events"),
        ("events named (1h or 24h, 1 h after 50th post)", f"{report['recall']:.1%}"),
        ("  baseline: 5 most-said words", f"{report['baseline_recall']:.1%}"),
        ("precision", f"{report['precision']:.1%} ({report['stories']} stories)"),
        ("median delay from first post", "–" if delay is None else f"{delay} h"),
        ("flood stories", str(report["flood_stories"])),
        ("posts after as_of in stories", str(report["future_leaks"])),
        ("citation validity", f"{report['citation_validity']:.1%}"),
        ("baseline's words from the flood", ", ".join(report["baseline_flood_words"]) or "none"),
        *(
            (f"  {m['event']}, once told in 2 languages", "cites " + "/".join(m["cited_languages"]))
            for m in report["multilingual"]
        ),
    ]
    width = max(len(label) for label, _ in rows)
    out = [f"{label:<{width}}  {value}" for label, value in rows]
    for event in report["per_event"]:
        found = f"{event['window']}: {event['title']}" if event["named"] else "missed"
        out.append(f"  {event['event']:<34} {event['posts_last_hour']:>3} posts in the hour · "
                   f"{found}")  # fmt: skip
    out += [f"✗ not a labelled event: {title}" for title in report["not_about_events"]]
    out += [f"✗ {story}: {'; '.join(faults)}" for story, faults in report["faults"].items()]
    return out
