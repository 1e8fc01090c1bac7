"""English text to the IPA phonemes Piper voices were trained on, without eSpeak (GPL).

Words are looked up in CMUdict (BSD; the copy the `pocketsphinx` wheel ships), mapped
from ARPAbet to eSpeak's IPA; numbers are read out, and unknown words are spelled.
The dictionary has no stress marks, so the first full vowel of a longer word takes
the stress: rougher than eSpeak, but intelligible (see the round-trip test).
"""

from __future__ import annotations

import functools
import importlib.resources
import re

_IPA = {
    "AA": "ɑː", "AE": "æ", "AO": "ɔː", "AW": "aʊ", "AY": "aɪ", "EH": "ɛ", "ER": "ɚ",
    "EY": "eɪ", "IH": "ɪ", "IY": "iː", "OW": "oʊ", "OY": "ɔɪ", "UH": "ʊ", "UW": "uː",
    "B": "b", "CH": "tʃ", "D": "d", "DH": "ð", "F": "f", "G": "ɡ", "HH": "h", "JH": "dʒ",
    "K": "k", "L": "l", "M": "m", "N": "n", "NG": "ŋ", "P": "p", "R": "ɹ", "S": "s",
    "SH": "ʃ", "T": "t", "TH": "θ", "V": "v", "W": "w", "Y": "j", "Z": "z", "ZH": "ʒ",
}  # fmt: skip
_VOWELS = frozenset("AA AE AH AO AW AY EH ER EY IH IY OW OY UH UW".split())
_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
         "fourteen fifteen sixteen seventeen eighteen nineteen").split()  # fmt: skip
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred"))
_TOKEN = re.compile(r"\d+|[a-z]+(?:'[a-z]+)?|[,.!?;:]")


@functools.cache
def dictionary() -> dict[str, tuple[str, ...]]:
    """CMUdict: word to ARPAbet phones (the first pronunciation of each word)."""
    path = importlib.resources.files("pocketsphinx") / "model" / "en-us" / "cmudict-en-us.dict"
    words: dict[str, tuple[str, ...]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        word, _, phones = line.partition(" ")
        if "(" not in word:
            words[word] = tuple(phones.split())
    return words


def number_words(n: int) -> str:
    """How a whole number below a trillion is read aloud."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    for size, name in _SCALES:
        if n >= size:
            rest = n % size
            return f"{number_words(n // size)} {name}" + (f" {number_words(rest)}" if rest else "")
    raise ValueError(n)


def _word(word: str) -> str:
    phones = dictionary().get(word)
    if phones is None and word.endswith("'s"):
        base = dictionary().get(word[:-2])
        phones = None if base is None else (*base, "Z")
    if phones is None:
        return " ".join(_word(part) for part in _compound(word))
    vowels = [p for p in phones if p in _VOWELS]
    # the stress: the first full vowel, else the first schwa; one-vowel words get none
    stress = next((i for i, p in enumerate(phones) if p in _VOWELS - {"AH"}), None)
    if stress is None:
        stress = phones.index("AH") if "AH" in phones else -1
    out = []
    for i, phone in enumerate(phones):
        if i == stress and len(vowels) > 1:
            out.append("ˈ")
        out.append(("ʌ" if i == stress else "ə") if phone == "AH" else _IPA[phone])
    return "".join(out)


def _compound(word: str) -> list[str]:
    """A word the dictionary lacks, as two known words (`citynews`), else its letters."""
    for cut in range(len(word) - 3, 2, -1):
        if word[:cut] in dictionary() and word[cut:] in dictionary():
            return [word[:cut], word[cut:]]
    return [letter for letter in word if letter in dictionary()]


def english(text: str) -> list[str]:
    """IPA phonemes per sentence, with punctuation kept for the voice's pauses."""
    tokens = []
    for token in _TOKEN.findall(text.lower().replace("’", "'")):
        if token.isdigit():
            tokens.extend(number_words(int(token[:12])).split())
        else:
            tokens.append(token)
    sentences, current = [], ""
    for token in tokens:
        if token in ",.!?;:":
            current = current.rstrip() + token + " "
            if token in ".!?":
                sentences.append(current.strip())
                current = ""
        elif said := _word(token):
            current += said + " "
    if current.strip():
        sentences.append(current.strip())
    return sentences
