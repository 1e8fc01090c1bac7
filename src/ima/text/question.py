"""A question in words → what to search for: its language, key words and time window.

Key words are the question's content words (stop words and question words removed;
Japanese segmented by the same MeCab the index uses, keeping words with kanji or
katakana). The window comes from time words ("now", "today", "this week", 今, 今日,
さっき…), 24 hours when there are none.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from ima.text import analysis, mecab, romaji

_LATIN_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’\-]*")
_SCRIPT_RUN = re.compile(
    r"[\u3040-\u30ff\u4e00-\u9fff\u3005]+|[^\u3040-\u30ff\u4e00-\u9fff\u3005]+"
)
_CONTENT_JA = re.compile(r"[\u4e00-\u9fff\u3005\u30a0-\u30ffA-Za-z0-9]")
_JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
_KATAKANA = re.compile(r"[\u30a1-\u30fa\u30fc]+")  # not the ・ between words
_KANJI = re.compile(r"[\u4e00-\u9fff]")

_STOP_EN = frozenset(
    """a about above after again all also am an and any anything are as at be been before
    being below between both but by can could did do does doing down during each else
    ever few for from further going gone had has have having he her here hers him his
    how i if in into is it its itself just know latest let like me more most my new news
    no nor not now of off on once only or other our out over own please right same say
    said says she should so some such tell than that thats that's the their them then
    there these they this those through to today too under until up update updates very
    was we were what whats what's when where which while who whom why will with would
    you your yesterday week weeks hour hours minute minutes day days currently current
    happening happened happen going on status anyone everyone people think thoughts
    recent recently still story stories situation info information going-on""".split()
)
_STOP_JA = frozenset(
    """今 いま 今日 本日 現在 最新 状況 情報 何 なに 教え 教える ニュース 件 こと もの
    どう どんな 最近 昨日 今週 さっき 先ほど 時点 について 関する 様子 話題 起き 起きる
    ある いる なっ なる 知り 知る 今朝 今夜 今晩 ところ 方 みんな 誰""".split()
)

STOP_WORDS = _STOP_EN | _STOP_JA
#: words a question is phrased with that say nothing of its topic (not stop words for
#: trends, which count what posts say)
_ASKING = frozenset(
    """many much made make makes making went go goes get gets got getting use used using
    against didn't doesn't don't isn't wasn't aren't weren't won't can't did does do
    didnt doesnt dont isnt wasnt arent werent wont cant
    someone something thing things way ways kind type sort really actually 対""".split()
)
_NAME_WORD = 4  # a stop word this long kept inside a name: Story, News, Still
_POSSESSIVE = re.compile(r"['’]s$", re.IGNORECASE)

#: (pattern, window, kept): the first that matches sets how far back to look; `kept`
#: is a range the asker set (today, this week), where recency words (now, latest,
#: recently) only say where to look first
_WINDOWS: list[tuple[re.Pattern[str], timedelta, bool]] = [
    (re.compile(r"\b(last hour|past hour|this hour)\b|この1時間"), timedelta(hours=1), True),
    (re.compile(r"\b(just now)\b|さっき|先ほど|直近"), timedelta(hours=1), False),
    (re.compile(r"\b(right now|now|currently|at the moment|latest)\b"
                r"|今(?![週日朝夜晩年月回度])|(?<![てで])いま(?![すしせ])|現在|最新"),
     timedelta(hours=6), False),
    (re.compile(r"\b(today|tonight|this morning|this evening)\b|今日|本日|今朝|今夜|今晩"),
     timedelta(hours=24), True),
    (re.compile(r"\b(yesterday|last night)\b|昨日|昨夜"), timedelta(hours=48), True),
    (re.compile(r"\b(this week|past week|last week)\b|今週|先週"), timedelta(days=7), True),
    (re.compile(r"\b(recently|lately)\b|最近"), timedelta(days=7), False),
]  # fmt: skip
DEFAULT_WINDOW = timedelta(hours=24)
ALL_TIME = timedelta(days=36525)  # "any time before as_of", for a question naming no time

#: (pattern, gap): what kind of words the answer must hold, by the question's wh-word
_GAPS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\bhow (many|much|old|far|long|tall|big|high|fast)\b|"
                r"\bwhat (percentage|number|score|age|price)\b|"
                r"何人|何件|いくつ|いくら|何回|何本|何点|何歳|何度|何号|何位|何番|何個|何台|何社|何か国|"
                r"どのくらい|どのぐらい|どれくらい|どれぐらい|どれほど"),
     "number"),
    (re.compile(r"\bwhen\b|\bwhat (time|day|date|year|month)\b|いつ|何時|何日|何月|何年"), "time"),
    # any other counter (第何巻, 何試合); not 何者, 何故, 何処, 何事, 何物
    (re.compile(r"何(?![者故処事物])[\u4e00-\u9fff]"), "number"),
    (re.compile(r"\b(who|whom|whose)\b|誰|だれ"), "person"),
    (re.compile(r"\bwhere\b|どこ"), "place"),
    # not どのような, どのように: a kind or a manner is no name
    (re.compile(r"\bwhich\b|\bwhat (is|was) the name\b|\bname the\b|どの(?!よう)|どれ|何という"),
     "name"),
]  # fmt: skip
#: the counter or unit a number's answer carries: 何号 → 号 ("8号", not any digit), 何か国 →
#: か国, 何メートル → メートル, "how many seats" → seats
_UNIT_JA = re.compile(r"何(か国|ヶ国|カ国|[\u30a1-\u30fa\u30fc]+|[\u4e00-\u9fff])")
_UNIT_EN = re.compile(
    r"\bhow many (?:(?:more|other|different|total|of|the|of the)\s+)*([a-z][a-z'’-]+)", re.I
)
#: phrases of quizzes and conversation that say nothing about the topic
_BOILERPLATE = re.compile(
    r"\b(which|what) of the following\b|\baccording to( reports)?\b|"
    r"\bwhat(?:'s| is| was) the name of\b|\b(considered|regarded|reportedly)( to be| as)?\b|"
    r"\bamong( the)?\b|\bthis (week|month|year)\b|\bdo you know\b|"
    r"\bcan you tell me\b|\bi (want|would like) to know\b|\bany idea\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Question:
    text: str
    lang: str  # "ja" or "en": the language the answer is framed in
    words: tuple[str, ...]  # key words as written (for the query)
    terms: frozenset[str]  # the same words as the index's terms (for overlap)
    entities: frozenset[str]  # terms of names (capitalized words, proper nouns): must match
    window: timedelta
    timed: bool = False  # the question sets a range ("today", "this week"), kept as asked
    gap: str = ""  # what the answer must hold: person, place, time, number, name, or ""
    common: frozenset[str] = frozenset()  # terms of common nouns (運行): phrasing, not topic
    names: tuple[frozenset[str], ...] = ()  # each name's terms (東海道新幹線: 3 terms, 1 name)
    #: two neighbouring key words written as one hashtag (#popefrancis), with their terms
    joined: tuple[tuple[str, frozenset[str]], ...] = ()
    #: a Japanese question's words as English spells them (新幹線 → shinkansen): (the
    #: folded spelling, its index term, the Japanese word's terms)
    sounds: tuple[tuple[str, str, frozenset[str]], ...] = ()
    #: a number gap's counter or unit (号, 人, seats), as the question writes it, or ""
    unit: str = ""

    def query(self) -> str:
        """The search for its key words, any of them (ranking prefers posts with more), and
        for neighbouring words run together as a hashtag writes them. Hashtags and handles
        are searched as words: posts say `storm` as often as `#storm`."""
        words = [*self.words, *(written for written, _ in self.joined)]
        words += [spelled for spelled, _, _ in self.sounds]
        return " OR ".join(f'"{word}"' for word in words)

    def key_words(self, terms: frozenset[str] | set[str]) -> int:
        """How many of its key words `terms` hold, a name of several terms (イディッシュ語,
        キャプテン翼) counting once: it is one thing, not two pieces of evidence."""
        held = self.terms & terms
        named = [name for name in self.names if len(name) > 1 and name & held]
        return len(held.difference(*named)) + len(named)

    @property
    def lookup(self) -> frozenset[str]:
        """The terms to count posts for: its key terms and their other spellings."""
        return self.terms | {term for _, term, _ in self.sounds}

    def expand(self, text: str, terms: frozenset[str]) -> frozenset[str]:
        """`text`'s `terms` with the words of each joined hashtag or handle it holds whole
        (a post tagged #popefrancis, or one "at the @edsheeran show", names both words),
        and the Japanese words it spells in Latin letters (Shinkansen says 新幹線)."""
        held = []
        if self.joined and ("#" in text or "@" in text):
            lowered = text.lower()
            held += [
                parts
                for written, parts in self.joined
                if re.search(rf"[#@]{written}(?![a-z0-9_])", lowered)
            ]
        if self.sounds:
            latin = _latin_words(text)
            held += [parts for spelled, _, parts in self.sounds if spelled in latin]
        return terms.union(*held) if held else terms


def _window(text: str) -> tuple[timedelta, bool]:
    """How far back to look, and whether that is a range the asker set."""
    lowered = text.lower()
    for pattern, window, kept in _WINDOWS:
        if pattern.search(lowered):
            return window, kept
    return DEFAULT_WINDOW, False


def _gap(text: str) -> str:
    lowered = text.lower()
    return next((gap for pattern, gap in _GAPS if pattern.search(lowered)), "")


def _unit(text: str, gap: str) -> str:
    """The counter (何号 → 号) or unit ("how many seats" → seats) the asked number comes
    with: a "how many" answered by any digit is as often a date or a score as the count."""
    if gap not in ("number", "time"):
        return ""
    found = _UNIT_JA.search(text) or _UNIT_EN.search(text)
    return found.group(1) if found else ""


def _candidates(text: str) -> list[tuple[str, bool, bool]]:
    """(word, is a name, is a word of a longer name) for the content words of `text`:
    Japanese nouns by MeCab's part of speech (proper nouns are names), Latin words by
    shape (capitalized past the first word, all-caps or mixing letters and digits are
    names). A name of several capitalized words ("Trevor Story") keeps each of them,
    even one that is a stop word elsewhere."""
    out: list[tuple[str, bool, bool]] = []
    for run in _SCRIPT_RUN.finditer(unicodedata.normalize("NFKC", text)):
        chunk = run.group()
        if _JAPANESE.search(chunk):
            out.extend((word, named, False) for word, named, _ in compounds(chunk))
            continue
        words = _LATIN_WORD.findall(chunk)
        capital = [i > 0 and w[:1].isupper() for i, w in enumerate(words)]
        for position, word in enumerate(words):
            # a bare number is no name: "37" must not veto "37pts"
            named = capital[position] or (
                len(word) > 1
                and not word.isdigit()
                and (word.isupper() or any(c.isdigit() for c in word))
            )
            # beside a capitalized word that is no stop word: "Story" of "Trevor Story",
            # not "The" of "The Beatles" (too short) nor "Now" of "Right Now"
            bound = (
                capital[position]
                and len(word) >= _NAME_WORD
                and any(
                    words[i][:1].isupper() and words[i].lower() not in STOP_WORDS
                    for i in (position - 1, position + 1)
                    if 0 <= i < len(words)
                )
            )
            out.append((word, named, bound))
    return out


def compounds(chunk: str) -> list[tuple[str, bool, str]]:
    """Japanese nouns with their prefixes and suffixes, kept whole: 新幹線 is one word
    (MeCab says 新 + 幹線), as is 山手線; two nouns side by side stay two words
    (ジャイアンツ対阪神 → ジャイアンツ, 対, 阪神), except katakana beside katakana, one
    foreign word (ゼニタナゴ), and a lone kanji after katakana, a name (キャプテン翼). A
    word holding a proper noun is a name, as is a katakana word MeCab does not know or
    cut at a lone kana (グレフュール, ア + クロン);
    each part of a compound is a key term, so a post about 幹線道路 holds one of 新幹線's
    two, and a post need not spell 飛行者 whole to count. Each comes with its reading in
    katakana ("" when MeCab knows none of a part)."""
    out: list[tuple[str, bool, str]] = []
    word: list[str] = []
    kana: list[str] = []
    named = False
    noun = False

    def close() -> None:
        nonlocal named, noun
        text = "".join(word)
        if noun and _CONTENT_JA.search(text):
            out.append((text, named, "".join(kana) if len(kana) == len(word) else ""))
        word.clear()
        kana.clear()
        named = noun = False

    for token in mecab.tagger()(chunk):
        pos1, surface = token.feature.pos1, token.surface
        if surface in STOP_WORDS or pos1 not in ("名詞", "接頭辞", "接尾辞"):
            close()
            continue
        # a prefix, or a second noun, starts a new word; but katakana beside katakana is
        # one foreign word MeCab cut up (アクロン → ア + クロン)
        foreign = _KATAKANA.fullmatch(surface) is not None
        after_katakana = bool(word) and _KATAKANA.fullmatch(word[-1]) is not None
        # a lone kanji closing a katakana run is the distinctive end of a title or a name
        # (キャプテン翼), too short to be a key word of its own
        closing = after_katakana and _KANJI.fullmatch(surface) is not None
        joined = after_katakana and (foreign or closing)
        if pos1 == "接頭辞" or (pos1 == "名詞" and noun and not joined):
            close()
        word.append(surface)
        if token.feature.kana:
            kana.append(token.feature.kana)
        if pos1 == "名詞":
            noun = True
            # a katakana word MeCab does not know, or cut at a lone kana, is a foreign name
            fragment = joined and min(len(surface), len(word[-2])) == 1
            named = (
                named
                or token.feature.pos2 == "固有名詞"
                or (foreign and (token.is_unk or fragment))
                or closing
            )
    close()
    return out


def understand(text: str) -> Question:
    """Parse a question; raises ValueError when it is empty or too long."""
    text = text.strip()
    if not text:
        raise ValueError("the question is empty")
    if len(text) > 2000:
        raise ValueError(f"the question is {len(text)} characters; the limit is 2000")
    lang = "ja" if _JAPANESE.search(text) else "en"
    words: list[str] = []
    entities: list[str] = []
    common: list[str] = []
    for word, entity, bound in _candidates(_BOILERPLATE.sub(" ", text)):
        word = _POSSESSIVE.sub("", word.strip("'’-#@"))
        folded = word.lower()
        if len(folded) < 2 or (not bound and (folded in STOP_WORDS or folded in _ASKING)):
            continue
        words.append(word)
        if entity:
            entities.append(word)
        elif _JAPANESE.search(word):
            common.append(word)
    words = list(dict.fromkeys(words))[:12]
    # a one-letter Latin term (the "s" of "Campbell's") matches any post; 線 does not
    terms = frozenset(t for w in words for t in analysis.terms(w) if len(t) > 1 or not t.isascii())
    entity_terms = frozenset(t for w in entities if w in words for t in analysis.terms(w)) & terms
    common_terms = frozenset(t for w in common if w in words for t in analysis.terms(w)) & terms
    names = tuple(
        name
        for w in dict.fromkeys(entities)
        if w in words and (name := frozenset(analysis.terms(w)) & terms)
    )
    window, timed = _window(text)
    gap = _gap(text)
    sounds = tuple(
        (spelled, term[0], parts)
        for spelled, word in spellings(text).items()
        if word in words
        and len(spelled) > romaji.MIN_LETTERS
        and len(term := analysis.terms(spelled)) == 1
        and (parts := frozenset(analysis.terms(word)) & terms)
    )
    return Question(
        text, lang, tuple(words), terms, entity_terms, window, timed, gap, common_terms,
        names, _joined(words), sounds, _unit(unicodedata.normalize("NFKC", text), gap),
    )  # fmt: skip


@lru_cache(maxsize=1024)
def spellings(text: str) -> dict[str, str]:
    """`text`'s Japanese words (each compound noun) by how English spells them: folded
    Latin spelling → the word."""
    out = {}
    for run in _SCRIPT_RUN.finditer(unicodedata.normalize("NFKC", text)):
        if _JAPANESE.search(run.group()):
            for word, _, kana in compounds(run.group()):
                if spelled := romaji.latin(kana):
                    out.setdefault(spelled, word)
    return out


@lru_cache(maxsize=1024)
def _latin_words(text: str) -> frozenset[str]:
    """`text`'s capitalized Latin words (names: Shinkansen, not "take"), folded as
    readings are."""
    return frozenset(romaji.fold(w) for w in _LATIN_WORD.findall(text) if w[:1].isupper())


def _joined(words: list[str]) -> tuple[tuple[str, frozenset[str]], ...]:
    """Each two neighbouring Latin key words run together, as a lowercase hashtag or a
    handle writes them ("Pope Francis" → #popefrancis), with the terms the two stand for
    (letters only, so the pattern `expand` builds of them is plain)."""
    out = []
    for first, second in itertools.pairwise(words):
        if first.isascii() and second.isascii() and first.isalpha() and second.isalpha():
            parts = frozenset(analysis.terms(first)) | frozenset(analysis.terms(second))
            out.append(((first + second).lower(), parts))
    return tuple(out)
