"""Relevance as ima computes it: BM25 over collection-wide statistics, and the cut of
the `limit` most relevant matches that a store hands to search.

tantivy scores with its own index's statistics (document count, frequencies, average
length). A partition's are not the collection's, and a cut made by tantivy's score
depended on how posts were spread over indexes (and, for ties, on segment layout). The
cut here depends only on the matching posts and on `Statistics`, which a partitioned
store sums over its partitions: BM25 of each post's own analysed terms, ties broken by
log position (newer first). A single store and every partition make it the same way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

K1, B = 1.2, 0.75


@dataclass(frozen=True, slots=True)
class Statistics:
    """What relevance needs of the whole collection. `doc_count` and `doc_freq` give each
    term's rarity; `length_terms` / `length_docs` the average length BM25 normalizes by
    (tantivy counts removed posts in both until it merges their segments)."""

    doc_count: int
    doc_freq: dict[str, int]
    length_docs: int = 0
    length_terms: int = 0

    @property
    def avg_len(self) -> float:
        return max(1.0, self.length_terms / max(1, self.length_docs))

    @classmethod
    def sum(cls, parts: Iterable[Statistics], terms: Iterable[str]) -> Statistics:
        """The statistics of several disjoint stores taken as one collection."""
        parts = list(parts)
        return cls(
            sum(p.doc_count for p in parts),
            {t: sum(p.doc_freq.get(t, 0) for p in parts) for t in terms},
            sum(p.length_docs for p in parts),
            sum(p.length_terms for p in parts),
        )

    def as_json(self) -> dict:
        return {
            "doc_count": self.doc_count,
            "doc_freq": self.doc_freq,
            "length_docs": self.length_docs,
            "length_terms": self.length_terms,
        }


def idf(doc_freq: int, doc_count: int) -> float:
    return math.log(1 + (doc_count - doc_freq + 0.5) / (doc_freq + 0.5))


def bm25(
    terms: Sequence[str], wanted: Sequence[str], doc_freq: dict[str, int], doc_count: int,
    avg_len: float,
) -> float:  # fmt: skip
    """BM25 of a post's `terms` for the query's `wanted` terms (one wanted twice counts
    twice)."""
    if not wanted or not terms:
        return 0.0
    counts: dict[str, int] = {}
    for t in terms:
        counts[t] = counts.get(t, 0) + 1
    norm = K1 * (1 - B + B * len(terms) / avg_len)
    score = 0.0
    for term in wanted:
        tf = counts.get(term, 0)
        if tf:
            score += idf(doc_freq.get(term, 0), doc_count) * tf * (K1 + 1) / (tf + norm)
    return score


class Relevance:
    """The score the cut ranks by, for one query: BM25 as `bm25` computes it, each
    wanted term's idf (times how often it is wanted) worked out once, not per post."""

    def __init__(self, wanted: Sequence[str], stats: Statistics) -> None:
        self.weights: dict[str, float] = {}
        for term in wanted:
            rarity = idf(stats.doc_freq.get(term, 0), stats.doc_count)
            self.weights[term] = self.weights.get(term, 0.0) + rarity
        self.avg_len = stats.avg_len

    def __call__(self, terms: list[str]) -> float:
        if not self.weights or not terms:
            return 0.0
        norm = K1 * (1 - B + B * len(terms) / self.avg_len)
        score = 0.0
        for term, weight in self.weights.items():
            tf = terms.count(term)
            if tf:
                score += weight * tf * (K1 + 1) / (tf + norm)
        return score


def pool_bound(avg_len: float, local_avg_len: float) -> float:
    """How far `relevance` can exceed the score tantivy gives the same post, when each
    wanted term's query is boosted by (global idf / tantivy's idf): per term the ratio is
    (tf + K1·n_local(len)) / (tf + K1·n(len)) with n(len) = 1 - B + B·len/avg, at most
    max(1, avg_len / local_avg_len) for any tf and length. tantivy's float32 arithmetic
    and its rounding of long lengths down get a small margin."""
    return max(1.0, avg_len / max(local_avg_len, 1e-9)) * 1.0001 + 1e-6
