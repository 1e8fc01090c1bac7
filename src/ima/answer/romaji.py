"""Japanese words in Latin letters, through MeCab's readings: English text spells Japanese
names as they sound (新幹線 → Shinkansen, 東京 → Tokyo, 大阪 → Osaka), so an English
question's "Shinkansen" is a word a Japanese post holds. Both sides are folded alike
(long vowels, macrons and m/n before b/p spelled one way), since English writes 東京 as
Tokyo, Tōkyō or Toukyou."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import jaconv

from ima.answer.question import compounds

MIN_LETTERS = 4  # a shorter reading (ka, sen) matches English words by chance

_JAPANESE_RUN = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff\u3005]+")
_NOT_LETTER = re.compile(r"[^a-z]")
_LONG = re.compile(r"([aeiou])\1+")


def fold(latin: str) -> str:
    """`latin` as readings are compared: lowercase letters, long vowels short."""
    plain = "".join(
        c for c in unicodedata.normalize("NFKD", latin.lower()) if not unicodedata.combining(c)
    )
    plain = _NOT_LETTER.sub("", plain).replace("ou", "o")
    return _LONG.sub(r"\1", re.sub(r"m(?=[bp])", "n", plain))


@lru_cache(maxsize=1024)
def spelled(text: str) -> frozenset[str]:
    """The folded Latin spellings of `text`'s Japanese words (each compound noun)."""
    out = set()
    for run in _JAPANESE_RUN.finditer(unicodedata.normalize("NFKC", text)):
        for _, _, kana in compounds(run.group()):
            latin = fold(jaconv.kana2alphabet(jaconv.kata2hira(kana.replace("ー", ""))))
            if len(latin) >= MIN_LETTERS:
                out.add(latin)
    return frozenset(out)
