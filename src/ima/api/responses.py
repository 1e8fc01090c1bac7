"""`POST /v1/responses`: the Responses shape, with an `x_search` tool (`live_search` is
our alias) narrowing the search. `output_text` carries inline citations `[[N]](url)`
and a `url_citation` annotation for each, whose `start_index`/`end_index` (end
exclusive) span exactly that inline citation. ima always searches: it has no other
knowledge; the tool only narrows where it looks.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from ima.answer.model import Answer
from ima.api import schemas
from ima.api.auth import Caller, persona_for, services
from ima.api.chat import check_model, conversation, tokens
from ima.api.service import Services, day_bounds, restriction

router = APIRouter(tags=["responses"])
_MARKER = re.compile(r"\[(\d+)\]")


def inline_citations(answer: Answer, svc: Services) -> tuple[str, list[schemas.UrlCitation]]:
    """Rewrite `[n]` as `[[n]](url)` and annotate each with its exact span."""
    by_number = {c.number: c for c in answer.citations}
    out: list[str] = []
    notes: list[schemas.UrlCitation] = []
    position = 0
    length = 0
    for match in _MARKER.finditer(answer.text):
        before = answer.text[position : match.start()]
        out.append(before)
        length += len(before)
        citation = by_number.get(int(match.group(1)))
        if citation is None:
            inline = match.group(0)
        else:
            url = svc.url_of(citation.post)
            inline = f"[[{citation.number}]]({url})"
            title = f"@{citation.post.author.handle}: {citation.snippet[:80]}"
            notes.append(schemas.UrlCitation(
                url=url, start_index=length, end_index=length + len(inline), title=title
            ))  # fmt: skip
        out.append(inline)
        length += len(inline)
        position = match.end()
    out.append(answer.text[position:])
    return "".join(out), notes


def _question(body: schemas.ResponsesRequest) -> tuple[str, str]:
    if isinstance(body.input, str):
        return body.input, ""
    return conversation(body.input, param="input")


@router.post(
    "/v1/responses",
    response_model=schemas.ResponsesResponse,
    responses={**schemas.EVENT_STREAM, **schemas.errors(400, 401, 403, 404, 429)},
)
def create_response(body: schemas.ResponsesRequest, request: Request, who: Caller) -> Any:
    """Answer from live posts in the Responses shape, with url_citation annotations."""
    svc = services(request)
    check_model(body.model)
    persona = persona_for(body.persona, body.model, who)
    question, context = _question(body)
    tool = (body.tools or [None])[0]
    since, until = day_bounds(tool.from_date, tool.to_date) if tool else (None, None)
    restrict = restriction(tool.allowed_x_handles, tool.excluded_x_handles) if tool else ""
    answer = svc.answer(
        question,
        persona=persona,
        priority=who.tier.priority,
        restrict=restrict,
        since=since,
        until=until,
        context=context,
        sampling=(body.max_output_tokens, body.temperature),
    )
    text, notes = inline_citations(answer, svc)
    input_tokens = tokens(question) + tokens(context)
    output_tokens = tokens(text)
    response = schemas.ResponsesResponse(
        id=f"resp_{uuid.uuid4().hex[:24]}",
        created_at=int(time.time()),
        model=body.model,
        output=[schemas.OutputMessage(
            id=f"msg_{uuid.uuid4().hex[:24]}",
            content=[schemas.OutputText(text=text, annotations=notes)],
        )],
        usage=schemas.ResponsesUsage(
            input_tokens=input_tokens, output_tokens=output_tokens,
            total_tokens=input_tokens + output_tokens,
            num_searches=1, num_posts_read=len(answer.citations),
        ),
        citations=[n.url for n in notes],
    )  # fmt: skip
    if not body.stream:
        return response
    return StreamingResponse(_events(response), media_type="text/event-stream")


def _events(response: schemas.ResponsesResponse) -> Iterator[str]:
    """The Responses streaming events, in order, each with its sequence number."""
    message = response.output[0]
    part = message.content[0]
    shell = response.model_dump()
    shell.update(status="in_progress", output=[])
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": shell},
        {"type": "response.output_item.added", "output_index": 0,
         "item": {**message.model_dump(), "status": "in_progress", "content": []}},
        {"type": "response.content_part.added", "item_id": message.id, "output_index": 0,
         "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}},
    ]  # fmt: skip
    for start in range(0, len(part.text), 24):
        events.append({"type": "response.output_text.delta", "item_id": message.id,
                       "output_index": 0, "content_index": 0,
                       "delta": part.text[start : start + 24]})  # fmt: skip
    events += [
        {"type": "response.output_text.done", "item_id": message.id, "output_index": 0,
         "content_index": 0, "text": part.text},
        {"type": "response.content_part.done", "item_id": message.id, "output_index": 0,
         "content_index": 0, "part": part.model_dump()},
        {"type": "response.output_item.done", "output_index": 0, "item": message.model_dump()},
        {"type": "response.completed", "response": response.model_dump()},
    ]  # fmt: skip
    for number, event in enumerate(events):
        event["sequence_number"] = number
        yield f"event: {event['type']}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n"
