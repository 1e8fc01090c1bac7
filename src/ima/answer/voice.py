"""Personas: the same statements and citations, said in a regular or a fun voice.

The regular voice frames the quoted statements plainly. The fun voice (without an
LLM) adds one quip before them, chosen by topic and mood from a curated set, in the
question's language; quips carry no facts and no citations. Disasters, deaths and
tragedies get no jokes at all: the fun voice turns sober for them (a rule, tested).
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta

from ima.answer.compose import Composition, Statement
from ima.answer.question import Question

PERSONAS = ("regular", "fun")
OLD_AFTER = timedelta(days=7)  # evidence older than this is introduced with its age
ANY_TIME = timedelta(days=3650)  # a window this wide is "any post"

_TRAGEDY = re.compile(
    r"\b(dead|deaths?|died|dies|killed|kills|fatal\w*|victims?|casualt\w+|injur\w+|"
    r"missing|shooting|massacre|murder\w*|earthquake|tsunami|flood\w*|wildfire|hurricane|"
    r"typhoon|tornado|explosion|bomb\w*|crash(ed|es)?|collapse\w*|famine|war|attack\w*|"
    r"evacuat\w+|disaster|tragedy|funeral|mourn\w*|suicide)\b"
    r"|死亡|死者|犠牲|負傷|けが人|行方不明|地震|津波|台風|火災|災害|洪水|噴火|事故|爆発|"
    r"避難|殺|遺体|訃報|戦争|攻撃|墜落",
    re.IGNORECASE,
)

#: topic → words that mark it (English stems and Japanese words)
_TOPICS: dict[str, re.Pattern[str]] = {
    "transport": re.compile(
        r"\b(train|line|rail|bus|ferr(y|ies)|flight|airport|traffic|road|metro|subway|"
        r"station|delay\w*|suspend\w*)\b|線|電車|列車|運転|運休|遅延|新幹線|駅|バス|空港|便",
        re.IGNORECASE,
    ),
    "space": re.compile(
        r"\b(launch\w*|rocket|orbit|nasa|spacex|artemis|satellite|moon|mars)\b|打ち上げ|ロケット|衛星",
        re.IGNORECASE,
    ),
    "sports": re.compile(
        r"\b(score\w*|match|game|goal|lead\w*|win|won|final|league|cup|inning|tigers|team)\b"
        r"|試合|得点|優勝|勝利|リード|選手",
        re.IGNORECASE,
    ),
    "weather": re.compile(
        r"\b(rain|snow|storm|wind|heat|weather|forecast|cold|sun)\b|雨|雪|嵐|天気|暑|寒",
        re.IGNORECASE,
    ),
    "tech": re.compile(
        r"\b(app|outage|server|ai|update|release|software|bug|down)\b|障害|アプリ|サーバー",
        re.IGNORECASE,
    ),
}
_SETBACK = re.compile(
    r"\b(delay\w*|slip\w*|postpon\w*|suspend\w*|cancel\w*|closed|halt\w*|down|outage|lost|"
    r"behind|scrub\w*)\b|見合わせ|遅延|延期|中止|運休|障害|敗",
    re.IGNORECASE,
)

_QUIPS: dict[tuple[str, str, str], tuple[str, ...]] = {
    ("en", "transport", "setback"): (
        "Good news for people who enjoy standing on platforms contemplating existence.",
        "The timetable has been reclassified as a work of speculative fiction.",
    ),
    ("en", "transport", "fine"): (
        "Trains doing train things. Thrilling, by railway standards.",
        "Movement! The one thing transport is for, occasionally achieved.",
    ),
    ("en", "space", "setback"): (
        "Space remains big, and rockets remain reluctant. Don't panic.",
        "The universe has asked the rocket to hold, please.",
    ),
    ("en", "space", "fine"): (
        "Somewhere, a towel is being packed. Here's the launch news.",
        "Up is still the preferred direction for rockets. Current status:",
    ),
    ("en", "sports", "setback"): (
        "Somebody's fans are staring meaningfully into the middle distance.",
        "Sport: where numbers go up for one side and hearts go down for the other.",
    ),
    ("en", "sports", "fine"): (
        "The scoreboard has opinions, and it is sharing them.",
        "Grown adults chasing a ball, with consequences. The latest:",
    ),
    ("en", "weather", "setback"): (
        "The sky has filed a formal complaint.",
        "Weather is happening, as it traditionally does, mostly to people outside.",
    ),
    ("en", "weather", "fine"): (
        "The atmosphere remains on duty.",
        "The sky's current mood, according to the people under it:",
    ),
    ("en", "tech", "setback"): (
        "Have you tried turning the internet off and on again? Someone's trying.",
        "Computers: doing exactly what they were told, which is the problem.",
    ),
    ("en", "tech", "fine"): (
        "The machines are behaving. For now.",
        "Software news, freshly compiled:",
    ),
    ("en", "general", "setback"): (
        "Mostly harmless, mostly annoying. Here's what the posts say.",
        "Things have gone slightly sideways. The details:",
    ),
    ("en", "general", "fine"): (
        "The galaxy keeps spinning; here's the local gossip.",
        "Here's what the humans are posting about, for better or worse.",
    ),
    ("ja", "transport", "setback"): (
        "ホームで人生について考える時間が増えそうです。",
        "時刻表が、ほぼ文学作品になりました。",
    ),
    ("ja", "transport", "fine"): ("電車が電車らしく走っています。鉄道的には大事件です。",),
    ("ja", "space", "setback"): ("宇宙は広く、ロケットは気まぐれ。慌てずに。",),
    ("ja", "space", "fine"): ("タオルの準備はいいですか。打ち上げの話です。",),
    ("ja", "sports", "setback"): ("どこかのファンが遠い目をしています。",),
    ("ja", "sports", "fine"): ("スコアボードが言いたいことを言っています。",),
    ("ja", "weather", "setback"): ("空が正式に苦情を申し立てました。",),
    ("ja", "weather", "fine"): ("大気は本日も営業中です。",),
    ("ja", "tech", "setback"): ("インターネットを一度切って入れ直したい気分です。",),
    ("ja", "tech", "fine"): ("機械たちは今のところ大人しくしています。",),
    ("ja", "general", "setback"): ("ちょっと面倒なことになっています。詳しくは投稿で。",),
    ("ja", "general", "fine"): ("銀河は今日も回っています。地元の噂話はこちら。",),
}
_SOBER = {
    "en": "No jokes on this one. Here is what the posts say.",
    "ja": "この話題に冗談はなしで。投稿の内容はこちらです。",
}


def is_tragic(texts: list[str]) -> bool:
    return any(_TRAGEDY.search(text) for text in texts)


def quip(question: Question, statements: tuple[Statement, ...]) -> str:
    """The fun voice's one line for this answer (sober when the subject is tragic)."""
    # whole posts, not just the quoted sentences: a delay "after the earthquake" is no joke
    texts = [question.text, *(s.post.text for s in statements)]
    if is_tragic(texts):
        return _SOBER[question.lang]
    joined = " ".join(texts)
    topic = next((name for name, pattern in _TOPICS.items() if pattern.search(joined)), "general")
    mood = "setback" if _SETBACK.search(joined) else "fine"
    choices = _QUIPS[(question.lang, topic, mood)]
    digest = hashlib.sha256(question.text.encode()).digest()  # stable for a question
    return choices[digest[0] % len(choices)]


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
        if window >= ANY_TIME:
            return "これまで"
        return f"過去{hours:g}時間" if hours < 48 else f"過去{hours / 24:g}日間"
    if window >= ANY_TIME:
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
    question: Question, composition: Composition, as_of: datetime, persona: str
) -> tuple[str, list[Statement]]:
    """The answer text, and the statements in citation order ([1] is the first)."""
    lead = composition.lead
    assert lead is not None
    ordered = list(composition.statements)
    lines = []
    if persona == "fun":
        lines.append(quip(question, composition.statements))
    lang = question.lang
    ja = lang == "ja"
    when = _when(lead.at, as_of, lang)
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
