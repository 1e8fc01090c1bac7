"""The lexical index: tantivy, derived from the log and rebuildable from it.

A post's text arrives analyzed already: its term line (`ima.store.fresh.term_line`, the
terms `ima.text.analysis` gives, which queries use too), which the index only splits on
spaces. Tokenizing the prepared text again here cost tantivy's indexing thread 9 µs of
CPU a post against 6 (README "Performance notes"), and the fresh segment's phrase
positions are the term line's too, so both segments agree.
`created` is a fast field for cheap time filters and recency order. The high-water
mark (the last log `seq` the index has committed) is written beside the index after each commit;
on open, anything past it is deleted and re-added, so a crash between the index
commit and the mark write never duplicates a post.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from itertools import chain
from pathlib import Path

import tantivy

from ima.errors import Unavailable
from ima.store.fresh import FreshDoc, facet, term_line
from ima.store.plan import AnyOf, Plan, Terms

_MARK = "committed_seq"
#: the text field's tokenizer, by the name indexes have recorded in their schema since
#: before they were given term lines (then it named the full analyzer, which made the
#: same terms from the prepared text), so that those indexes still open
_TOKENIZER = "ima"
_SPLIT_TERM_LINE = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.whitespace()).build()


def _threads() -> set[int]:
    try:
        return {int(tid) for tid in os.listdir("/proc/self/task")}
    except OSError:  # not Linux: thread priorities stay as they are
        return set()


def lower_priority(thread_ids: set[int]) -> None:
    """Run these threads at nice 10: indexing and merging may wait; ingest and search
    should not wait behind them on a small machine. Linux only; elsewhere a no-op."""
    for tid in thread_ids:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, 10)
        except (OSError, AttributeError):
            return


class ReadOnlyIndexError(Unavailable):
    """A write was attempted on an index another process is writing."""


_MAX_I64 = 2**63 - 1


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_integer_field("seq", indexed=True, fast=True)
    builder.add_integer_field("created", indexed=True, fast=True)
    builder.add_text_field("text", tokenizer_name=_TOKENIZER)
    builder.add_text_field("facets", tokenizer_name="raw", index_option="basic")
    return builder.build()


class LexicalIndex:
    """Writer, reader and high-water mark of the tantivy index in `path`.

    When another process holds the index's writer lock, the index opens read-only
    (`writer` is None): it can be searched as of that process's last commit.
    """

    def __init__(self, path: Path, *, heap_bytes: int = 128_000_000) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.schema = _schema()
        self.index = tantivy.Index(self.schema, path=str(path))
        self.index.register_tokenizer(_TOKENIZER, _SPLIT_TERM_LINE)
        self.writer: tantivy.IndexWriter | None
        before = _threads()
        try:
            self.writer = self.index.writer(heap_bytes, 1)
            lower_priority(_threads() - before)  # tantivy's indexing and merge threads
        except ValueError as exc:
            if "LockBusy" not in str(exc):
                raise
            self.writer = None
        self.committed_seq = self._read_mark()
        self.searcher = self.index.searcher()
        self._lengths: tuple[tantivy.Searcher, tuple[int, int]] | None = None

    @property
    def writable(self) -> bool:
        return self.writer is not None

    def _w(self) -> tantivy.IndexWriter:
        if self.writer is None:
            raise ReadOnlyIndexError("another process is writing this index")
        return self.writer

    def _read_mark(self) -> int:
        """The last log seq the index has committed, as on disk (another process may write)."""
        try:
            return int((self.path / _MARK).read_text().strip() or 0)
        except FileNotFoundError:
            return 0

    def _write_mark(self, seq: int) -> None:
        tmp = self.path / (_MARK + ".tmp")
        with open(tmp, "w") as fh:
            fh.write(str(seq))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path / _MARK)

    def add(self, docs: Iterable[FreshDoc]) -> int:
        writer = self._w()
        added = 0
        for d in docs:
            terms = d.terms if d.terms is not None else term_line(d.text)
            writer.add_document(
                tantivy.Document(seq=d.seq, created=d.created_us, text=terms, facets=d.facets)
            )
            added += 1
        return added

    def forget_after(self, seq: int) -> None:
        """Delete (at the next commit) every document past `seq`: replays are idempotent."""
        query = tantivy.Query.range_query(
            self.schema, "seq", tantivy.FieldType.Integer, seq, _MAX_I64, include_lower=False
        )
        self._w().delete_documents_by_query(query)

    def delete(self, seqs: Iterable[int]) -> None:
        """Drop these log positions at the next commit (their posts left the log)."""
        writer = self._w()
        for seq in seqs:
            writer.delete_documents_by_term("seq", seq)

    def clear(self) -> None:
        self._w().delete_all_documents()
        self.commit(0)

    def commit(self, upto_seq: int) -> None:
        """Make everything added so far durable and visible; the mark follows."""
        self._w().commit()
        self._write_mark(upto_seq)
        self._reload(upto_seq)

    def follow(self) -> bool:
        """Read-only: see the writing process's latest commit; False if there is none new."""
        mark = self._read_mark()
        if mark == self.committed_seq:
            return False
        self._reload(mark)  # after reading the mark, so the reader covers at least up to it
        return True

    def _reload(self, committed_seq: int) -> None:
        self.committed_seq = committed_seq
        self.index.reload()
        self.searcher = self.index.searcher()

    def close(self) -> None:
        writer, self.writer = self.writer, None
        if writer is not None:
            writer.wait_merging_threads()

    # -- reading -----------------------------------------------------------------

    def compile(self, node: Plan | None, low_us: int | None, high_us: int) -> tantivy.Query:
        time_range = tantivy.Query.range_query(
            self.schema, "created", tantivy.FieldType.Integer, low_us, high_us
        )
        if node is None:
            return time_range
        occur = tantivy.Occur
        return tantivy.Query.boolean_query(
            [(occur.Must, self._compile(node)), (occur.Must, time_range)]
        )

    def _compile(self, node: Plan) -> tantivy.Query:
        query = tantivy.Query
        occur = tantivy.Occur
        if isinstance(node, Terms):
            if node.field != "text":
                return query.term_query(self.schema, "facets", facet(node.field, node.tokens[0]))
            if len(node.tokens) == 1:
                return query.term_query(self.schema, "text", node.tokens[0])
            return query.phrase_query(self.schema, "text", list(node.tokens))
        if isinstance(node, AnyOf):
            return query.boolean_query([(occur.Should, self._compile(c)) for c in node.children])
        clauses = [(occur.Must, self._compile(c)) for c in node.must]
        clauses += [(occur.MustNot, self._compile(c)) for c in node.must_not]
        if not node.must:
            clauses.append((occur.Must, query.all_query()))
        return query.boolean_query(clauses)

    def ordered(
        self, searcher: tantivy.Searcher, query: tantivy.Query, limit: int, field: str
    ) -> list[tuple[int, int]]:
        """(value, seq) of the `limit` matches with the highest `field` (`created`, `seq`)."""
        hits = searcher.search(query, limit, count=False, order_by_field=field).hits
        seqs = searcher.fast_field_values("seq", [a for _, a in hits]) if hits else []
        return [(value, seq) for (value, _), seq in zip(hits, seqs, strict=True)]

    def at_time(self, query: tantivy.Query, created_us: int) -> tantivy.Query:
        """`query`, only the posts created at `created_us`."""
        instant = tantivy.Query.range_query(
            self.schema, "created", tantivy.FieldType.Integer, created_us, created_us
        )
        occur = tantivy.Occur
        return tantivy.Query.boolean_query([(occur.Must, query), (occur.Must, instant)])

    def scored(
        self, searcher: tantivy.Searcher, query: tantivy.Query, limit: int
    ) -> list[tuple[float, int]]:
        """(tantivy's score, seq) of the best `limit` matches, best first."""
        hits = searcher.search(query, limit, count=False).hits
        seqs = searcher.fast_field_values("seq", [a for _, a in hits]) if hits else []
        return [(score, seq) for (score, _), seq in zip(hits, seqs, strict=True)]

    def boosted(self, query: tantivy.Query, boosts: dict[str, float]) -> tuple[tantivy.Query, ...]:
        """`query` scoring only by its text terms, each boosted (for `ima.store.relevance`'s
        pool); and `query` less the posts holding any of them (those score 0)."""
        occur = tantivy.Occur
        terms = [
            tantivy.Query.boost_query(tantivy.Query.term_query(self.schema, "text", t), boost)
            for t, boost in boosts.items()
        ]
        scoring = tantivy.Query.boolean_query(
            [(occur.Must, tantivy.Query.const_score_query(query, 0.0))]
            + [(occur.Should, t) for t in terms]
        )
        without = tantivy.Query.boolean_query(
            [(occur.Must, query)] + [(occur.MustNot, t) for t in terms]
        )
        return scoring, without

    def lengths(
        self, searcher: tantivy.Searcher, candidates: Iterable[str] = ()
    ) -> tuple[int, int]:
        """(documents, terms) of the text field as tantivy's BM25 counts them (removed
        documents included until merged). tantivy-py does not expose these; a term query's
        explanation does, for any term a live post holds, so one is explained per searcher
        and kept. The term is one of `candidates` when one will do (a query's own terms,
        the newest post's): the dictionary's most frequent terms are found by walking all
        of it, and a reader paid 15-40 ms for that at its first search after each commit
        of the writer, growing with the index."""
        if self._lengths is not None and self._lengths[0] is searcher:
            return self._lengths[1]
        found = (0, 0)
        for term in chain(candidates, self._frequent_terms(searcher)):
            if not searcher.doc_freq("text", term):
                continue
            query = tantivy.Query.term_query(self.schema, "text", term)
            hits = searcher.search(query, 1, count=False).hits
            if hits:  # (a term only removed posts held matches none)
                explained = query.explain(searcher, hits[0][1]).to_json()
                found = _explained_lengths(json.loads(explained))
                break
        self._lengths = (searcher, found)
        return found

    @staticmethod
    def _frequent_terms(searcher: tantivy.Searcher) -> Iterator[str]:
        """The text field's most frequent terms (read only when iterated: a walk of the
        whole dictionary)."""
        for term, _ in searcher.terms_with_prefix("text", "", limit=20):
            yield term

    def newest(self, searcher: tantivy.Searcher, upto_seq: int, within: int = 10_000
               ) -> int | None:  # fmt: skip
        """The log position of the newest post `searcher` holds among the `within` before
        `upto_seq` (a range, not the whole index, is ordered)."""
        recent = tantivy.Query.range_query(
            self.schema, "seq", tantivy.FieldType.Integer, max(0, upto_seq - within), upto_seq
        )
        hits = self.ordered(searcher, recent, 1, "seq")
        return hits[0][1] if hits else None


def _explained_lengths(node: dict) -> tuple[int, int]:
    """(N, round(N · avgdl)) from a BM25 term query's explanation."""
    values: dict[str, float] = {}
    stack = [node]
    while stack:
        item = stack.pop()
        description = item.get("description", "")
        for name in ("N, total", "avgdl"):
            if description.startswith(name):
                values[name] = item["value"]
        stack.extend(item.get("details", ()))
    docs = int(values["N, total"])
    return docs, round(docs * values["avgdl"])
