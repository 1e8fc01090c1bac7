"""Who and where a story is about, from its posts' own capitalized names.

No model: a name is a run of capitalized words that is not a sentence's first word
alone, said in at least two of the story's posts. A name after "in", "at", "near"
(or their Spanish, Portuguese, Italian, French and Tagalog kin) is a place; one in
capitals (USGS, NDRF) or with a word like "Police" or "Ministry" is an organization;
two or three words otherwise are a person. Rough, and said to be: each list only
holds what the posts wrote.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from ima.text.copies import own_words
from ima.trends.items import STOP

_NAME = re.compile(
    r"(?:(?<=\s)|^)(#?[A-Z][\w’'-]*(?:\s+(?:de|del|of|la|di|da|do)?\s*[A-Z][\w’'-]*){0,3})"
)
_PLACE_BEFORE = frozenset("in at near from en cerca desde em perto di vicino à près sa".split())
_ORG_WORDS = frozenset(
    """police ministry department agency army navy government gobierno red cross news
    university council service services authority office corps guard ndrf usgs un who
    unicef ngo bank company airlines reuters bbc cnn""".split()
)
_LINKS = re.compile(r"https?://\S+|@\w+")
MAX_EACH = 5


def _kind(name: str, before: str) -> str | None:
    words = name.lstrip("#").split()
    lowered = [w.lower() for w in words]
    if all(w in STOP for w in lowered):
        return None
    if (name.lstrip("#").isupper() and len(name) >= 2) or any(w in _ORG_WORDS for w in lowered):
        return "organizations"
    if before in _PLACE_BEFORE:
        return "places"
    if 2 <= len(words) <= 3:
        return "people"
    return None


def entities(texts: Iterable[str]) -> dict[str, list[str]]:
    """People, organizations and places named in at least two of `texts`, most named
    first. A name said once as a place ("in Napa Valley") is a place everywhere."""
    posts: Counter[str] = Counter()
    kinds: dict[str, set[str]] = {}
    for text in texts:
        found: set[str] = set()
        body = _LINKS.sub(" ", own_words(text))
        for match in _NAME.finditer(body):
            name = match.group(1).rstrip("’'-")
            head = body[: match.start()].rstrip()
            before = head.rsplit(None, 1)[-1].lower() if head else ""
            first = not head or head.endswith((".", "!", "?", ":"))
            if first and " " not in name and not name.isupper():
                continue  # a sentence's first word: capitalized by grammar
            kind = _kind(name, before)
            if kind:
                name = name.lstrip("#")
                kinds.setdefault(name, set()).add(kind)
                found.add(name)
        posts.update(found)
    out: dict[str, list[str]] = {"people": [], "organizations": [], "places": []}
    for name, count in posts.most_common():
        if count < 2:
            break
        kind = next(k for k in ("places", "organizations", "people") if k in kinds[name])
        if len(out[kind]) < MAX_EACH:
            out[kind].append(name)
    return out
