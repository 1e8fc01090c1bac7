"""`POST /v1/responses`: the Responses shape, with an `x_search` tool (`live_search` is
our alias) narrowing the search. `output_text` carries inline citations `[[N]](url)`
and a `url_citation` annotation for each, whose `start_index`/`end_index` (end
exclusive) span exactly that inline citation. Without an LLM, ima always searches: it
has no other knowledge, and the tool only narrows where it looks. With one, the turn is a
conversation (`ima.answer.converse`): `tool_choice` none never searches, required always
does, auto decides; each search is a `custom_tool_call` output item before the message,
with the posts it read when `include` asks for `x_search_call.results`.
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

from ima.answer.converse import Reply, Turn
from ima.answer.model import Answer
from ima.api import schemas
from ima.api.auth import Caller, persona_for, services
from ima.api.chat import check_model, conversation, tokens, turns
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


_MODES = {"auto": "auto", "none": "off", "required": "on"}


def _turns(body: schemas.ResponsesRequest) -> list[Turn]:
    if isinstance(body.input, str):
        return [Turn("user", body.input)]
    return turns(body.input, param="input")


def _tool_calls(
    reply: Reply | None, svc: Services, results: bool
) -> list[schemas.CustomToolCall]:
    """The turn's searches as output items, with the posts read when asked for."""
    if reply is None:
        return []
    return [schemas.CustomToolCall(
        id=f"ctc_{c.call_id[5:]}", call_id=c.call_id, name=c.name,
        input=json.dumps(c.input, ensure_ascii=False),
        status="failed" if c.error else "completed",
        results=[svc.card(p, None) for p in c.posts] if results else None,
    ) for c in reply.searches]  # fmt: skip


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
    sampling = (body.max_output_tokens, body.temperature)
    reply: Reply | None = None
    if svc.backend is not None:
        reply = svc.converse(
            _turns(body), mode=_MODES[body.tool_choice or "auto"], persona=persona,
            priority=who.tier.priority, restrict=restrict, since=since, until=until,
            sampling=sampling, max_turns=body.max_turns or 2,
        )  # fmt: skip
        answer = reply.answer
    else:
        answer = svc.answer(question, persona=persona, priority=who.tier.priority,
                            restrict=restrict, since=since, until=until, context=context,
                            sampling=sampling)  # fmt: skip
    text, notes = inline_citations(answer, svc)
    input_tokens = tokens(question) + tokens(context)
    output_tokens = tokens(text)
    calls = _tool_calls(reply, svc, "x_search_call.results" in (body.include or []))
    read = len(answer.citations) if reply is None else sum(len(c.posts) for c in reply.searches)
    response = schemas.ResponsesResponse(
        id=f"resp_{uuid.uuid4().hex[:24]}",
        created_at=int(time.time()),
        model=body.model,
        output=[*calls, schemas.OutputMessage(
            id=f"msg_{uuid.uuid4().hex[:24]}",
            content=[schemas.OutputText(text=text, annotations=notes)],
        )],
        usage=schemas.ResponsesUsage(
            input_tokens=input_tokens, output_tokens=output_tokens,
            total_tokens=input_tokens + output_tokens,
            num_searches=1 if reply is None else len(calls), num_posts_read=read,
            num_server_side_tools_used=len(calls),
            server_side_tool_usage_details={"x_search_calls": len(calls)} if reply else {},
        ),
        citations=[n.url for n in notes],
        turn=None if reply is None else reply.to_json(),
    )  # fmt: skip
    if not body.stream:
        return response
    return StreamingResponse(_events(response), media_type="text/event-stream")


def _events(response: schemas.ResponsesResponse) -> Iterator[str]:
    """The Responses streaming events, in xAI's order (each search's item with its input
    deltas, then the message), each with its sequence number."""
    shell = response.model_dump()
    shell.update(status="in_progress", output=[])
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": shell},
        {"type": "response.in_progress", "response": shell},
    ]
    for index, item in enumerate(response.output):
        if isinstance(item, schemas.CustomToolCall):
            events += _tool_call_events(item, index)
        else:
            events += _message_events(item, index)
    events.append({"type": "response.completed", "response": response.model_dump()})
    for number, event in enumerate(events):
        event["sequence_number"] = number
        yield f"event: {event['type']}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n"


def _tool_call_events(call: schemas.CustomToolCall, index: int) -> list[dict[str, Any]]:
    opened = {**call.model_dump(exclude_none=True), "input": "", "status": "in_progress"}
    events: list[dict[str, Any]] = [
        {"type": "response.output_item.added", "output_index": index, "item": opened}
    ]
    for start in range(0, len(call.input), 24):
        events.append({"type": "response.custom_tool_call_input.delta", "item_id": call.id,
                       "output_index": index, "delta": call.input[start : start + 24]})  # fmt: skip
    return [*events,
        {"type": "response.custom_tool_call_input.done", "item_id": call.id,
         "output_index": index, "input": call.input},
        {"type": "response.output_item.done", "output_index": index,
         "item": call.model_dump(exclude_none=True)},
    ]  # fmt: skip


def _message_events(message: schemas.OutputMessage, index: int) -> list[dict[str, Any]]:
    part = message.content[0]
    events: list[dict[str, Any]] = [
        {"type": "response.output_item.added", "output_index": index,
         "item": {**message.model_dump(), "status": "in_progress", "content": []}},
        {"type": "response.content_part.added", "item_id": message.id, "output_index": index,
         "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}},
    ]  # fmt: skip
    for start in range(0, len(part.text), 24):
        events.append({"type": "response.output_text.delta", "item_id": message.id,
                       "output_index": index, "content_index": 0,
                       "delta": part.text[start : start + 24]})  # fmt: skip
    return [*events,
        {"type": "response.output_text.done", "item_id": message.id, "output_index": index,
         "content_index": 0, "text": part.text},
        {"type": "response.content_part.done", "item_id": message.id, "output_index": index,
         "content_index": 0, "part": part.model_dump()},
        {"type": "response.output_item.done", "output_index": index,
         "item": message.model_dump()},
    ]  # fmt: skip
