"""An answer as it is read aloud: the same text, with each citation marker `[n]` said
as "according to @handle" (「@handleによると」 in Japanese), and links left out."""

from __future__ import annotations

import re

from ima.answer.model import Answer

_MARKER = re.compile(r"\s*\[(\d+(?:\s*,\s*\d+)*)\]")  # as `ima.answer.verify` checks them
_LINK = re.compile(r"https?://\S+")
_HOST = re.compile(r"\.(bsky\.social|[a-z0-9-]+\.[a-z]{2,})$", re.IGNORECASE)


def handle(raw: str) -> str:
    """`@name` as it is said: a Bluesky or Mastodon host suffix dropped."""
    name = raw.lstrip("@").split("@")[0]
    return "@" + _HOST.sub("", name)


def speakable(answer: Answer) -> str:
    """The answer's text for the voice; the citations' meaning kept, their numbers gone."""
    handles = {c.number: handle(c.post.author.handle) for c in answer.citations}
    japanese = answer.language == "ja"

    def said(match: re.Match[str]) -> str:
        names = list(dict.fromkeys(handles[n] for n in map(int, match.group(1).split(","))
                                   if n in handles))  # fmt: skip
        if not names:
            return ""
        if japanese:
            return "（" + "、".join(names) + "によると）"
        return ", according to " + " and ".join(names)

    text = _MARKER.sub(said, _LINK.sub("", answer.text))
    return re.sub(r"\s{2,}", " ", text).strip()
