"""Answering a question: retrieve, compose, optionally voice through an LLM, verify.

Retrieval runs the question's key words as a search over its time window; when the
question names no time and its day holds nothing, the window widens to a week, then
to every post before `as_of` (old news is still news, and the answer says how old),
fused with vector neighbours when an index of them is at hand. The extractive
composer always runs: it is the answer when there is no LLM, the input an LLM
rephrases, and the fallback whenever an LLM's citations do not hold (the reason is
logged and reported).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from ima import quips
from ima.answer import digest, verify, voice, wit
from ima.answer.compose import Composition, compose, key_weights
from ima.answer.llm import Backend, BackendError, Request, answer_request, rephrase_request
from ima.answer.model import Answer, Citation
from ima.post import Post, iso
from ima.search import PostStore, search
from ima.text import analysis, mood, sentences
from ima.text.question import ALL_TIME, Question, understand
from ima.vectors.index import Ranked

T = TypeVar("T")  # what an attempt at an answer gives (`widening`)

log = logging.getLogger(__name__)

WIDEST_WINDOW = timedelta(days=7)
CANDIDATES = 30
#: given the question, its window's bounds (µs) and a count: posts by similarity
Semantic = Callable[[str, int, int, int], list[Post]]
_SENTENCE_DONE = re.compile(r"(?<=[.!?。！？])\s|\n")


def _fuse(lists: list[list[Post]], k: int = 60) -> list[Post]:
    """Reciprocal rank fusion: a post high in either list, or in both, comes first."""
    scores: dict[str, float] = {}
    posts: dict[str, Post] = {}
    for ranked in lists:
        for rank, post in enumerate(ranked):
            scores[post.id] = scores.get(post.id, 0.0) + 1.0 / (k + rank + 1)
            posts[post.id] = post
    return [posts[i] for i in sorted(scores, key=scores.__getitem__, reverse=True)]


def retrieve(
    store: PostStore,
    question: Question,
    as_of: datetime,
    window: timedelta,
    semantic: Semantic | None = None,
    restrict: str = "",
) -> Ranked:
    """Candidate posts (with the similarity of those found by meaning); `restrict` is
    more query syntax every one must satisfy (`from:`, `-from:`, `min_faves:`,
    `source:`), and then vectors are not used. Nor are they past the widest window:
    vectors are searched hour by hour, fast for the recent window most questions want,
    not for every hour a store has ever held."""
    if not question.words:
        return Ranked()
    # a window reaching back before year 1 (an `as_of` early in it) starts there
    since = as_of - min(window, as_of - datetime.min.replace(tzinfo=UTC))
    query = f"({question.query()}) since:{iso(since)} {restrict}".strip()
    lexical = [h.post for h in search(store, query, as_of=as_of, k=CANDIDATES).hits]
    lists = [lexical]
    similarity: dict[str, float] = {}
    if semantic is not None and not restrict and window <= WIDEST_WINDOW:
        low = int(since.timestamp() * 1e6)
        near = semantic(question.text, low, int(as_of.timestamp() * 1e6), CANDIDATES)
        similarity = getattr(near, "similarity", {})
        lists.append(near)
    return Ranked(_fuse(lists), similarity)


_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_SPELLABLE = re.compile(r"[a-z]{5,20}")


def respelled(store: PostStore, question: Question) -> Question:
    """`question` read as the posts spell its words (`respelling`)."""
    return spelled_as(question, respelling(store, question))


def spelled_as(question: Question, spelling: str) -> Question:
    """`question` with the words of `spelling` (its `respelling`), its text as asked."""
    if spelling == question.text:
        return question
    return replace(understand(spelling), text=question.text)


def respelling(store: PostStore, question: Question) -> str:
    """`question`'s text with each word that no post holds, and that one letter more or
    two letters swapped make a word posts do hold ("donad" → "donald", "ukranian" →
    "ukrainian"), spelled as the posts spell it (the most frequent such word): a
    misspelling is no topic of its own."""
    unknown = [w for w in question.words if _SPELLABLE.fullmatch(w.lower())]
    if not unknown:
        return question.text
    _, held = store.term_stats(t for w in unknown for t in analysis.terms(w))
    fixes: dict[str, str] = {}
    for word in unknown:
        if any(held.get(t, 0) for t in analysis.terms(word)):
            continue
        lower = word.lower()
        splits = [(lower[:i], lower[i:]) for i in range(len(lower) + 1)]
        # a letter left out or two swapped: a changed letter makes another word of a
        # name as often as it mends one ("winnink" is no "winning")
        edits = {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
        edits |= {a + c + b for a, b in splits for c in _LETTERS}
        stems = {e: t[0] for e in edits if len(t := analysis.terms(e)) == 1}
        _, freq = store.term_stats(set(stems.values()))
        best = max(stems, key=lambda e: (freq.get(stems[e], 0), e), default="")
        if freq.get(stems.get(best, ""), 0):
            fixes[word] = best
    text = question.text
    for word, fix in fixes.items():
        fix = fix.capitalize() if word[:1].isupper() else fix  # a name stays a name
        text = re.sub(rf"\b{re.escape(word)}\b", fix, text)
    return text


def quoted_times(store: PostStore, posts: list[Post]) -> dict[str, datetime]:
    """When the posts that `posts` quote were posted, for those retrieval did not bring:
    a quote carries the news of what it quotes (one look-up per quote, so at most one per
    candidate)."""
    present = {p.id for p in posts}
    get = getattr(store, "get", None)  # a store that cannot look posts up dates none
    out: dict[str, datetime] = {}
    for post in posts:
        if get is not None and post.quote_of and post.quote_of not in present:
            found = get(post.quote_of)
            if found is not None:
                out[post.quote_of] = found.post.created_at
    return out


def widening(
    store: PostStore,
    question: Question,
    as_of: datetime,
    window: timedelta,
    attempt: Callable[[Ranked, bool], T],
    found: Callable[[T], bool],
    *,
    semantic: Semantic | None = None,
    restrict: str = "",
    fixed: bool = False,
) -> tuple[T, Ranked, timedelta]:
    """Retrieve for `window` and `attempt` an answer from those posts; while none is
    `found`, again over the widest window, then all time (`attempt`'s second argument
    says the window was widened). A range the asker set (a time in the question, or
    `fixed`: a `since`) is kept: nothing in it is "nothing found". Returns the attempt,
    its posts and its window."""
    posts = retrieve(store, question, as_of, window, semantic, restrict)
    result = attempt(posts, False)
    wider = [] if question.timed or fixed else [WIDEST_WINDOW, ALL_TIME]
    for widened in wider:
        if found(result):
            break
        if widened > window:
            window = widened
            posts = retrieve(store, question, as_of, window, semantic, restrict)
            result = attempt(posts, True)
    return result, posts, window


def _citations(statements: list) -> list[Citation]:
    return [Citation(n, s.post, s.text) for n, s in enumerate(statements, 1)]


def ask(
    store: PostStore,
    text: str,
    *,
    as_of: datetime | None = None,
    persona: str = "regular",
    backend: Backend | None = None,
    mode: str = "rephrase",
    semantic: Semantic | None = None,
    on_text: Callable[[str], None] | None = None,
    restrict: str = "",
    since: datetime | None = None,
    context: str = "",
    sampling: tuple[int | None, float | None] = (None, None),
) -> Answer:
    """Answer `text` from the store as of `as_of` (default: now).

    With a `backend`, `mode` is `rephrase` (the LLM voices the extractive answer:
    safe even for a small base model) or `answer` (the LLM answers from the posts).
    `on_text` receives the answer as it becomes final, sentence by sentence when the
    backend streams. `restrict` narrows retrieval (query syntax), `since` fixes the
    window's start, and `context` (earlier questions of a conversation) lends its
    names to a follow-up that has none ("and now?"), or, to one that points at a story
    of an earlier digest ("the second one"), that story; `sampling` is the caller's
    (max_tokens, temperature) for the LLM, None for its defaults. Raises ValueError for
    an empty or over-long question or an unknown persona.
    """
    if persona not in voice.PERSONAS:
        raise ValueError(f"persona must be one of {', '.join(voice.PERSONAS)}")
    if mode not in ("rephrase", "answer"):
        raise ValueError("mode must be rephrase or answer")
    started = time.perf_counter()
    question = respelled(store, understand(text))
    as_of = (as_of or datetime.now(UTC)).astimezone(UTC)
    story = digest.followed(store, text, context, as_of) if context else None
    if story is not None:  # "tell me more about the second one": that story's words
        about = understand(story.text)
        question = replace(question, words=about.words, terms=about.terms,
                           entities=about.entities, names=about.names, timed=True)  # fmt: skip
    elif context and not question.entities:
        followed = understand(f"{context}\n{text}")
        question = replace(
            question, words=followed.words, terms=followed.terms, entities=followed.entities
        )
    window = question.window if since is None else max(as_of - since, timedelta(0))
    open_scope = digest.scope(question) if not restrict and story is None else None
    if open_scope is not None:
        return _digest(store, question, open_scope, as_of, window, persona, started, on_text)
    weights = key_weights(question, *store.term_stats(question.lookup))

    def attempt(posts: Ranked, widened: bool) -> Composition:
        return compose(question, posts, as_of, weights, widened=widened,
                       quoted=quoted_times(store, posts), similar=posts.similarity)  # fmt: skip

    composition, posts, window = widening(
        store, question, as_of, window, attempt, lambda c: c.lead is not None,
        semantic=semantic, restrict=restrict, fixed=since is not None,
    )  # fmt: skip
    retrieved = time.perf_counter()
    answer = Answer(
        question=text,
        text="",
        citations=[],
        as_of=as_of,
        found=composition.lead is not None,
        window_s=window.total_seconds(),
        persona=persona,
        language=question.lang,
        backend="extractive",
    )
    if composition.lead is None:
        answer.text = voice.nothing_found(question, window, as_of)
    else:
        opening = ""
        if backend is not None and persona == "fun":  # the model may write the quip
            canned = quips.quip(question, composition.statements, lead_only=True)
            opening = wit.written(backend, question, composition.statements, canned)
        extractive, statements = voice.say(question, composition, as_of, persona, opening)
        answer.text, answer.citations = extractive, _citations(statements)
        if backend is not None:
            _voice_with(backend, mode, answer, question, composition, posts, on_text, sampling)
    answer.timings_ms = {
        "retrieve": (retrieved - started) * 1000,
        "total": (time.perf_counter() - started) * 1000,
    }
    if on_text is not None and answer.backend == "extractive":
        on_text(answer.text)
    return answer


def _digest(
    store: PostStore,
    question: Question,
    scope: digest.Scope,
    as_of: datetime,
    window: timedelta,
    persona: str,
    started: float,
    on_text: Callable[[str], None] | None,
) -> Answer:
    """An open question's answer: the window's strongest stories, each cited once."""
    stories = digest.stories(store, scope, as_of, window)
    if not stories and not question.timed and window < WIDEST_WINDOW:
        window = WIDEST_WINDOW
        stories = digest.stories(store, scope, as_of, window)
    answer = Answer(
        question=question.text,
        text=voice.digest(question, stories, as_of, window, persona),
        citations=_citations(stories),
        as_of=as_of,
        found=bool(stories),
        window_s=window.total_seconds(),
        persona=persona,
        language=question.lang,
        backend="extractive",
    )
    answer.timings_ms = {"total": (time.perf_counter() - started) * 1000}
    if on_text is not None:
        on_text(answer.text)
    return answer


def _voice_with(
    backend: Backend,
    mode: str,
    answer: Answer,
    question: Question,
    composition: Composition,
    posts: list[Post],
    on_text: Callable[[str], None] | None,
    sampling: tuple[int | None, float | None],
) -> None:
    """Replace the extractive text with the backend's, if every citation of it holds."""
    if mode == "rephrase":
        given = [c.post for c in answer.citations]
        request: Request = rephrase_request(answer.text, answer.persona, question.lang)
    else:
        given = posts[:12]
        request = answer_request(question.text, given, answer.persona)
    if (
        mode == "answer"
        and answer.persona == "fun"
        and mood.is_tragic([question.text, *(s.post.text for s in composition.statements)])
    ):
        request = answer_request(question.text, given, "regular")  # no jokes on tragedies
    max_tokens, temperature = sampling
    request = replace(
        request,
        max_tokens=max_tokens or request.max_tokens,
        temperature=request.temperature if temperature is None else temperature,
    )
    pieces: list[str] = []
    pending = ""
    shown: list[str] = []
    cancel = threading.Event()
    try:
        for piece in backend.stream(request, cancel):
            pieces.append(piece)
            pending += piece
            while (sentence := _first_sentence(pending)) is not None:
                pending = pending[len(sentence) :]
                trouble = verify.problems(sentence, given, answer.as_of)
                if trouble:
                    cancel.set()
                    raise _Unverified("; ".join(trouble))
                shown.append(sentence)
                if on_text is not None:
                    on_text(sentence)
        trouble = verify.problems("".join(pieces), given, answer.as_of)
        if not "".join(pieces).strip():
            trouble = ["the backend returned nothing"]
        elif not verify.cites_any("".join(pieces)):
            trouble = ["the answer cites no post"]
        if trouble:
            raise _Unverified("; ".join(trouble))
    except (BackendError, _Unverified) as exc:
        answer.fallback_reason = f"{backend.name}: {exc}"
        log.warning("LLM answer replaced by the extractive one: %s", answer.fallback_reason)
        if on_text is not None and shown:
            on_text("\n\n")  # what was shown is superseded by what follows
        return
    if on_text is not None and pending:
        on_text(pending)
    answer.text = "".join(pieces).strip()
    answer.backend = backend.name
    if mode == "answer":
        cited = verify.cited_numbers(answer.text)
        answer.citations = [Citation(n, given[n - 1], given[n - 1].text[:280]) for n in cited]


def _first_sentence(pending: str) -> str | None:
    """The streamed text's first sentence (with the space after it) once it is whole:
    a sentence end the segmenter confirms, having seen what follows ("Jan. 3" is no
    end), or a line break."""
    cut = _SENTENCE_DONE.search(pending)
    if cut is None:
        return None
    if pending[cut.start()] == "\n" or "\n" in pending[: cut.start()]:
        return pending[: pending.index("\n") + 1]
    parts = sentences.split(pending)
    if len(parts) < 2:
        return None  # the segmenter has not seen an end yet: wait for more
    end = pending.find(parts[1], pending.find(parts[0]) + len(parts[0]))
    return pending[:end] if end > 0 else None


class _Unverified(Exception):
    """An LLM answer whose citations do not hold."""
