"""The fresh segment: posts committed to the log but not yet to the lexical index.

As in Twitter's Earlybird, the newest posts are served from memory so that a post
is searchable the moment its batch is durable in the log, not when the index next
commits. A segment collects about one index-commit interval of posts; it is dropped
once the lexical index has committed past all of them.
"""

from __future__ import annotations

import bisect
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from ima.store.plan import AnyOf, Plan, Terms
from ima.text import analysis

_FIELD_SEP = "\x01"


def facet(field: str, value: str) -> str:
    """One exact-match value of a post (`author`, `lang`, `source`, `tags`, `mentions`)."""
    return f"{field}{_FIELD_SEP}{value}"


def _key(field: str, token: str) -> str:
    return token if field == "text" else facet(field, token)


@dataclass(slots=True)
class FreshDoc:
    """A post on its way into the fresh segment and the lexical index; not kept after."""

    seq: int
    created_us: int
    text: str  # prepared text (`ima.text.analysis.prepare`)
    facets: list[str]  # see `facet`
    #: its terms (`term_line`), when ingest's preparing processes analyzed it already
    terms: str | None = None


def term_line(text: str) -> str:
    """The terms of a prepared text in order, space-separated (a term never holds a
    space: the analyzer splits on everything but letters and digits). One string, not
    a list: it crosses from a preparing process as one object, not twenty, and a
    segment keeps one object a post for its phrase checks, split again only then."""
    return " ".join(analysis.terms_of_prepared(text))


class FreshSegment:
    """Posts committed to the log since about the last index commit, searchable in memory.

    One writer (the pipeline thread) appends and builds the postings as it goes, then
    publishes how many docs they cover; searches read that prefix without a lock. A
    search therefore never does ingest's work: built lazily instead, a search arriving
    after a second of quiet paid ~20 ms indexing 2,000 new posts at 2,000 posts/s.

    A doc is kept as two integers and its terms as one string, not as an object with
    its lists of terms and facets: dropping a segment of 20,000 posts once the
    index has caught up had held the interpreter lock for 10 to 130 ms.
    """

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.created: list[int] = []
        self.lines: list[str] = []  # each doc's `term_line`, for phrase checks
        self.max_seq = 0
        self.started = time.monotonic()
        self.covered = 0  # docs [0, covered) are in the postings; readers look no further
        self.ends: list[int] = []  # terms in docs [0, i], for each doc i (lengths)
        #: term or facet -> its docs, ascending; read with `.get` only (a missing key is
        #: made only by `append`: a defaultdict cost a third less than testing each key)
        self.postings: defaultdict[str, list[int]] = defaultdict(list)

    def __len__(self) -> int:
        return self.covered

    def append(self, docs: Sequence[FreshDoc]) -> None:
        """Add docs; only the single writer calls this."""
        postings = self.postings
        lines = [doc.terms if doc.terms is not None else term_line(doc.text) for doc in docs]
        for i, (doc, line) in enumerate(zip(docs, lines, strict=True), len(self.lines)):
            for key in set(line.split()):
                postings[key].append(i)
            for key in doc.facets:
                postings[key].append(i)
        self.seqs.extend([doc.seq for doc in docs])
        self.created.extend([doc.created_us for doc in docs])
        self.lines.extend(lines)
        self.max_seq = max(self.max_seq, docs[-1].seq)
        total = self.ends[-1] if self.ends else 0
        for line in lines:
            total += line.count(" ") + 1 if line else 0
            self.ends.append(total)
        self.covered = len(self.lines)  # publish: the postings now hold all of these

    def _first_after(self, seq: int) -> int:
        return bisect.bisect_right(self.seqs, seq, 0, self.covered)

    def pending(self, indexed_seq: int) -> int:
        """How many of its docs the lexical index has not committed yet."""
        return self.covered - self._first_after(indexed_seq)

    def length(self, after_seq: int) -> int:
        """How many terms its docs past `after_seq` hold."""
        covered, first = self.covered, self._first_after(after_seq)
        if first >= covered:
            return 0
        return self.ends[covered - 1] - (self.ends[first - 1] if first else 0)

    def terms_of(self, seq: int) -> list[str]:
        """The terms of the doc at log position `seq` (one this segment holds)."""
        return self.lines[bisect.bisect_left(self.seqs, seq, 0, self.covered)].split()

    def doc_freq(self, token: str, after_seq: int = 0) -> int:
        """How many of its docs past `after_seq` hold `token` (those up to it are
        counted by the index)."""
        found = self.postings.get(token, ())
        first = self._first_after(after_seq)
        return bisect.bisect_left(found, self.covered) - bisect.bisect_left(found, first)

    def _match_terms(self, node: Terms, covered: int) -> set[int]:
        first = self.postings.get(_key(node.field, node.tokens[0]))
        if not first:
            return set()
        found = set(first[: bisect.bisect_left(first, covered)])
        for token in node.tokens[1:]:
            found.intersection_update(self.postings.get(_key(node.field, token), ()))
        if len(node.tokens) == 1 or node.field != "text":
            return found
        lines = self.lines
        return {i for i in found if _contains(lines[i].split(), node.tokens)}

    def _eval(self, node: Plan, covered: int) -> set[int]:
        if isinstance(node, Terms):
            return self._match_terms(node, covered)
        if isinstance(node, AnyOf):
            out: set[int] = set()
            for child in node.children:
                out |= self._eval(child, covered)
            return out
        if node.must:
            found = self._eval(node.must[0], covered)
            for child in node.must[1:]:
                found &= self._eval(child, covered)
        else:
            found = set(range(covered))
        for child in node.must_not:
            found -= self._eval(child, covered)
        return found

    def search(
        self, node: Plan | None, after_seq: int, low_us: int | None, high_us: int
    ) -> list[tuple[int, int]]:
        """(created_us, seq) of the docs past `after_seq` matching `node` with
        `low_us <= created_us <= high_us`."""
        if self.max_seq <= after_seq:
            return []
        covered = self.covered
        hits = range(covered) if node is None else self._eval(node, covered)
        low = -(2**63) if low_us is None else low_us
        seqs, created = self.seqs, self.created
        return [
            (created[i], seqs[i])
            for i in hits
            if seqs[i] > after_seq and low <= created[i] <= high_us
        ]


def _contains(terms: Sequence[str], phrase: Sequence[str]) -> bool:
    n = len(phrase)
    first = phrase[0]
    return any(
        terms[i] == first and list(terms[i : i + n]) == list(phrase)
        for i in range(len(terms) - n + 1)
    )
