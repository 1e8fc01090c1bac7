"""`ima trends`."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from tqdm import tqdm

from ima.cli import options
from ima.config import Settings

_SPARK = "▁▂▃▄▅▆▇█"


def _sparkline(points: list[dict[str, Any]]) -> str:
    counts = [p["posts"] for p in points]
    top = max(counts, default=0) or 1
    return "".join(_SPARK[min(7, c * 8 // (top + 1))] if c else " " for c in counts)


def _clock(text: str) -> str:
    return text[11:16] + " UTC"


@click.command("trends")
@click.option("--window", type=click.Choice(["5m", "1h", "24h"]),
              help="Only this window's stories (default: the strongest of all three, each "
                   "saying which window it burst in).")  # fmt: skip
@click.option("--as-of", "as_of", help="The stories as they stood at this instant "
              "(ISO 8601 or epoch seconds; default: now, the newest post's time).")  # fmt: skip
@click.option("--fun", is_flag=True, help="Fun-voice headlines (never on tragedies).")
@click.option("--limit", type=click.IntRange(1, 50), default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the stories as JSON.")
@click.pass_obj
def trends_cmd(
    settings: Settings, window: str | None, as_of: str | None, fun: bool, limit: int,
    as_json: bool,
) -> None:  # fmt: skip
    """What's happening: the stories bursting at an instant, each summary sentence cited.

    Works on any store, however it was filled (`ima ingest`, `ima stream`, `ima serve`,
    a copied data directory): what `ima serve` and `ima stream` recorded as it happened
    is shown where it covers the instant; otherwise the stories are computed from the
    two days of posts before it (with a progress bar) and recorded for next time.
    """
    from ima.post import from_us, to_us
    from ima.trends.view import StoryView

    instant = options.instant(as_of)
    store = settings.open_store()
    view = StoryView(store)
    try:
        at_us = to_us(instant) if instant else view.now()
        with tqdm(unit=" posts", desc="reading the log", file=sys.stderr, disable=as_json,
                  delay=1) as bar:  # fmt: skip

            def read(n: int) -> None:
                bar.update(n - bar.n)

            stories = view.current(window, at_us, read) if window else view.across(at_us, read)
        stories = stories[:limit]
    finally:
        view.close()
        store.close()
    if as_json:
        click.echo(json.dumps({"window": window, "as_of": at_us and from_us(at_us).isoformat(),
                               "stories": stories}, ensure_ascii=False, indent=2))  # fmt: skip
        return
    when = from_us(at_us).strftime("%Y-%m-%d %H:%M UTC") if at_us else "now"
    windows = f"the {window} window" if window else "any window"
    if not stories:
        click.echo(f"No stories in {windows} as of {when}.")
        return
    click.echo(f"What's happening · {windows} · as of {when}\n")
    for n, story in enumerate(stories, 1):
        title = story["fun_title"] if fun else story["title"]
        langs = "/".join(story["languages"])
        click.echo(f"{n}. {title}")
        first, seen = _clock(story["first_post_at"]), _clock(story["detected_at"])
        volume = _sparkline(story["timeline"])
        click.echo(f"   {story['window']} window · {story['posts']:,} posts by "
                   f"{story['authors']:,} authors ({langs}) · first post {first} · seen {seen} · "
                   f"{volume}")  # fmt: skip
        click.echo(f"   {story['summary']}")
        for card in story["citations"]:
            link, at = card["url"] or card["post_id"], _clock(card["created_at"])
            click.echo(f"   [{card['number']}] @{card['author']} {at} {link}")
        click.echo("")


