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
from ima.dedup import Fingerprint, fingerprints
from ima.normalize import RecordError, normalize
from ima.post import Author, Flags, Metrics, Post, from_us, to_us


@dataclass(slots=True)
class Prepared:
    post: Post
    text: str  # as the index sees it (`analysis.prepare`)
    fingerprint: Fingerprint | None

    def __reduce__(self) -> tuple:
        p, fp = self.post, self.fingerprint
        flat = (
            p.id,
            p.source,
            p.author.handle,
            p.author.name,
            p.author.followers,
            p.text,
            p.lang,
            to_us(p.created_at),
            to_us(p.ingested_at),
            p.url,
            p.reply_to,
            p.quote_of,
            p.repost_of,
            " ".join(p.hashtags),
            " ".join(p.mentions),
            " ".join(p.links),
            p.metrics.likes,
            p.metrics.reposts,
            p.metrics.replies,
            p.metrics.views,
            p.flags.spam_score,
            p.flags.injection_suspect,
            self.text,
            None if fp is None else (fp.key, fp.numbers, fp.shingles, fp.bands),
        )
        return (_rebuild, flat)


def _rebuild(*f: Any) -> Prepared:
    post = Post(
        id=f[0],
        source=f[1],
        author=Author(f[2], f[3], f[4]),
        text=f[5],
        lang=f[6],
        created_at=from_us(f[7]),
        ingested_at=from_us(f[8]),
        url=f[9],
        reply_to=f[10],
        quote_of=f[11],
        repost_of=f[12],
        hashtags=f[13].split(),
        mentions=f[14].split(),
        links=f[15].split(),
        metrics=Metrics(f[16], f[17], f[18], f[19]),
        flags=Flags(spam_score=f[20], injection_suspect=f[21]),
    )
    return Prepared(post, f[22], None if f[23] is None else Fingerprint(*f[23]))


def prepare_batch(records: list[tuple[Any, str]], now: datetime) -> list[Prepared | RecordError]:
    """Normalize and analyze `(record, default source)` pairs; errors come back in place."""
    out: list[Prepared | RecordError] = []
    terms: list[list[str]] = []
    for record, source in records:
        try:
            if isinstance(record, RecordError):
                raise record
            post = normalize(record, default_source=source, now=now)
        except RecordError as exc:
            out.append(exc)
            continue
        text = analysis.prepare(post.text)
        terms.append(analysis.terms_of_prepared(text))
        out.append(Prepared(post, text, None))
    prints = iter(fingerprints(terms))
    for item in out:
        if isinstance(item, Prepared):
            item.fingerprint = next(prints)
    return out
