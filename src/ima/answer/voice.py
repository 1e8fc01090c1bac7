"""Personas: the same statements and citations, said in a regular or a fun voice.

The regular voice frames the quoted statements plainly. The fun voice (without an
LLM) adds one quip before them, chosen by topic and mood from a curated set, in the
question's language; quips carry no facts and no citations. Where an LLM is
configured it may write the quip instead (`ima.answer.wit`, checked to state nothing).
Disasters, deaths and tragedies get no jokes at all: the fun voice turns sober for
them (a rule, tested).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import datetime, timedelta

from ima.answer.compose import Composition, Statement, disagrees
from ima.answer.digest import Story
from ima.text.question import ALL_TIME, Question

PERSONAS = ("regular", "fun")
OLD_AFTER = timedelta(days=7)  # evidence older than this is introduced with its age

#: deaths, disasters and violence: no jokes, whatever else the posts say
_TRAGEDY = re.compile(
    r"\b(dead|deaths?|died|dies|killed|fatal(ly|ities)?|victims?|casualt\w+|massacre\w*|"
    r"murder\w*|earthquake|tsunami|flood(s|ing|ed)?|wildfires?|hurricane|typhoon|tornado|"
    r"famine|disaster|tragedy|tragic|funeral|mourn\w*|suicide|terror\w*|hostages?|"
    r"genocide|gunman|gunmen|wounded|bodies|r\.?i\.?p|rest in peace|passed away|"
    r"condolences|heartbroken|heartbreaking|submerged)\b"
    r"|死亡|死者|犠牲|負傷|けが人|行方不明|地震|津波|台風|火災|災害|洪水|噴火|事故|爆発|"
    r"避難|殺|遺体|訃報|戦争|攻撃|墜落|テロ",
    re.IGNORECASE,
)
#: words that are tragic only beside a victim ("shooting 40% from three" is basketball)
_HARM = re.compile(
    r"\b(shooting|shot|bomb\w*|explosion|crash(ed|es)?|collapse\w*|war|attack\w*|"
    r"missing|injur\w+|evacuat\w+|fire)\b",
    re.IGNORECASE,
)
_VICTIM = re.compile(
    r"\b(people|person|civilians?|children|residents|passengers|hospital\w*|police|"
    r"emergency|rescue\w*|troops|soldiers)\b",
    re.IGNORECASE,
)

#: topic → (words that say it alone, words that say it in pairs): a topic needs two
#: marks, a word of the first kind counting as two ("golf" is sport; one "game" is not)
_TOPICS: dict[str, tuple[re.Pattern[str], re.Pattern[str]]] = {
    "transport": (
        re.compile(
            r"\b(trains?|railways?|railroad|subway|metro|commut\w+|flights?|airports?|"
            r"airlines?|airliners?|ferry|ferries|timetable)\b"
            r"|電車|列車|新幹線|鉄道|旅客機|空港|航空|路線",
            re.IGNORECASE,
        ),
        re.compile(
            r"\b(rail\w*|bus(es)?|traffic|roads?|stations?|delay\w*|suspend\w*|line|"
            r"passengers?|planes?|platforms?)\b|線|運転|運休|遅延|駅|バス|便|乗客",
            re.IGNORECASE,
        ),
    ),
    "space": (
        re.compile(
            r"\b(rockets?|orbit\w*|nasa|spacex|artemis|satellites?|astronauts?|spacecraft|"
            r"apollo)\b|ロケット|衛星|宇宙",
            re.IGNORECASE,
        ),
        re.compile(r"\b(launch\w*|moon|mars|lunar)\b|打ち上げ|月面", re.IGNORECASE),
    ),
    "sports": (
        re.compile(
            r"\b(nba|nfl|mlb|nhl|pga|fifa|uefa|olympic\w*|playoffs?|championships?|"
            r"tournament|golf|tennis|hockey|baseball|basketball|soccer|football|inning|"
            r"innings|birdie|putt|touchdown|quarterback|pitcher|homer(ed|s)?|world cup|"
            r"super bowl|davis ?cup|sochi\d*|zamboni|wimbledon|marathon)\b"
            r"|試合|優勝|選手|リーグ|サッカー|野球|大会|五輪",
            re.IGNORECASE,
        ),
        re.compile(
            r"\b(score[sd]?|match|game|goals?|win|won|final|league|cup|team|season|coach|"
            r"points|defeat\w*|beat|practice|players?|lead|shots?|fans)\b"
            r"|得点|勝利|リード|監督",
            re.IGNORECASE,
        ),
    ),
    "weather": (
        re.compile(
            r"\b(weather|forecast|snowfall|heatwave|temperatures?|blizzard|rainfall)\b"
            r"|天気|気温|降水",
            re.IGNORECASE,
        ),
        re.compile(
            r"\b(rain|snow|storm|wind|heat|cold|sunny|degrees)\b|雨|雪|嵐|暑|寒", re.IGNORECASE
        ),
    ),
    "tech": (
        re.compile(
            r"\b(outage|servers?|software|iphone|android|smartphones?|apps?|instagram|"
            r"facebook|google|microsoft|internet|privacy)\b|障害|アプリ|サーバー|ソフト",
            re.IGNORECASE,
        ),
        re.compile(r"\b(ai|bug|update|release[sd]?|users|data|apple|meta|online)\b", re.IGNORECASE),
    ),
    "money": (
        re.compile(
            r"\b(fined|fines|stocks?|shares|lawsuit|regulators?|profits?|revenue|"
            r"economy|inflation)\b|罰金|株価|裁判|経済",
            re.IGNORECASE,
        ),
        re.compile(
            r"\b(fine|billion|million|market|prices?|court|ruling|deal|sales|tax\w*|"
            r"bank\w*)\b|株|円|億|価格",
            re.IGNORECASE,
        ),
    ),
    "showbiz": (
        re.compile(
            r"\b(film|movie|actor|actress|album|concert|emmys?|oscars?|grammys?|celebrity|"
            r"premiere|singer|snl\d*|comedian|trailer|coachella|eurovision|hollywood|"
            r"music video|box office|red carpet|comics?|superheroe?s?|super hero)\b"
            r"|映画|俳優|女優|アルバム|ドラマ|アニメ|漫画",
            re.IGNORECASE,
        ),
        re.compile(
            r"\b(star|engaged|engagement|wedding|married|song|tour|series|music|video|"
            r"band|festival|episode|fans|show|stage|photos?|shoes?|fashion|prank)\b"
            r"|結婚|婚約|ライブ|放送|作品",
            re.IGNORECASE,
        ),
    ),
    "politics": (
        re.compile(
            r"\b(president|senators?|congress|parliament|elections?|prime minister|"
            r"democrats?|republicans?|gop|primary|debate|campaign|minister|governor|"
            r"demdebate)\b|選挙|首相|大統領|国会|政府|議員|政権",
            re.IGNORECASE,
        ),
        re.compile(
            r"\b(vote[sd]?|voters?|policy|bill|law|mayor|statement|party|politics|"
            r"political)\b|政治|法案|帝国",
            re.IGNORECASE,
        ),
    ),
}
_SETBACK = re.compile(
    r"\b(delay\w*|slip\w*|postpon\w*|suspend\w*|cancel\w*|closed|halt\w*|down|outage|lost|"
    r"behind|scrub\w*|fined?|banned|recall\w*|lawsuit)\b|見合わせ|遅延|延期|中止|運休|障害|罰金|"
    r"敗れ|敗北|敗戦|[惜完大連]敗",  # 敗 alone is also in 腐敗, 失敗談
    re.IGNORECASE,
)

_QUIPS: dict[tuple[str, str, str], tuple[str, ...]] = {
    ("en", "transport", "setback"): (
        "Good news for people who enjoy waiting around contemplating existence.",
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
        "Sport happened, and people have feelings about it. The latest:",
        "Athletes doing athletic things, as advertised. The latest:",
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
        "The galaxy keeps spinning; meanwhile, on this planet:",
        "Here's what the humans are posting about, for better or worse.",
    ),
    ("ja", "transport", "setback"): (
        "ホームで人生について考える時間が増えそうです。",
        "時刻表が、ほぼ文学作品になりました。",
    ),
    ("ja", "transport", "fine"): ("乗り物が乗り物らしく動いています。交通的には大事件です。",),
    ("ja", "space", "setback"): ("宇宙は広く、ロケットは気まぐれ。慌てずに。",),
    ("ja", "space", "fine"): ("タオルの準備はいいですか。打ち上げの話です。",),
    ("ja", "sports", "setback"): ("どこかのファンが遠い目をしています。",),
    ("ja", "sports", "fine"): ("スポーツの世界は今日も汗をかいています。",),
    ("ja", "weather", "setback"): ("空が正式に苦情を申し立てました。",),
    ("ja", "weather", "fine"): ("大気は本日も営業中です。",),
    ("ja", "tech", "setback"): ("インターネットを一度切って入れ直したい気分です。",),
    ("ja", "tech", "fine"): ("機械たちは今のところ大人しくしています。",),
    ("ja", "general", "setback"): ("ちょっと面倒なことになっています。詳しくは投稿で。",),
    ("ja", "general", "fine"): ("銀河は今日も回っています。この星では、こんな話が。",),
    ("en", "money", "setback"): (
        "Somewhere, an accountant just sighed very loudly.",
        "Money has been moved, mostly away from someone.",
    ),
    ("en", "money", "fine"): (
        "Numbers went somewhere. Here is where:",
        "The spreadsheets have spoken.",
    ),
    ("en", "showbiz", "setback"): ("The press release will say it was mutual.",),
    ("en", "showbiz", "fine"): (
        "Hold the front page, and the red carpet.",
        "Famous people did a thing, and the posts have notes.",
    ),
    ("en", "politics", "setback"): (
        "Somewhere, a press secretary is drafting a very careful sentence.",
        "Politics: the sport where everyone loses points for style.",
    ),
    ("en", "politics", "fine"): (
        "Democracy is happening, loudly, as designed.",
        "The people in suits have been busy. Here's what they did:",
    ),
    ("ja", "politics", "setback"): ("どこかで広報担当者が言葉を慎重に選んでいます。",),
    ("ja", "politics", "fine"): ("政治の世界は今日もにぎやかです。",),
    ("ja", "money", "setback"): ("どこかで経理の方が深いため息をつきました。",),
    ("ja", "money", "fine"): ("数字が動きました。行き先はこちら。",),
    ("ja", "showbiz", "setback"): ("公式発表はきっと「円満」と書くでしょう。",),
    ("ja", "showbiz", "fine"): ("ポップコーンのご用意を。こんな話題です。",),
}
SOBER = {
    "en": "No jokes on this one. Here is what the posts say.",
    "ja": "この話題に冗談はなしで。投稿の内容はこちらです。",
}


def is_tragic(texts: list[str]) -> bool:
    """Deaths, disasters or violence: a word that says so, or harm beside its victims."""
    return any(
        _TRAGEDY.search(text) or (_HARM.search(text) and _VICTIM.search(text)) for text in texts
    )


def topic_of(texts: list[str]) -> str:
    """The topic most marked in `texts` (two marks at least, a word that says it alone
    counting as two), else general."""
    joined = " ".join(texts)
    marks = {
        name: 2 * len({m.group().lower() for m in alone.finditer(joined)})
        + len({m.group().lower() for m in paired.finditer(joined)})
        for name, (alone, paired) in _TOPICS.items()
    }
    best = max(marks, key=marks.__getitem__)
    return best if marks[best] >= 2 else "general"


def topic_words(text: str) -> list[str]:
    """The words of `text` that mark a topic (train, launch, 試合)."""
    return [m.group() for pair in _TOPICS.values() for p in pair for m in p.finditer(text)]


def mood_of(texts: list[str]) -> str:
    """setback when the posts tell of one (delayed, fined, 延期), else fine."""
    return "setback" if _SETBACK.search(" ".join(texts)) else "fine"


def quip(
    question: Question, statements: Sequence[Statement | Story], lead_only: bool = False
) -> str:
    """The fun voice's one line for this answer (sober when the subject is tragic), fitted
    to the topic and mood of the posts it quotes, not of the question's words; with
    `lead_only`, of the first alone (an answer is about its lead: a second source's "敗れ"
    makes no setback of sea levels), though any tragic one still turns it sober."""
    # whole posts, not just the quoted sentences: a delay "after the earthquake" is no joke
    texts = [s.post.text for s in statements] or [question.text]
    if is_tragic([question.text, *texts]):
        return SOBER[question.lang]
    about = texts[:1] if lead_only else texts
    choices = _QUIPS[(question.lang, topic_of(about), mood_of(about))]
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
