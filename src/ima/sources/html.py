"""HTML fragments (Mastodon statuses, feed summaries) → plain text for posts."""

from __future__ import annotations

import re
from html.parser import HTMLParser

_BREAKS = frozenset(("br", "p", "div", "li", "blockquote", "h1", "h2", "h3", "h4", "tr"))
_SKIP = frozenset(("script", "style", "template"))
_SPACES = re.compile(r"[ \t\u00a0]+")
_BLANK_LINES = re.compile(r"\n{3,}")


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skipping += 1
        elif tag in _BREAKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BREAKS and tag != "br":
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def to_text(fragment: str) -> str:
    """Visible text of an HTML fragment: tags dropped, entities decoded, paragraphs kept
    as line breaks. Never executes or keeps markup: the result is plain text."""
    if "<" not in fragment and "&" not in fragment:
        return fragment.strip()
    parser = _Text()
    parser.feed(fragment)
    parser.close()
    text = _SPACES.sub(" ", "".join(parser.parts))
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()
