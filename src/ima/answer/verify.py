"""Citation checking: every `[n]` must point at a given post that says what is claimed.

Used on every answer an LLM writes (and by `ima eval` on every answer). A sentence
carrying `[n]` is checked against post n (and any others it cites): the post must
exist among those given and be created at or before `as_of`; quoted text (“…”,
「…」, "…") must be the post's own words; unquoted claims must have most of their
key words and every number in the cited posts. A sentence without a citation may
carry voice, not facts: no numbers, and not mostly the posts' own words.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime

from ima.post import Post
from ima.text import analysis, sentences
from ima.text.question import STOP_WORDS

_MARKER = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_LEADING_MARKERS = re.compile(r"^\s*(?:\[\d+(?:\s*,\s*\d+)*\][\s.。]*)+")
_QUOTED = re.compile(r"“([^”]+)”|「([^」]+)」|\"([^\"]+)\"")
_CLOCK = re.compile(
    r"(?:\b[A-Z][a-z]{2} \d{1,2}, |\d{1,2}月\d{1,2}日 ?)?\b(?P<hm>\d{1,2}:\d{2}) ?UTC"
)
_NUMBER = re.compile(r"\d+(?:[.:,]\d+)*")
MIN_KEY_WORDS_PRESENT = 0.6


#: quotation marks as `voice.quoted` may have swapped them, folded to one form each
_QUOTE_MARKS = str.maketrans({"“": '"', "”": '"', "「": "『", "」": "』"})


def _fold(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).lower().translate(_QUOTE_MARKS)
    return " ".join(folded.replace("…", " ").split())


def _sentences(text: str) -> list[str]:
    """`text` split into whole sentences ("Jan. 3" stays in one), a quotation kept
    whole: a quoted passage of several sentences is one claim, with its citation."""
    quotes: list[str] = []

    def hide(match: re.Match[str]) -> str:
        quotes.append(match.group())
        return f"\x00{len(quotes) - 1}\x00"

    hidden = _QUOTED.sub(hide, text)
    out: list[str] = []
    for piece in sentences.split(hidden):
        piece = re.sub(r"\x00(\d+)\x00", lambda m: quotes[int(m.group(1))], piece)
        # a citation after the sentence's end ("…沈没した。[1]", "It sank. [1]") is that
        # sentence's, not the next one's: else the claim is checked as uncited
        cited = _LEADING_MARKERS.match(piece)
        if cited and out:
            out[-1] = f"{out[-1].rstrip()} {cited.group().strip()}"
            piece = piece[cited.end() :]
        if piece.strip():
            out.append(piece)
    return out


def _content(text: str) -> set[str]:
    return {t for t in analysis.terms(text) if t not in STOP_WORDS}


def cited_numbers(text: str) -> list[int]:
    """The post numbers `text` cites, in order of first appearance."""
    numbers = [int(n) for group in _MARKER.findall(text) for n in group.split(",")]
    return list(dict.fromkeys(numbers))


def cites_any(text: str) -> bool:
    return bool(_MARKER.search(text))


def problems(text: str, posts: list[Post], as_of: datetime) -> list[str]:
    """Everything wrong with the citations of `text`; empty when every one holds."""
    found: list[str] = []
    # "As of 14:32 UTC" frames a statement with a post's time (or as_of's): not a claim
    framing = {p.created_at.strftime("%H:%M") for p in posts} | {as_of.strftime("%H:%M")}
    framing |= {t.lstrip("0") for t in framing}
    for sentence in _sentences(text):
        if not sentence.strip():
            continue
        markers = [int(n) for group in _MARKER.findall(sentence) for n in group.split(",")]
        unmarked = _MARKER.sub(" ", sentence)
        claim = _CLOCK.sub(lambda m: " " if m["hm"] in framing else m[0], unmarked)
        if not markers:
            if _NUMBER.search(claim):
                found.append(f"uncited sentence states a number: {sentence[:80]!r}")
            continue
        cited = []
        for n in markers:
            if not 1 <= n <= len(posts):
                found.append(f"[{n}] cites no given post")
                continue
            post = posts[n - 1]
            if post.created_at > as_of:
                found.append(f"[{n}] was created after as_of")
            cited.append(post)
        if not cited:
            continue
        source_text = _fold(" ".join(p.text for p in cited))
        quotes = [next(g for g in m.groups() if g) for m in _QUOTED.finditer(unmarked)]
        if quotes:
            for quote in quotes:
                if _fold(quote).rstrip(" .") not in source_text:
                    found.append(f"[{markers[0]}] does not say {quote[:60]!r}")
            continue
        key_words = _content(claim)
        source_terms = set(analysis.terms(source_text))
        if key_words and len(key_words & source_terms) / len(key_words) < MIN_KEY_WORDS_PRESENT:
            found.append(f"[{markers[0]}] does not support {sentence[:80]!r}")
        for number in _NUMBER.findall(claim):
            if number not in source_text:
                found.append(f"[{markers[0]}] does not contain the number {number}")
    return found
