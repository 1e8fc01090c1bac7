from ima.text.copies import copied, manual_retweet, own_words


def test_manual_retweet_credits_the_innermost_author() -> None:
    found = manual_retweet("RT @news: RT @quake_watch: M6.1 earthquake near Napa http://t.co/x")
    assert found is not None
    assert found.handle == "quake_watch"
    assert found.text == "M6.1 earthquake near Napa http://t.co/x"


def test_own_words_are_left_alone() -> None:
    assert manual_retweet("Art @ the museum today") is None
    assert own_words("Flooding on Main St") == "Flooding on Main St"
    assert own_words("RT@fire_dept Evacuate now") == "Evacuate now"


def test_a_quote_beside_a_comment_is_copied_words() -> None:
    quote = copied('"@port_news: The ferry is cancelled." still true?— Ann (@ann)')
    assert quote is not None and quote.handle == "port_news"
    assert quote.text == "The ferry is cancelled."
    inner = copied("so true RT @news: The bridge is closed")
    assert inner is not None and inner.text == "The bridge is closed"
    assert copied("QT @x: hello world") == ("x", "hello world")
    assert copied("Art @ the museum") is None and copied("email me @ home: now") is None
