"""A conversation at a terminal (`ima ask --chat`): the user asks, ima answers, and the
next question may follow up on the last ("and what about Nagoya?").

With an LLM each turn is `ima.answer.converse` over the conversation so far (whose
window bounds what the model sees); without one each is `ask` with the earlier
questions as its context, as the API does. An empty line, "exit" or the end of input
ends it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from ima.answer.ask import ask
from ima.answer.converse import Event, Turn, converse
from ima.answer.llm import Backend
from ima.answer.model import Citation
from ima.answer.proof import Said
from ima.answer.tools import Scope, Semantic
from ima.search import PostStore

MAX_MESSAGES = 40  # held at most; older ones go (the model's window is smaller still)
ENDINGS = frozenset({"", "exit", "quit", "bye"})


def citation_line(citation: Citation) -> str:
    """A cited post as the terminal lists it under an answer."""
    post = citation.post
    when = post.created_at.strftime("%Y-%m-%d %H:%M UTC")
    return f"  [{citation.number}] @{post.author.handle} · {when} · {post.url or post.id}"


def chat(
    store: PostStore,
    *,
    read: Callable[[], str | None],
    write: Callable[[str], None],
    backend: Backend | None = None,
    persona: str = "regular",
    semantic: Semantic | None = None,
    as_of: datetime | None = None,
    first: str = "",
) -> int:
    """Answer what `read` returns (after `first`, when given) until the user stops;
    `write` gets text as it is proven, each answer ending with a newline. Returns the
    number of questions answered."""
    turns: list[Turn] = []
    answered = 0
    question = first
    while True:
        if not question:
            question = read()
        if question is None or question.strip().lower() in ENDINGS:
            return answered
        try:
            text, cited = _turn(store, turns, question.strip(), write, backend, persona,
                                semantic, as_of)  # fmt: skip
        except ValueError as exc:
            write(f"({exc})\n")
        else:
            turns = [*turns, Turn("user", question.strip()), Turn("assistant", text)]
            turns = turns[-MAX_MESSAGES:]
            answered += 1
            write("\n" + "".join(citation_line(c) + "\n" for c in cited))
        question = ""


def _turn(
    store: PostStore, turns: list[Turn], question: str, write: Callable[[str], None],
    backend: Backend | None, persona: str, semantic: Semantic | None,
    as_of: datetime | None,
) -> tuple[str, list[Citation]]:
    """One answer, written as it comes; its text and the posts it cites."""
    instant = as_of or datetime.now(UTC)
    if backend is None:
        asked = [t.text for t in turns if t.role == "user"]
        answer = ask(store, question, as_of=instant, persona=persona, semantic=semantic,
                     context="\n".join(asked[-3:]))  # fmt: skip
        write(answer.text)
        return answer.text, answer.citations

    def show(event: Event) -> None:
        if isinstance(event, Said):
            write(event.text + " ")

    reply = converse(store, [*turns, Turn("user", question)], backend, scope=Scope(instant),
                     persona=persona, semantic=semantic, on_event=show)  # fmt: skip
    return reply.answer.text, reply.answer.citations
