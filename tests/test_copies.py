from ima.copies import manual_retweet, own_words


def test_manual_retweet_credits_the_innermost_author() -> None:
    found = manual_retweet("RT @news: RT @quake_watch: M6.1 earthquake near Napa http://t.co/x")
    assert found is not None
    assert found.handle == "quake_watch"
    assert found.text == "M6.1 earthquake near Napa http://t.co/x"


def test_own_words_are_left_alone() -> None:
    assert manual_retweet("Art @ the museum today") is None
    assert own_words("Flooding on Main St") == "Flooding on Main St"
    assert own_words("RT@fire_dept Evacuate now") == "Evacuate now"
