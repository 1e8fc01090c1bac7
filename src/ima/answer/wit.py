"""The fun voice's quip written by an LLM, so the voice is witty rather than canned.

The quip is voice, not news: it carries no citation, so it must state nothing. The
model is told only the topic and the mood (never the posts), and its line is checked
before use: one short sentence in the asker's language with no name, number, date,
time word, link, handle, quotation or citation, no word of tragedy or of another
topic, and no word of the cited posts beyond the question's own and the topic's.
Anything else, a slow or failing backend, or a tragic subject (which gets no joke at
all) keeps the canned line.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence

from ima import quips
from ima.answer.compose import Statement
from ima.answer.llm import Backend, BackendError, Request
from ima.answer.route import NOW_WORDS
from ima.text import analysis, mood
from ima.text.question import STOP_WORDS, Question, compounds

MAX_QUIP_CHARS = 140
MAX_QUIP_TOKENS = 48
QUIP_SECONDS = 5.0  # a quip is worth little waiting: past this, the canned line

_JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
#: what a line that states nothing never holds: digits and number words, dates and times,
#: links, handles, hashtags, quotations, citation marks
_FACTUAL = re.compile(
    r"\d|[一二三四五六七八九十百千万億]+[円人件回本点歳度年月日時分秒号位個台社%％]|\b(one|two|three|four|five|six|seven|eight|nine|ten|"
    r"hundreds?|thousands?|millions?|billions?|dozens?|percent|january|february|march|"
    r"april|june|july|august|september|october|november|december|monday|tuesday|"
    r"wednesday|thursday|friday|saturday|sunday|tomorrow|yesterday|tonight)\b|"
    r"https?://|www\.|[@#\[\]「」『』“”\"]|[今来去昨]年|明日|昨日|今朝|今夜|[月火水木金土]曜",
    re.IGNORECASE,
)
_KANA = re.compile(r"[\u3040-\u309f\u30fc]+")
_NAME = re.compile(r"(?<=\s)[A-Z][\w'’-]*")  # a capital past the first word: a name
_SENTENCE_END = re.compile(r"[.!?。！？](?=.)")

INSTRUCTION = {
    "en": (
        "Write one short, dry, witty line in English, in the spirit of the Hitchhiker's "
        "Guide to the Galaxy, to open an answer about a {mood} story on {topic}. It must "
        "state no facts: no names, no numbers, no dates, no places, no claims about what "
        "happened. Reply with the line only."
    ),
    "ja": (
        "{topic}についての{mood}話題への回答の冒頭に置く、短く乾いたユーモアの一文を日本語で"
        "書いてください。事実は一切述べないこと：人名・数字・日付・地名・出来事の主張は禁止。"
        "その一文だけを返してください。"
    ),
}
_MOODS = {
    "en": {"setback": "frustrating", "fine": "ordinary"},
    "ja": {"setback": "残念な", "fine": "普通の"},
}
_TOPICS_JA = {
    "transport": "交通", "space": "宇宙", "sports": "スポーツ", "weather": "天気",
    "tech": "テクノロジー", "money": "お金", "showbiz": "芸能", "politics": "政治",
    "general": "世の中",
}  # fmt: skip


def quip_request(topic: str, mood: str, lang: str) -> Request:
    """The request for a line: the topic and mood only, no post text to repeat."""
    about = _TOPICS_JA[topic] if lang == "ja" else ("news" if topic == "general" else topic)
    prompt = INSTRUCTION[lang].format(topic=about, mood=_MOODS[lang][mood])
    return Request([{"role": "user", "content": prompt}], max_tokens=MAX_QUIP_TOKENS,
                   temperature=0.8)  # fmt: skip


def states(line: str, question: Question, posts: Sequence[str]) -> str:
    """Why `line` may not open the answer (it states something, or is not one line of
    the asker's language), or "" when it carries voice only."""
    if not line or len(line) > MAX_QUIP_CHARS or "\n" in line:
        return "not one short line"
    if bool(_JAPANESE.search(line)) != (question.lang == "ja"):
        return "not in the asker's language"
    if _SENTENCE_END.search(line.rstrip(".!?。！？ ")):
        return "more than one sentence"
    if _FACTUAL.search(line) or NOW_WORDS.search(line):
        return "states a number, a date, a link or a quotation"
    if _NAME.search(line) or any(named for _, named, _ in compounds(line)):
        return "names someone or something"
    if mood.is_tragic([line]):
        return "speaks of harm"
    if mood.topic_of([line]) not in ("general", mood.topic_of(list(posts[:1]))):
        return "speaks of another topic"
    # the posts' words, less the question's and the topic's (train, launch, 試合): a quip
    # may speak of its topic, not of what happened in it
    topic = {t for text in posts for word in mood.topic_words(text) for t in analysis.terms(word)}
    said = {t for text in posts for t in _content(text)} - question.terms - topic
    if _content(line) & said:
        return "repeats what the posts say"
    return ""


def _content(text: str) -> set[str]:
    """`text`'s terms that carry meaning: not stop words, particles (が, の) or short
    English words."""
    return {
        t
        for t in analysis.terms(text)
        if t not in STOP_WORDS and (len(t) > 3 if t.isascii() else not _KANA.fullmatch(t))
    }


def written(
    backend: Backend, question: Question, statements: Sequence[Statement], canned: str
) -> str:
    """The backend's quip for the answer that leads with `statements[0]`, when it states
    nothing; else `canned` (always, when `canned` is the sober line of a tragedy)."""
    if canned in quips.SOBER.values() or not statements:
        return canned
    texts = [s.post.text for s in statements]
    lead = texts[:1]  # an answer is about its lead, as the canned quip is
    request = quip_request(mood.topic_of(lead), mood.mood_of(lead), question.lang)
    cancel = threading.Event()
    deadline = time.monotonic() + QUIP_SECONDS
    pieces: list[str] = []
    try:
        for piece in backend.stream(request, cancel):
            pieces.append(piece)
            if time.monotonic() > deadline or sum(map(len, pieces)) > 2 * MAX_QUIP_CHARS:
                cancel.set()
                return canned
    except BackendError:
        return canned
    line = " ".join("".join(pieces).split()).strip("'\"“”「」 ")
    return canned if states(line, question, texts) else line
