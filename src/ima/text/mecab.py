"""MeCab (fugashi with unidic-lite), for Japanese: one tagger of each kind per thread,
since taggers are not thread-safe. `wakati` only splits words, fast: the index's
terms. `tagger` also gives parts of speech and readings: question understanding and
romaji need them, at about half the speed, so the index does not use it."""

from __future__ import annotations

import threading

import fugashi

_local = threading.local()


def wakati() -> fugashi.Tagger:
    tagger = getattr(_local, "wakati", None)
    if tagger is None:
        tagger = _local.wakati = fugashi.Tagger("-Owakati")
    return tagger


def tagger() -> fugashi.Tagger:
    tagger = getattr(_local, "tagger", None)
    if tagger is None:
        tagger = _local.tagger = fugashi.Tagger()
    return tagger
