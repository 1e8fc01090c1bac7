"""Search: parse, gather candidates from the store, rank, collapse copies.

Ranking blends text relevance (BM25 over the query's words, normalized to the best
candidate), recency (exponential decay with a configurable half-life, measured back
from `as_of`), engagement (likes, reposts, replies and collapsed copies, log-scaled)
and author reach, demoted by the spam score. Each hit reports these parts. The
`as_of` instant is a hard cut: nothing created after it is ever a candidate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from ima.planner import plan
from ima.post import Post, to_us
from ima.query import Query, parse
from ima.store import Candidates, Plan, StoredPost, bm25
from ima.text import analysis

MAX_K = 100

Range = tuple[int | None, int | None]  # creation times (µs; None where open or unknown)
_noted: ContextVar[list[Range] | None] = ContextVar("ima_search_noted", default=None)


@contextmanager
def noting_missing() -> Iterator[list[Range]]:
    """The ranges that the searches made inside leave out (a cluster's partitions that did
    not answer in time): an answer searches several times, deep inside its composition,
    and says it is partial when any of them was."""
    noted: list[Range] = []
    token = _noted.set(noted)
    try:
        yield noted
    finally:
        _noted.reset(token)


class PostStore(Protocol):
    """What search needs of a store; a partitioned store can serve it by merging partitions."""

    def candidates(
        self,
        plan: Plan | None,
        low_us: int | None,
        high_us: int,
        limit: int,
        text_terms: list[str],
    ) -> Candidates: ...

    def term_stats(self, terms: Iterable[str]) -> tuple[int, dict[str, int]]: ...


@dataclass(frozen=True, slots=True)
class Ranking:
    """Weights of the score parts; they need not sum to 1."""

    relevance: float = 0.6
    recency: float = 0.25
    engagement: float = 0.1
    author: float = 0.05
    half_life: timedelta = timedelta(hours=6)


@dataclass(slots=True)
class Hit:
    post: Post
    score: float
    parts: dict[str, float]


@dataclass(slots=True)
class SearchResult:
    query: str
    as_of: datetime
    hits: list[Hit] = field(default_factory=list)
    candidates: int = 0
    took_ms: float = 0.0
    #: ranges of creation times left out: the result is partial
    missing: list[Range] = field(default_factory=list)


_PARTS = ("relevance", "recency", "engagement", "author")


def _rank(
    found: Candidates, wanted: list[str], as_of_us: int, ranking: Ranking
) -> list[tuple[float, tuple[float, float, float, float], StoredPost]]:
    """(score, its parts as in `_PARTS`, post), best first. The parts stay a tuple here:
    only the hits kept are explained (`_explain`), and a search ranks many more."""
    posts = found.posts
    avg_len = max(1.0, sum(len(sp.terms) for sp in posts) / max(1, len(posts)))
    relevance = [bm25(sp.terms, wanted, found.doc_freq, found.doc_count, avg_len) for sp in posts]
    best = max(relevance, default=0.0) or 1.0
    half_life_us = ranking.half_life.total_seconds() * 1e6
    weights = (ranking.relevance, ranking.recency, ranking.engagement, ranking.author)
    ranked = []
    for sp, rel in zip(posts, relevance, strict=True):
        post = sp.post
        m = post.metrics
        age_us = max(0, as_of_us - to_us(post.created_at))
        parts = (
            rel / best if wanted else 1.0,
            0.5 ** (age_us / half_life_us),
            min(
                1.0, math.log1p(m.likes + 2 * m.reposts + m.replies + post.copies) / math.log1p(1e5)
            ),
            min(1.0, math.log1p(post.author.followers or 0) / math.log1p(1e7)),
        )
        score = sum(w * p for w, p in zip(weights, parts, strict=True))
        ranked.append((score * (1 - 0.5 * post.flags.spam_score), parts, sp))
    ranked.sort(key=lambda r: (r[0], r[2].seq), reverse=True)
    return ranked


def _explain(parts: tuple[float, ...], post: Post) -> dict[str, float]:
    explained = {name: round(value, 4) for name, value in zip(_PARTS, parts, strict=True)}
    explained["spam_penalty"] = round(0.5 * post.flags.spam_score, 4)
    return explained


def search(
    store: PostStore,
    text: str | Query,
    *,
    as_of: datetime | None = None,
    k: int = 10,
    ranking: Ranking | None = None,
) -> SearchResult:
    """Run a query; raises `QuerySyntaxError` for bad syntax and `ValueError` for a bad `k`."""
    started = time.perf_counter()
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k must be between 1 and {MAX_K}, got {k}")
    query = parse(text) if isinstance(text, str) else text
    ranking = ranking or Ranking()
    as_of = (as_of or datetime.now(UTC)).astimezone(UTC)
    high_us = to_us(as_of)
    if query.until_us is not None:
        high_us = min(high_us, query.until_us - 1)
    result = SearchResult(query=query.source_text, as_of=as_of)
    if query.since_us is not None and query.since_us > high_us:
        return result
    wanted = [
        token
        for term in query.positive_terms
        if term.kind in ("word", "phrase")
        for token in analysis.terms(term.text)
    ]
    filtered = bool(query.min_faves or query.min_reposts)
    limit = 1000 if filtered else max(50, 3 * k)
    found = store.candidates(plan(query.root), query.since_us, high_us, limit, wanted)
    posts = [
        sp
        for sp in found.posts
        if to_us(sp.post.created_at) <= high_us
        and sp.post.metrics.likes >= query.min_faves
        and sp.post.metrics.reposts >= query.min_reposts
    ]
    result.missing = list(found.missing)
    if result.missing and (noted := _noted.get()) is not None:
        noted.extend(result.missing)
    found = Candidates(posts, found.doc_count, found.doc_freq)
    result.candidates = len(posts)
    seen_texts: set[str] = set()
    for score, parts, sp in _rank(found, wanted, to_us(as_of), ranking):
        key = " ".join(sp.terms)
        if key and key in seen_texts:
            continue
        seen_texts.add(key)
        result.hits.append(Hit(sp.post, round(score, 6), _explain(parts, sp.post)))
        if len(result.hits) >= k:
            break
    result.took_ms = (time.perf_counter() - started) * 1000
    return result
