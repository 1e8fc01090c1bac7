"""The fresh segment: posts committed to the log but not yet to the lexical index.

As in Twitter's Earlybird, the newest posts are served from memory so that a post
is searchable the moment its batch is durable in the log, not when the index next
commits. Each committed batch becomes one immutable `FreshChunk` with its own small
inverted index; chunks are dropped once the lexical index has committed past them.
"""

from __future__ import annotations

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


class FreshChunk:
    """One committed batch of posts, searchable in memory.

    Its postings are built by the first search that needs them: under bulk load most
    chunks reach the lexical index before anyone searches them, and then cost nothing.
    """

    __slots__ = ("_index", "docs", "max_seq")

    def __init__(self, docs: Sequence[FreshDoc]) -> None:
        self.docs = list(docs)
        self.max_seq = max((d.seq for d in docs), default=0)
        self._index: tuple[list[list[str]], dict[str, list[int]]] | None = None

    @property
    def postings(self) -> dict[str, list[int]]:
        return self._built()[1]

    def _built(self) -> tuple[list[list[str]], dict[str, list[int]]]:
        if self._index is None:  # racing builders produce equal indexes; either may win
            self._index = self._build()
        return self._index

    def _build(self) -> tuple[list[list[str]], dict[str, list[int]]]:
        postings: dict[str, list[int]] = {}
        doc_terms = [analysis.terms_of_prepared(doc.text) for doc in self.docs]
        for i, doc in enumerate(self.docs):
            for token in set(doc_terms[i]):
                postings.setdefault(token, []).append(i)
            for value in doc.facets:
                postings.setdefault(value, []).append(i)
        return doc_terms, postings

    def doc_freq(self, token: str) -> int:
        return len(self.postings.get(token, ()))

    def _terms(self, node: Terms) -> set[int]:
        first = self.postings.get(_key(node.field, node.tokens[0]))
        if not first:
            return set()
        found = set(first)
        for token in node.tokens[1:]:
            found.intersection_update(self.postings.get(_key(node.field, token), ()))
        if len(node.tokens) == 1 or node.field != "text":
            return found
        doc_terms = self._built()[0]
        return {i for i in found if _contains(doc_terms[i], node.tokens)}

    def _eval(self, node: Plan) -> set[int]:
        if isinstance(node, Terms):
            return self._terms(node)
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
            found = set(range(len(self.docs)))
        for child in node.must_not:
            found -= self._eval(child)
        return found

    def search(
        self, node: Plan | None, after_seq: int, low_us: int | None, high_us: int
    ) -> list[FreshDoc]:
        """Docs past `after_seq` matching `node` with `low_us <= created_us <= high_us`."""
        if self.max_seq <= after_seq:
            return []
        hits = range(len(self.docs)) if node is None else self._eval(node)
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
