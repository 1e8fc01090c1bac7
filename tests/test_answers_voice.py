"""The fun voice on real text: its mood comes from what the answer leads with, 敗 in 腐敗 is
no defeat, and a line that fits nothing in particular characterizes nothing."""

from datetime import UTC, datetime

from conftest import feed, post
from ima import quips
from ima.answer.ask import ask
from ima.text import mood

AT = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SETBACK_JA = quips._QUIPS[("ja", "general", "setback")]


def test_the_mood_is_the_leads_and_a_word_inside_another_is_no_setback(store):
    feed(store, [
        post("sea", "更新世末期のオーストラリア大陸は、海水面が100m以上低かった。",
             "2026-11-22T10:00:00Z", author="geo"),
        post("war", "更新世の研究で、オーストラリア大陸の学説は論争に敗れた。",
             "2026-11-22T09:00:00Z", author="history"),
    ])  # fmt: skip
    answer = ask(store, "更新世末期のオーストラリア大陸の海水面は?", as_of=AT, persona="fun")
    assert answer.citations[0].post.id == "test:sea" and len(answer.citations) == 2
    assert answer.text.splitlines()[0] not in SETBACK_JA
    assert mood._SETBACK.search("政治の腐敗と失敗談") is None
    assert mood._SETBACK.search("決勝で惜敗した") is not None


def test_a_neutral_line_says_nothing_of_what_follows():
    for (_lang, topic, _mood), lines in quips._QUIPS.items():
        if topic == "general":
            assert not any(w in line for line in lines for w in ("gossip", "噂"))


def test_one_word_that_says_a_topic_is_enough_and_lines_fit_the_whole_topic():
    topics = {
        "Steven Bowditch will head to the last with a four-shot lead. — PGA TOUR": "sports",
        "Standing in line with Chara to use the restroom #Sochi2014": "sports",
        "Turkish President Erdogan doesn't get to export abuse against journalists": "politics",
        "Drake was dancing like Carlton in his music video Hotline Bling": "showbiz",
        "単通路機市場では150席級の新型旅客機が求められつつあった。": "transport",
        "A quiet afternoon with a good book": "general",
        "One game tonight": "general",  # one word that says it only in pairs
    }
    for text, topic in topics.items():
        assert mood.topic_of([text]) == topic, text
    # a sport's line fits golf and a zamboni as well as a ball game; a transport line
    # fits a plane as well as a train
    for line in quips._QUIPS[("en", "sports", "fine")] + quips._QUIPS[("ja", "sports", "fine")]:
        assert not any(w in line.lower() for w in ("ball", "score", "スコア", "ボール"))
    for line in quips._QUIPS[("ja", "transport", "fine")]:
        assert "電車" not in line
