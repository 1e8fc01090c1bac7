"""The pure part of ingest: record → post, prepared text and duplicate fingerprint.

It needs no store and no shared state, so it can run in worker processes while the
pipeline thread commits the previous batch: that is how ingest uses both cores of a
small machine. Results cross the process boundary as flat tuples (`Prepared`
pickles itself compactly), because pickling nested objects costs more than it saves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ima import analysis
from ima.changes import Cursor, Delete, Edit, Engagement
from ima.dedup import Fingerprint, fingerprints
from ima.normalize import RecordError, normalize
from ima.post import flatten


@dataclass(slots=True)
class Prepared:
    flat: tuple  # the post, as `ima.post.flatten` gives it: what the log stores
    text: str  # as the index sees it (`analysis.prepare`)
    fingerprint: Fingerprint | None

    def __reduce__(self) -> tuple:
        fp = self.fingerprint
        wire = None if fp is None else (fp.key, fp.numbers, fp.shingles, fp.bands)
        return (_rebuild, (self.flat, self.text, wire))


def _rebuild(flat: tuple, text: str, wire: tuple | None) -> Prepared:
    return Prepared(flat, text, None if wire is None else Fingerprint(*wire))


def prepare_batch(
    records: list[tuple[Any, str]], now: datetime
) -> list[Prepared | RecordError | Delete | Engagement | Cursor]:
    """Normalize and analyze `(record, default source)` pairs; errors come back in place,
    and so do deletes and engagement counts, which need no preparing."""
    out: list[Prepared | RecordError | Delete | Engagement | Cursor] = []
    texts: list[str] = []
    for record, source in records:
        if isinstance(record, Delete | Engagement | Cursor):
            out.append(record)
            continue
        if isinstance(record, Edit):
            record = record.record
        try:
            if isinstance(record, RecordError):
                raise record
            post = normalize(record, default_source=source, now=now)
        except RecordError as exc:
            out.append(exc)
            continue
        text = analysis.prepare(post.text)
        texts.append(text)
        out.append(Prepared(flatten(post), text, None))
    prints = iter(fingerprints(texts))
    for item in out:
        if isinstance(item, Prepared):
            item.fingerprint = next(prints)
    return out
