"""What a search request to a partition and its answer look like on the wire.

JSON, zlib-compressed (an answer carries up to a few thousand posts; NATS caps a
message at 1 MB by default). A plan travels as nested lists; a post as its flat
tuple (`ima.post.flatten`) with its position and indexed text. Both sides bound
what they decode: a request's depth and sizes, an answer's inflated bytes.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import Any

from ima.errors import BadInput
from ima.post import flatten, unflatten
from ima.store import AllOf, AnyOf, Plan, Statistics, StoredPost, Terms

MAX_LIMIT = 1000
MAX_TERMS = 256
MAX_IDS = 100
MAX_DEPTH = 32
MAX_INFLATED = 64 * 1024 * 1024
_FIELDS = frozenset({"text", "tags", "mentions", "author", "lang", "source"})


def pack(value: Any) -> bytes:
    return zlib.compress(json.dumps(value, separators=(",", ":")).encode(), 1)


def unpack(data: bytes) -> Any:
    """Inflate and parse, refusing anything that would inflate past `MAX_INFLATED`."""
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(data, MAX_INFLATED)
    except zlib.error as exc:
        raise BadInput("not a compressed message") from exc
    if inflater.unconsumed_tail:
        raise BadInput("message inflates past the limit")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BadInput("not JSON") from exc


def plan_out(node: Plan | None) -> Any:
    if node is None:
        return None
    if isinstance(node, Terms):
        return ["t", node.field, list(node.tokens)]
    if isinstance(node, AnyOf):
        return ["any", [plan_out(c) for c in node.children]]
    return ["all", [plan_out(c) for c in node.must], [plan_out(c) for c in node.must_not]]


def plan_in(value: Any, depth: int = 0) -> Plan | None:
    """The plan `plan_out` wrote; BadInput for anything else."""
    if value is None and depth == 0:
        return None
    if depth > MAX_DEPTH or not isinstance(value, list) or not value:
        raise BadInput("malformed plan")
    kind = value[0]
    if kind == "t" and len(value) == 3 and value[1] in _FIELDS and isinstance(value[2], list):
        tokens = value[2]
        if not tokens or len(tokens) > MAX_TERMS or not all(isinstance(t, str) for t in tokens):
            raise BadInput("malformed terms")
        return Terms(value[1], tuple(tokens))
    if kind == "any" and len(value) == 2 and isinstance(value[1], list):
        return AnyOf(tuple(_child(c, depth) for c in value[1]))
    if kind == "all" and len(value) == 3 and isinstance(value[1], list):
        return AllOf(
            tuple(_child(c, depth) for c in value[1]), tuple(_child(c, depth) for c in value[2])
        )
    raise BadInput("malformed plan")


def _child(value: Any, depth: int) -> Plan:
    node = plan_in(value, depth + 1)
    if node is None:
        raise BadInput("malformed plan")
    return node


@dataclass(frozen=True, slots=True)
class Ask:
    """A request to one partition. With `stats_only`, the first round: its statistics for
    `terms` (every partition counts towards the collection's). Else the second: the
    store's `candidates` arguments, with `stats` the collection's, summed by the root.
    With `ids`, neither: the posts stored under those ids (a lookup, not a search)."""

    plan: Plan | None
    low_us: int | None
    high_us: int
    limit: int
    terms: tuple[str, ...]
    stats_only: bool = False
    stats: Statistics | None = None
    ids: tuple[str, ...] = ()

    def encode(self) -> bytes:
        return pack(
            {
                "plan": plan_out(self.plan),
                "low": self.low_us,
                "high": self.high_us,
                "limit": self.limit,
                "terms": list(self.terms),
                "stats": self.stats_only,
                "global": None if self.stats is None else self.stats.as_json(),
                "ids": list(self.ids),
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> Ask:
        body = unpack(data)
        if not isinstance(body, dict):
            raise BadInput("malformed request")
        low, high, limit, terms = (body.get(k) for k in ("low", "high", "limit", "terms"))
        if not (low is None or type(low) is int) or type(high) is not int:
            raise BadInput("malformed time range")
        if type(limit) is not int or not 1 <= limit <= MAX_LIMIT:
            raise BadInput(f"limit must be 1..{MAX_LIMIT}")
        if not isinstance(terms, list) or len(terms) > MAX_TERMS:
            raise BadInput("malformed terms")
        if not all(isinstance(t, str) and len(t) <= 256 for t in terms):
            raise BadInput("malformed terms")
        ids = body.get("ids", [])
        if not isinstance(ids, list) or len(ids) > MAX_IDS:
            raise BadInput("malformed ids")
        if not all(isinstance(i, str) and len(i) <= 300 for i in ids):
            raise BadInput("malformed ids")
        stats = body.get("global")
        return cls(
            plan_in(body.get("plan")),
            low,
            high,
            limit,
            tuple(terms),
            bool(body.get("stats")),
            None if stats is None else stats_in(stats),
            tuple(ids),
        )


def _count(value: Any) -> int:
    if type(value) is not int or not 0 <= value < 2**62:
        raise BadInput("malformed statistics")
    return value


def stats_in(body: Any) -> Statistics:
    """Statistics as `Statistics.as_json` wrote them; BadInput for anything else."""
    if not isinstance(body, dict) or not isinstance(body.get("doc_freq"), dict):
        raise BadInput("malformed statistics")
    doc_freq = body["doc_freq"]
    if len(doc_freq) > MAX_TERMS or not all(isinstance(t, str) for t in doc_freq):
        raise BadInput("malformed statistics")
    return Statistics(
        _count(body.get("doc_count")),
        {t: _count(n) for t, n in doc_freq.items()},
        _count(body.get("length_docs")),
        _count(body.get("length_terms")),
    )


def post_out(sp: StoredPost, base: int) -> list:
    """A stored post, its log position shifted by `base` (so positions are unique and
    ordered across partitions the way the stream ordered the posts)."""
    return [base + sp.seq, *flatten(sp.post), sp.indexed_text]


def post_in(row: list) -> StoredPost:
    return StoredPost(seq=row[0], post=unflatten(row[1:-1]), indexed_text=row[-1])
