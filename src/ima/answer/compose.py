"""The extractive composer: an answer made only of sentences the posts say, each cited.

Candidate posts are split into sentences; a sentence is relevant when it (and its
post) share the question's key words. Each is scored on that overlap, on agreement
(how many other authors say much the same), on recency and on engagement. The lead
is the newest of the best-supported statements, so when posts conflict the newer
one leads and the older is reported as what was said earlier. Nothing is invented:
every statement is a post's own sentence, quoted, with the post's number.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from ima import analysis
from ima.answer.question import Question
from ima.post import Post, to_us

_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|(?<=[。！？])|\n+")
_URL = re.compile(r"https?://\S+")
_NUMBER = re.compile(r"\d+(?:[.:,]\d+)*")
MAX_SENTENCE_CHARS = 280
MIN_POST_OVERLAP = 0.5  # share of the key terms' weight a post must contain
SPAM_LIMIT = 0.6
MAX_STATEMENTS = 40
EARLIER_BY = timedelta(minutes=5)  # "earlier posts said" is for news that has moved on


@dataclass(frozen=True, slots=True)
class Statement:
    """One sentence of one post, as the answer quotes it."""

    text: str
    post: Post
    terms: frozenset[str]
    overlap: float
    score: float

    @property
    def numbers(self) -> frozenset[str]:
        return frozenset(_NUMBER.findall(self.text))


@dataclass(frozen=True, slots=True)
class Composition:
    """What to say: the lead, statements that add to it, and what was said earlier."""

    lead: Statement | None
    also: tuple[Statement, ...] = ()
    earlier: tuple[Statement, ...] = ()

    @property
    def statements(self) -> tuple[Statement, ...]:
        return () if self.lead is None else (self.lead, *self.also, *self.earlier)


def sentences(text: str) -> list[str]:
    """A post's sentences, links removed, long ones cut at a word boundary."""
    out = []
    for part in _SENTENCE_END.split(_URL.sub("", text)):
        part = part.strip(" \t-–—|")
        if len(part) < 6:
            continue
        if len(part) > MAX_SENTENCE_CHARS:
            part = part[:MAX_SENTENCE_CHARS].rsplit(" ", 1)[0] + "…"
        out.append(part)
    return out


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def _weighted(terms: frozenset[str], weights: dict[str, float]) -> float:
    """The share of the question's weight that `terms` carry (weights sum to 1)."""
    return sum(w for t, w in weights.items() if t in terms)


def key_weights(question: Question, doc_count: int, doc_freq: dict[str, int]) -> dict[str, float]:
    """Each key term's weight by inverse document frequency, names counted double: a
    rare name must weigh more than a common word. A common word no post contains (a
    question's own phrasing) is left out; a name no post contains stays, and so no
    post can match it."""
    idf = {}
    for term in question.terms:
        df = doc_freq.get(term, 0)
        named = term in question.entities
        if df == 0 and not named:
            continue
        idf[term] = math.log(1 + (doc_count + 1) / (df + 1)) * (2 if named else 1)
    total = sum(idf.values()) or 1.0
    return {t: v / total for t, v in idf.items()}


def _names_match(question: Question, terms: frozenset[str]) -> bool:
    """A post must name what the question names: all of one or two names, or two thirds."""
    names = question.entities
    if not names:
        return True
    present = len(names & terms)
    return present == len(names) if len(names) <= 2 else present >= 2 * len(names) / 3


def _statements(
    question: Question, posts: list[Post], as_of: datetime, weights: dict[str, float]
) -> list[Statement]:
    key = question.terms
    as_of_us = to_us(as_of)
    horizon_us = max(question.window.total_seconds() * 1e6, 1.0)
    raw: list[tuple[str, Post, frozenset[str], float]] = []
    for post in posts:
        if post.flags.injection_suspect or post.flags.spam_score >= SPAM_LIMIT:
            continue
        if to_us(post.created_at) > as_of_us:
            continue  # never: but the cut is cheap to check twice
        post_terms = frozenset(analysis.terms(post.text))
        post_overlap = _weighted(post_terms, weights)
        if post_overlap < MIN_POST_OVERLAP or not _names_match(question, post_terms):
            continue
        for text in sentences(post.text):
            terms = frozenset(analysis.terms(text))
            if not terms or text.rstrip().endswith(("?", "？")):
                continue  # a question states nothing
            overlap = 0.6 * _weighted(terms, weights) + 0.4 * post_overlap
            raw.append((text, post, terms, overlap))
    raw.sort(key=lambda r: r[3], reverse=True)
    raw = raw[:MAX_STATEMENTS]  # agreement compares every pair: keep the most relevant
    claims = [(post.author.handle, terms - key) for _, post, terms, _ in raw]
    scored: dict[str, Statement] = {}  # an author counts once: their best statement
    for text, post, terms, overlap in raw:
        claim = terms - key
        agreeing = {
            handle
            for handle, other in claims
            if handle != post.author.handle and _jaccard(claim, other) >= 0.5
        }
        age_us = max(0, as_of_us - to_us(post.created_at))
        recency = 0.5 ** (age_us / (horizon_us / 4))
        m = post.metrics
        engagement = math.log1p(m.likes + 2 * m.reposts + post.copies) / math.log1p(1e5)
        score = overlap * (1 + 0.5 * math.log1p(len(agreeing))) * (0.5 + 0.5 * recency)
        score += 0.1 * min(1.0, engagement)
        handle = post.author.handle
        if handle not in scored or score > scored[handle].score:
            scored[handle] = Statement(text, post, terms, overlap, score)
    return list(scored.values())


def _conflicts(a: Statement, b: Statement, key: frozenset[str]) -> bool:
    """Same subject, different news: different numbers, or little else in common."""
    if a.numbers and b.numbers and a.numbers != b.numbers:
        return True
    return _jaccard(a.terms - key, b.terms - key) < 0.34


def compose(
    question: Question,
    posts: list[Post],
    as_of: datetime,
    weights: dict[str, float],
    *,
    max_also: int = 1,
) -> Composition:
    """Choose what to say from `posts` (all created at or before `as_of`), given the
    key terms' `weights` (`key_weights`)."""
    statements = _statements(question, posts, as_of, weights)
    if not statements:
        return Composition(None)
    best = max(s.score for s in statements)
    contenders = [s for s in statements if s.score >= 0.75 * best]
    lead = max(contenders, key=lambda s: (s.post.created_at, s.score))
    key = question.terms
    chosen = [lead]
    also: list[Statement] = []
    earlier: list[Statement] = []
    for s in sorted(statements, key=lambda s: s.score, reverse=True):
        # what was said before counts even when it matches the question's words less
        # well ("cancelled" answers "is it running?" too); additions must be strong
        if s.score < 0.3 * best or any(
            _jaccard(s.terms, c.terms) >= 0.6 or s.text == c.text for c in chosen
        ):
            continue
        older = s.post.created_at < lead.post.created_at - EARLIER_BY
        if older and _conflicts(s, lead, key):
            if not earlier:
                earlier.append(s)
                chosen.append(s)
        elif s.score >= 0.5 * best and len(also) < max_also and not _conflicts(s, lead, key):
            also.append(s)
            chosen.append(s)
    return Composition(lead, tuple(also), tuple(earlier))
