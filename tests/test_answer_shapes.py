"""The shapes real questions over real posts take, each on a small real store: evidence that
fills the question's gap beats an echo of it, quiz phrasing is no key word, whole
sentences, several sources, retweets carry old news, old evidence with its age, Japanese
compounds, and post text that can never pose as a citation or a link."""

import re
from datetime import UTC, datetime

from conftest import assert_verified, cited_ids, feed, post
from ima.answer import verify
from ima.answer.ask import ask
from ima.text.question import understand

AT = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_the_sentence_that_fills_the_gap_leads_not_the_one_that_echoes_the_question(store):
    feed(store, [
        post("echo", "Nominations for the 2026 Emmys are out, and one show received the most "
             "nominations with 25.", "2026-11-22T10:00:00Z", author="tv_desk"),
        post("fill", "Severance received the most nominations for the 2026 Emmys.",
             "2026-11-22T09:58:00Z", author="critic"),
        post("count_echo", "How many people were evacuated near the dam is still unclear, "
             "officials at the dam said.", "2026-11-22T11:00:00Z", author="river_news"),
        post("count", "About 188,000 people near the dam were evacuated overnight.",
             "2026-11-22T10:59:00Z", author="state_police"),
    ])  # fmt: skip
    which = ask(store, "Which show received the most nominations for the 2026 Emmys?", as_of=AT)
    assert cited_ids(which)[0] == "test:fill" and "Severance" in which.text.splitlines()[0]
    many = ask(store, "How many people near the dam were evacuated?", as_of=AT)
    assert cited_ids(many)[0] == "test:count" and "188,000" in many.text.splitlines()[0]
    assert_verified(which)
    assert_verified(many)


def test_the_answer_leads_in_a_plain_sentence_of_the_post_then_the_quote(store):
    feed(store, [post("pm", "Parliament met on Tuesday after the resignation. Keir Starmer became "
                      "the new prime minister of the United Kingdom [3].", "2026-11-22T10:00:00Z",
                      author="politics_desk")])  # fmt: skip
    answer = ask(store, "Who became the new prime minister of the United Kingdom?", as_of=AT)
    first, second = answer.text.splitlines()[:2]
    assert first == "Keir Starmer became the new prime minister of the United Kingdom ［3］ [1]."
    assert second.startswith("As of 10:00 UTC, a post says: “Parliament met on Tuesday")
    assert re.findall(r"\[(\d+)\]", answer.text) == ["1", "1"]
    assert_verified(answer)


def test_quiz_and_conversational_phrasing_is_no_key_word(store):
    q = understand("Which of the following are considered among the highest honors in the "
                   "culinary world according to critics this week?")  # fmt: skip
    assert not {"following", "considered", "among", "according"} & {w.lower() for w in q.words}
    feed(store, [post("m", "Michelin stars remain the highest honors in the culinary world.",
                      "2026-11-21T10:00:00Z", author="food_news")])  # fmt: skip
    answer = ask(store, "Which of the following are considered among the highest honors in "
                 "the culinary world?", as_of=AT)  # fmt: skip
    assert answer.found and "Michelin" in answer.text


def test_quotes_are_whole_sentences_with_their_abbreviations(store):
    feed(store, [
        post("m", "The raid led to the capture of President Nicolás Maduro on Jan. 3 in Caracas. "
             "Officials confirmed it on Sunday.", "2026-11-22T10:00:00Z", author="wire"),
        post("j", "「今日は運休します。」とJR東日本が発表しました。振替輸送を実施中です。",
             "2026-11-22T10:00:00Z", author="jr_info"),
    ])  # fmt: skip
    answer = ask(store, "When was Nicolas Maduro captured?", as_of=AT)
    assert "Maduro on Jan. 3 in Caracas." in answer.text  # "Nicolas" vetoes nothing
    japanese = ask(store, "JR東日本は何を発表しましたか？", as_of=AT)
    # the post's own 「」 become 『』 inside ima's 「」 quote
    assert "「『今日は運休します。』とJR東日本が発表しました。" in japanese.text
    assert_verified(answer)
    assert_verified(japanese)


def test_agreeing_independent_sources_are_all_cited(store):
    feed(store, [
        post("a", "The Elm Street bridge reopened to traffic this morning.",
             "2026-11-22T09:00:00Z", author="city_hall"),
        post("b", "Elm Street bridge is open again, traffic moving.", "2026-11-22T09:02:00Z",
             author="traffic_cam"),
        post("c", "Drove over the Elm Street bridge, it has reopened.", "2026-11-22T09:04:00Z",
             author="commuter"),
    ])  # fmt: skip
    answer = ask(store, "Is the Elm Street bridge open?", as_of=AT)
    assert len(answer.citations) == 3
    assert len({c.post.author.handle for c in answer.citations}) == 3
    assert "[3]" in answer.text
    assert_verified(answer)


def test_sources_that_disagree_are_both_cited_and_the_answer_says_so(store):
    feed(store, [
        post("x", "Tigers lead the Hawks 2-1 in the fourth.", "2026-11-22T11:00:00Z",
             author="fan_one"),
        post("y", "Tigers lead the Hawks 3-1 in the fourth, what a game.", "2026-11-22T11:01:00Z",
             author="fan_two"),
    ])  # fmt: skip
    answer = ask(store, "What's the score of the Tigers Hawks game?", as_of=AT)
    assert len(answer.citations) == 2 and "Another post differs:" in answer.text
    assert_verified(answer)


def test_a_manual_retweet_carries_old_news_and_a_genuine_update_leads(store):
    feed(store, [
        post("old", "The Miyajima ferry is cancelled because of strong winds.",
             "2026-11-22T07:00:00Z", author="port_news"),
        post("new", "The Miyajima ferry resumed service at 11:00.", "2026-11-22T11:00:00Z",
             author="ferry_co"),
        post("rt", "RT @port_news: The Miyajima ferry is cancelled because of strong winds.",
             "2026-11-22T11:30:00Z", author="late_sharer"),
        post("rt_only", "RT @somebody: The Miyajima aquarium is closed for repairs.",
             "2026-11-22T11:40:00Z", author="sharer"),
        post("copy", "The Miyajima ferry is cancelled because of strong winds.",
             "2026-11-22T11:45:00Z", author="copier"),
    ])  # fmt: skip
    answer = ask(store, "Is the Miyajima ferry running?", as_of=AT)
    assert cited_ids(answer)[0] == "test:new"  # neither the retweet nor the later copy leads
    assert "RT @" not in answer.text
    aquarium = ask(store, "Is the Miyajima aquarium open?", as_of=AT)
    assert aquarium.found and "RT @" not in aquarium.text  # the copied words, not the prefix
    assert_verified(answer)


def test_old_but_only_evidence_is_given_with_its_age_unless_a_time_was_asked(store):
    feed(store, [
        post("old", "The Lindenfeld observatory closed for renovation.", "2026-03-14T10:00:00Z",
             author="astro_news"),
        post("old_ja", "リンデンフェルト天文台は改修のため閉館しました。", "2026-03-14T11:00:00Z",
             author="tenmon"),
    ])  # fmt: skip
    answer = ask(store, "Is the Lindenfeld observatory open?", as_of=AT)
    assert answer.found and cited_ids(answer) == ["test:old"]
    assert answer.text.startswith("The newest posts on this are from 14 March 2026, 8 months ago:")
    assert_verified(answer)
    today = ask(store, "Is the Lindenfeld observatory open today?", as_of=AT)
    assert not today.found and "24 hours" in today.text  # the range the asker set
    japanese = ask(store, "リンデンフェルト天文台は開いていますか？", as_of=AT)
    assert japanese.found and "2026年3月14日（8か月前）" in japanese.text


def test_japanese_compounds_stay_whole(store):
    q = understand("新幹線は動いていますか？")
    assert q.words == ("新幹線",)
    feed(store, [
        post("road", "幹線道路が渋滞しています。", "2026-11-22T11:00:00Z", author="road_info"),
        post("train", "新幹線は平常通り運転しています。", "2026-11-22T10:00:00Z", author="jr"),
    ])  # fmt: skip
    answer = ask(store, "新幹線は動いていますか？", as_of=AT)
    assert cited_ids(answer) == ["test:train"]
    nothing = ask(store, "山手線の運行状況は？", as_of=AT)
    assert not nothing.found and "「山手線」「運行」" in nothing.text


def test_post_text_never_poses_as_a_citation_or_a_link(store):
    feed(store, [
        post("h", "Harbor bridge closed [2] see [details](javascript:alert(1)) and [99] now.",
             "2026-11-22T11:00:00Z", author="prankster"),
        post("h2", "The harbor bridge is closed for the regatta.", "2026-11-22T11:05:00Z",
             author="harbor_office"),
    ])  # fmt: skip
    for persona in ("regular", "fun"):
        answer = ask(store, "Is the harbor bridge closed?", as_of=AT, persona=persona)
        markers = re.findall(r"\[(\d+)\]", answer.text)
        assert markers == [str(c.number) for c in answer.citations]  # only ima's own
        assert "](" not in answer.text and "[details]" not in answer.text
        assert "［99］" in answer.text or "test:h" not in cited_ids(answer)
        assert_verified(answer)


NEWS_DAY = [
    post("f1", "The Miyajima ferry is cancelled today because of strong winds",
         "2026-11-22T08:00:00Z", author="port_news"),
    post("f2", "Miyajima ferry cancelled this morning, strong winds at the port",
         "2026-11-22T08:05:00Z", author="traveller"),
    post("m1", "Tokyo marathon route announced for next spring, runners excited",
         "2026-11-22T10:00:00Z", author="sports_desk"),
    post("m2", "The Tokyo marathon route for spring is out, passing Asakusa",
         "2026-11-22T10:30:00Z", author="runner_jp"),
    post("t1", "東京タワーが今夜、青くライトアップされます。", "2026-11-22T11:00:00Z",
         author="tokyo_news"),
    post("t2", "今夜の東京タワーは青色のライトアップ。", "2026-11-22T11:10:00Z", author="yakei"),
    post("c", "Coffee first, then emails", "2026-11-22T11:50:00Z", author="someone"),
    post("old", "Tokyo marathon registration opened", "2026-11-10T10:00:00Z", author="sports_desk"),
]  # fmt: skip


def test_open_questions_get_a_digest_of_the_strongest_stories_newest_first(store):
    feed(store, NEWS_DAY)
    for question in ("What's happening?", "What's the news today?"):
        answer = ask(store, question, as_of=AT)
        assert answer.found and len(answer.citations) == 3, answer.text
        assert [c.post.id for c in answer.citations] == ["test:t2", "test:m2", "test:f2"]
        assert "newest first" in answer.text and "Coffee" not in answer.text
        assert_verified(answer)
    japanese = ask(store, "今何が起きてる？", as_of=AT, persona="fun")
    assert japanese.language == "ja" and "主な話題" in japanese.text
    assert len(japanese.citations) == 3
    assert_verified(japanese)
    tokyo = ask(store, "What's happening in Tokyo?", as_of=AT)
    assert [c.post.id for c in tokyo.citations] in (["test:m1"], ["test:m2"])  # one story
    topical = ask(store, "What's happening with the Miyajima ferry?", as_of=AT)
    assert "newest first" not in topical.text and topical.citations[0].post.id == "test:f2"
    bluesky = ask(store, "Anything new on Bluesky this morning?", as_of=AT)
    assert not bluesky.found  # the store holds no Bluesky posts
    digest = ask(store, "What's happening?", as_of=AT)
    second = digest.citations[1].post  # the marathon story
    more = ask(store, "Tell me more about the second one", as_of=AT,
               context="What's happening?")  # fmt: skip
    assert more.found and "newest first" not in more.text
    assert {c.post.id for c in more.citations} >= {second.id}
    assert all("marathon" in c.post.text for c in more.citations)
    last = ask(store, "最後のについて詳しく", as_of=AT, context="今何が起きてる？")
    assert "ferry" in last.citations[0].post.text


def test_the_quip_fits_the_topic_of_the_posts_and_tragedies_get_none():
    from ima.text import mood

    assert mood.topic_of(["Instagram fined 405 million euros over children's privacy"]) in (
        "tech", "money")  # fmt: skip
    assert mood.topic_of(["Film star Zendaya is engaged to actor Tom Holland"]) == "showbiz"
    assert mood.topic_of(["Warriors beat the Celtics to win the NBA title"]) == "sports"
    assert mood.topic_of(["A quiet afternoon"]) == "general"
    headlines = {
        "Warriors beat the Celtics to win the NBA championship, Curry shooting 43%": False,
        "Losers of the night: the Celtics bench": False,
        "Magnitude 7.1 earthquake kills dozens in Turkey": True,
        "Gunman opens fire at a school in Texas, police say 19 children dead": True,
        "Explosion at a chemical plant sends people to hospital": True,
        "Stocks crash after the Fed raises rates": False,
        "R.I.P Chester Bennington. My thoughts are with his family": True,
        "Sad that the show is coming to an end": False,
        "台風10号で2人死亡": True,
        "阪神が逆転勝ちで優勝": False,
    }
    for headline, tragic in headlines.items():
        assert mood.is_tragic([headline]) is tragic, headline


def test_a_quoted_passage_is_one_claim_for_the_verifier():
    from ima.post import Author, Post

    when = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    given = [Post("t:1", "t", Author("a"), "Shares rose 3.5% on Jan. 3. Analysts expect 4%.",
                  "en", when, when)]  # fmt: skip
    whole = "As of 10:00 UTC, a post says: “Shares rose 3.5% on Jan. 3. Analysts expect 4%.” [1]"
    assert verify.problems(whole, given, when) == []
    invented = "As of 10:00 UTC, a post says: “Shares rose 3.5% on Jan. 3. Analysts expect 9%.” [1]"
    assert verify.problems(invented, given, when)
    cited = "Shares rose 3.5% on Jan. 3 [1]. Analysts expect 4% [1]."
    assert verify.problems(cited, given, when) == []  # "Jan. 3" is no sentence end
    assert verify.problems("Shares rose 3.5% on Jan. 3. Analysts expect 4% [1].", given, when)


def test_a_citation_after_the_sentence_end_checks_that_sentence():
    from ima.post import Author, Post

    when = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    given = [Post("t:1", "t", Author("a"), "宮島行きのフェリーは強風のため欠航しています",
                  "ja", when, when)]  # fmt: skip
    assert verify.problems("宮島行きのフェリーは欠航しています。[1]", given, when) == []
    # a claim the post does not make, cited after its 。 or its period, is caught
    assert verify.problems("宮島行きのフェリーは沈没して乗客が救助された。[1]", given, when)
    assert verify.problems("The ferry sank and everyone swam home. [1]", given, when)
    assert verify.problems("Nice. [1]", given, when)  # a marker alone backs nothing


def test_a_streamed_llm_answer_is_released_in_whole_sentences():
    from ima.answer.ask import _first_sentence

    assert _first_sentence("The launch moved to Jan. ") is None  # "Jan." may go on
    assert _first_sentence("It moved to Jan. 3 [1]. Then") == "It moved to Jan. 3 [1]. "
    assert _first_sentence("Done [1].\nNext") == "Done [1].\n"
