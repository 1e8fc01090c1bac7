"""Manual retweets and quotes: "RT @user: text" is someone else's post told again, not
new news, and so is a comment on one ("so true RT @user: text", “@user: text” wow).

Real tweet archives are full of them. Answers date such a post by what it copies and
trends count a retweet once per original, so one recognizer serves both.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# "RT @user:", "RT@user", "MT @user:", "via @user" at the start; nested RTs are peeled.
_PREFIX = re.compile(r"^\s*(?:RT|MT|rt)\s*:?\s*@([A-Za-z0-9_]{1,50})\s*[:：]?\s*")


class Retweet(NamedTuple):
    """The handle a manual retweet credits (the innermost one) and the words it copies."""

    handle: str
    text: str


def manual_retweet(text: str) -> Retweet | None:
    """The retweet inside `text`, or None when the post is the author's own words."""
    handle = None
    rest = text
    while match := _PREFIX.match(rest):
        handle, rest = match.group(1), rest[match.end() :]
    if handle is None:
        return None
    return Retweet(handle, rest.strip())


def own_words(text: str) -> str:
    """The text without its retweet prefixes: what a copy says, compared across copies."""
    retweet = manual_retweet(text)
    return text if retweet is None else retweet.text


# a retweet or quote after a comment ("wow RT @user: …", "QT @user: …"), or the quoted form
# “@user: …” (straight or curly quotation marks)
_INNER = re.compile(
    r"(?:^|\s)(?:RT|QT|MT)\s*@([A-Za-z0-9_]{1,50})\s*[:：]\s*(.+)$"
    r"|[\"“]@([A-Za-z0-9_]{1,50})\s*[:：]\s*(.+?)(?:[\"”]|$)",
    re.DOTALL,
)


def copied(text: str) -> Retweet | None:
    """What `text` copies of someone else's post: a manual retweet, or a quote with the
    author's comment beside it; None when it is all the author's own words."""
    retweet = manual_retweet(text)
    if retweet is not None:
        return retweet
    match = _INNER.search(text)
    if match is None:
        return None
    handle, words = (match.group(1), match.group(2)) if match.group(1) else match.group(3, 4)
    return Retweet(handle, words.strip())
