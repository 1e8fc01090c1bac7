"""Evidence the composer must not miss where plain BM25 finds it (the misses of the real-text
evaluation, in general form): a two-word question's one heavy word, a Japanese year, a
season or a name in kanji that fills the question's gap, a joined hashtag, and a source's
second post that answers too."""

from datetime import UTC, datetime

from conftest import assert_verified, cited_ids, feed, post
from ima.answer.ask import ask
from ima.answer.compose import fills
from ima.text.question import understand

AT = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_one_heavy_word_answers_a_two_word_question_in_its_own_window_only(store):
    feed(store, [
        post("ireland", "Ireland also make history today as the first to chase down 300 three "
             "times.", "2026-11-22T09:00:00Z", author="cricket_desk"),
        post("filler1", "The country music awards are on tonight.", "2026-10-01T09:00:00Z",
             author="radio"),
        post("filler2", "A country road closed for repairs.", "2026-10-02T09:00:00Z",
             author="roads"),
        post("filler3", "Which country has the best food?", "2026-10-03T09:00:00Z",
             author="foodie"),
    ])  # fmt: skip
    answer = ask(store, "What country made history today?", as_of=AT)
    assert answer.found and cited_ids(answer) == ["test:ireland"]
    assert_verified(answer)
    # a month later the question's day holds nothing: a widened search needs both words,
    # since over many more posts one shared word is a coincidence
    later = ask(store, "What country made history?", as_of=datetime(2026, 12, 30, tzinfo=UTC))
    assert not later.found
    # a Japanese common noun alone is phrasing, not a topic
    japanese = ask(store, "『変身』の作者は誰?", as_of=AT)
    assert not japanese.found


def test_a_japanese_year_fills_a_when_question(store):
    feed(store, [
        post("later", "最後の生息確認例が途絶えた淀川であるが、ワンド群で生物部の生徒達によって"
             "再発見された。", "2026-11-22T09:00:00Z", author="encyclopedia"),
        post("year", "淀川では水質汚濁が著しく1960年代初頭を最後に確認されなくなった。",
             "2026-11-22T09:00:00Z", author="encyclopedia"),
    ])  # fmt: skip
    answer = ask(store, "淀川で生息が最後に確認されたのはいつ?", as_of=AT)
    assert cited_ids(answer)[0] == "test:year"
    assert "「淀川では水質汚濁が著しく1960年代初頭" in answer.text.splitlines()[0]
    assert_verified(answer)


def test_a_joined_hashtag_names_its_words(store):
    feed(store, [
        post("keaton", "#GoldenGlobes: Michael Keaton calls Hidden Figures #HiddenFences on "
             "stage", "2026-11-22T09:00:00Z", author="trade_press"),
        post("other", "A small stage for a small band, 2026 tour announced.",
             "2026-11-22T08:00:00Z", author="band"),
    ])  # fmt: skip
    answer = ask(store, "Who made a small mistake on stage at the Golden Globes?", as_of=AT)
    assert cited_ids(answer)[0] == "test:keaton" and "Michael Keaton" in answer.text
    assert_verified(answer)


def test_a_sources_other_post_that_answers_too_is_cited_and_said_to_be_the_same_source(store):
    feed(store, [
        post("dillon", "Special announcement: Dillon High School will be closed tomorrow.",
             "2026-11-22T09:00:00Z", author="mayor"),
        post("bayside", "Classes at Bayside High are canceled for tomorrow; the prom meeting "
             "goes ahead.", "2026-11-22T09:00:00Z", author="mayor"),
    ])  # fmt: skip
    answer = ask(store, "Which high school will be closed tomorrow?", as_of=AT)
    assert set(cited_ids(answer)) == {"test:dillon", "test:bayside"}
    assert "The same source also says:" in answer.text and "[2]" in answer.text
    assert_verified(answer)
    japanese = ask(store, "明日休校になるのはどの高校?", as_of=AT)
    assert not japanese.found  # nothing in Japanese holds two of its words


def test_japanese_names_in_kanji_and_seasons_fill_the_gap():
    q = understand("電力は主にどの市を中心に送電されたの?")
    assert fills(q, "電力は名古屋市を中心に送電された。") > 1
    assert fills(q, "電力は市の中心に送電された。") < 1
    who = understand("キャプテン翼の作者は誰?")
    assert fills(who, "高橋陽一による日本のサッカー漫画。") > 1 > fills(who, "作者の漫画。")
    when = understand("サッカーの高校選手権はいつ開催されているの?")
    assert fills(when, "毎年冬に行われる高校選手権の人気が高まった。") > 1
    assert fills(when, "高校選手権の人気が高まった。") < 1
    assert fills(understand("When is the derby held?"), "The derby is held every spring.") > 1
    assert understand("アポロ何号が月に着陸した?").gap == "number"


def test_the_commoner_of_two_names_may_be_said_otherwise_by_a_post_that_holds_the_rest(store):
    feed(store, [
        post("west", "Ottoman power expanded into the Balkans, worrying the West.",
             "2026-11-22T09:00:00Z", author="historian"),
        post("thin", "Ottoman coffee is strong.", "2026-11-22T09:00:00Z", author="cafe"),
        post("other", "Europe's night trains are back.", "2026-11-22T09:00:00Z", author="rail"),
        post("more", "Europe votes in spring.", "2026-11-22T09:00:00Z", author="desk"),
        post("most", "Europe in winter, a guide.", "2026-11-22T09:00:00Z", author="travel"),
    ])  # fmt: skip
    answer = ask(store, "Where did Ottoman power expand, worrying Europe?", as_of=AT)
    assert answer.found and cited_ids(answer) == ["test:west"]
    assert_verified(answer)
    # the rarer name must be there ("Central Line" is no "Northern Line")
    feed(store, [post("byz", "Byzantine mosaics on show.", "2026-11-22T09:00:00Z", author="m"),
                 post("east", "Power expanded east, worrying Europe and its trade.",
                      "2026-11-22T09:00:00Z", author="economist")])  # fmt: skip
    assert not ask(store, "Did Byzantine power expand, worrying Europe?", as_of=AT).found


def test_a_quote_of_an_old_post_carries_old_news_and_a_genuine_update_leads(store):
    feed(store, [
        post("old", "The Miyajima ferry is cancelled because of strong winds.",
             "2026-11-21T07:00:00Z", author="port_news"),
        post("new", "The Miyajima ferry resumed service this morning.", "2026-11-22T09:00:00Z",
             author="ferry_co"),
        # a quote post (its comment alone in its text) and a quote beside a comment, both
        # posted after the update
        post("quote", "Miyajima ferry cancelled, strong winds, stay home!",
             "2026-11-22T11:00:00Z", author="late_sharer", quote_of="old"),
        post("manual", '"@port_news: The Miyajima ferry is cancelled." ugh, the ferry again',
             "2026-11-22T11:30:00Z", author="grumbler"),
    ])  # fmt: skip
    answer = ask(store, "Is the Miyajima ferry running?", as_of=AT)
    assert cited_ids(answer)[0] == "test:new"
    assert_verified(answer)
    # the quoted post is looked up where retrieval did not bring it
    by_itself = ask(store, "Is the Miyajima ferry running?", as_of=AT, restrict="-from:port_news")
    assert cited_ids(by_itself)[0] == "test:new"


def test_a_misspelled_word_is_read_as_the_posts_spell_it(store):
    feed(store, [
        post("melania", 'Melania Trump: "Donald gets things done" #GOPConvention',
             "2026-11-22T09:00:00Z", author="politics"),
        post("done", "Finally done with the marathon!", "2026-11-22T09:30:00Z", author="runner"),
    ])  # fmt: skip
    answer = ask(store, "Who said donad gets things done?", as_of=AT)
    assert answer.found and cited_ids(answer)[0] == "test:melania"
    assert_verified(answer)
    assert not ask(store, "Who said the museum gets things done?", as_of=AT).found


def test_a_contraction_typed_without_its_apostrophe_is_phrasing(store):
    feed(store, [post("ebola", "You're not going to get Ebola.", "2026-11-22T09:00:00Z",
                      author="writer")])  # fmt: skip
    answer = ask(store, "who said you wont get ebola", as_of=AT)
    assert answer.found and cited_ids(answer) == ["test:ebola"]
    assert_verified(answer)


def test_a_name_keeps_its_words_that_are_stop_words_elsewhere(store):
    assert "Story" in understand("How many home runs did Trevor Story hit?").words
    assert "Story" in understand("Trevor Story hit how many home runs?").words
    # a short function word beside a name, a stop word after a verb: not kept
    assert "The" not in understand("What did The Beatles sing?").words
    assert "story" not in understand("What is the story about Trevor?").words
    feed(store, [
        post("story", "Trevor Story hit two home runs as the Rockies won 6-3.",
             "2026-11-22T09:00:00Z", author="rockies_beat"),
        post("bauer", "Trevor Bauer hit a batter and left after two innings.",
             "2026-11-22T10:00:00Z", author="mlb_wire"),
    ])  # fmt: skip
    answer = ask(store, "How many home runs did Trevor Story hit?", as_of=AT)
    assert cited_ids(answer) == ["test:story"]
    assert_verified(answer)


def test_a_lowercase_joined_hashtag_names_its_words(store):
    feed(store, [
        post("pope", "Huge crowds line the streets of Manila for a glimpse of him "
             "#popefrancis", "2026-11-22T09:00:00Z", author="asia_desk"),
        post("other", "Francis scored twice for the visitors.", "2026-11-22T10:00:00Z",
             author="football"),
        post("longer", "Huge crowds in the square #popefrancisco", "2026-11-22T10:30:00Z",
             author="fan"),  # another tag: joined words count only whole
    ])  # fmt: skip
    question = understand("Where did Pope Francis draw huge crowds?")
    assert "popefrancis" in question.query()
    answer = ask(store, "Where did Pope Francis draw huge crowds?", as_of=AT)
    assert cited_ids(answer) == ["test:pope"] and "Manila" in answer.text
    assert_verified(answer)


def test_a_neighbouring_paragraph_as_strong_as_the_lead_is_cited_before_weaker_sources(store):
    feed(store, [
        post("p1", "ビワタナゴの名前は濃尾平野の地方名に由来するという説もある。",
             "2026-11-22T09:00:00Z", author="encyclopedia"),
        post("p2", "ビワタナゴの名前は琵琶湖に由来する。かつては琵琶湖の内湖に多く生息した。",
             "2026-11-22T09:00:00Z", author="encyclopedia"),
        post("blog", "タナゴの名前の由来には諸説ある。", "2026-11-22T09:00:00Z",
             author="fishblog"),
        post("angler", "タナゴ釣りの名前の由来を調べてみた。", "2026-11-22T09:00:00Z",
             author="angler"),
    ])  # fmt: skip
    answer = ask(store, "ビワタナゴの名前の由来は何ですか?", as_of=AT)
    assert {"test:p1", "test:p2"} <= set(cited_ids(answer))
    assert_verified(answer)


def test_a_foreign_name_mecab_cuts_up_is_one_name_and_must_be_there(store):
    akron = understand("アクロンはどの州に位置しているの?")
    assert "アクロン" in akron.words and akron.names  # ア + クロン: a name MeCab did not know
    assert understand("グレフュール伯爵夫人は誰?").names  # unknown to MeCab: a name
    fish = understand("ゼニタナゴと何がありますか?")  # two known katakana nouns: one word
    assert fish.words == ("ゼニタナゴ",) and not fish.names
    feed(store, [
        post("saddle", "サドルとペダルの位置を高い位置に付け直した。", "2026-11-22T09:00:00Z",
             author="circus"),
    ])  # fmt: skip
    assert not ask(store, "アクロンはどの州に位置しているの?", as_of=AT).found


def test_a_number_gap_wants_a_number_of_the_asked_kind():
    from ima.answer.compose import GAP_FILLED, GAP_UNITLESS

    apollo = understand("アポロ16号の予備搭乗員が乗るはずだったのは何号ですか?")
    assert apollo.gap == "number" and apollo.unit == "号"
    assert fills(apollo, "予備搭乗員は19号に乗る予定だった。") == GAP_FILLED
    assert fills(apollo, "予備搭乗員は1970年に選ばれた。") == GAP_UNITLESS  # a digit, not a 号
    assert fills(apollo, "アポロ16号の予備搭乗員が選ばれた。") < GAP_FILLED  # the question's own
    people = understand("何人が参加しましたか?")
    assert fills(people, "大会には三百人が参加した。") == GAP_FILLED
    volume = understand("単行本の第何巻で通算100巻になったの?")
    assert volume.unit == "巻" and fills(volume, "第6巻で通算100巻を達成した。") == GAP_FILLED
    rescued = understand("How many passengers were rescued from the ferry?")
    assert rescued.unit == "passengers"
    assert fills(rescued, "Coast guards rescued 42 stranded passengers overnight.") == GAP_FILLED
    assert fills(rescued, "The ferry left port at 9 with its passengers.") == GAP_UNITLESS


def test_the_sentence_with_a_number_of_the_asked_kind_leads(store):
    feed(store, [
        post("year", "The Apollo program's crewed test flight was rescheduled in 1968 after "
             "the fire.", "2026-11-22T09:00:00Z", author="history"),
        post("mission", "The Apollo program's crewed test flight was meant to be mission 8 "
             "before plans changed.", "2026-11-22T08:00:00Z", author="space_desk"),
    ])  # fmt: skip
    answer = ask(store, "Which mission number was the Apollo program's crewed test flight?",
                 as_of=AT)  # fmt: skip
    assert answer.found and cited_ids(answer)[0] == "test:year"  # no unit asked: newest
    feed(store, [
        post("seats", "Parliament's new session opened on 4 March; the ruling party holds "
             "212 seats.", "2026-11-22T07:00:00Z", author="politics_desk"),
        post("date", "Parliament's new session opened on 4 March with the ruling party "
             "in charge.", "2026-11-22T10:00:00Z", author="wire"),
    ])  # fmt: skip
    answer = ask(store, "How many seats does the ruling party hold in parliament's new "
                 "session?", as_of=AT)  # fmt: skip
    assert answer.found and cited_ids(answer)[0] == "test:seats" and "212 seats" in answer.text
    assert_verified(answer)


def test_a_katakana_name_ending_in_a_kanji_is_one_name_and_must_be_there(store):
    tsubasa = understand("キャプテン翼の作者は?")
    assert "キャプテン翼" in tsubasa.words and frozenset({"キャプテン", "翼"}) in tsubasa.names
    feed(store, [
        post("harlock", "『キャプテンハーロック』の作者は松本零士である。", "2026-11-22T09:00:00Z",
             author="manga_a"),
        post("captain", "チームのキャプテンが作者として本を出した。", "2026-11-22T09:00:00Z",
             author="sports_b"),
    ])  # fmt: skip
    assert not ask(store, "キャプテン翼の作者は?", as_of=AT).found  # 翼 is the name's own
    feed(store, [
        post("tsubasa", "『キャプテン翼』は、高橋陽一による日本の漫画作品。作者の代表作である。",
             "2026-11-22T08:00:00Z", author="manga_c"),
    ])  # fmt: skip
    answer = ask(store, "キャプテン翼の作者は?", as_of=AT)
    assert cited_ids(answer)[0] == "test:tsubasa" and "高橋陽一" in answer.text
    assert_verified(answer)


def test_the_passage_holding_the_key_words_together_leads(store):
    from ima.answer.compose import together

    crewed = understand("有人試験飛行であるはずだったのは何号でしたか?")
    whole = together(crewed, "当初は8号で行われるはずだった有人試験飛行を9号に延期した。")
    assert whole > together(crewed, "有人飛行の前に、各種試験が行われた。")
    question = "フランス革命後のフランス社会は、どのような政治体制により弾圧されていたの?"
    assert understand(question).gap == ""  # a kind of regime, not a name
    feed(store, [
        post("met", "1789年、フーリエはパリでフランス革命に遭遇した。彼は政治的弾圧を受けた。",
             "2026-11-22T09:00:00Z", author="biography"),
        post("terror", "フランス革命後の恐怖政治によって、多くの科学者が処刑された。",
             "2026-11-22T09:00:00Z", author="history"),
    ])  # fmt: skip
    answer = ask(store, question, as_of=AT)
    assert cited_ids(answer)[0] == "test:terror" and "恐怖政治" in answer.text.splitlines()[0]
    assert_verified(answer)
