"""The fun voice on real text: its mood comes from what the answer leads with, 敗 in 腐敗 is
no defeat, and a line that fits nothing in particular characterizes nothing."""

from datetime import UTC, datetime

from conftest import feed, post
from ima.answer import voice
from ima.answer.ask import ask

AT = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SETBACK_JA = voice._QUIPS[("ja", "general", "setback")]


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
    assert voice._SETBACK.search("政治の腐敗と失敗談") is None
    assert voice._SETBACK.search("決勝で惜敗した") is not None


def test_a_neutral_line_says_nothing_of_what_follows():
    for (_lang, topic, _mood), lines in voice._QUIPS.items():
        if topic == "general":
            assert not any(w in line for line in lines for w in ("gossip", "噂"))
