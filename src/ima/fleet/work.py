"""The pure work a worker does, as functions: the worker runs them on what it is sent,
and `ima serve` runs the same ones to check a worker's result."""

from __future__ import annotations

from datetime import datetime

from ima.answer import voice
from ima.answer.compose import compose
from ima.answer.question import understand
from ima.fleet.protocol import Composed
from ima.post import Post


def composed(question_text: str, posts: list[Post], as_of: datetime, weights: dict[str, float],
             persona: str) -> Composed:  # fmt: skip
    """The extractive answer `ima serve` would give from `posts`, each citation naming
    the index of the post it quotes."""
    question = understand(question_text)
    composition = compose(question, posts, as_of, weights)
    if composition.lead is None:
        return Composed("", False)
    text, statements = voice.say(question, composition, as_of, persona)
    index = {p.id: i for i, p in enumerate(posts)}
    return Composed(text, True, [(index[s.post.id], s.text) for s in statements])
