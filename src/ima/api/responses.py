"""`POST /v1/responses`: the Responses shape, with an `x_search` tool (`live_search` is
our alias) narrowing the search. `output_text` carries inline citations `[[N]](url)`
and a `url_citation` annotation for each, whose `start_index`/`end_index` (end
exclusive) span exactly that inline citation. Without an LLM, ima always searches: it
has no other knowledge, and the tool only narrows where it looks. With one, the turn is a
conversation (`ima.answer.converse`): `tool_choice` none never searches, required always
does, auto decides; each search is a `custom_tool_call` output item before the message,
with the posts it read when `include` asks for `x_search_call.results`.

Streaming is live, in xAI's order: `response.created` at once, each search's item and
input as the search is asked and its `output_item.done` when it is answered, then the
text. The text streams one proven sentence at a time, as chat completions' does: a
sentence is held until the verifier has passed it (or struck it, and then it is never
sent), so nothing streamed is ever taken back. Without an LLM the extractive answer is
whole when it is ready, and streams then.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from itertools import count
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from ima.answer.converse import Listener, Reply, Search, Turn
from ima.answer.model import Answer, Citation
from ima.answer.proof import Said
from ima.answer.tools import ToolCall
from ima.api import schemas
from ima.api.auth import Caller, persona_for, services
from ima.api.chat import check_model, conversation, stream_text, tokens, turns
from ima.api.errors import ApiError
from ima.api.service import Services, day_bounds, restriction

log = logging.getLogger(__name__)
router = APIRouter(tags=["responses"])
_MARKER = re.compile(r"\[(\d+)\]")


def inline_citations(answer: Answer, svc: Services) -> tuple[str, list[schemas.UrlCitation]]:
    """Rewrite `[n]` as `[[n]](url)` and annotate each with its exact span."""
    return _linked(answer.text, {c.number: c for c in answer.citations}, svc)


def _linked_sentence(said: Said, svc: Services) -> str:
    """A proven sentence as it will read in the whole answer's `output_text`."""
    numbered = zip(said.citations, said.cited, strict=True)
    by_number = {n: Citation(n, p, p.text[:280]) for n, p in numbered}
    return _linked(said.text, by_number, svc)[0]


def _linked(
    text: str, by_number: dict[int, Citation], svc: Services
) -> tuple[str, list[schemas.UrlCitation]]:
    out: list[str] = []
    notes: list[schemas.UrlCitation] = []
    position = 0
    length = 0
    for match in _MARKER.finditer(text):
        before = text[position : match.start()]
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
    out.append(text[position:])
    return "".join(out), notes


_MODES = {"auto": "auto", "none": "off", "required": "on"}


def _turns(body: schemas.ResponsesRequest) -> list[Turn]:
    if isinstance(body.input, str):
        return [Turn("user", body.input)]
    return turns(body.input, param="input")


def _tool_item(call: ToolCall, svc: Services, results: bool) -> schemas.CustomToolCall:
    """A search as an output item, with the posts it read when asked for."""
    return schemas.CustomToolCall(
        id=f"ctc_{call.call_id[5:]}", call_id=call.call_id, name=call.name,
        input=json.dumps(call.input, ensure_ascii=False),
        status="failed" if call.error else "completed",
        results=[svc.card(p, None) for p in call.posts] if results else None,
    )  # fmt: skip


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
    results = "x_search_call.results" in (body.include or [])
    response_id, message_id = f"resp_{uuid.uuid4().hex[:24]}", f"msg_{uuid.uuid4().hex[:24]}"
    created = int(time.time())

    def respond(emit: Listener | None = None) -> schemas.ResponsesResponse:
        reply: Reply | None = None
        if svc.backend is not None:
            reply = svc.converse(
                _turns(body), mode=_MODES[body.tool_choice or "auto"], persona=persona,
                priority=who.tier.priority, restrict=restrict, since=since, until=until,
                sampling=sampling, max_turns=body.max_turns or 2, on_event=emit,
            )  # fmt: skip
            answer = reply.answer
        else:
            answer = svc.answer(question, persona=persona, priority=who.tier.priority,
                                restrict=restrict, since=since, until=until, context=context,
                                sampling=sampling)  # fmt: skip
        text, notes = inline_citations(answer, svc)
        input_tokens = tokens(question) + tokens(context)
        output_tokens = tokens(text)
        calls = [_tool_item(c, svc, results) for c in reply.searches] if reply else []
        read = (len(answer.citations) if reply is None
                else sum(len(c.posts) for c in reply.searches))  # fmt: skip
        return schemas.ResponsesResponse(
            id=response_id, created_at=created, model=body.model,
            output=[*calls, schemas.OutputMessage(
                id=message_id, content=[schemas.OutputText(text=text, annotations=notes)],
            )],
            usage=schemas.ResponsesUsage(
                input_tokens=input_tokens, output_tokens=output_tokens,
                total_tokens=input_tokens + output_tokens,
                num_searches=1 if reply is None else len(calls), num_posts_read=read,
                num_server_side_tools_used=len(calls),
                server_side_tool_usage_details={"x_search_calls": len(calls)} if reply else {},
            ),
            citations=[n.url for n in notes],
            turn=None if reply is None else reply.to_json(), partial=answer.partial,
        )  # fmt: skip

    if not body.stream:
        return respond()
    shell = {"id": response_id, "object": "response", "created_at": created,
             "model": body.model, "status": "in_progress", "output": []}  # fmt: skip
    live = _Live(svc, results, message_id)
    return StreamingResponse(live.events(respond, shell), media_type="text/event-stream")


class _Live:
    """One streamed response: the events, numbered, as the turn happens."""

    def __init__(self, svc: Services, results: bool, message_id: str) -> None:
        self.svc, self.results, self.message_id = svc, results, message_id
        self.numbers = count()
        self.items: dict[str, int] = {}  # a search's call id: its output index
        self.text: list[str] = []  # the text streamed so far
        self.opened = False  # the message item has begun

    def events(self, respond: Callable[..., schemas.ResponsesResponse],
               shell: dict[str, Any]) -> Iterator[str]:
        """`response.created` at once, then the turn's events, then `response.completed`;
        a failure ends the stream with an `error` event that names no internals."""
        yield self._sse({"type": "response.created", "response": shell})
        yield self._sse({"type": "response.in_progress", "response": shell})
        try:
            for item in stream_text(respond):
                if isinstance(item, Search):
                    yield from self._search(item)
                elif isinstance(item, Said):
                    yield from self._said(item)
                else:
                    yield from self._done(item)
        except ApiError as exc:
            yield self._sse({"type": "error", "code": exc.code, "message": exc.message,
                             "param": exc.param})  # fmt: skip
        except Exception:
            log.exception("a streamed response failed")
            yield self._sse({"type": "error", "code": "server_error", "param": None,
                             "message": "The answer failed."})  # fmt: skip

    def _sse(self, event: dict[str, Any]) -> str:
        event["sequence_number"] = next(self.numbers)
        return f"event: {event['type']}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n"

    def _search(self, search: Search) -> Iterator[str]:
        item = _tool_item(search.call, self.svc, self.results)
        if search.done:
            index = self.items[item.call_id]
            yield self._sse({"type": "response.output_item.done", "output_index": index,
                             "item": item.model_dump(exclude_none=True)})  # fmt: skip
            return
        index = self.items[item.call_id] = len(self.items)
        opened = {**item.model_dump(exclude_none=True), "input": "", "status": "in_progress"}
        opened.pop("results", None)
        yield self._sse({"type": "response.output_item.added", "output_index": index,
                         "item": opened})  # fmt: skip
        for start in range(0, len(item.input), 24):
            yield self._sse({"type": "response.custom_tool_call_input.delta",
                             "item_id": item.id, "output_index": index,
                             "delta": item.input[start : start + 24]})  # fmt: skip
        yield self._sse({"type": "response.custom_tool_call_input.done", "item_id": item.id,
                         "output_index": index, "input": item.input})  # fmt: skip

    def _said(self, said: Said) -> Iterator[str]:
        yield from self._open()
        yield self._delta((" " if self.text else "") + _linked_sentence(said, self.svc))

    def _open(self) -> Iterator[str]:
        if self.opened:
            return
        self.opened = True
        index = len(self.items)
        yield self._sse({"type": "response.output_item.added", "output_index": index,
                         "item": {"type": "message", "id": self.message_id, "status":
                                  "in_progress", "role": "assistant", "content": []}})
        yield self._sse({"type": "response.content_part.added", "item_id": self.message_id,
                         "output_index": index, "content_index": 0,
                         "part": {"type": "output_text", "text": "", "annotations": []}})

    def _delta(self, delta: str) -> str:
        self.text.append(delta)
        return self._sse({"type": "response.output_text.delta", "item_id": self.message_id,
                          "output_index": len(self.items), "content_index": 0,
                          "delta": delta})  # fmt: skip

    def _done(self, response: schemas.ResponsesResponse) -> Iterator[str]:
        """The rest of the text (all of it, for an answer that was whole only now), then
        the message's closing events and `response.completed`."""
        yield from self._open()
        message = response.output[-1]
        assert isinstance(message, schemas.OutputMessage)
        part = message.content[0]
        sent = "".join(self.text)
        rest = part.text[len(sent):] if part.text.startswith(sent) else ""
        for start in range(0, len(rest), 24):
            yield self._delta(rest[start : start + 24])
        index = len(self.items)
        yield self._sse({"type": "response.output_text.done", "item_id": message.id,
                         "output_index": index, "content_index": 0, "text": part.text})
        yield self._sse({"type": "response.content_part.done", "item_id": message.id,
                         "output_index": index, "content_index": 0,
                         "part": part.model_dump()})  # fmt: skip
        yield self._sse({"type": "response.output_item.done", "output_index": index,
                         "item": message.model_dump()})  # fmt: skip
        yield self._sse({"type": "response.completed", "response": response.model_dump()})
