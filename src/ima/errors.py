"""One tree of errors for every stage, so callers catch what they mean.

`BadInput` is the caller's to fix (an API answers 4xx, the CLI exits 2); `NotFound`
names something missing; `Unavailable` is a part that is down or stopped (retry
later: 503); `Overloaded` is too much work at once (429/503 with Retry-After).
"""

from __future__ import annotations


class ImaError(Exception):
    """Anything `ima` raises on purpose."""


class BadInput(ImaError, ValueError):
    """Input that cannot be used as given: a record, a query, a spec, an instant."""


class NotFound(ImaError, LookupError):
    """Something asked for by name or id is not there."""


class Unavailable(ImaError, RuntimeError):
    """A part that is needed is down or stopping: the writer, an answer, a store."""


class Overloaded(ImaError):
    """More work than is taken at once; the caller may retry shortly."""
