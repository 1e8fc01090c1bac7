"""The store stage: the durable log, the lexical index and the fresh segment.

Other stages go through this face: `Store` (write a `Batch`, read candidates, posts,
cursors and changes) and the batch types; nothing outside this package reaches into
the log or the index."""

from ima.store.batch import Batch, Commit, DeadLetter, Entry, Removals
from ima.store.lexical import ReadOnlyIndexError
from ima.store.log import COLUMNS as POST_COLUMNS
from ima.store.log import DEAD_LETTER_BYTES, StoredPost, create_empty_log
from ima.store.plan import AllOf, AnyOf, Plan, Terms
from ima.store.relevance import Relevance, Statistics, bm25
from ima.store.store import Candidates, Store, StoreStats

__all__ = [
    "DEAD_LETTER_BYTES",
    "POST_COLUMNS",
    "AllOf",
    "AnyOf",
    "Batch",
    "Candidates",
    "Commit",
    "DeadLetter",
    "Entry",
    "Plan",
    "ReadOnlyIndexError",
    "Relevance",
    "Removals",
    "Statistics",
    "Store",
    "StoreStats",
    "StoredPost",
    "Terms",
    "bm25",
    "create_empty_log",
]  # fmt: skip
