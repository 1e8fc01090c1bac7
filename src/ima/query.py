"""The search language X users know, parsed into a small tree.

    words  "exact phrase"  a OR b  -word  -"phrase"  (grouping)  #tag  @mention
    from:handle  -from:handle  lang:ja  source:bluesky
    since:2026-11-01  until:2026-11-02T12:00Z  min_faves:10  min_reposts:5

Words next to each other must all match; `OR` (upper case) binds tighter than that
juxtaposition, as on X. `since:` is inclusive and `until:` exclusive; a bare date
means midnight UTC. Time and engagement operators apply to the whole query, so
they cannot be negated or put under OR. Errors name what is wrong and the column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ima.errors import BadInput
from ima.ingest.normalize import EARLIEST, MAX_FUTURE_SKEW, RecordError, parse_instant
from ima.post import to_us

MAX_QUERY_CHARS = 1_000
MAX_CLAUSES = 64

_MATCH_OPERATORS = {"from": "author", "lang": "lang", "source": "source"}
_GLOBAL_OPERATORS = ("since", "until", "min_faves", "min_reposts")
_OPERATOR = re.compile(r"([A-Za-z_]+):(.*)", re.DOTALL)


class QuerySyntaxError(BadInput):
    """An invalid query; `column` is 1-based, pointing at the offending token."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(f"{message} (at column {column})")
        self.column = column


@dataclass(frozen=True, slots=True)
class Term:
    """Text to match: `word` or `phrase` in the post text, `tag` or `mention` exactly."""

    kind: str
    text: str


@dataclass(frozen=True, slots=True)
class Match:
    """An exact field match: `author`, `lang` or `source`."""

    field: str
    value: str


@dataclass(frozen=True, slots=True)
class Not:
    child: Node


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Node, ...]


Node = Term | Match | Not | And | Or


@dataclass(slots=True)
class Query:
    """A parsed query: a match tree (None matches everything) and whole-query filters."""

    root: Node | None = None
    since_us: int | None = None
    until_us: int | None = None
    min_faves: int = 0
    min_reposts: int = 0
    source_text: str = ""
    positive_terms: list[Term] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # word, phrase, lparen, rparen, or
    text: str
    column: int
    negated: bool = False


def _lex(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        column = i + 1
        negated = ch == "-" and i + 1 < n and not text[i + 1].isspace()
        if negated:
            i += 1
            ch = text[i]
        if ch in '"“”':
            end = min((j for j in (text.find(q, i + 1) for q in '"“”') if j != -1), default=-1)
            if end == -1:
                raise QuerySyntaxError("unclosed quote", column)
            tokens.append(_Token("phrase", text[i + 1 : end], column, negated))
            i = end + 1
        elif ch in "()":
            if negated and ch == ")":
                raise QuerySyntaxError("'-' must come before a word, phrase or group", column)
            tokens.append(_Token("lparen" if ch == "(" else "rparen", ch, column, negated))
            i += 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in '()"“”':
                j += 1
            word = text[i:j]
            kind = "or" if word == "OR" and not negated else "word"
            tokens.append(_Token(kind, word, column, negated))
            i = j
    return tokens


class _Parser:
    def __init__(self, tokens: list[_Token], query: Query) -> None:
        self.tokens = tokens
        self.pos = 0
        self.query = query
        self.clauses = 0
        self.punctuation: list[_Token] = []

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def parse_and(self, depth: int) -> Node | None:
        children: list[Node] = []
        while (token := self.peek()) is not None and token.kind != "rparen":
            if token.kind == "or":
                raise QuerySyntaxError("OR needs a term on both sides", token.column)
            node = self.parse_or(depth)
            if node is not None:
                children.append(node)
        if not children:
            return None
        return children[0] if len(children) == 1 else And(tuple(children))

    def parse_or(self, depth: int) -> Node | None:
        first = self.parse_unary(depth, under_or=False)
        alternatives = [first]
        while (token := self.peek()) is not None and token.kind == "or":
            self.pos += 1
            nxt = self.peek()
            if nxt is None or nxt.kind in ("or", "rparen"):
                raise QuerySyntaxError("OR needs a term on both sides", token.column)
            if first is None and len(alternatives) == 1:
                raise QuerySyntaxError("OR cannot join a time or engagement filter", token.column)
            node = self.parse_unary(depth, under_or=True)
            alternatives.append(node)
        if len(alternatives) == 1:
            return first
        return Or(tuple(node for node in alternatives if node is not None))

    def parse_unary(self, depth: int, under_or: bool) -> Node | None:
        token = self.tokens[self.pos]
        self.pos += 1
        self.clauses += 1
        if self.clauses > MAX_CLAUSES:
            raise QuerySyntaxError(f"more than {MAX_CLAUSES} clauses", token.column)
        if token.kind == "lparen":
            if depth >= 8:
                raise QuerySyntaxError("groups nested more than 8 deep", token.column)
            inner = self.parse_and(depth + 1)
            closing = self.peek()
            if closing is None or closing.kind != "rparen":
                raise QuerySyntaxError("unclosed '('", token.column)
            self.pos += 1
            if inner is None:
                raise QuerySyntaxError("empty group", token.column)
            return Not(inner) if token.negated else inner
        if token.kind == "phrase":
            if not token.text.strip():
                raise QuerySyntaxError("empty phrase", token.column)
            node: Node = Term("phrase", token.text)
        else:
            node_or_none = self.parse_word(token, under_or)
            if node_or_none is None:
                return None
            node = node_or_none
        if token.negated:
            return Not(node)
        if isinstance(node, Term):
            self.query.positive_terms.append(node)
        return node

    def parse_word(self, token: _Token, under_or: bool) -> Node | None:
        word = token.text
        op = _OPERATOR.fullmatch(word)
        if op is None or "://" in word:
            if word.startswith(("#", "＃")) and len(word) > 1:
                return Term("tag", word[1:].lower())
            if word.startswith("@") and len(word) > 1:
                return Term("mention", word[1:].lower())
            if not any(ch.isalnum() for ch in word):
                self.punctuation.append(token)  # nothing in it can match: not a filter
                return None
            return Term("word", word)
        name, value = op.group(1).lower(), op.group(2)
        if not value:
            raise QuerySyntaxError(f"{name}: needs a value", token.column)
        if name in _MATCH_OPERATORS:
            return Match(_MATCH_OPERATORS[name], value.lstrip("@").lower())
        if name not in _GLOBAL_OPERATORS:
            known = ", ".join(f"{o}:" for o in [*_MATCH_OPERATORS, *_GLOBAL_OPERATORS])
            raise QuerySyntaxError(f"unknown operator '{name}:' (known: {known})", token.column)
        if token.negated or under_or:
            raise QuerySyntaxError(f"{name}: applies to the whole query", token.column)
        self.apply_global(name, value, token.column)
        return None

    def apply_global(self, name: str, value: str, column: int) -> None:
        if name in ("min_faves", "min_reposts"):
            if not value.isdigit():
                raise QuerySyntaxError(f"{name}: expects a whole number, got {value!r}", column)
            setattr(self.query, name, int(value))
            return
        try:
            instant = parse_instant(value, name)
        except RecordError as exc:
            raise QuerySyntaxError(str(exc), column) from None
        if name == "since":
            self.query.since_us = to_us(instant)
        else:
            self.query.until_us = to_us(instant)


def parse(text: str) -> Query:
    """Parse `text`; raises `QuerySyntaxError` naming the problem and its column."""
    if len(text) > MAX_QUERY_CHARS:
        raise QuerySyntaxError(f"query longer than {MAX_QUERY_CHARS} characters", 1)
    query = Query(source_text=text)
    parser = _Parser(_lex(text), query)
    query.root = parser.parse_and(0)
    leftover = parser.peek()
    if leftover is not None:
        raise QuerySyntaxError("')' without a matching '('", leftover.column)
    filtered = query.since_us is not None or query.until_us is not None
    filtered = filtered or query.min_faves > 0 or query.min_reposts > 0
    if query.root is None and parser.punctuation and not filtered:
        raise QuerySyntaxError("no words to search for", parser.punctuation[0].column)
    if (
        query.since_us is not None
        and query.until_us is not None
        and (query.since_us >= query.until_us)
    ):
        raise QuerySyntaxError("since: must be before until:", 1)
    return query


def clamp_instant(instant: datetime) -> datetime:
    """`instant` moved into the span any post can have: not before 1970, not after a
    little past now. Nothing lies outside it, so the answer is the same, and no later
    arithmetic on the instant (a window before it, hours to scan) can overflow or run
    over millennia."""
    latest = datetime.now(UTC) + MAX_FUTURE_SKEW
    return min(max(instant, EARLIEST), latest)


def parse_as_of(value: str | None) -> datetime | None:
    """`--as-of` and `as_of` values: ISO 8601 or epoch seconds, UTC when no zone;
    clamped into the span posts can have (`clamp_instant`)."""
    if value is None:
        return None
    try:
        return clamp_instant(parse_instant(value, "as_of"))
    except RecordError as exc:  # a record's error names a kind to count; this is a request's
        raise BadInput(str(exc)) from None
