"""Search as tools, named as xAI names them: `x_keyword_search` (ima's X query language,
with `limit` and `mode` Latest or Top) and `x_semantic_search` (posts by meaning).

`ima` runs them itself against the store, inside the request's `as_of` and filters: a
tool input is untrusted (a model or a client wrote it), so its query is parsed like any
other, its limit clamped, and a bad one answers with an error the model can read.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ima.answer.ask import WIDEST_WINDOW
from ima.post import Post, iso
from ima.query import QuerySyntaxError
from ima.search import PostStore, search

KEYWORD = "x_keyword_search"
SEMANTIC = "x_semantic_search"
MAX_LIMIT = 20
MAX_QUERY_CHARS = 512  # as X's recent search
#: given the question, a window's bounds (µs) and a count: posts by similarity
Semantic = Callable[[str, int, int, int], list[Post]]

#: the tools as an OpenAI-compatible `tools` list, for a model that calls them itself
SCHEMAS: list[dict[str, Any]] = [
    {"type": "function", "function": {
        "name": KEYWORD,
        "description": "Search live posts with X's query syntax (words, \"phrases\", OR, "
                       "from:, -from:, since:, until:, lang:, min_faves:).",
        "parameters": {"type": "object", "required": ["query"], "properties": {
            "query": {"type": "string"},
            "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
            "mode": {"type": "string", "enum": ["Latest", "Top"]},
        }},
    }},
    {"type": "function", "function": {
        "name": SEMANTIC,
        "description": "Find live posts similar in meaning to a description.",
        "parameters": {"type": "object", "required": ["query"], "properties": {
            "query": {"type": "string"},
            "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
        }},
    }},
]  # fmt: skip


@dataclass(slots=True)
class ToolCall:
    """One search: what was asked, what came back (or why nothing did)."""

    name: str
    input: dict[str, Any]
    call_id: str = field(default_factory=lambda: f"call_{uuid.uuid4().hex[:24]}")
    posts: list[Post] = field(default_factory=list)
    error: str = ""


@dataclass(frozen=True, slots=True)
class Scope:
    """Where every search of a request may look: before `as_of`, after `since`, and
    within `restrict` (more query syntax: the request's handle and source filters)."""

    as_of: datetime
    since: datetime | None = None
    restrict: str = ""


def _limit(value: Any) -> int:
    try:
        return max(1, min(MAX_LIMIT, int(value)))
    except (TypeError, ValueError):
        return 10


def run(
    call: ToolCall, store: PostStore, scope: Scope, semantic: Semantic | None = None
) -> ToolCall:
    """Run `call` in `scope`, filling its posts (or its error)."""
    query = str(call.input.get("query", ""))[:MAX_QUERY_CHARS].strip()
    limit = _limit(call.input.get("limit", 10))
    if not query:
        call.error = "the query is empty"
    elif call.name == KEYWORD:
        since = f"since:{iso(scope.since)}" if scope.since else ""
        try:
            hits = search(store, f"({query}) {since} {scope.restrict}".strip(),
                          as_of=scope.as_of, k=limit).hits  # fmt: skip
        except QuerySyntaxError as exc:
            call.error = f"bad query: {exc}"
            return call
        call.posts = [h.post for h in hits]
        if call.input.get("mode") == "Latest":
            call.posts.sort(key=lambda p: p.created_at, reverse=True)
    elif call.name == SEMANTIC:
        if semantic is None or scope.restrict:
            call.error = "no vector index here" if semantic is None else "filters need keywords"
            return call
        low = scope.since or scope.as_of - WIDEST_WINDOW
        low = max(low, datetime(1970, 1, 1, tzinfo=UTC))
        call.posts = semantic(query, int(low.timestamp() * 1e6),
                              int(scope.as_of.timestamp() * 1e6), limit)[:limit]  # fmt: skip
    else:
        call.error = f"no tool named {call.name!r}"
    return call
