"""The store stage: the durable log, the lexical index and the fresh segment."""

from ima.store.lexical import ReadOnlyIndexError
from ima.store.store import Candidates, Store

__all__ = ["Candidates", "ReadOnlyIndexError", "Store"]
