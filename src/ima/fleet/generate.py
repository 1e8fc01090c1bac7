"""Generation through the fleet: an LLM `Backend` whose pieces stream from workers.

`ask` treats it as any backend: every sentence is verified (`ima.answer.verify`)
before a client sees it, and an answer that fails falls back to the extractive one.
A worker that dies or stalls mid-answer is replaced by another that continues from
the text already streamed (the supervisor's continuation); with no worker at all,
the local backend (if `ima serve` has one) answers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from ima.answer.llm import Backend, BackendError, Request
from ima.fleet.protocol import GenerateJob
from ima.fleet.supervisor import NoWorker, Supervisor, note_route


class FleetBackend:
    def __init__(self, supervisor: Supervisor, local: Backend | None = None) -> None:
        self.supervisor = supervisor
        self.local = local
        self.name = "fleet" if local is None else f"fleet ({local.name} here)"

    def stream(self, request: Request, cancel: threading.Event | None = None) -> Iterator[str]:
        def job(prefix: str) -> bytes:
            return GenerateJob(request.messages, request.max_tokens, request.temperature,
                               prefix).encode()  # fmt: skip

        given = False
        try:
            for piece in self.supervisor.stream("generate", job, cancel or threading.Event()):
                given = True
                yield piece
            note_route("fleet")
        except NoWorker as exc:
            if given or self.local is None:
                raise BackendError(f"fleet: {exc}") from None
            note_route("local")
            yield from self.local.stream(request, cancel)
