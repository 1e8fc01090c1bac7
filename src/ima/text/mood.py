"""The mood and topic of texts, which decide what the fun voice may say: tragedy
(deaths, disasters, violence: no jokes, whatever else the posts say), the topic most
marked (transport, space, sports, weather, tech, money, showbiz, politics, general) and
whether they tell of a setback. Shared by answers and trends' fun titles."""

from __future__ import annotations

import re

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
