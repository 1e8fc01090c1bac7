"""The fun voice's one-liners: curated, in English and Japanese, chosen by the topic and
mood of the posts they sit beside (`ima.text.mood`), stable for a question, and sober on
tragedies. They carry no facts and no citations. Answers open with one; trends give one
to a story's fun title."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

from ima.post import Post
from ima.text.mood import is_tragic, mood_of, topic_of
from ima.text.question import Question


class Quoted(Protocol):
    """Whatever quotes a post: an answer's statement, a digest's story."""

    @property
    def post(self) -> Post: ...


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


def quip(
    question: Question, statements: Sequence[Quoted], lead_only: bool = False
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
