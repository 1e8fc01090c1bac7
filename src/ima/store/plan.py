"""What the store evaluates in every segment (fresh or indexed): a tree of analyzed terms.

The store knows nothing of the query language; search turns a parsed query into a
plan (`ima.planner`) and hands the store the plan.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Terms:
    """Consecutive `tokens` in `field` (`text`, `tags`, `mentions`, `author`, `lang`, `source`)."""

    field: str
    tokens: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AllOf:
    must: tuple[Plan, ...]
    must_not: tuple[Plan, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    children: tuple[Plan, ...]


Plan = Terms | AllOf | AnyOf
