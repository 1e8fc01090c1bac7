"""The fresh segment: posts committed to the log but not yet to the lexical index.

As in Twitter's Earlybird, the newest posts are served from memory so that a post
is searchable the moment its batch is durable in the log, not when the index next
commits. A segment collects about one index-commit interval of posts; it is dropped
once the lexical index has committed past all of them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ima import analysis
from ima.store.plan import AnyOf, Plan, Terms

_FIELD_SEP = "\x01"


def facet(field: str, value: str) -> str:
    """One exact-match value of a post (`author`, `lang`, `source`, `tags`, `mentions`)."""
    return f"{field}{_FIELD_SEP}{value}"


def _key(field: str, token: str) -> str:
    return token if field == "text" else facet(field, token)


@dataclass(slots=True)
class FreshDoc:
    seq: int
    created_us: int
    text: str  # prepared text (`ima.analysis.prepare`)
    facets: list[str]  # see `facet`


class FreshSegment:
    """Posts committed to the log since about the last index commit, searchable in memory.

    The pipeline thread appends; searches extend the postings over whatever was
    appended since the last search (under a lock), so ingest pays nothing for
    postings that no search needs, and a search pays only for the new posts.
    """

    def __init__(self) -> None:
        self.docs: list[FreshDoc] = []
        self.max_seq = 0
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._terms: list[list[str]] = []
        self.postings: dict[str, list[int]] = {}

    def append(self, docs: Sequence[FreshDoc]) -> None:
        self.docs.extend(docs)
        self.max_seq = max(self.max_seq, docs[-1].seq)

    def _catch_up(self) -> int:
        """Index appended docs; returns how many docs the postings cover."""
        with self._lock:
            postings, doc_terms = self.postings, self._terms
            for i in range(len(doc_terms), len(self.docs)):
                doc = self.docs[i]
                terms = analysis.terms_of_prepared(doc.text)
                doc_terms.append(terms)
                for token in set(terms):
                    postings.setdefault(token, []).append(i)
                for value in doc.facets:
                    postings.setdefault(value, []).append(i)
            return len(doc_terms)

    def doc_freq(self, token: str) -> int:
        self._catch_up()  # postings are built lazily: count what was appended too
        return len(self.postings.get(token, ()))

    def _match_terms(self, node: Terms) -> set[int]:
        first = self.postings.get(_key(node.field, node.tokens[0]))
        if not first:
            return set()
        found = set(first)
        for token in node.tokens[1:]:
            found.intersection_update(self.postings.get(_key(node.field, token), ()))
        if len(node.tokens) == 1 or node.field != "text":
            return found
        return {i for i in found if _contains(self._terms[i], node.tokens)}

    def _eval(self, node: Plan) -> set[int]:
        if isinstance(node, Terms):
            return self._match_terms(node)
        if isinstance(node, AnyOf):
            out: set[int] = set()
            for child in node.children:
                out |= self._eval(child)
            return out
        if node.must:
            found = self._eval(node.must[0])
            for child in node.must[1:]:
                found &= self._eval(child)
        else:
            found = set(range(len(self._terms)))
        for child in node.must_not:
            found -= self._eval(child)
        return found

    def search(
        self, node: Plan | None, after_seq: int, low_us: int | None, high_us: int
    ) -> list[FreshDoc]:
        """Docs past `after_seq` matching `node` with `low_us <= created_us <= high_us`."""
        if self.max_seq <= after_seq:
            return []
        covered = self._catch_up()
        hits = range(covered) if node is None else self._eval(node)
        low = -(2**63) if low_us is None else low_us
        return [
            doc
            for doc in (self.docs[i] for i in hits)
            if doc.seq > after_seq and low <= doc.created_us <= high_us
        ]


def _contains(terms: Sequence[str], phrase: Sequence[str]) -> bool:
    n = len(phrase)
    first = phrase[0]
    return any(
        terms[i] == first and list(terms[i : i + n]) == list(phrase)
        for i in range(len(terms) - n + 1)
    )
