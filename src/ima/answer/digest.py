"""Open questions: "What's happening?", "今何が起きてる？", "anything new on Bluesky this
morning?" name no topic, only perhaps a place, a source or a time. They get a digest:
the strongest stories of the window as of the instant asked, each in one cited
sentence, newest first.

A story here is a group of the window's strongest posts (by recency, engagement and
reach, as search ranks them) that share at least two content words; it is stronger
the more authors tell it. Bounded: one search of at most `MAX_K` posts per answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from ima.ingest.flags import SPAM_LIMIT
from ima.post import Post, iso
from ima.search import MAX_K, PostStore, search
from ima.text import analysis
from ima.text.copies import own_words
from ima.text.question import STOP_WORDS, Question, understand
from ima.text.sentences import quotable

MAX_STORIES = 5
MIN_SHARED = 2  # content words two posts share to be one story
_OPEN = re.compile(
    r"\bwhat(?:'s|s| is| are)? (?:happening|going on|new|up)\b|\bwhat happened\b|"
    r"\bany(?:thing)? (?:new|happening)\b|\b(?:latest|top|biggest) (?:news|stories|headlines)\b|"
    r"\bnews today\b|\bwhat(?:'s| is) the news\b|何が起き|何か起き|何かあった|どんなニュース|"
    r"最新(?:の)?ニュース|ニュースは|話題は|何が話題",
    re.IGNORECASE,
)
#: "the second one", "the 3rd story", "2つ目", "最後の": a follow-up on a digest's story
_ORDINAL = re.compile(
    r"\b(first|second|third|fourth|fifth|last|1st|2nd|3rd|4th|5th)\s+(one|story|item|thing)\b|"
    r"([1-5一二三四五])(?:つ目|番目)|(最初|最後)の",
    re.IGNORECASE,
)
_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "last": -1, "1st": 1,
           "2nd": 2, "3rd": 3, "4th": 4, "5th": 5, "一": 1, "二": 2, "三": 3, "四": 4, "五": 5,
           "最初": 1, "最後": -1}  # fmt: skip
#: words people use for a source → the source name posts carry
SOURCES = {"bluesky": "bluesky", "mastodon": "mastodon", "twitter": "x", "rss": "rss"}


@dataclass(frozen=True, slots=True)
class Scope:
    """What an open question narrows to: places or names any post must say, a source."""

    places: tuple[str, ...] = ()
    source: str = ""


@dataclass(frozen=True, slots=True)
class Story:
    """One story of a digest: the sentence that tells it, from its strongest post."""

    text: str
    post: Post
    authors: int


def scope(question: Question) -> Scope | None:
    """The scope of an open question, or None when the question has a topic."""
    if not _OPEN.search(question.text):
        return None
    rest = understand(_OPEN.sub(" ", question.text) + " ?")
    source = ""
    places = []
    for word in rest.words:
        if word.lower() in SOURCES:
            source = SOURCES[word.lower()]
        elif set(analysis.terms(word)) <= rest.entities:
            places.append(word)
        else:
            return None  # "what's happening with the launch?" has a topic
    return Scope(tuple(places), source)


def _content(post: Post) -> frozenset[str]:
    return frozenset(
        t for t in analysis.terms(own_words(post.text)) if len(t) > 2 and t not in STOP_WORDS
    )


def stories(store: PostStore, scope: Scope, as_of: datetime, window: timedelta) -> list[Story]:
    """The window's strongest stories as of `as_of`, newest first."""
    query = f"since:{iso(as_of - window)}"
    if scope.places:
        query = "(" + " OR ".join(f'"{p}"' for p in scope.places) + f") {query}"
    if scope.source:
        query += f" source:{scope.source}"
    groups: list[tuple[frozenset[str], list[Post]]] = []
    for hit in search(store, query, as_of=as_of, k=MAX_K).hits:
        post = hit.post
        if post.flags.injection_suspect or post.flags.spam_score >= SPAM_LIMIT:
            continue
        words = _content(post)
        if not words:
            continue
        for core, posts in groups:
            if len(core & words) >= MIN_SHARED:
                posts.append(post)
                break
        else:
            groups.append((words, [post]))
    told = []
    for _, posts in groups:
        authors = len({p.author.handle for p in posts})
        lead = posts[0]  # search ranked it first of its story
        said = quotable(own_words(lead.text))
        if said:
            told.append(Story(said[0], lead, authors))
    told.sort(key=lambda s: s.authors, reverse=True)
    strongest = [s for s in told if s.authors > 1][:MAX_STORIES] or told[:MAX_STORIES]
    return sorted(strongest, key=lambda s: s.post.created_at, reverse=True)


def ordinal(text: str) -> int | None:
    """Which story a follow-up points at (1 is the first, -1 the last), or None."""
    match = _ORDINAL.search(text)
    if match is None:
        return None
    word = next(g for g in (match.group(1), match.group(3), match.group(4)) if g)
    return _ORDINALS.get(word.lower(), int(word) if word.isdigit() else None)


def followed(store: PostStore, text: str, context: str, as_of: datetime) -> Story | None:
    """The story of the last open question in `context` that `text` points at."""
    place = ordinal(text)
    if place is None:
        return None
    for line in reversed(context.splitlines()):
        if not line.strip():
            continue
        earlier = understand(line)
        found = scope(earlier)
        if found is not None:
            told = stories(store, found, as_of, earlier.window)
            index = place - 1 if place > 0 else len(told) + place
            return told[index] if 0 <= index < len(told) else None
    return None
