"""Personas: the same statements and citations, said in a regular or a fun voice.

The regular voice frames the quoted statements plainly. The fun voice (without an
LLM) adds one quip before them (`ima.quips`: chosen by topic and mood from a curated
set, in the question's language); quips carry no facts and no citations. Where an LLM is
configured it may write the quip instead (`ima.answer.wit`, checked to state nothing).
Disasters, deaths and tragedies get no jokes at all: the fun voice turns sober for
them (a rule, tested).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from ima.answer.compose import Composition, Statement, disagrees
from ima.answer.digest import Story
from ima.quips import quip
from ima.text.question import ALL_TIME, Question

PERSONAS = ("regular", "fun")
OLD_AFTER = timedelta(days=7)  # evidence older than this is introduced with its age


def _when(instant: datetime, as_of: datetime, lang: str) -> str:
    clock = instant.strftime("%H:%M")
    if instant.date() == as_of.date():
        return f"{clock} UTC"
    if lang == "ja":
        return f"{instant.month}月{instant.day}日 {clock} UTC"
    return f"{instant.strftime('%b')} {instant.day}, {clock} UTC"


def _span(window: timedelta, lang: str) -> str:
    hours = window.total_seconds() / 3600
    if lang == "ja":
        if window >= ALL_TIME:
            return "これまで"
        return f"過去{hours:g}時間" if hours < 48 else f"過去{hours / 24:g}日間"
    if window >= ALL_TIME:
        return "at all"
    if hours < 48:
        return f"in the last {hours:g} hour" + ("" if hours == 1 else "s")
    return f"in the last {hours / 24:g} days"


def nothing_found(question: Question, window: timedelta, as_of: datetime) -> str:
    """Says what was looked for as the asker wrote it (「山手線」「運行」, “Ginza line”)."""
    when = _when(as_of, as_of, question.lang)
    if question.lang == "ja":
        words = "".join(f"「{w}」" for w in question.words) or f"「{question.text[:80]}」"
        span = _span(window, "ja")
        return f"{span}（{when}まで）の投稿に、{words}についての情報は見つかりませんでした。"
    words = " ".join(question.words) or question.text[:80]
    return f"I found no posts about “{words}” {_span(window, 'en')} (up to {when})."


#: brackets become full-width and inner quote marks plain, so a post's "[2]" or
#: "[x](javascript:…)" can never read as a citation or a link, nor end the quote early
_QUOTE_SAFE = {
    "en": str.maketrans({"[": "［", "]": "］", "“": '"', "”": '"'}),
    "ja": str.maketrans({"[": "［", "]": "］", "「": "『", "」": "』"}),
}


_QUOTE_MARKS = re.compile(r"[\"“”「」『』]")


def quoted(text: str, lang: str) -> str:
    """`text` in quotation marks, made safe to show (`verify` folds it back to the post's)."""
    safe = text.translate(_QUOTE_SAFE[lang])
    return f"「{safe}」" if lang == "ja" else f"“{safe}”"


def _ago(age: timedelta, lang: str) -> str:
    days = age.days
    for size, en, ja in ((365, "year", "年"), (30, "month", "か月"), (7, "week", "週間")):
        if days >= 2 * size:
            n = days // size
            return f"{n}{ja}前" if lang == "ja" else f"{n} {en}s ago"
    return f"{days}日前" if lang == "ja" else f"{days} days ago"


def _date(instant: datetime, lang: str) -> str:
    if lang == "ja":
        return f"{instant.year}年{instant.month}月{instant.day}日"
    return f"{instant.day} {instant.strftime('%B')} {instant.year}"


def say(
    question: Question, composition: Composition, as_of: datetime, persona: str,
    opening: str = "",
) -> tuple[str, list[Statement]]:
    """The answer text, and the statements in citation order ([1] is the first); the fun
    voice opens with `opening` when given (a checked quip an LLM wrote), else its own."""
    lead = composition.lead
    assert lead is not None
    ordered = list(composition.statements)
    lines = []
    if persona == "fun":
        lines.append(opening or quip(question, composition.statements, lead_only=True))
    lang = question.lang
    ja = lang == "ja"
    when = _when(lead.at, as_of, lang)
    if lead.answer:  # the answer first, in the post's own plain words, then the quotes
        # plain: no quotation marks of the post's, which could pair with ours
        plain = _QUOTE_MARKS.sub("", lead.answer.translate(_QUOTE_SAFE[lang])).rstrip(".。!！ ")
        lines.append(f"{plain}[1]。" if ja else f"{plain} [1].")
    if as_of - lead.at > OLD_AFTER:  # old news: say plainly how old
        date, ago = _date(lead.at, lang), _ago(as_of - lead.at, lang)
        if ja:
            lines.append(
                f"この件の最新の投稿は{date}（{ago}）のものです：{quoted(lead.text, lang)}[1]"
            )
        else:
            lines.append(
                f"The newest posts on this are from {date}, {ago}: {quoted(lead.text, lang)} [1]"
            )
    elif ja:
        lines.append(f"{when}時点の投稿によると、{quoted(lead.text, lang)}[1]")
    else:
        lines.append(f"As of {when}, a post says: {quoted(lead.text, lang)} [1]")
    number = 2
    for s in composition.also:
        text = quoted(s.text, lang)
        if disagrees(s, lead):  # where the sources disagree, say so
            lines.append(f"別の投稿では異なり、{text}[{number}]" if ja else
                         f"Another post differs: {text} [{number}]")  # fmt: skip
        elif s.post.author.handle == lead.post.author.handle:  # not an independent source
            lines.append(f"同じ発信元はほかに{text}[{number}]" if ja else
                         f"The same source also says: {text} [{number}]")  # fmt: skip
        else:
            lines.append(f"ほかに{text}[{number}]" if ja else f"Also: {text} [{number}]")
        number += 1
    for s in composition.earlier:
        when, text = _when(s.at, as_of, lang), quoted(s.text, lang)
        if ja:
            lines.append(f"それ以前（{when}）の投稿では{text}[{number}]")
        else:
            lines.append(f"Earlier ({when}), posts said: {text} [{number}]")
        number += 1
    return "\n".join(lines), ordered


def _period(window: timedelta, lang: str) -> str:
    """The window in words (an uncited sentence may state no number)."""
    hours = window.total_seconds() / 3600
    for limit, en, ja in (
        (1, "the past hour", "この一時間"),
        (12, "the last few hours", "この数時間"),
        (24, "the past day", "この一日"),
        (48, "the past two days", "この二日間"),
    ):
        if hours <= limit:
            return ja if lang == "ja" else en
    return "この一週間" if lang == "ja" else "the past week"  # fmt: skip


def digest(
    question: Question, stories: list[Story], as_of: datetime, window: timedelta, persona: str
) -> str:
    """An open question's answer: one cited sentence per story, newest first ([1] first)."""
    lang = question.lang
    when, period = _when(as_of, as_of, lang), _period(window, lang)
    lines = [quip(question, stories)] if persona == "fun" else []
    if not stories:
        if lang == "ja":
            return f"{period}（{when}まで）の投稿は見つかりませんでした。"
        return f"I found no posts from {period} (up to {when})."
    if lang == "ja":
        lines.append(f"{when}時点で、{period}の主な話題（新しい順）：")
    else:
        lines.append(f"The strongest stories of {period} as of {when}, newest first:")
    for number, story in enumerate(stories, 1):
        at = _when(story.post.created_at, as_of, lang)
        said = quoted(story.text, lang)
        lines.append(f"・{at}：{said}[{number}]" if lang == "ja" else f"- {at}: {said} [{number}]")
    return "\n".join(lines)
