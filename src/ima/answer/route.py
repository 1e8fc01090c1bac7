"""Whether a conversation turn searches the posts: the per-turn search decision.

`on` always searches and `off` never does. `auto` searches when the question is about
now, by a rule one can read: it names a time ("now", "today", 今日…), asks what is
happening or what's new, asks whether something is running, open, delayed or cancelled,
names something the posts are talking about, or follows up a turn that was grounded in
posts. Everything else (small talk, explanations, jokes) is the model's to answer. With
no LLM there is nothing else to answer from, so every turn but an `off` one searches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from ima.text.question import Question

#: words that put a question in the present (or the last days)
NOW_WORDS = re.compile(
    r"\b(now|today|tonight|yesterday|this (morning|afternoon|evening|week|weekend)|"
    r"latest|currently|at the moment|breaking|just now|recently|lately|so far|live|news|"
    r"updates?|trending)\b|今|本日|現在|最新|速報|ニュース|昨日|さっき|最近",
    re.IGNORECASE,
)
_HAPPENING = re.compile(
    r"\bwhat'?s (happening|going on|new)\b|\bwhat is (happening|going on)\b|"
    r"\bwhat happened\b|\bany news\b|"
    r"\b(is|are)\b.*\b(running|open|closed|cancell?ed|delayed|suspended|down|on strike)\b|"
    r"何が起き|どうなって|運行|運休|遅れ",
    re.IGNORECASE,
)
#: how a follow-up that leans on the turn before begins ("and what about Nagoya?")
FOLLOW_UP = re.compile(
    r"^\s*(and|also|what about|how about|then|so)\b|^\s*(それで|じゃあ|では)", re.IGNORECASE
)
#: posts that must name an entity before it counts as news-like
MIN_POSTS_NAMING = 2


class TermCounts(Protocol):
    def term_stats(self, terms: set[str]) -> tuple[int, dict[str, int]]: ...


@dataclass(frozen=True, slots=True)
class Decision:
    search: bool
    reason: str


def decide(
    mode: str,
    question: Question,
    *,
    llm: bool,
    grounded_before: bool = False,
    store: TermCounts | None = None,
) -> Decision:
    """Search this turn or not, and why. `grounded_before`: the previous answer cited
    posts; `store` (only asked in `auto`) says whether the posts name the question's
    entities."""
    if mode == "off":
        return Decision(False, "search is off for this request")
    if not llm:
        return Decision(True, "no LLM is configured: ima answers only from posts")
    if mode == "on":
        return Decision(True, "search is on for this request")
    text = question.text
    if NOW_WORDS.search(text):
        return Decision(True, "the question is about now (a time word)")
    if _HAPPENING.search(text):
        return Decision(True, "the question asks what is happening")
    if grounded_before and (FOLLOW_UP.search(text) or not question.entities):
        return Decision(True, "a follow-up to an answer grounded in posts")
    if store is not None and question.entities:
        _, held = store.term_stats(set(question.entities))
        named = [t for t in question.entities if held.get(t, 0) >= MIN_POSTS_NAMING]
        if named:
            return Decision(True, f"the posts are talking about {', '.join(sorted(named))}")
    return Decision(False, "nothing in the question is about now: the model answers")
