"""`python -m ima.bench.conversation FILE COUNT URL NAME`: a conversation LLM on real text.

COUNT known questions of a real-text file (`ima eval --real`'s format), spread evenly
over it, are each asked as a turn that searches (mode on) at the question's `as_of`,
and a few general prompts as turns that do not (mode off), against the OpenAI-compatible
server at URL (model NAME). Reported: the model's first token, the first proven
sentence (what a streaming client is first shown: a sentence is held until it is
verified) and the whole answer (median and p90, seconds), how many sentences the model
wrote and what the proof did with them (kept as cited and verified, kept as the model's
own, removed, replaced by the posts' own statement), each answer (to read), and the
rephrase test: `ask` in the fun voice with the model rephrasing the extractive answer,
verified or replaced.
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ima.answer.ask import ask
from ima.answer.converse import Event, Reply, Turn, converse
from ima.answer.llm import Backend, OpenAICompatible, Request
from ima.answer.proof import Said
from ima.answer.tools import Scope
from ima.bench.realtext import _percentile, load
from ima.ingest import Pipeline, ingest
from ima.store import Store

GENERAL = (
    "Tell me a joke about trains.",
    "Explain in one sentence what a ferry is.",
    "Why is the sky blue?",
    "Say hello in a witty way.",
    "What is a hashtag?",
)
MAX_TOKENS = 60


class Timed:
    """A backend that notes when each answer's first piece arrived."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.name = backend.name
        self.first: float | None = None

    def stream(self, request: Request, cancel: threading.Event | None = None) -> Iterator[str]:
        for piece in self.backend.stream(request, cancel):
            if self.first is None:
                self.first = time.perf_counter()
            yield piece


def _tally(reply: Reply, counts: dict[str, int]) -> None:
    instead = {s.replaced_by for s in reply.struck if s.replaced_by}
    cited = [s for s in reply.said if s.source == "posts"]
    counts["kept_cited"] += sum(1 for s in cited if s.text not in instead)
    counts["kept_model"] += sum(1 for s in reply.said if s.source == "model")
    counts["removed"] += sum(1 for s in reply.struck if s.text and not s.replaced_by)
    counts["replaced"] += sum(1 for s in reply.struck if s.text and s.replaced_by)
    counts["grounding_added"] += sum(1 for s in reply.struck if not s.text)


def _turns(store: Any, backend: Timed, asks: list[tuple[str, Any]], mode: str) -> dict[str, Any]:
    counts = dict.fromkeys(("kept_cited", "kept_model", "removed", "replaced",
                            "grounding_added"), 0)  # fmt: skip
    first: list[float] = []
    shown: list[float] = []
    whole: list[float] = []
    answers: list[dict[str, str]] = []
    for question, as_of in asks:
        backend.first = None
        started = time.perf_counter()
        proven: list[float] = []

        def note(event: Event, proven: list[float] = proven) -> None:
            if isinstance(event, Said):
                proven.append(time.perf_counter())

        reply = converse(store, [Turn("user", question)], backend, mode=mode,
                         scope=Scope(as_of), sampling=(MAX_TOKENS, None),
                         on_event=note)  # fmt: skip
        whole.append(time.perf_counter() - started)
        if backend.first is not None:
            first.append(backend.first - started)
        if proven:
            shown.append(proven[0] - started)
        _tally(reply, counts)
        answers.append({"question": question, "answer": reply.answer.text})
    return {
        "turns": len(asks),
        "first_token_s": {"p50": round(_percentile(first, 0.5), 2),
                          "p90": round(_percentile(first, 0.9), 2)},
        "first_proven_sentence_s": {"p50": round(_percentile(shown, 0.5), 2),
                                    "p90": round(_percentile(shown, 0.9), 2)},
        "whole_answer_s": {"p50": round(_percentile(whole, 0.5), 2),
                           "p90": round(_percentile(whole, 0.9), 2)},
        **counts,
        "answers": answers,
    }  # fmt: skip


def measure(path: Path, data: Path, backend: Backend, count: int) -> dict[str, Any]:
    """The figures above for one model, over a fresh store in `data`."""
    records, cases = load(path)
    known = [c for c in cases if c.answers]
    chosen = known[:: max(1, len(known) // max(1, count))][:count]
    store = Store(data)
    with Pipeline(store) as pipeline:
        ingest(pipeline, records, source="eval", group=500)
    timed = Timed(backend)
    try:
        searched = _turns(store, timed, [(c.question, c.as_of) for c in chosen], "on")
        general = _turns(store, timed, [(q, datetime.now(UTC)) for q in GENERAL], "off")
        verified = 0
        for case in chosen:
            answer = ask(store, case.question, as_of=case.as_of, persona="fun",
                         backend=timed, mode="rephrase", sampling=(MAX_TOKENS, None))  # fmt: skip
            verified += answer.backend != "extractive" and not answer.fallback_reason
    finally:
        store.close()
    return {"model": backend.name, "questions": len(chosen), "searched": searched,
            "general": general,
            "rephrase": {"verified": verified, "replaced": len(chosen) - verified}}  # fmt: skip


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print("usage: python -m ima.bench.conversation FILE COUNT URL NAME")
        return 2
    path, count, url, name = Path(argv[0]), int(argv[1]), argv[2], argv[3]
    with tempfile.TemporaryDirectory(prefix="ima-conversation-") as tmp:
        report = measure(path, Path(tmp) / "data", OpenAICompatible(url, model=name), count)
    print(json.dumps(report, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
