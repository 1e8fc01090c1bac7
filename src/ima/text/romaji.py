"""Japanese words in Latin letters, through MeCab's readings: English text spells Japanese
names as they sound (新幹線 → Shinkansen, 東京 → Tokyo, 大阪 → Osaka), so an English
question's "Shinkansen" is a word a Japanese post holds, and a Japanese question's 新幹線
one an English post holds. Both sides are folded alike (long vowels, macrons and m/n
before b/p spelled one way), since English writes 東京 as Tokyo, Tōkyō or Toukyou."""

from __future__ import annotations

import re
import unicodedata

import jaconv

MIN_LETTERS = 4  # a shorter reading (ka, sen) matches English words by chance

_NOT_LETTER = re.compile(r"[^a-z]")
_LONG = re.compile(r"([aeiou])\1+")


def fold(latin: str) -> str:
    """`latin` as readings are compared: lowercase letters, long vowels short."""
    plain = "".join(
        c for c in unicodedata.normalize("NFKD", latin.lower()) if not unicodedata.combining(c)
    )
    plain = _NOT_LETTER.sub("", plain).replace("ou", "o")
    return _LONG.sub(r"\1", re.sub(r"m(?=[bp])", "n", plain))


def latin(kana: str) -> str:
    """A katakana reading in Latin letters, folded ("" when too short to tell apart)."""
    spelled = fold(jaconv.kana2alphabet(jaconv.kata2hira(kana.replace("ー", ""))))
    return spelled if len(spelled) >= MIN_LETTERS else ""
