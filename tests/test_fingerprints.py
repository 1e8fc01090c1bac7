"""Duplicate fingerprints (C, `ima/ingest/_fingerprints.c`) against their definition,
written here in Python as `ima` computed them before: same words, hashes, shingles,
MinHash and bands, for any text."""

from __future__ import annotations

import re

import numpy as np
import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from ima.ingest import dedup
from ima.ingest.dedup import MIN_TERMS, Fingerprint, fingerprints

_WORD = re.compile(r"[^\W_]+")


def _hash(text: str) -> int:
    return xxhash.xxh64_intdigest(text.encode("utf-8", "surrogatepass"))


def reference(text: str) -> Fingerprint | None:
    words = _WORD.findall(text.lower())
    if len(words) < MIN_TERMS:
        return None
    hashes = np.array([_hash(w) for w in words], dtype=np.uint64)
    with np.errstate(over="ignore"):
        shingles = (
            hashes[:-2] * np.uint64(dedup._MIX1)
            + hashes[1:-1] * np.uint64(dedup._MIX2)
            + hashes[2:]
        )
        minhash = (shingles[:, None] * dedup._MUL + dedup._ADD).min(axis=0)
        bands = (minhash.reshape(dedup._BANDS, dedup._ROWS) * dedup._BAND_MIX).sum(axis=1)
        bands += dedup._BAND_SALT
    return Fingerprint(
        _hash(" ".join(words)),
        _hash(" ".join(filter(str.isdigit, words))),
        shingles.tobytes(),
        tuple(bands.tolist()),
    )


EXAMPLES = [
    "",
    "good morning",  # too short: left alone
    "a b c d e f",
    "Officials confirm the old bridge on route nine is closed until Monday",
    "İstanbul ŞEHİR ünlü ÇAĞ x²³ ²³ ٣٤٥ 12 34 hello_world foo__bar ½ Ⅻ",  # case, digits
    "東京 で 地震 が あった 震度 5 強 です 2024 年",
    "score 2 1 at the end of the first half tonight",
    "supercalifragilisticexpialidocious " * 8,  # words and texts past 32 bytes
    "\ud800 lone surrogate words one two three four five",
    "e\u0301 cafe\u0301 naïve résumé déjà vu over and over again",  # combining marks
]


def test_examples_match_the_definition():
    assert fingerprints(EXAMPLES) == [reference(text) for text in EXAMPLES]
    assert fingerprints(EXAMPLES)[1] is None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=120), max_size=8))
def test_any_text_matches_the_definition(texts):
    assert fingerprints(texts) == [reference(text) for text in texts]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(["tokyo", "2-1", "東京", "İ", "x²", "__", "déjà", "ß", "..."]),
                min_size=5, max_size=40))  # fmt: skip
def test_texts_of_many_words_match_the_definition(words):
    text = " ".join(words)
    assert fingerprints([text]) == [reference(text)]


def test_anything_but_text_is_refused():
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        fingerprints(["fine text with enough words in it", b"bytes"])  # type: ignore[list-item]
