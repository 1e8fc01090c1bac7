"""Replay source: JSONL and CSV files of posts in the replay schema.

Records come out as dicts, or as `RecordError` for a line that is not a record
(bad JSON, invalid UTF-8, over-long), so the pipeline counts it and goes on.
With `speed`, records are paced by their `created_at`: speed 1 is real time,
60 is a minute of stream per second; None replays as fast as possible.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ima.normalize import JsonLine, RecordError, parse_instant

MAX_LINE_BYTES = 4 * 1024 * 1024
_CSV_METRICS = ("likes", "reposts", "replies", "views")


def _jsonl(path: Path) -> Iterator[JsonLine | RecordError]:
    with open(path, "rb") as fh:
        line_no = 0
        while True:
            raw = fh.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            line_no += 1
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                while (rest := fh.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                    pass
                yield RecordError("too_long", f"line {line_no}: longer than {MAX_LINE_BYTES} bytes")
            elif raw.strip():
                yield JsonLine(line_no, raw)


def _csv(path: Path) -> Iterator[dict[str, Any] | RecordError]:
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as fh:
        reader = csv.DictReader(fh)
        for row in reader:
            if None in row:
                yield RecordError("bad_csv", f"line {reader.line_num}: more fields than the header")
                continue
            record: dict[str, Any] = {k: v for k, v in row.items() if v not in (None, "")}
            metrics = {m: record.pop(m) for m in _CSV_METRICS if m in record}
            if metrics:
                record["metrics"] = metrics
            yield record


def read(path: Path) -> Iterator[dict[str, Any] | JsonLine | RecordError]:
    """Records of one file, by extension: `.csv`, otherwise JSON Lines.

    JSON lines come out unparsed (`JsonLine`): the pipeline parses them where it
    normalizes, in its worker processes when it has them.
    """
    if path.suffix.lower() == ".csv":
        return _csv(path)
    return _jsonl(path)


def paced(
    records: Iterator[dict[str, Any] | RecordError], speed: float | None
) -> Iterator[dict[str, Any] | RecordError]:
    """Delay records so stream time advances `speed` times faster than wall time."""
    if not speed:
        yield from records
        return
    origin: tuple[float, float] | None = None  # (stream seconds, monotonic seconds)
    for record in records:
        if isinstance(record, dict | JsonLine):
            try:
                fields = record if isinstance(record, dict) else record.parse()
                stream_t = parse_instant(fields.get("created_at")).timestamp()
            except RecordError:
                stream_t = None
            if stream_t is not None:
                if origin is None:
                    origin = (stream_t, time.monotonic())
                wait = origin[1] + (stream_t - origin[0]) / speed - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
        yield record
