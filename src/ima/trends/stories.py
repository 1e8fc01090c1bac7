"""Stories: bursting items grouped by the posts they share, told in the posts' own words.

Each bursting item's recent posts come from the store (the same search that answers
questions). Items, strongest first, join the story whose posts theirs overlap most.
A story must be said by several independent authors, none of them most of it, so a
single account's flood, or one text copied around, never becomes one. Its title is
a span of its most representative post; its summary is two or three of its posts'
sentences, quoted and each cited; nothing is paraphrased, so nothing can be invented.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ima import quips
from ima.ingest.flags import SPAM_LIMIT
from ima.post import Post, from_us, iso, to_us
from ima.text import analysis, mood
from ima.text.copies import manual_retweet, own_words
from ima.text.question import understand
from ima.text.sentences import quotable
from ima.trends.bursts import MINUTE_US, Burst
from ima.trends.entities import entities
from ima.trends.items import Tellings, items_of

MAX_ITEMS = 200  # bursting items considered per window and tick, most surprising first
MAX_FETCHES = 20  # searches for their posts per window and tick
ANCHOR = 0.5  # an item with this share of its posts in a story's core is of the story
SHARED = 0.5  # with this share of its excess over baseline there, it joins as a member
MIN_SHARED = 3
LONE_FACTOR = 2  # a story of one item needs this many times `min_authors`
MAX_AUTHOR_SHARE = 0.5  # no single author may say more than this share of a story
TITLE_WORDS = 12
TITLE_CHARS_JA = 40
TIMELINE_POINTS = 10
POST_IDS = 100  # the posts behind a story, as listed
MIN_LANG_POSTS = 3  # a language with this many of a story's posts gets a summary sentence
DISCLAIMER = ("This story is a summary of posts and may evolve over time; "
              "verify it against the cited posts.")  # fmt: skip

Fetch = Callable[[str], list[tuple[Post, set[str]]]]  # an item's posts, with their items


@dataclass(slots=True)
class Story:
    """A story as it stood at `updated_us`; `sentences` are (quote, citation number)."""

    id: str
    window: str
    title: str
    fun_title: str
    lang: str
    items: list[str]
    sentences: list[tuple[str, int]]
    cited: list[Post]
    top: list[Post]
    authors: int
    posts: int
    timeline: list[tuple[int, int]]  # (minute start in µs, posts)
    languages: dict[str, int]
    first_post_us: int
    detected_us: int
    updated_us: int
    surprise: float
    post_ids: frozenset[str] = field(default_factory=frozenset)
    entities: dict[str, list[str]] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        return summary_of(self.sentences, self.lang)

    def to_json(self, url_of: Callable[[Post], str] = lambda p: p.url) -> dict[str, Any]:
        def card(post: Post, number: int | None = None) -> dict[str, Any]:
            out = {"post_id": post.id, "url": url_of(post), "author": post.author.handle,
                   "author_name": post.author.name, "created_at": iso(post.created_at),
                   "lang": post.lang, "text": post.text}  # fmt: skip
            return out if number is None else {"number": number, **out}

        leads = {p.id for p in [*self.cited, *self.top]}
        return {
            "id": self.id,
            "window": self.window,
            "title": self.title,
            "fun_title": self.fun_title,
            "lang": self.lang,
            "summary": self.summary,
            "sentences": [{"text": t, "citation": n} for t, n in self.sentences],
            "citations": [card(p, n) for n, p in enumerate(self.cited, 1)],
            "top_posts": [card(p) for p in self.top],
            "items": self.items,
            "authors": self.authors,
            "posts": self.posts,
            "timeline": [{"at": iso(from_us(t)), "posts": c} for t, c in self.timeline],
            "languages": self.languages,
            "first_post_at": iso(from_us(self.first_post_us)),
            "detected_at": iso(from_us(self.detected_us)),
            "updated_at": iso(from_us(self.updated_us)),
            "surprise": round(self.surprise, 1),
            # the news-story shape (X's /2/news): why it matters now, in one cited sentence
            "hook": summary_of(self.sentences[:1], self.lang),
            "keywords": self.items[:10],
            "entities": self.entities,
            "post_ids": sorted(self.post_ids, key=lambda i: (i not in leads, i))[:POST_IDS],
            "last_updated_at_ms": self.updated_us // 1000,
            "disclaimer": DISCLAIMER,
        }


def summary_of(quotes: list[tuple[str, int]], lang: str) -> str:
    """Quoted sentences, each followed by its citation."""
    ja = lang == "ja"
    return " ".join(f"「{s}」[{n}]" if ja else f"“{s}” [{n}]" for s, n in quotes)


@dataclass(slots=True)
class _Cluster:
    """Items found together. `core`: the posts of its anchors, the items whose posts
    are mostly this story's; a common word bursting along (its other posts are about
    anything) joins as a member but brings no posts, so it cannot bridge two stories."""

    bursts: list[Burst]
    core: set[str]

    def add(self, burst: Burst, posts: set[str], *, anchor: bool) -> None:
        self.bursts.append(burst)
        if anchor:
            self.core |= posts


def _usable(post: Post, as_of_us: int) -> bool:
    flags = post.flags
    return (
        flags.duplicate_of is None
        and not flags.injection_suspect
        and flags.spam_score < SPAM_LIMIT
        and to_us(post.created_at) <= as_of_us
    )


def teller(post: Post) -> str:
    """Whose words a post carries: a manual retweet's are those of the account it credits."""
    retweet = manual_retweet(post.text)
    return (retweet.handle if retweet else post.author.handle).lower()


@functools.lru_cache(maxsize=16_384)
def _wording(text: str) -> str:
    """A post's words as analyzed: posts that say the same thing the same way share it.
    Remembered: a story's posts are checked again at every tick while it lasts."""
    return " ".join(analysis.terms(text))


def _independent(posts: list[Post], min_authors: int) -> bool:
    authors = Counter(teller(p) for p in posts)
    texts = {_wording(p.text) for p in posts}
    return (
        len(authors) >= min_authors
        and len(texts) >= min_authors
        and max(authors.values()) <= MAX_AUTHOR_SHARE * len(posts)
    )


def _title(sentence: str, key: set[str]) -> str:
    """The span of `sentence` that names most key items, cut at word boundaries."""
    words = analysis.prepare(sentence).split()
    if sum(not w.isascii() for w in words) > len(words) / 2:  # Japanese: whole MeCab words
        spans = []
        for start in range(len(words)):
            length, hits, end = 0, 0, start
            while end < len(words) and length + len(words[end]) <= TITLE_CHARS_JA:
                length += len(words[end])
                hits += words[end].lower() in key
                end += 1
            spans.append((hits, -start, end))
        hits, start, end = max(spans)
        return "".join(words[-start:end]).rstrip("。！？!?、")
    raw = _headline_words(sentence)
    if len(raw) <= TITLE_WORDS:
        return " ".join(raw).rstrip(".!?;:,")
    hits = [bool(items_of(analysis.prepare(w)) & key) for w in raw]
    start = max(range(len(raw) - TITLE_WORDS + 1),
                key=lambda s: (sum(hits[s : s + TITLE_WORDS]), -s))  # fmt: skip
    return " ".join(raw[start : start + TITLE_WORDS]).rstrip(".!?;:,")


def _headline_words(sentence: str) -> list[str]:
    """The words a title may take from `sentence`: no links ("» http://t.co/x Cyclone
    Pam" leads with one), nor marks alone at either end."""
    words = [w for w in sentence.split() if "://" not in w]
    while words and not any(c.isalnum() for c in words[0]):
        del words[0]
    while words and not any(c.isalnum() for c in words[-1]):
        del words[-1]
    return words


def _fun_title(title: str, lang: str, texts: list[str]) -> str:
    """The fun voice's headline: the title with a quip; never a joke on a tragedy."""
    if mood.is_tragic([title, *texts]):
        return title
    question = understand(title)
    return (
        f"{title} — {quips.quip(question, ())}"
        if lang != "ja"
        else f"{title}　{quips.quip(question, ())}"
    )


@dataclass(slots=True)
class Draft:
    """A story found at one tick, before it is matched to the stories already known."""

    items: list[str]
    posts: list[Post]
    weight: dict[str, float]
    surprise: float
    words: dict[str, set[str]]  # post id → its items


def group(bursts: list[Burst], fetch: Fetch, as_of_us: int, min_authors: int) -> list[Draft]:
    """Bursting items → drafts of stories, strongest first. An item most of whose
    posts are among those already fetched (another item of the same story) costs no
    search of its own, so one big story cannot use up the searches of the small ones."""
    top = bursts[:MAX_ITEMS]
    posts: dict[str, Post] = {}
    terms: dict[str, set[str]] = {}  # post id → its items
    inverted: dict[str, set[str]] = {}  # item → ids of fetched posts that contain it
    own: dict[str, list[str]] = {}  # item → ids of the posts fetched for it
    tellings = Tellings()  # a retweet of a post fetched is no news of its own
    fetches = 0
    for burst in top:
        have = inverted.get(burst.item, ())
        if len(have) >= ANCHOR * burst.count or fetches >= MAX_FETCHES:
            continue
        fetches += 1
        mine = own[burst.item] = []
        for post, items in fetch(burst.item):
            if post.id in terms:
                mine.append(post.id)
                continue
            if not _usable(post, as_of_us):
                continue
            if tellings.author_of(post.text, post.author.handle) is None:
                continue
            mine.append(post.id)
            posts[post.id] = post
            terms[post.id] = items
            for item in terms[post.id]:
                inverted.setdefault(item, set()).add(post.id)
    clusters: list[_Cluster] = []
    for burst in top:
        mine = inverted.get(burst.item, set())
        if not mine:
            continue
        # shares of all its authors in the window, not of the posts fetched so far
        said = max(burst.count, len(mine))
        best = max(clusters, key=lambda c: len(mine & c.core), default=None)
        shared = len(mine & best.core) if best else 0
        if best and shared >= ANCHOR * said:
            best.add(burst, mine, anchor=True)
        elif best and shared >= MIN_SHARED and shared >= SHARED * (burst.count - burst.expected):
            best.add(burst, mine, anchor=False)
        else:
            clusters.append(_Cluster([burst], set(mine)))
    drafts = []
    for cluster in clusters:
        if len(cluster.bursts) == 1 and cluster.bursts[0].count < LONE_FACTOR * min_authors:
            continue  # one word, said by a few: chance, until more say it
        if all(b.held for b in cluster.bursts) and not any(
            _together(a.item, b.item, own, inverted, terms)
            for a, b in itertools.combinations(cluster.bursts, 2)
        ):
            continue  # common words of the stream from its start, said apart: chatter
        story_posts = [posts[i] for i in cluster.core]
        if not _independent(story_posts, min_authors):
            continue
        weight = {b.item: b.surprise for b in cluster.bursts}
        drafts.append(Draft([b.item for b in cluster.bursts], story_posts, weight,
                            cluster.bursts[0].surprise, terms))  # fmt: skip
    drafts.sort(key=lambda d: d.surprise, reverse=True)
    return drafts


def _together(
    a: str,
    b: str,
    own: dict[str, list[str]],
    inverted: dict[str, set[str]],
    terms: dict[str, set[str]],
) -> bool:
    """Is each of two items said in most of the other's posts (those fetched for it)?
    A topic's words are said together; a stream's common words, each said by many from
    its start, turn up together only as often as common words do."""
    for one, other in ((a, b), (b, a)):
        sample = own.get(one) or inverted.get(one, ())
        if not sample or sum(other in terms[i] for i in sample) < ANCHOR * len(sample):
            return False
    return True


def _similar(a: frozenset[str], b: frozenset[str]) -> bool:
    """Much the same words (most of the shorter one's)."""
    return len(a & b) >= 0.6 * min(len(a), len(b))


def _relevance(words: set[str], weight: dict[str, float]) -> float:
    return sum(w for item, w in weight.items() if item in words)


def _engagement(post: Post) -> float:
    m = post.metrics
    return math.log1p(m.likes + 2 * m.reposts + post.copies)


def tell(draft: Draft, window: str, span_minutes: int, as_of_us: int, story_id: str,
         detected_us: int, first_post_us: int | None = None) -> Story:  # fmt: skip
    """Write the story a draft is: title, cited summary, top posts, timeline."""
    weight = draft.weight
    total = sum(weight.values()) or 1.0
    ranked = sorted(
        draft.posts,
        key=lambda p: (_relevance(draft.words[p.id], weight), _engagement(p), -to_us(p.created_at)),
        reverse=True,
    )
    languages = Counter(p.lang for p in draft.posts)
    known = [lang for lang, _ in languages.most_common() if lang != "und"]
    lang = "ja" if languages.get("ja", 0) > len(draft.posts) / 2 else (known or ["en"])[0]
    key = set(weight)
    candidates: list[tuple[float, str, Post, frozenset[str]]] = []
    for post in ranked[:60]:
        for text in quotable(own_words(post.text)):
            if text.rstrip().endswith(("?", "？")):
                continue
            hit = items_of(analysis.prepare(text)) & key
            if hit:
                score = sum(weight[i] for i in hit) / total + 0.05 * _engagement(post)
                candidates.append((score, text, post, frozenset(analysis.terms(text))))
    candidates.sort(key=lambda c: c[0], reverse=True)
    # the two languages most of its posts are in each get a say first (when they have a
    # few posts), so an event told in Spanish and English is summarized in both
    spoken = [lang for lang, n in languages.most_common(2) if n >= MIN_LANG_POSTS]
    chosen: list[tuple[str, Post, frozenset[str]]] = []
    for wanted in [*spoken, None]:
        for _, text, post, words in candidates:
            if len(chosen) == 3 or (wanted is not None and len(chosen) > spoken.index(wanted)):
                break
            if wanted is not None and post.lang != wanted:
                continue
            if any(teller(p) == teller(post) or _similar(w, words) for _, p, w in chosen):
                continue  # a summary says three things, not one thing three times
            chosen.append((text, post, words))
    title_source = next((t for t, p, _ in chosen if p.lang == lang), chosen[0][0]) if chosen else ""
    title = (_title(title_source, key) if title_source else "") or " ".join(draft.items[:3])
    created = sorted(to_us(p.created_at) for p in draft.posts)
    step = max(1, span_minutes * MINUTE_US // TIMELINE_POINTS)
    start = as_of_us - step * TIMELINE_POINTS
    timeline = Counter((c - start) // step for c in created if c > start)
    authors = {teller(p) for p in draft.posts}
    return Story(
        id=story_id,
        window=window,
        title=title,
        fun_title=_fun_title(title, lang, [p.text for p in ranked[:10]]),
        lang=lang,
        items=sorted(draft.items, key=lambda i: weight[i], reverse=True),
        sentences=[(t, n) for n, (t, _, _) in enumerate(chosen, 1)],
        cited=[p for _, p, _ in chosen],
        top=ranked[:5],
        authors=len(authors),
        posts=len(draft.posts),
        timeline=[(start + i * step, timeline.get(i, 0)) for i in range(TIMELINE_POINTS)],
        languages=dict(languages.most_common()),
        first_post_us=min(created[0], first_post_us or created[0]),
        detected_us=detected_us,
        updated_us=as_of_us,
        surprise=draft.surprise,
        post_ids=frozenset(p.id for p in draft.posts),
        entities=entities(p.text for p in ranked[:60]),
    )


def story_id(window: str, *parts: object) -> str:
    """A story's id: its window and what names it (lead item and tick, or first post)."""
    digest = hashlib.sha256("|".join(map(str, [window, *parts])).encode()).hexdigest()
    return f"{window}-{digest[:12]}"
