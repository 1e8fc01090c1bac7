"""What's happening: the stories at any instant, a live feed of their updates, and the
same stories in the shape of X's news endpoints (`/2/news/search`, `/2/news/{id}`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from ima.api import feeds, schemas
from ima.api.auth import Caller, persona_for, services
from ima.api.errors import ApiError
from ima.api.service import Services
from ima.errors import BadInput
from ima.post import from_us, iso, to_us
from ima.query import parse_as_of
from ima.text import analysis
from ima.trends.stories import DISCLAIMER

router = APIRouter(tags=["trends"])
_ERRORS = schemas.errors(400, 401, 403, 429, 503)
WindowName = Literal["5m", "1h", "24h"]
Window = Annotated[WindowName, Query(description="The window to judge bursts in.")]
HOUR_US = 3600 * 1_000_000


class Story(schemas.StoryOut):
    """A story, with what X's news stories carry besides."""

    # defaults: versions recorded before stories had these fields
    hook: str = Field("", description="Why it matters now: one quoted, cited sentence.")
    keywords: list[str] = Field([], description="Its key words, strongest first.")
    entities: dict[str, list[str]] = Field({}, description="people, organizations, places.")
    post_ids: list[str] = Field([], description="The posts behind it, those cited first.")
    disclaimer: str = DISCLAIMER


class Trends(BaseModel):
    object: Literal["list"] = "list"
    window: WindowName | None = Field(description="The window asked for; null: all three.")
    as_of: str | None
    data: list[Story]


class News(BaseModel):
    """A story as X's `/2/news` endpoints return one."""

    id: str
    rest_id: str
    name: str = Field(description="The headline, in the posts' own words.")
    hook: str
    summary: str
    category: str = Field(description="The window the story burst in (5m, 1h or 24h).")
    keywords: list[str]
    contexts: dict[str, Any] = Field(description="entities: people, organizations, places.")
    cluster_posts_results: list[dict[str, str]]
    disclaimer: str
    last_updated_at_ms: str
    lang: str


class NewsList(BaseModel):
    data: list[News]
    meta: dict[str, int]


class NewsOne(BaseModel):
    data: News


Voice = Annotated[Literal["regular", "fun"], Query(description="The headline's voice.")]


def _trends(svc: Services) -> Any:
    if svc.trends is None:
        raise ApiError(503, "Trends are not running on this server.", code="trends_unavailable")
    return svc.trends


def _story_out(story: dict[str, Any], voice: str, svc: Services) -> Story:
    def posts(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**c, "url": svc.link(c["post_id"], c["url"])} for c in cards]

    fields = {k: v for k, v in story.items() if k not in ("fun_title", "ended")}
    fields["citations"] = posts(story["citations"])
    fields["top_posts"] = posts(story["top_posts"])
    return Story(**fields, headline=story["fun_title"] if voice == "fun" else story["title"])


def _news(story: dict[str, Any]) -> News:
    told = Story(**story, headline=story["title"])
    return News(
        id=told.id,
        rest_id=told.id,
        name=told.title,
        hook=told.hook,
        summary=told.summary,
        category=told.window,
        keywords=told.keywords or told.items[:10],
        contexts={"entities": told.entities, "topics": told.items[:3]},
        cluster_posts_results=[{"post_id": i} for i in told.post_ids],
        disclaimer=told.disclaimer,
        last_updated_at_ms=str(story.get("last_updated_at_ms", "")),
        lang=told.lang,
    )


def _instant(as_of: str | None) -> int | None:
    try:
        instant = parse_as_of(as_of)
    except BadInput as exc:
        raise ApiError(400, str(exc), param="as_of", code="invalid_value") from None
    return to_us(instant) if instant else None


@router.get("/v1/trends", response_model=Trends, responses=_ERRORS)
def current_trends(
    request: Request,
    who: Caller,
    window: Annotated[
        WindowName | None,
        Query(description="Only this window's stories; default: the strongest of all windows."),
    ] = None,
    as_of: Annotated[str | None, Query(max_length=64)] = None,
    voice: Voice = "regular",
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> Trends:
    """The stories bursting now, or as they stood at `as_of` (any instant the store
    covers: computed from its posts where no recorded history covers it)."""
    svc = services(request)
    voice = persona_for(voice, "", who, field="voice")
    trends = _trends(svc)
    at_us = _instant(as_of) or trends.now()
    stories = trends.current(window, at_us) if window else trends.across(at_us)
    return Trends(
        window=window,
        as_of=iso(from_us(at_us)) if at_us else None,
        data=[_story_out(s, voice, svc) for s in stories[:limit]],
    )


@router.get("/2/news/search", response_model=NewsList, responses=_ERRORS)
def search_news(
    request: Request,
    who: Caller,
    query: Annotated[str, Query(min_length=1, max_length=512)],
    max_age_hours: Annotated[int, Query(ge=1, le=720)] = 168,
    max_results: Annotated[int, Query(ge=1, le=100)] = 10,
) -> NewsList:
    """X-compatible: the stories of the last `max_age_hours` whose headline, key words,
    summary or named entities carry every word of `query`, strongest first."""
    trends = _trends(services(request))
    words = analysis.terms(query)
    if not words:
        raise ApiError(400, "query has no words to search for.", param="query",
                       code="invalid_value")  # fmt: skip
    found = trends.search(words, max_age_hours * HOUR_US, max_results)
    return NewsList(data=[_news(s) for s in found], meta={"result_count": len(found)})


@router.get("/2/news/{news_id}", response_model=NewsOne, responses=schemas.errors(401, 404, 429))
def get_news(
    request: Request, who: Caller, news_id: Annotated[str, Path(max_length=64)]
) -> NewsOne:
    """X-compatible: one story by its id, as last recorded."""
    story = _trends(services(request)).story(news_id)
    if story is None:
        raise ApiError(404, f"No news story {news_id!r}.", param="id", code="not_found")
    return NewsOne(data=_news(story))


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
