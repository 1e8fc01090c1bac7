"""`ima serve --demo`: a bundled, generated stream, so everything can be tried offline.

The stream is `ima eval trends`'s generator (chatter in English and Japanese with
planted events and floods), moved in time so that its first hour and a quarter has
already happened: that part is stored at start (so trends have a baseline and there is
something to ask about), and the rest arrives live, at real speed, from a file in the
data directory. Its posts carry the source `demo`, and the web app labels them as
generated.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ima.sources.replay import ReplayFile
from ima.synthetic.events import generate

HISTORY = timedelta(minutes=75)
SOURCE = "demo"


def _moved(records: list[dict[str, Any]], by: timedelta) -> list[tuple[datetime, dict[str, Any]]]:
    out = []
    for record in records:
        created = datetime.fromisoformat(record["created_at"].replace("Z", "+00:00")) + by
        out.append((created, {**record, "created_at": created.isoformat(), "source": SOURCE}))
    return out


def prepare(
    data_dir: Path, *, seed: int = 7, now: datetime | None = None
) -> tuple[list[dict[str, Any]], ReplayFile]:
    """(the records that have already happened, a source replaying the rest live)."""
    generated = generate(seed, hours=3)
    now = now or datetime.now(UTC)
    records = _moved(generated.records, now - (generated.start + HISTORY))
    past = [record for created, record in records if created <= now]
    future = data_dir / "demo-stream.jsonl"
    with future.open("w", encoding="utf-8") as out:
        for created, record in records:
            if created > now:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return past, ReplayFile(SOURCE, future, speed=1.0)
