"""Replay source: JSONL and CSV files of posts in the replay schema.

Records come out as dicts, or as `RecordError` for a line that is not a record
(bad JSON, invalid UTF-8, over-long), so the pipeline counts it and goes on.
With `speed`, records are paced by their `created_at`: speed 1 is real time,
60 is a minute of stream per second; None replays as fast as possible.
"""

from __future__ import annotations

import asyncio
import csv
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ima.errors import BadInput
from ima.ingest.normalize import JsonLine, RecordError, parse_instant
from ima.sources.base import Sink, Source

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


class Pacer:
    """How long to wait before each record so stream time runs `speed` times faster
    than wall time (records without a readable `created_at` pass at once)."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self._origin: tuple[float, float] | None = None  # (stream seconds, monotonic seconds)

    def delay(self, record: Any) -> float:
        if not isinstance(record, dict | JsonLine):
            return 0.0
        try:
            fields = record if isinstance(record, dict) else record.parse()
            stream_t = parse_instant(fields.get("created_at")).timestamp()
        except RecordError:
            return 0.0
        if self._origin is None:
            self._origin = (stream_t, time.monotonic())
        return self._origin[1] + (stream_t - self._origin[0]) / self.speed - time.monotonic()


def paced(
    records: Iterator[dict[str, Any] | RecordError], speed: float | None
) -> Iterator[dict[str, Any] | RecordError]:
    """Delay records so stream time advances `speed` times faster than wall time."""
    if not speed:
        yield from records
        return
    pacer = Pacer(speed)
    for record in records:
        wait = pacer.delay(record)
        if wait > 0:
            time.sleep(wait)
        yield record


class ReplayFile(Source):
    """A file as a stream (`file:PATH`): ends when the file does."""

    source = "file"

    def __init__(self, name: str, path: Path, *, speed: float | None = None) -> None:
        super().__init__(name, f"file://{path}")
        if not path.is_file():
            raise BadInput(f"no such file: {path}")
        self.path = path
        self.speed = speed

    async def run(self, sink: Sink) -> None:
        pacer = Pacer(self.speed) if self.speed else None
        self.health.connected = True
        for record in read(self.path):
            wait = pacer.delay(record) if pacer else 0.0
            if wait > 0:
                await asyncio.sleep(wait)
            self.health.event()
            await sink.put([record], self.source)
        self.health.connected = False
