"""A parsed query → the store's plan: the query tree with its text analyzed.

Words and phrases become term sequences (a word Japanese segmentation splits in two
becomes a two-term phrase); a term that analyzes to nothing (punctuation) imposes
no constraint and drops out.
"""

from __future__ import annotations

from ima.query import Match, Node, Not, Or, Term
from ima.store import AllOf, AnyOf, Plan, Terms
from ima.text import analysis


def _terms(node: Term | Match) -> Terms | None:
    if isinstance(node, Match):
        return Terms(node.field, (node.value,))
    if node.kind in ("tag", "mention"):
        return Terms(node.kind + "s", (analysis.fold(node.text),))
    tokens = tuple(analysis.terms(node.text))
    return Terms("text", tokens) if tokens else None


def plan(node: Node | None) -> Plan | None:
    """None means "matches every post" (before time and engagement filters)."""
    if node is None:
        return None
    if isinstance(node, Term | Match):
        return _terms(node)
    if isinstance(node, Not):
        child = plan(node.child)
        return None if child is None else AllOf((), (child,))
    if isinstance(node, Or):
        children = [plan(c) for c in node.children]
        if any(c is None for c in children):
            return None
        return AnyOf(tuple(c for c in children if c is not None))
    must: list[Plan] = []
    must_not: list[Plan] = []
    for child in node.children:
        p = plan(child)
        if isinstance(p, AllOf) and not p.must:
            must_not.extend(p.must_not)
        elif p is not None:
            must.append(p)
    if not must and not must_not:
        return None
    if len(must) == 1 and not must_not:
        return must[0]
    return AllOf(tuple(must), tuple(must_not))
