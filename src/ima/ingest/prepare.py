"""The pure part of ingest: record → post, prepared text, its terms and duplicate fingerprint.

It needs no store and no shared state, so it can run in worker processes while the
pipeline thread commits the previous batch: that is how ingest uses both cores of a
small machine. Everything per post that does not need the store is done here, once:
the committing process neither parses, analyzes nor fingerprints. Results cross the
process boundary as named tuples of plain values (a post as `ima.post.flatten`'s
tuple), which pickle compactly and are rebuilt without running any `__init__`.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, NamedTuple

from ima.ingest.changes import Cursor, Delete, Edit, Engagement
from ima.ingest.dedup import Fingerprint, fingerprints
from ima.ingest.normalize import JsonLine, RecordError, normalize_flat
from ima.post import Flat
from ima.store.fresh import term_line
from ima.text import analysis

log = logging.getLogger(__name__)


class Prepared(NamedTuple):
    flat: tuple  # the post, as `ima.post.flatten` gives it: what the log stores
    text: str  # as the index sees it (`analysis.prepare`); the post's text when the same
    terms: str  # the text's terms, in order and space-separated (`store.fresh.term_line`)
    fingerprint: Fingerprint | None
    dropped: tuple[str, ...] = ()  # fields left out of the record (`normalize`'s `dropped`)


Outcome = Prepared | RecordError | Delete | Engagement | Cursor
_new = tuple.__new__


class PreparedBatch(list[Outcome]):
    """`prepare_batch`'s answer. Between processes its posts travel as plain tuples and
    are rebuilt all at once: pickled one by one, each named tuple cost a Python call on
    either side, 6 µs a post in all, more than the rest of the transfer."""

    def __reduce__(self) -> tuple:
        rows = [
            (i.flat, i.text, i.terms, i.fingerprint and tuple(i.fingerprint), i.dropped)
            if type(i) is Prepared
            else i
            for i in self
        ]
        return (_rebuild, (rows,))


def _rebuild(rows: list) -> PreparedBatch:
    out = PreparedBatch()
    for row in rows:
        if type(row) is tuple:
            flat, text, terms, fp, dropped = row
            row = _new(Prepared, (flat, text, terms, fp and _new(Fingerprint, fp), dropped))
        out.append(row)
    return out


#: a record to prepare: (record, default source, other sources it may claim or None for any)
Payload = tuple[Any, str, frozenset[str] | None]


class Payloads(list[Payload]):
    """Records for a preparing process; unparsed lines (`JsonLine`) travel as plain
    tuples of four, for the reason `PreparedBatch` gives."""

    def __reduce__(self) -> tuple:
        rows = [
            (r.number, r.data, source, allowed) if type(r) is JsonLine else (r, source, allowed)
            for r, source, allowed in self
        ]
        return (_payloads, (rows,))


def _payloads(rows: list[tuple]) -> Payloads:
    return Payloads(
        (_new(JsonLine, row[:2]), row[2], row[3]) if len(row) == 4 else row for row in rows
    )


def _prepare_one(record: Any, source: str, allowed: frozenset[str] | None, now: datetime) -> (
    tuple[tuple, str, str, tuple[str, ...]] | RecordError
):  # fmt: skip
    """One record → (flat post, indexed text, terms, dropped fields), all of a `Prepared`
    but the fingerprint (those are made a batch at once), or the reason it cannot be one.

    Whatever the record holds, the answer is one of those two: a failure that is not a
    `RecordError` (a bug meeting odd input) is logged and refuses this record alone."""
    try:
        if isinstance(record, RecordError):
            return record
        dropped: list[str] = []
        flat = normalize_flat(
            record, default_source=source, now=now, allowed_sources=allowed, dropped=dropped
        )
        text = analysis.prepare(flat[Flat.TEXT])
        return flat, text, term_line(text), tuple(dropped)
    except RecordError as exc:
        return _bare(exc)
    except Exception as exc:  # RecursionError, OverflowError, MemoryError...
        log.exception("a record could not be prepared")
        return RecordError("unprocessable", f"record: cannot be processed ({type(exc).__name__})")


def _bare(error: RecordError) -> RecordError:
    """The error without its traceback and chained errors: kept with them, it would hold
    the frames that hold the refused record (and this batch's list) in a cycle, which
    only a rare full collection frees."""
    error.__context__ = error.__cause__ = None
    return error.with_traceback(None)


def prepare_batch(records: list[Payload], now: datetime) -> PreparedBatch:
    """Normalize and analyze records; errors come back in place, and so do deletes and
    engagement counts, which need no preparing."""
    out: list[Any] = []  # outcomes, and posts as `_prepare_one`'s tuples
    texts: list[str] = []
    for record, source, allowed in records:
        if isinstance(record, Delete | Engagement | Cursor):
            out.append(record)
            continue
        prepared = _prepare_one(
            record.record if isinstance(record, Edit) else record, source, allowed, now
        )
        if type(prepared) is tuple:
            texts.append(prepared[1])
        out.append(prepared)
    prints = iter(fingerprints(texts))
    batch = PreparedBatch()
    for item in out:
        if type(item) is tuple:  # a post: made a `Prepared` once, with its fingerprint
            flat, text, terms, dropped = item
            item = _new(Prepared, (flat, text, terms, next(prints), dropped))
        batch.append(item)
    return batch
