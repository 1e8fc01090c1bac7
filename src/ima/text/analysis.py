"""Text analysis shared by indexing and querying, so both see the same terms.

Text is NFKC-normalized (full-width → ASCII, half-width kana → kana), links are
dropped, and runs of Japanese/Chinese script are segmented into words by MeCab
(fugashi + unidic-lite) so that a two-character word like 地震 is a term of its
own (`prepare`). Its terms are what tantivy's `ANALYZER` below makes of that: it
splits on non-alphanumerics, lowercases and applies English Snowball stemming
(`earthquakes` → `earthquak`). Ingest, queries and the fresh segment all take terms
from this one analyzer (`terms`), and the lexical index is given them as they are, so
indexed, fresh and query terms are identical.
fugashi was chosen over sudachipy by measurement: 1.6M vs 1.0M tokens/s on this
project's reference machine (see README), with a smaller dictionary.
"""

from __future__ import annotations

import re
import unicodedata

import tantivy

from ima.text import mecab

ANALYZER = (
    tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
    .filter(tantivy.Filter.remove_long(40))
    .filter(tantivy.Filter.lowercase())
    .filter(tantivy.Filter.stemmer("english"))
    .build()
)

_CJK_RUN = re.compile(r"[\u3005\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_URL = re.compile(r"https?://\S+", re.IGNORECASE)


def fold(text: str) -> str:
    """The form exact-match fields (tags, handles) are compared in: NFKC, lowercase."""
    return unicodedata.normalize("NFKC", text).lower()


def _segment(match: re.Match[str]) -> str:
    return " " + mecab.wakati().parse(match.group()) + " "


def prepare(text: str) -> str:
    """The text as the index sees it: normalized, link-free, Japanese split into words."""
    text = unicodedata.normalize("NFKC", text)
    if "://" in text:
        text = _URL.sub(" ", text)
    return _CJK_RUN.sub(_segment, text)


def terms(text: str) -> list[str]:
    """The ordered terms of `text` (raw or prepared); list positions are phrase positions."""
    return ANALYZER.analyze(prepare(text))


def terms_of_prepared(prepared: str) -> list[str]:
    return ANALYZER.analyze(prepared)
