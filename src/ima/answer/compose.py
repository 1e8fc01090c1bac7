"""The extractive composer: an answer made only of sentences the posts say, each cited.

Candidate posts are split into whole sentences (`sentences.split`); a sentence is
relevant when it (and its post) share the question's key words, and more so when it
fills the question's gap (a name for "who", a number for "how many"…) with words the
question does not already hold. The best sentence of a post is quoted with its
neighbours, up to a short passage. Each statement is scored on that overlap, on
agreement (how many other authors say much the same), on recency and on engagement.
A manual retweet or a later copy counts at the time of the earliest copy present. The
lead is the newest of the best-supported statements, so when posts conflict the
newer one leads and the older is reported as what was said earlier. Nothing is
invented: every statement is a passage of a post's own words, quoted, with its number.
"""

from __future__ import annotations

import itertools
import math
import re
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from ima.ingest.flags import SPAM_LIMIT
from ima.post import Post, to_us
from ima.text import analysis, romaji
from ima.text import sentences as segmenter
from ima.text.copies import copied, manual_retweet
from ima.text.question import STOP_WORDS, Question, compounds, spellings

_JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
_KANJI = re.compile(r"[\u4e00-\u9fff\u3005]+")
_NUMBER = re.compile(r"\d+(?:[.:,]\d+)*")
MAX_PASSAGE_CHARS = 320  # the best sentence and its neighbours, up to this length
MIN_POST_OVERLAP = 0.3  # share of the key terms' weight a post must contain
MIN_KEY_TERMS = 2  # and this many of the question's key terms (all, when it has fewer):
# one shared word is a coincidence, not evidence
SOLE_TERM_WEIGHT = 0.5  # except in a two-word question's own window: one word of it that
# carries half its weight ("who said you won't get ebola?") is its topic
MOST_WEIGHT = 0.6  # a post this much of the question's weight may lack one of two names
#: a post in the other language than the question's is about it when multilingual-e5-small
#: puts it this near, and this much nearer than the median post of that language found by
#: meaning (measured on short posts: 0.77–0.87 and 0.07–0.10 over the median for posts
#: that answer; others up to 0.75, and 0.04 over it). Both bars sit between the two, not
#: at the edge of the others: a post at 0.750 against a bar of 0.750 went either way
#: with the last digit of a runtime's floating point
CROSS_LANGUAGE_SIMILARITY = 0.76
CROSS_LANGUAGE_MARGIN = 0.055
MAX_STATEMENTS = 40
NEAR_LEAD = 0.9  # a passage of the lead's source this near the lead's score is cited too
EARLIER_BY = timedelta(minutes=5)  # "earlier posts said" is for news that has moved on


@dataclass(frozen=True, slots=True)
class Statement:
    """A passage of one post (its best sentence and neighbours), as the answer quotes it."""

    text: str
    post: Post
    terms: frozenset[str]
    overlap: float
    score: float
    at: datetime  # when the news was first posted: a copy's original time
    filled: bool = False  # it holds words of the kind the question asks for
    answer: str = ""  # the sentence that fills the gap, when the quote is longer than it

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


_JOINED = re.compile(r"#[A-Za-z0-9_]*[a-z][A-Z][A-Za-z0-9_]*")
_CAMEL = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def _terms(text: str) -> frozenset[str]:
    """`text`'s terms, and the words of its joined hashtags (#GoldenGlobes says "golden
    globes"): posts write topics so, questions do not. Not handles: a signature's
    @MissUniversUsa is no post about "miss"."""
    joined = " ".join(" ".join(_CAMEL.findall(m.group())) for m in _JOINED.finditer(text))
    return frozenset(_term_list(f"{text} {joined}" if joined else text))


@lru_cache(maxsize=1024)
def _term_list(text: str) -> tuple[str, ...]:
    """`analysis.terms`, remembered: a post's text is read for its copies, its gate and its
    passages, and popular posts come back question after question (MeCab is most of the
    composer's time on Japanese articles)."""
    return tuple(analysis.terms(text))


def _held(question: Question, text: str) -> frozenset[str]:
    """The question's terms as `text` holds them: its own terms, the words of a hashtag
    that runs two of the question's together, a Japanese question's words that an
    English text spells (`Question.expand`), and for an English question, its names that
    a Japanese text's words sound like (新幹線 for "Shinkansen")."""
    terms = question.expand(text, _terms(text))
    if question.lang == "en" and _JAPANESE.search(text):
        said = spellings(text)
        # names only: English capitalizes what it spells from Japanese (Shinkansen, Sochi),
        # while its other words meet readings by chance ("take" is 竹, "sochi" 措置)
        sounded = [
            _term_list(w) for w in question.words if w[:1].isupper() and romaji.fold(w) in said
        ]
        terms = terms.union(*sounded) if sounded else terms
    return terms


def _passage(text: str, parts: list[str], best: int) -> str:
    """`parts[best]` with its neighbours while the whole stays short, as `text` has them
    (so the quote is the post's own words, spacing aside)."""
    low = high = best
    size = len(parts[best])
    while True:  # the next sentence first, then the one before
        if high + 1 < len(parts) and size + len(parts[high + 1]) <= MAX_PASSAGE_CHARS:
            high += 1
            size += len(parts[high])
        elif low > 0 and size + len(parts[low - 1]) <= MAX_PASSAGE_CHARS:
            low -= 1
            size += len(parts[low])
        else:
            break
    if low == high:
        return parts[best]
    start = text.find(parts[low])
    end = text.find(parts[high], max(start, 0))
    if start < 0 or end < 0:
        return parts[best]
    return " ".join(text[start : end + len(parts[high])].split())


_FILLERS: dict[str, re.Pattern[str]] = {
    "number": re.compile(
        r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|dozens?|"
        r"hundreds?|thousands?|millions?|billions?)\b|[一二三四五六七八九十百千万億]+[人件回本点歳度%％]",
        re.IGNORECASE,
    ),
    "time": re.compile(
        r"\b(january|february|march|april|may|june|july|august|september|october|november|"
        r"december|jan|feb|mar|apr|jun|jul|aug|sept?|oct|nov|dec|monday|tuesday|wednesday|"
        r"thursday|friday|saturday|sunday|today|tonight|tomorrow|yesterday|morning|evening|"
        r"noon|midnight|[ap]\.?m\.?|spring|summer|autumn|winter|weekly|annually|yearly)\b|"
        r"\b\d{1,2}:\d{2}\b|\b(1[89]|20)\d{2}\b|\d+\s*(年|月|日|時)|"
        r"今日|明日|昨日|午前|午後|毎年|毎月|毎週|[春夏秋冬]に|[春夏秋冬]季",
        re.IGNORECASE,
    ),
    # a name: a capitalized word (not a stop word: "The"), a handle, a hashtag, katakana
    "person": re.compile(r"\b[A-Z][\w'’.-]+|@\w+|#\w+|[\u30a0-\u30ff]{2,}"),
}
_FILLERS["place"] = _FILLERS["name"] = _FILLERS["person"]
GAP_FILLED, GAP_OPEN = 1.3, 0.8  # a sentence that fills the question's gap beats one that echoes it
GAP_UNITLESS = 1.1  # a number, but not of the asked kind (any digit for 何号): less of an answer
_COUNT = r"(\d+(?:[.,]\d+)*|[一二三四五六七八九十百千万億]+)"
_COUNT_WORD = (
    r"(\d+(?:[.,]\d+)*|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
    r"dozens?|hundreds?|thousands?|millions?|billions?)"
)

#: words that end a count's phrase: "at 9 with its passengers" counts no passengers
_LINKS = r"(?:with|its|the|of|to|at|in|on|and|or|for|from|by|an?|his|her|their|after|before)"


@lru_cache(maxsize=256)
def _counted(unit: str) -> re.Pattern[str]:
    """A number with `unit`: right before it in Japanese (8号, 三人), within two words
    before it in English ("25 Emmy nominations")."""
    if _JAPANESE.search(unit):
        return re.compile(rf"{_COUNT}\s*{re.escape(unit)}")
    stem = re.escape(analysis.terms(unit)[0]) if analysis.terms(unit) else re.escape(unit)
    between = rf"(?:\s+(?!{_LINKS}\b)[\w'’-]+){{0,2}}?"  # "42 stranded passengers"
    return re.compile(rf"\b{_COUNT_WORD}{between}\s+{stem}\w*", re.IGNORECASE)


def _counts(question: Question, text: str) -> bool:
    """`text` holds a number of the asked unit that the question does not hold."""
    return any(
        m.group(1).lower() not in question.terms
        for m in _counted(question.unit).finditer(text)
    )


def fills(question: Question, text: str) -> float:
    """A factor for how `text` meets the question's gap: above 1 when it holds words of
    the asked kind (a name for "who", a number for "how many", of the asked unit when the
    question names one) that the question does not already hold, below 1 when it only
    restates the question."""
    pattern = _FILLERS.get(question.gap)
    if pattern is None:
        return 1.0
    if question.unit and _counts(question, text):
        return GAP_FILLED
    matches = [m.group() for m in pattern.finditer(text)]
    if question.gap in ("person", "place", "name") and _JAPANESE.search(text):
        matches += [word for word, named, _ in compounds(text) if named]  # 名古屋市, 大空翼
    for match in matches:
        found = set(analysis.terms(match)) - STOP_WORDS
        if found and not found <= question.terms:
            return GAP_UNITLESS if question.unit else GAP_FILLED
    return GAP_OPEN


TOGETHER = 0.3  # the most a sentence gains by holding the question's key words as it does


def _pairs(text: str, key: frozenset[str]) -> set[tuple[str, str]]:
    """Neighbouring key terms of `text`, in order (フランス革命後: フランス-革命, 革命-後)."""
    terms = _term_list(text)
    return {(a, b) for a, b in itertools.pairwise(terms) if a in key and b in key}


def together(question: Question, text: str) -> float:
    """A factor above 1 for a sentence that holds the question's neighbouring key words
    side by side, as the question does ("有人試験飛行", "ruling party"): a passage with the
    words together is about what was asked more than one that has them scattered."""
    asked = _pairs(question.text, question.terms)
    if not asked:
        return 1.0
    return 1.0 + TOGETHER * len(asked & _pairs(text, question.terms)) / len(asked)


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def _weighted(terms: frozenset[str], weights: dict[str, float]) -> float:
    """The share of the question's weight that `terms` carry (weights sum to 1)."""
    return sum(w for t, w in weights.items() if t in terms)


def key_weights(question: Question, doc_count: int, doc_freq: dict[str, int]) -> dict[str, float]:
    """Each key term's weight by inverse document frequency, names counted double: a
    rare name must weigh more than a common word. A word no post contains (a question's
    own phrasing, a name spelled otherwise: "Nicolas" for Nicolás) is left out, except
    when no name of the question is found at all, or when it is a kanji of a name posts
    hold the rest of: then it stays, and no post can match it."""
    doc_freq = dict(doc_freq)
    for _, spelled, parts in question.sounds:  # posts that spell 新幹線 "Shinkansen" hold it
        for term in parts:
            doc_freq[term] = max(doc_freq.get(term, 0), doc_freq.get(spelled, 0))
    known_name = any(doc_freq.get(t, 0) for t in question.entities)
    # a kanji of a name whose other terms posts hold (翼 of キャプテン翼) is not spelled
    # otherwise: what it names is not there, and it must veto (MeCab cuts katakana it
    # does not know differently from text to text, シモ + ネ or シモネ, so not those)
    partial = {
        t
        for name in question.names
        if any(doc_freq.get(u, 0) for u in name)
        for t in name
        if _KANJI.fullmatch(t)
    }
    idf = {}
    for term in question.terms:
        df = doc_freq.get(term, 0)
        named = term in question.entities
        if df == 0 and (known_name or not named) and term not in partial:
            continue
        idf[term] = math.log(1 + (doc_count + 1) / (df + 1)) * (2 if named else 1)
    total = sum(idf.values()) or 1.0
    return {t: v / total for t, v in idf.items()}


def _names_match(question: Question, terms: frozenset[str], weights: dict[str, float]) -> bool:
    """A post must name what the question names (a name is all its terms): all of one or
    two names, or two thirds; but the commoner of two may be missing from a post that
    holds most of the question's weight (it says 西欧 where the question says
    ヨーロッパ). Names `key_weights` left out (spelled otherwise in every post) cannot veto."""
    names = [n for n in question.names if n <= weights.keys()]
    if not names:
        return True
    present = sum(n <= terms for n in names)
    if len(names) == 2 and present == 1 and _weighted(terms, weights) >= MOST_WEIGHT:
        held, missing = sorted(names, key=lambda n: not n <= terms)
        # the rarer name is the one that must be there: "Central Line" is no "Northern Line"
        return _weighted(held, weights) > _weighted(missing, weights)
    return present == len(names) if len(names) <= 2 else present >= 2 * len(names) / 3


def _language(text: str) -> str:
    """The language of `text` as questions are told apart: ja in Japanese script, else en."""
    return "ja" if _JAPANESE.search(text) else "en"


def _sole_term(
    question: Question, post_terms: frozenset[str], weights: dict[str, float], widened: bool
) -> bool:
    """One key word is enough for a question of two ("what country made history today?":
    "Ireland make history today") when it carries half their weight, is not a Japanese
    common noun (意味, 作者: phrasing), the other is a word the store knows ("Is the
    museum open?" in a store without museums is about museums), and the post is in the
    window the question asked about: searching a widened window, more posts hold any one
    word by chance."""
    held = post_terms & question.terms
    return (
        not widened
        and len(question.terms) <= 2
        and question.terms <= weights.keys()  # a word no post holds may be the topic
        and _weighted(held, weights) >= SOLE_TERM_WEIGHT
        and not held & question.common
    )


def _first_seen(posts: list[Post], quoted: Mapping[str, datetime]) -> dict[str, datetime]:
    """The earliest time each post's news was posted: a manual retweet, a quote (a comment
    beside someone else's words, or a post quoting another, `quote_of`) or a later copy
    carries old news, and counts at the time of what it copies. `quoted` holds the times
    of quoted posts that are not among `posts`. Copied words whose original is not here
    count as older than anything present."""
    earliest: dict[str, datetime] = {}
    keys = {}
    copies = {p.id: copied(p.text) for p in posts}
    for post in posts:
        copy = copies[post.id]
        key = " ".join(_term_list(copy.text if copy else post.text))
        keys[post.id] = key
        if copy is None and (key not in earliest or post.created_at < earliest[key]):
            earliest[key] = post.created_at
    times = {p.id: p.created_at for p in posts} | dict(quoted)
    # older than anything present: a tie with the newest genuine post would let it lead
    oldest = min((p.created_at for p in posts), default=datetime.max) - timedelta(seconds=1)
    out = {}
    for post in posts:
        seen = earliest.get(keys[post.id])
        if seen is None:  # copied words of something not retrieved: older than all of it
            seen = oldest if copies[post.id] else post.created_at
        if post.quote_of in times:
            seen = min(seen, times[post.quote_of])
        out[post.id] = min(seen, post.created_at)
    return out


def _best_passage(
    question: Question, post: Post, weights: dict[str, float]
) -> tuple[str, frozenset[str], float, float, str] | None:
    """The post's passage that best answers: (text, its terms, its best sentence's
    overlap with the key terms, more when it holds them together, how that sentence
    fills the question's gap, itself)."""
    retweet = manual_retweet(post.text)
    text = retweet.text if retweet else post.text
    parts = segmenter.quotable(text)
    ranked = []
    for i, part in enumerate(parts):
        if part.rstrip().endswith(("?", "？")):
            continue  # a question states nothing
        terms = _held(question, part)
        if terms:
            overlap = _weighted(terms, weights) * together(question, part)
            fill = fills(question, part)
            ranked.append((overlap * fill, -i, overlap, fill, terms))
    if not ranked:
        return None
    _, at, overlap, fill, terms = max(ranked)
    passage = _passage(text, parts, -at)
    if passage != parts[-at]:
        terms = _held(question, passage)
    return passage, terms, overlap, fill, parts[-at]


def _statements(
    question: Question,
    posts: list[Post],
    as_of: datetime,
    weights: dict[str, float],
    widened: bool = False,
    quoted: Mapping[str, datetime] | None = None,
    similar: Mapping[str, float] | None = None,
) -> list[Statement]:
    """Every post's best passage that passes the gate, scored, best first (an author may
    have several: `compose` counts each author once)."""
    key = question.terms
    # a common noun no post holds (運行 in a small store) is phrasing, not a missing topic
    needed = min(MIN_KEY_TERMS, len(key - (question.common - weights.keys())))
    as_of_us = to_us(as_of)
    horizon_us = max(question.window.total_seconds() * 1e6, 1.0)
    first_seen = _first_seen(posts, quoted or {})
    similar = similar or {}
    # nearness is judged among the posts of the other language: a question is nearer to
    # any post in its own
    foreign = [
        similar[p.id] for p in posts if p.id in similar and _language(p.text) != question.lang
    ]
    median = statistics.median(foreign) if foreign else 1.0
    # (passage, post, terms, overlap, the answering sentence: None when none fills the gap)
    raw: list[tuple[str, Post, frozenset[str], float, str | None]] = []
    for post in posts:
        if post.flags.injection_suspect or post.flags.spam_score >= SPAM_LIMIT:
            continue
        if to_us(post.created_at) > as_of_us:
            continue  # never: but the cut is cheap to check twice
        post_terms = _held(question, post.text)
        post_overlap = _weighted(post_terms, weights)
        if (
            post_overlap < MIN_POST_OVERLAP
            or (
                question.key_words(post_terms) < needed
                and not _sole_term(question, post_terms, weights, widened)
            )
            or not _names_match(question, post_terms, weights)
        ):
            # a post in the other language shares no word: its meaning must be near, and
            # stand out from that language's posts unless it names, by sound, all that the
            # question names (新幹線 for "Shinkansen")
            near = similar.get(post.id, 0.0)
            sounded = bool(question.entities & post_terms) and _names_match(
                question, post_terms, weights
            )
            margin = 0.0 if sounded else CROSS_LANGUAGE_MARGIN
            if (
                near < max(CROSS_LANGUAGE_SIMILARITY, median + margin)
                or _language(post.text) == question.lang
            ):
                continue
            post_overlap = MIN_POST_OVERLAP + (near - CROSS_LANGUAGE_SIMILARITY)
        found = _best_passage(question, post, weights)
        if found is not None:
            text, terms, overlap, fill, sentence = found
            overlap = (0.6 * overlap + 0.4 * post_overlap) * fill
            answer = sentence if fill > 1 and sentence != text else ""
            raw.append((text, post, terms, overlap, answer if fill > 1 else None))
    raw.sort(key=lambda r: r[3], reverse=True)
    raw = raw[:MAX_STATEMENTS]  # agreement compares every pair: keep the most relevant
    claims = [(post.author.handle, terms - key) for _, post, terms, _, _ in raw]
    out: list[Statement] = []
    for text, post, terms, overlap, answer in raw:
        claim = terms - key
        agreeing = {
            handle
            for handle, other in claims
            if handle != post.author.handle and _jaccard(claim, other) >= 0.5
        }
        at = first_seen[post.id]
        age_us = max(0, as_of_us - to_us(at))
        recency = 0.5 ** (age_us / (horizon_us / 4))
        m = post.metrics
        engagement = math.log1p(m.likes + 2 * m.reposts + post.copies) / math.log1p(1e5)
        score = overlap * (1 + 0.5 * math.log1p(len(agreeing))) * (0.5 + 0.5 * recency)
        score += 0.1 * min(1.0, engagement)
        filled = answer is not None
        out.append(Statement(text, post, terms, overlap, score, at, filled, answer or ""))
    out.sort(key=lambda s: s.score, reverse=True)
    return out


#: figures two reports of one event can disagree on: scores, times, percentages, counts of
#: people (a date in a signature is not one)
_MEASURE = re.compile(r"\d+\s?[-–:対]\s?\d+|\d+(?:\.\d+)?\s?(?:%|％|people|人)")


def disagrees(a: Statement, b: Statement) -> bool:
    """Both give a score, time, share or head count, and not the same ones."""
    ours = {" ".join(m.split()) for m in _MEASURE.findall(a.text)}
    theirs = {" ".join(m.split()) for m in _MEASURE.findall(b.text)}
    return bool(ours and theirs and not ours & theirs)


def _conflicts(a: Statement, b: Statement, key: frozenset[str]) -> bool:
    """Same subject, different news: different numbers, or little else in common."""
    if a.numbers and b.numbers and a.numbers != b.numbers:
        return True
    return _jaccard(a.terms - key, b.terms - key) < 0.34


def _repeats(s: Statement, chosen: list[Statement]) -> bool:
    """`s` says what a chosen statement says (or is one)."""
    return any(_jaccard(s.terms, c.terms) >= 0.6 or s.text == c.text for c in chosen)


def compose(
    question: Question,
    posts: list[Post],
    as_of: datetime,
    weights: dict[str, float],
    *,
    max_also: int = 2,
    widened: bool = False,
    quoted: Mapping[str, datetime] | None = None,
    similar: Mapping[str, float] | None = None,
) -> Composition:
    """Choose what to say from `posts` (all created at or before `as_of`), given the
    key terms' `weights` (`key_weights`); `widened`: the window is wider than the question
    asked; `quoted`: the times of posts that `posts` quote (`quote_of`) not among them;
    `similar`: the cosine similarity of posts found by meaning (a post in the other
    language than the question's counts when it is near)."""
    every = _statements(question, posts, as_of, weights, widened, quoted, similar)
    if not every:
        return Composition(None)
    statements: list[Statement] = []  # an author counts once: their best statement
    authors: set[str] = set()
    for s in every:
        if s.post.author.handle not in authors:
            authors.add(s.post.author.handle)
            statements.append(s)
    # the lead fills the question's gap when any statement does: an answer beats an echo
    pool = [s for s in statements if s.filled] or statements
    top = max(s.score for s in pool)
    contenders = [s for s in pool if s.score >= 0.75 * top]
    best = max(s.score for s in statements)
    lead = max(contenders, key=lambda s: (s.at, s.score))
    key = question.terms
    chosen = [lead]
    also: list[Statement] = []
    earlier: list[Statement] = []

    def same_source(s: Statement, floor: float) -> bool:
        """Another post of the lead's source that answers as the lead does (an article's
        paragraphs, a thread's posts), scoring at least `floor`."""
        return (
            s.post.author.handle == lead.post.author.handle
            and (s.filled or not lead.filled)
            and s.score >= floor
            and not _repeats(s, chosen)
        )

    # one of the lead's source's posts nearly as strong as the lead comes before weaker
    # independent sources: which of two neighbouring paragraphs leads is a near tie
    near = next((s for s in every if same_source(s, NEAR_LEAD * lead.score)), None)
    if near is not None and max_also:
        also.append(near)
        chosen.append(near)
    for s in sorted(statements, key=lambda s: s.score, reverse=True):
        # what was said before counts even when it matches the question's words less
        # well ("cancelled" answers "is it running?" too); additions must be strong
        if s.score < 0.3 * best or _repeats(s, chosen):
            continue
        older = s.at < lead.at - EARLIER_BY
        if older and _conflicts(s, lead, key):
            if not earlier:
                earlier.append(s)
                chosen.append(s)
        elif s.score >= 0.5 * best and len(also) < max_also:
            # another source: one that agrees, or one as recent as the lead that tells
            # it otherwise (both are quoted, each with its citation)
            also.append(s)
            chosen.append(s)
    # room left: the lead's own source's other posts that fill the gap too; independent
    # sources came first
    for s in every:
        if len(also) >= max_also:
            break
        if same_source(s, 0.3 * best):
            also.append(s)
            chosen.append(s)
    return Composition(lead, tuple(also), tuple(earlier))
