"""`POST /v1/chat/completions`: OpenAI's chat completions with xAI's Live Search.

The last user message is the question; earlier user messages are the conversation
a follow-up leans on. `search_parameters` narrows the search (handles, favorites,
dates, sources). Citations (post URLs) come back in a top-level `citations` list,
and, when streaming, in the last chunk with `usage`. With an LLM configured, the turn
is a conversation (`ima.answer.converse`): `mode` off lets the model answer alone, auto
searches when the turn is about now; `turn` reports the decision and each sentence's
source. Without one, ima answers from posts as it always has, and `turn` says so.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from ima.answer.converse import Reply, Search, Turn
from ima.answer.model import Answer
from ima.answer.proof import Said
from ima.answer.route import decide
from ima.api import schemas
from ima.api.auth import Caller, persona_for, services
from ima.api.errors import ApiError
from ima.api.service import day_bounds, restriction
from ima.text.question import understand

router = APIRouter(tags=["chat"])
MODELS = ("ima", "ima-fun")
SEARCH_OFF = "Live search is off for this request, and ima answers only from live posts."


def check_model(model: str) -> None:
    if model not in MODELS:
        raise ApiError(
            404, f"The model {model!r} does not exist; use one of {', '.join(MODELS)}.",
            param="model", code="model_not_found",
        )  # fmt: skip


def tokens(text: str) -> int:
    """A rough token count (words and CJK characters), for `usage`."""
    return len(text.split()) + sum(1 for c in text if "\u3040" <= c <= "\u9fff")


def conversation(messages: list[Any], param: str = "messages") -> tuple[str, str]:
    """(the question, what the user asked before it)."""
    asked = [m.text() for m in messages if m.role == "user" and m.text().strip()]
    if not asked:
        raise ApiError(400, f"{param}: no user message with text", param=param)
    return asked[-1], "\n".join(asked[:-1][-3:])


def turns(messages: list[Any], param: str = "messages") -> list[Turn]:
    """The conversation's user and assistant messages, ending with the question."""
    said = [Turn(m.role, m.text()) for m in messages
            if m.role in ("user", "assistant") and m.text().strip()]  # fmt: skip
    while said and said[-1].role != "user":
        said.pop()
    if not said:
        raise ApiError(400, f"{param}: no user message with text", param=param)
    return said


def extractive_turn(mode: str, question: str) -> dict[str, Any]:
    """`turn` when no LLM is configured: ima searches (unless told not to) and says why."""
    decision = decide(mode, understand(question), llm=False)
    return {"searched": decision.search, "reason": decision.reason, "sentences": [],
            "removed": [], "context_dropped": 0, "context_summary": "",
            "context_note": ""}  # fmt: skip


def source_restriction(params: schemas.SearchParameters | None) -> str:
    if params is None or not params.sources:
        return ""
    types = {s.type for s in params.sources}
    x = next((s for s in params.sources if s.type == "x"), None)
    parts = []
    if types <= {"news", "rss", "web"}:
        parts.append("source:news")
    elif "x" in types and not types & {"news", "rss", "web"}:
        parts.append("-source:news")
    if x is not None:
        parts.append(restriction(x.included_x_handles, x.excluded_x_handles, x.post_favorite_count))
    return " ".join(p for p in parts if p)


def stream_text(run: Any) -> Iterator[Any]:
    """Run `run(emit)` in a thread; yield what it emits as it is released (text, or a
    conversation's events), then what `run` returned."""
    pieces: queue.Queue = queue.Queue()
    done = object()

    def work() -> None:
        try:
            pieces.put(run(pieces.put))
        except BaseException as exc:  # reported in the stream's own thread
            pieces.put(exc)
        finally:
            pieces.put(done)

    threading.Thread(target=work, daemon=True).start()
    while (item := pieces.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item


def _words(text: str) -> Iterator[str]:
    """An extractive answer arrives whole; stream it a few words at a time."""
    step = 6
    parts = text.split(" ")
    for i in range(0, len(parts), step):
        yield " ".join(parts[i : i + step]) + (" " if i + step < len(parts) else "")


@router.post(
    "/v1/chat/completions",
    response_model=schemas.ChatResponse,
    responses={**schemas.EVENT_STREAM, **schemas.errors(400, 401, 403, 404, 429)},
)
def chat_completions(
    body: schemas.ChatRequest,
    request: Request,
    who: Caller,
) -> Any:
    """Answer the conversation's last question from live posts, with citations."""
    svc = services(request)
    check_model(body.model)
    persona = persona_for(body.persona, body.model, who)
    question, context = conversation(body.messages)
    params = body.search_parameters or schemas.SearchParameters()
    since, until = day_bounds(params.from_date, params.to_date)
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())

    def run(emit: Any = None) -> Reply | Answer | None:
        if svc.backend is not None:
            return svc.converse(
                turns(body.messages), mode=params.mode, persona=persona,
                priority=who.tier.priority, restrict=source_restriction(params),
                since=since, until=until, on_event=emit,
                sampling=(body.max_tokens, body.temperature),
            )  # fmt: skip
        if params.mode == "off":
            return None
        return svc.answer(
            question, persona=persona, priority=who.tier.priority,
            restrict=source_restriction(params), since=since,
            until=until, context=context, on_text=emit,
            sampling=(body.max_tokens, body.temperature),
        )  # fmt: skip

    def citations(answer: Answer | None) -> list[str]:
        if answer is None or not params.return_citations:
            return []
        return [svc.url_of(c.post) for c in answer.citations[: params.max_search_results]]

    def cards(answer: Answer | None) -> list[dict[str, Any]]:
        if answer is None or not params.return_citations:
            return []
        return [svc.card(c.post, c.number) for c in answer.citations[: params.max_search_results]]

    def usage(answer: Answer | None, text: str) -> dict[str, int]:
        prompt = sum(tokens(m.text()) for m in body.messages)
        sources = 0 if answer is None else len(answer.citations)
        completion = tokens(text)
        return {"prompt_tokens": prompt, "completion_tokens": completion,
                "total_tokens": prompt + completion, "num_sources_used": sources}  # fmt: skip

    def turn(result: Reply | Answer | None) -> dict[str, Any]:
        if isinstance(result, Reply):
            return result.to_json()
        return extractive_turn(params.mode, question)

    def partial(answer: Answer | None) -> bool:
        return answer is not None and answer.partial

    def answer_of(result: Reply | Answer | None) -> Answer | None:
        return result.answer if isinstance(result, Reply) else result

    if not body.stream:
        result = run()
        answer = answer_of(result)
        text = SEARCH_OFF if answer is None else answer.text
        return schemas.ChatResponse(
            id=completion_id, created=created, model=body.model,
            choices=[schemas.Choice(message=schemas.ChatMessageOut(content=text))],
            usage=schemas.Usage(**usage(answer, text)), citations=citations(answer),
            citation_posts=cards(answer), turn=turn(result), partial=partial(answer),
        )  # fmt: skip

    def chunk(delta: dict, finish: str | None = None, **extra: Any) -> str:
        payload = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": body.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"  # fmt: skip

    def events() -> Iterator[str]:
        yield chunk({"role": "assistant", "content": ""})
        result: Reply | Answer | None = None
        if params.mode == "off" and svc.backend is None:
            yield chunk({"content": SEARCH_OFF})
            answer, text = None, SEARCH_OFF
        else:
            sent = []
            for item in stream_text(run):
                if isinstance(item, Search):
                    continue  # chat completions show no tool calls, as xAI's do not
                if isinstance(item, Said):  # a conversation's sentence, once proven
                    pieces = [item.text + " "]
                elif isinstance(item, str):
                    pieces = list(_words(item))
                else:
                    result = item
                    continue
                for piece in pieces:
                    sent.append(piece)
                    yield chunk({"content": piece})
            answer, text = answer_of(result), "".join(sent)
        yield chunk({}, "stop", citations=citations(answer), citation_posts=cards(answer),
                    usage=usage(answer, text), turn=turn(result),
                    partial=partial(answer))  # fmt: skip
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")
