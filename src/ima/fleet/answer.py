"""Answers composed by fleet workers, verified in `ima serve` before any client sees them.

Retrieval stays here (workers never see the store): the posts found for a question go
to a `compose` worker with the key terms' weights; its text must pass the citation
verifier (`ima.answer.verify`) against the posts it cites, each quoted passage must
be the post's own words, and on the sample its reputation calls for, the composition
is redone here and must agree. A failing answer is never shown: the job goes to
another worker, and with none left, the question is answered locally (counted in
`ima_fleet_local_fallbacks_total` and named in the `X-Ima-Fleet` header). Open
questions (digests) and follow-ups need the store throughout, and are answered locally.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from ima.answer import digest, verify, voice
from ima.answer.ask import Semantic, quoted_times, respelling, spelled_as, widening
from ima.answer.compose import key_weights
from ima.answer.model import Answer, Citation
from ima.fleet.protocol import MAX_COMPOSE_POSTS, Composed, ComposeJob, ProtocolError
from ima.fleet.supervisor import NoWorker, Supervisor, note_route
from ima.fleet.work import composed
from ima.post import Post, flatten, from_us, to_us
from ima.search import PostStore
from ima.text.question import Question, understand
from ima.vectors.index import Ranked

#: the local way to answer: `Answerers.answer`'s signature
LocalAnswer = Callable[..., Answer]


def _folded(text: str) -> str:
    return " ".join(text.split()).lower()


class FleetAnswerer:
    """`answer(question, as_of=…, **options)` as `Answerers` has it, through the fleet."""

    def __init__(
        self,
        store: PostStore,
        supervisor: Supervisor,
        local: LocalAnswer,
        semantic: Semantic | None = None,
    ) -> None:
        self.store = store
        self.supervisor = supervisor
        self.local = local
        self.semantic = semantic

    def answer(self, question: str, *, as_of: datetime, **options: Any) -> Answer:
        persona = options.get("persona", "regular")
        restrict, since = options.get("restrict", ""), options.get("since")
        asked = understand(question)
        spelling = respelling(self.store, asked)
        understood = spelled_as(asked, spelling)
        if options.get("context") or (digest.scope(understood) is not None and not restrict):
            note_route("local")
            return self.local(question, as_of=as_of, **options)
        try:
            answer = self._fleet(understood, spelling, as_of, persona, restrict, since)
        except NoWorker:
            note_route("local")
            return self.local(question, as_of=as_of, **options)
        return answer

    def _fleet(self, question: Question, spelling: str, as_of: datetime, persona: str,
               restrict: str, since: datetime | None) -> Answer:  # fmt: skip
        started = time.perf_counter()
        window = question.window if since is None else max(as_of - since, timedelta(0))
        weights = key_weights(question, *self.store.term_stats(question.lookup))
        # what `ask` composes from, all of it: the job is the same composition, elsewhere
        job = ComposeJob(question.text, [], to_us(as_of), weights, persona,
                         spelled="" if spelling == question.text else spelling)  # fmt: skip
        (worker, composed), posts, window = widening(
            self.store, question, as_of, window,
            lambda found, widened: self._compose(job, found, widened),
            lambda attempt: attempt[1].found,
            semantic=self.semantic, restrict=restrict, fixed=since is not None,
        )  # fmt: skip
        note_route(f"worker {worker}")
        answer = Answer(
            question=question.text, text=composed.text, citations=[], as_of=as_of,
            found=composed.found, window_s=window.total_seconds(), persona=persona,
            language=question.lang, backend=f"extractive (fleet worker {worker})",
        )  # fmt: skip
        if composed.found:
            answer.citations = [
                Citation(n, posts[i], quote) for n, (i, quote) in enumerate(composed.citations, 1)
            ]
        else:
            answer.text = voice.nothing_found(question, window, as_of)
        answer.timings_ms = {"total": (time.perf_counter() - started) * 1000}
        return answer

    def _compose(self, base: ComposeJob, found: Ranked, widened: bool) -> tuple[str, Composed]:
        """`base` composed from the posts `found` (in a window `widened` or not) by a
        worker, checked; (the worker, its composition)."""
        posts = found[:MAX_COMPOSE_POSTS]
        if not posts:
            return "none", Composed("", False)
        sent = {p.id for p in posts}
        job = replace(
            base, posts=[list(flatten(p)) for p in posts], widened=widened,
            quoted={i: to_us(t) for i, t in quoted_times(self.store, posts).items()},
            similar={i: s for i, s in found.similarity.items() if i in sent},
        )  # fmt: skip
        as_of = from_us(job.as_of_us)  # what the worker sees: the µs-exact instant
        result: dict[str, Composed] = {}

        def check(data: bytes, sample: bool) -> str | None:
            try:
                theirs = Composed.decode(data)
            except ProtocolError as exc:
                return str(exc)
            problem = self.problems(theirs, posts, as_of)
            if problem is not None or sample:
                # the verifier is strict (it was made for LLMs): an answer the composer
                # here gives word for word is checked by that, whatever the verifier says
                here = composed(job, posts)
                if here == theirs:
                    problem = None
                elif problem is None and here.found != theirs.found:
                    problem = "the composition disagrees with the local one"
            if problem is None:
                result["composed"] = theirs
            return problem

        worker, _ = self.supervisor.call("compose", job.encode(), check)
        return worker, result["composed"]

    @staticmethod
    def problems(composed: Composed, posts: list[Post], as_of: datetime) -> str | None:
        """What is wrong with a worker's answer, or None when every citation holds."""
        if not composed.found:
            return None if not composed.text else "text given for an answer not found"
        if not composed.citations or not verify.cites_any(composed.text):
            return "the answer cites no post"
        if any(not 0 <= i < len(posts) for i, _ in composed.citations):
            return "a citation names no post that was sent"
        cited = [posts[i] for i, _ in composed.citations]
        for post, (_, snippet) in zip(cited, composed.citations, strict=True):
            if _folded(snippet) not in _folded(post.text):
                return f"a quote is not the post's own words: {snippet[:60]!r}"
        trouble = verify.problems(composed.text, cited, as_of)
        return "; ".join(trouble[:3]) if trouble else None
