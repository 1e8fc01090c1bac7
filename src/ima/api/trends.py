"""What's happening: the current stories, at any instant, and a live feed of their updates."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from ima.answer.model import iso
from ima.api import feeds, schemas
from ima.api.auth import Caller, persona_for, services
from ima.api.errors import ApiError
from ima.api.service import Services
from ima.normalize import RecordError
from ima.post import from_us, to_us
from ima.query import parse_as_of

router = APIRouter(tags=["trends"])
_ERRORS = schemas.errors(400, 401, 403, 429, 503)
Window = Annotated[Literal["5m", "1h", "24h"], Query(description="The window to judge bursts in.")]
Voice = Annotated[Literal["regular", "fun"], Query(description="The headline's voice.")]


def _trends(svc: Services) -> Any:
    if svc.trends is None:
        raise ApiError(503, "Trends are not running on this server.", code="trends_unavailable")
    return svc.trends


def _story_out(story: dict[str, Any], voice: str, svc: Services) -> schemas.StoryOut:
    def posts(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**c, "url": svc.link(c["post_id"], c["url"])} for c in cards]

    fields = {k: v for k, v in story.items() if k not in ("fun_title", "ended")}
    fields["citations"] = posts(story["citations"])
    fields["top_posts"] = posts(story["top_posts"])
    return schemas.StoryOut(
        **fields, headline=story["fun_title"] if voice == "fun" else story["title"]
    )


@router.get("/v1/trends", response_model=schemas.TrendsResponse, responses=_ERRORS)
def current_trends(
    request: Request,
    who: Caller,
    window: Window = "1h",
    as_of: Annotated[str | None, Query(max_length=64)] = None,
    voice: Voice = "regular",
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> schemas.TrendsResponse:
    """The stories bursting in `window` now, or as they stood at `as_of`."""
    svc = services(request)
    voice = persona_for(voice, "", who, field="voice")
    trends = _trends(svc)
    try:
        instant = parse_as_of(as_of)
    except RecordError as exc:
        raise ApiError(400, str(exc), param="as_of", code="invalid_value") from None
    at_us = to_us(instant) if instant else trends.history.state("tick_us")
    stories = trends.current(window, at_us)[:limit]
    return schemas.TrendsResponse(
        window=window,
        as_of=iso(from_us(at_us)) if at_us else None,
        data=[_story_out(s, voice, svc) for s in stories],
    )


@router.get(
    "/v1/trends/stream",
    responses={**schemas.EVENT_STREAM, **_ERRORS},
)
async def trend_updates(
    request: Request, who: Caller, window: Window = "5m", voice: Voice = "regular"
) -> StreamingResponse:
    """Server-Sent Events: `snapshot` (the current stories) first, then `story` for each
    new or changed story and `ended` when one stops bursting."""
    svc = services(request)
    voice = persona_for(voice, "", who, field="voice")
    trends = _trends(svc)
    seen = [await run_in_threadpool(lambda: trends.update_seq)]

    async def first() -> list[str]:
        stories = await run_in_threadpool(trends.current, window)
        return [feeds.event("snapshot", [_story_out(s, voice, svc).model_dump() for s in stories])]

    async def poll() -> list[str]:
        out = []
        for seq, body in await run_in_threadpool(trends.updates_since, seen[0]):
            seen[0] = seq
            if body["window"] == window:
                name = "ended" if body.get("ended") else "story"
                out.append(feeds.event(name, _story_out(body, voice, svc).model_dump()))
        return out

    return feeds.polled(request, first, poll)
