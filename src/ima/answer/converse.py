"""A conversation turn with an LLM, the way Grok holds one: it talks, searches when the
turn is about now, and proves what it says.

The turn's search decision comes from `ima.answer.route`; a search runs as the tools
`x_keyword_search` (and `x_semantic_search` when vectors are at hand) inside the
request's scope; the model then answers with the posts fenced as data, or, when the turn
did not search, from its own knowledge with no store touched at all. Every sentence it
writes goes through `ima.answer.proof` before anyone sees it. The conversation the model
sees is bounded: the newest messages that fit; the older ones summarised by the model
into one short line, in bounded time and length, or, when it cannot, dropped (the reply
says which). A listener (`on_event`) hears the turn as it happens: each search when it is
asked and when it is answered, then each sentence once it is proven, never before.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ima.answer import proof, tools, verify
from ima.answer.ask import _first_sentence, ask
from ima.answer.llm import Backend, BackendError, Request, chat_request, fence, summary_request
from ima.answer.model import Answer
from ima.answer.route import FOLLOW_UP, Decision, decide
from ima.post import Post
from ima.search import PostStore
from ima.text import analysis, mood
from ima.text.question import understand

log = logging.getLogger(__name__)

MAX_CONTEXT_MESSAGES = 6
MAX_CONTEXT_CHARS = 4_000
SUMMARY_READS = 2_000  # chars of the dropped messages (the newest) a summary reads
SUMMARY_CHARS = 300
SUMMARY_TOKENS = 60
SUMMARY_SECONDS = 10.0
MAX_GIVEN = 10  # posts in the model's prompt
SEARCH_LIMIT = 10
MAX_TURNS = 5  # rounds of search a tool-calling model may take, at most
NO_MODEL = "The model did not answer this time; try again in a moment."
NOTHING_KEPT = "Nothing the model wrote held up, so nothing of it is shown."


@dataclass(frozen=True, slots=True)
class Turn:
    role: Literal["user", "assistant"]
    text: str


@dataclass(frozen=True, slots=True)
class Search:
    """A search as it happens: asked (`done` false: only its name and input are known),
    then answered (its posts or error are in)."""

    call: tools.ToolCall
    done: bool


#: what a turn tells its listener as it happens
Event = Search | proof.Said
Listener = Callable[[Event], None]


@dataclass(slots=True)
class Reply:
    """A turn's answer, how the turn decided to search, what it searched, and the proof
    of each sentence."""

    answer: Answer
    decision: Decision
    said: list[proof.Said] = field(default_factory=list)
    struck: list[proof.Struck] = field(default_factory=list)
    searches: list[tools.ToolCall] = field(default_factory=list)
    dropped: int = 0  # earlier messages left out of the model's context
    summary: str = ""  # the model's line for them, when it gave one in time

    def to_json(self) -> dict[str, Any]:
        """ima's account of the turn, as the API hands it out next to the answer."""
        fate = "summarised into one line in" if self.summary else "dropped from"
        note = (f"{self.dropped} earlier message(s) were {fate} the model's context"
                if self.dropped else "")  # fmt: skip
        return {
            "searched": self.decision.search,
            "reason": self.decision.reason,
            "sentences": [s.to_json() for s in self.said],
            "removed": [s.to_json() for s in self.struck],
            "context_dropped": self.dropped,
            "context_summary": self.summary,
            "context_note": note,
        }


def window(history: list[Turn]) -> tuple[list[Turn], int]:
    """The newest messages that fit the model's context, and how many older ones did not."""
    kept: list[Turn] = []
    chars = 0
    for turn in reversed(history[-MAX_CONTEXT_MESSAGES:]):
        chars += len(turn.text)
        if chars > MAX_CONTEXT_CHARS:
            break
        kept.append(turn)
    kept.reverse()
    return kept, len(history) - len(kept)


def summarise(backend: Backend, dropped: list[Turn]) -> str:
    """The model's one-line summary of `dropped` (the newest `SUMMARY_READS` characters of
    it), or "" when it fails or takes longer than `SUMMARY_SECONDS`: then they are just
    dropped. Its line is the model's own words and is capped, fence markers removed."""
    text = "\n".join(f"{t.role}: {t.text}" for t in dropped)[-SUMMARY_READS:]
    request = summary_request(text, SUMMARY_TOKENS)
    pieces: list[str] = []
    failed = threading.Event()
    cancel = threading.Event()

    def listen() -> None:
        try:
            pieces.extend(backend.stream(request, cancel))
        except BackendError as exc:
            log.warning("the model did not summarise older messages: %s", exc)
            failed.set()

    worker = threading.Thread(target=listen, daemon=True)
    worker.start()
    worker.join(SUMMARY_SECONDS)
    if worker.is_alive() or failed.is_set():
        cancel.set()  # the model stops at its next piece; its late words are not used
        return ""
    line = " ".join("".join(pieces).replace("<<<", " ").replace(">>>", " ").split())
    return line[:SUMMARY_CHARS]


def with_topic(text: str, earlier: str) -> str:
    """A follow-up with the earlier question's topic: its key words, the last name it
    named swapped for the follow-up's own ("and what about Nagoya?" after "Is the
    Shinkansen delayed in Tokyo?" searches Shinkansen, delayed, Nagoya)."""
    before, now = understand(earlier), understand(text)
    words = list(before.words)
    if now.entities:
        named = [w for w in words if any(t in before.entities for t in analysis.terms(w))]
        if named:
            words.remove(named[-1])
    return f"{text} {' '.join(w for w in words if w not in now.words)}".strip()


def converse(
    store: PostStore,
    turns: list[Turn],
    backend: Backend,
    *,
    mode: str = "auto",
    scope: tools.Scope,
    persona: str = "regular",
    semantic: tools.Semantic | None = None,
    on_event: Listener | None = None,
    sampling: tuple[int | None, float | None] = (None, None),
    max_turns: int = 2,
) -> Reply:
    """Answer the last user turn of `turns` (bounded, see `window`). With `mode` off the
    store is never read. In `auto`, a backend whose model calls tools (`tools` set)
    decides itself whether to search, in at most `max_turns` rounds."""
    started = time.perf_counter()
    text = turns[-1].text
    history, dropped = window(turns[:-1])
    summary = summarise(backend, turns[:dropped]) if dropped else ""
    asked = [t.text for t in turns[:-1] if t.role == "user"]
    question = understand(text)
    max_tokens, temperature = sampling
    sampled = {"max_tokens": max_tokens or 300,
               "temperature": 0.3 if temperature is None else temperature}  # fmt: skip
    messages = [{"role": t.role, "content": t.text} for t in history]
    searches: list[tools.ToolCall] = []
    answered: str | None = None  # a tool-calling model's answer when it did not search
    decision: Decision | None = None
    if mode == "auto" and getattr(backend, "tools", False):
        ask_model = replace(chat_request(messages, text, None, persona, tools=True,
                                         summary=summary), **sampled)  # fmt: skip
        try:
            searches, answered = _model_searches(backend, ask_model, store, scope, semantic,
                                                 max_turns, on_event)  # fmt: skip
            decision = Decision(bool(searches), "the model searched" if searches
                                else "the model answered without searching")  # fmt: skip
        except BackendError as exc:
            log.warning("the model's search step failed; the rule decides: %s", exc)
    if decision is None:
        decision = decide(mode, question, llm=True, grounded_before=_grounded(turns[:-1]),
                          store=store if mode == "auto" else None)  # fmt: skip
    reply = Reply(Answer(text, "", [], scope.as_of, False, 0.0, persona, question.lang,
                         backend.name), decision, dropped=dropped, summary=summary)  # fmt: skip
    posts: list[Post] | None = None
    checker = proof.Proof([], scope.as_of)
    extractive: Answer | None = None
    if decision.search:
        if asked and (FOLLOW_UP.search(text) or not question.entities):
            text = with_topic(text, asked[-1])
        reply.searches = searches or _search(store, text, scope, semantic, on_event)
        posts = _given(reply.searches)
        extractive = ask(store, text, as_of=scope.as_of, persona=persona, semantic=semantic,
                         restrict=scope.restrict, since=scope.since)  # fmt: skip
        reply.answer.window_s = extractive.window_s
        if not posts and not extractive.found:
            return _nothing(reply, extractive, on_event)
        checker = proof.Proof(posts, scope.as_of, understand(text).terms,
                              extractive.citations)  # fmt: skip
    if persona == "fun" and mood.is_tragic([text, *(p.text for p in posts or [])]):
        persona = "regular"  # the fun voice never jokes about a tragedy
    request = replace(chat_request(messages, turns[-1].text, posts, persona, summary=summary),
                      **sampled)  # fmt: skip
    try:
        if answered is not None:
            _check(iter([answered]), checker, on_event)
        else:
            _check(backend.stream(request, threading.Event()), checker, on_event)
    except BackendError as exc:
        log.warning("the model did not answer: %s", exc)
        reply.answer.fallback_reason = f"{backend.name}: {exc}"
        if not checker.extractive:
            checker.said.append(proof.Said(NO_MODEL, "ima"))
            _show(on_event, [checker.said[-1]])
    _show(on_event, checker.grounding())
    if not checker.said:  # every sentence struck, and no statement of the posts to stand in
        checker.said.append(proof.Said(extractive.text if extractive else NOTHING_KEPT, "ima"))
        _show(on_event, checker.said)
    reply.said, reply.struck = checker.said, checker.struck
    reply.answer.text = " ".join(s.text for s in checker.said)
    reply.answer.citations = checker.citations()
    reply.answer.found = bool(reply.answer.citations)
    reply.answer.timings_ms = {"total": (time.perf_counter() - started) * 1000}
    return reply


def _grounded(history: list[Turn]) -> bool:
    """Whether the last answer of the conversation cited posts."""
    replies = [t.text for t in history if t.role == "assistant"]
    return bool(replies) and verify.cites_any(replies[-1])


def _search(store: PostStore, text: str, scope: tools.Scope,
            semantic: tools.Semantic | None, on_event: Listener | None) -> list[tools.ToolCall]:
    """The searches a turn about now runs: its key words, and its meaning when vectors
    are at hand."""
    query = understand(text).query()
    calls = [tools.ToolCall(tools.KEYWORD, {"query": query, "limit": SEARCH_LIMIT,
                                            "mode": "Top"})]  # fmt: skip
    if semantic is not None and not scope.restrict:
        calls.append(tools.ToolCall(tools.SEMANTIC, {"query": text, "limit": SEARCH_LIMIT}))
    return [_run(c, store, scope, semantic, on_event) for c in calls if query]


def _run(call: tools.ToolCall, store: PostStore, scope: tools.Scope,
         semantic: tools.Semantic | None, on_event: Listener | None) -> tools.ToolCall:
    """One search, told to the listener when asked and when answered."""
    if on_event is not None:
        on_event(Search(call, done=False))
    tools.run(call, store, scope, semantic)
    if on_event is not None:
        on_event(Search(call, done=True))
    return call


def _given(calls: list[tools.ToolCall]) -> list[Post]:
    """The posts the searches read, each once, best first, as many as a prompt holds."""
    seen: dict[str, Post] = {}
    for call in calls:
        for post in call.posts:
            seen.setdefault(post.id, post)
    return list(seen.values())[:MAX_GIVEN]


def _nothing(reply: Reply, extractive: Answer, on_event: Listener | None) -> Reply:
    """A search that found nothing: ima says so, in its own words (the model is not asked
    to fill the gap)."""
    said = proof.Said(extractive.text, "ima")
    reply.said = [said]
    reply.answer.text = extractive.text
    _show(on_event, [said])
    return reply


def _model_searches(
    backend: Any, request: Request, store: PostStore, scope: tools.Scope,
    semantic: tools.Semantic | None, max_turns: int, on_event: Listener | None,
) -> tuple[list[tools.ToolCall], str | None]:
    """Rounds (at most `max_turns`) in which a tool-calling model searches; the searches,
    and its answer when it gave one without searching. What a search found goes back to
    the model fenced as data."""
    messages = list(request.messages)
    searches: list[tools.ToolCall] = []
    for _ in range(max(1, min(max_turns, MAX_TURNS))):
        step = backend.step(replace(request, messages=messages), tools.SCHEMAS)
        if not step.calls:  # an empty answer: the model is asked again, without tools
            return searches, None if searches else (step.text.strip() or None)
        calls = [_run(tools.ToolCall(name, args, call_id=call_id), store, scope, semantic,
                      on_event) for call_id, name, args in step.calls]  # fmt: skip
        searches += calls
        messages.append({"role": "assistant", "content": step.text, "tool_calls": [
            {"id": c.call_id, "type": "function",
             "function": {"name": c.name, "arguments": json.dumps(c.input)}} for c in calls
        ]})  # fmt: skip
        messages += [{"role": "tool", "tool_call_id": c.call_id,
                      "content": c.error or fence(c.posts) or "no posts found"}
                     for c in calls]  # fmt: skip
    return searches, None


def _check(pieces: Iterator[str], checker: proof.Proof,
           on_event: Listener | None) -> None:
    """The model's text, checked sentence by sentence as each is whole."""
    pending = ""
    for piece in pieces:
        pending += piece
        while (sentence := _first_sentence(pending)) is not None:
            pending = pending[len(sentence):]
            _show(on_event, checker.check(sentence))
    _show(on_event, checker.check(pending))


def _show(on_event: Listener | None, said: list[proof.Said]) -> None:
    if on_event is not None:
        for s in said:
            on_event(s)
