"""The pure work a worker does, as functions: the worker runs them on what it is sent,
and `ima serve` runs the same ones to check a worker's result."""

from __future__ import annotations

from ima.answer import voice
from ima.answer.ask import spelled_as
from ima.answer.compose import compose
from ima.fleet.protocol import Composed, ComposeJob
from ima.post import Post, from_us
from ima.text.question import understand


def composed(job: ComposeJob, posts: list[Post]) -> Composed:
    """The extractive answer `ask` gives from `posts` (the job's, as posts), each citation
    naming the index of the post it quotes."""
    question = understand(job.question)
    if job.spelled:
        question = spelled_as(question, job.spelled)
    as_of = from_us(job.as_of_us)
    quoted = {post_id: from_us(us) for post_id, us in job.quoted.items()}
    composition = compose(question, posts, as_of, job.weights, widened=job.widened,
                          quoted=quoted, similar=job.similar)  # fmt: skip
    if composition.lead is None:
        return Composed("", False)
    text, statements = voice.say(question, composition, as_of, job.persona)
    index = {p.id: i for i, p in enumerate(posts)}
    return Composed(text, True, [(index[s.post.id], s.text) for s in statements])
