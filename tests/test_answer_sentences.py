"""Whole sentences: abbreviations, initials, decimals, quotes and links in English, and
Japanese 。！？ with 「」, each kept inside its sentence (the cases the segmenter was
chosen on: see `ima.text.sentences`)."""

import pytest

from ima.text import sentences

CASES = [
    ("The raid led to the capture of President Nicolás Maduro on Jan. 3 in Caracas. "
     "Officials confirmed it.",
     ["The raid led to the capture of President Nicolás Maduro on Jan. 3 in Caracas.",
      "Officials confirmed it."]),
    ("Crowds gathered in St. Louis, Missouri, Fourth of July weekend. Fireworks followed.",
     ["Crowds gathered in St. Louis, Missouri, Fourth of July weekend.", "Fireworks followed."]),
    ("Shares rose 3.5% to $12.40 on Monday. Analysts were surprised.",
     ["Shares rose 3.5% to $12.40 on Monday.", "Analysts were surprised."]),
    ("J. K. Rowling and U.S. officials met Dr. Smith at 5 p.m. today. It went well.",
     ["J. K. Rowling and U.S. officials met Dr. Smith at 5 p.m. today.", "It went well."]),
    ('"We will win," said Mr. Jones. "Nobody doubts it."',
     ['"We will win," said Mr. Jones.', '"Nobody doubts it."']),
    ("Read more at https://example.com/a.b.html today. Then share it.",
     ["Read more at https://example.com/a.b.html today.", "Then share it."]),
    ("The U.K. prime minister resigned. Liz Truss replaces him.",
     ["The U.K. prime minister resigned.", "Liz Truss replaces him."]),
    ("Gov. Andrew Cuomo spoke on Sept. 12 about the storm. Schools closed.",
     ["Gov. Andrew Cuomo spoke on Sept. 12 about the storm.", "Schools closed."]),
    ("The Lakers won 110-102! LeBron James scored 40.",
     ["The Lakers won 110-102!", "LeBron James scored 40."]),
    ("Is it over? Yes it is.", ["Is it over?", "Yes it is."]),
    ("Apple Inc. reported record sales. The stock rose.",
     ["Apple Inc. reported record sales.", "The stock rose."]),
    ("He lives at No. 10 Downing St. with his family.",
     ["He lives at No. 10 Downing St. with his family."]),
    ("The vote was 5 vs. 4 in the Supreme Court. Justice Roberts wrote it.",
     ["The vote was 5 vs. 4 in the Supreme Court.", "Justice Roberts wrote it."]),
    ("東海道新幹線は9時18分に運転を再開しました。まだ遅れがあります。",
     ["東海道新幹線は9時18分に運転を再開しました。", "まだ遅れがあります。"]),
    ("「今日は休みます。」と社長が言った。驚きました！",
     ["「今日は休みます。」と社長が言った。", "驚きました！"]),
    ("地震ですか？大丈夫です。", ["地震ですか？", "大丈夫です。"]),
    ("気温は3.5度です。寒い！", ["気温は3.5度です。", "寒い！"]),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_sentences_are_whole(text, expected):
    assert list(sentences.split(text)) == expected


def test_paragraphs_split_first_and_long_ones_are_bounded():
    article = "Storm hits the coast\n\nThe storm reached land at dawn. Power is out.\n"
    assert sentences.split(article) == (
        "Storm hits the coast",
        "The storm reached land at dawn.",
        "Power is out.",
    )
    huge = "word " * 3000
    assert all(len(s) <= sentences.MAX_PARAGRAPH_CHARS for s in sentences.split(huge))
