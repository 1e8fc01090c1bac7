"""Posts: search them, read one, and ingest many (acknowledged after commit)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse

from ima.api import feeds, grants, schemas
from ima.api.auth import Caller, Principal, principal, services
from ima.api.errors import ApiError
from ima.api.service import Services
from ima.errors import BadInput
from ima.ingest.normalize import JsonLine, RecordError, loads
from ima.post import from_us, iso
from ima.query import QuerySyntaxError, parse_as_of
from ima.search import MAX_K, search
from ima.text.question import understand
from ima.writer import WriterUnavailable

router = APIRouter(tags=["posts"])
MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_ITEMS = 10_000
_ERRORS = schemas.errors(400, 401, 429)


def _instant(us: int | None) -> str | None:
    return None if us is None else iso(from_us(us))


def _post_out(post: Any) -> schemas.PostOut:
    return schemas.PostOut(**post.to_json())


@router.get("/v1/search", response_model=schemas.SearchResponse, responses=_ERRORS)
async def search_posts(
    request: Request,
    q: Annotated[str, Query(min_length=1, max_length=1000, description="X-style query")],
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
    as_of: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """Search posts with the X query syntax (README "Query syntax")."""

    def respond() -> Response:
        principal(request)
        svc = services(request)
        try:
            instant = parse_as_of(as_of)
        except BadInput as exc:
            raise ApiError(400, str(exc), param="as_of", code="invalid_value") from None
        try:
            result = search(svc.store, q, as_of=instant, k=k, ranking=svc.ranking)
        except QuerySyntaxError as exc:
            raise ApiError(400, f"q: {exc}", param="q", code="invalid_query") from None
        found = schemas.SearchResponse(
            query=result.query,
            as_of=result.as_of.isoformat().replace("+00:00", "Z"),
            took_ms=round(result.took_ms, 3),
            hits=[schemas.SearchHit(score=h.score, post=_post_out(h.post)) for h in result.hits],
            partial=bool(result.missing),
            missing=[
                schemas.MissingRange(since=_instant(low), until=_instant(high))
                for low, high in result.missing
            ],
        )
        return Response(found.model_dump_json(), media_type="application/json")

    # One trip to a worker thread for the key, the quota, the search and the JSON: each
    # trip between the event loop and a thread waits its turn for the interpreter lock,
    # and under ingest those waits, not the search, were most of a search's latency.
    return await run_in_threadpool(respond)


@router.get("/v1/feed", responses={**schemas.EVENT_STREAM, **_ERRORS})
async def live_feed(
    request: Request,
    who: Caller,
    topic: Annotated[str, Query(min_length=1, max_length=500,
                                description="A question or words; its key words are followed.")],
) -> StreamingResponse:  # fmt: skip
    """Server-Sent Events: `topic` (the words followed) first, then `post` for each new
    post about them as it arrives (posts ingested after the feed opened)."""
    svc = services(request)
    words = understand(topic).words
    if not words:
        raise ApiError(400, "topic: no words to follow in it", param="topic")
    query = " OR ".join(f'"{w}"' for w in words)
    opened = datetime.now(UTC)
    sent: set[str] = set()
    seen_seq = [svc.store.last_seq]

    async def first() -> list[str]:
        return [feeds.event("topic", {"words": list(words)})]

    async def poll() -> list[str]:
        if svc.store.last_seq == seen_seq[0]:
            return []
        seen_seq[0] = svc.store.last_seq
        result = await run_in_threadpool(search, svc.store, query, k=20)
        fresh = [h.post for h in result.hits
                 if h.post.ingested_at >= opened and h.post.id not in sent]  # fmt: skip
        sent.update(p.id for p in fresh)
        return [feeds.event("post", svc.card(p)) for p in sorted(fresh, key=lambda p: p.created_at)]

    return feeds.polled(request, first, poll)


@router.get(
    "/v1/posts/{post_id:path}",
    response_model=schemas.PostOut,
    responses=schemas.errors(400, 401, 404, 429),
)
def get_post(
    post_id: Annotated[str, Path(max_length=300)],
    request: Request,
    who: Caller,
) -> schemas.PostOut:
    """One stored post by id (`source:native_id`)."""
    stored = services(request).store.get(post_id)
    if stored is None:
        raise ApiError(404, f"No post {post_id!r}.", param="post_id", code="post_not_found")
    return _post_out(stored.post)


def _records(raw: bytes, content_type: str) -> list[Any]:
    if "ndjson" in content_type or "jsonl" in content_type:
        return [JsonLine(n, line) for n, line in enumerate(raw.splitlines(), 1) if line.strip()]
    try:
        data = loads(raw, "body")
    except RecordError as exc:
        raise ApiError(400, f"{exc} (send an array, or NDJSON)", param="body") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise ApiError(400, "body: expected an array of post records", param="body")
    return data


def _ingest_rights(svc: Services, who: Principal) -> tuple[str, frozenset[str] | None]:
    """The source a caller's posts belong to, and the other sources they may claim
    (None: any, in local mode); 403 for a key that may not ingest."""
    if svc.no_auth:
        return "api", None
    sources = grants.granted(svc.keys.path, who.key_id)
    if sources is None and not who.tier.ingest:
        raise ApiError(
            403,
            f"This key may not send posts: the {who.tier.name} tier does not include "
            "ingest (an operator can grant it: ima keys grant KEY_ID).",
            code="ingest_not_permitted",
        )
    return grants.own_source(who.key_id), sources or frozenset()


@router.post(
    "/v1/posts",
    response_model=schemas.IngestResponse,
    responses=schemas.errors(400, 401, 403, 413, 429, 503),
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
        "application/x-ndjson": {"schema": {"type": "string"}},
    }}},
)  # fmt: skip
async def ingest_posts(request: Request, who: Caller) -> Any:
    """Ingest post records (README "Post records"): a JSON array, one object, or NDJSON.
    Answers after the batch is committed, with each item's outcome. Needs a key whose
    tier includes ingest or that was granted it; its posts belong to the source
    `api-<key id>` unless it was granted named sources (README "Ingest over HTTP")."""
    svc = services(request)
    source, allowed = await run_in_threadpool(_ingest_rights, svc, who)
    size = int(request.headers.get("content-length") or 0)
    if size > MAX_BODY_BYTES:
        raise ApiError(413, f"body over {MAX_BODY_BYTES} bytes", param="body")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise ApiError(413, f"body over {MAX_BODY_BYTES} bytes", param="body")
    # NDJSON lines are parsed later, in ingest's worker processes; a JSON array is
    # parsed here, off the event loop
    records = await run_in_threadpool(_records, raw, request.headers.get("content-type", ""))
    if not records:
        raise ApiError(400, "body: no records", param="body")
    if len(records) > MAX_ITEMS:
        raise ApiError(413, f"{len(records)} records; at most {MAX_ITEMS} a request", param="body")
    received = time.perf_counter()
    try:
        results = await svc.writer.write(records, source=source, allowed=allowed)
    except WriterUnavailable:
        raise ApiError(503, "Ingest is not running; retry later.", code="ingest_unavailable",
                       headers={"Retry-After": "5"}) from None  # fmt: skip
    svc.metrics.freshness.observe(time.perf_counter() - received)
    items = [
        schemas.IngestItem(index=i, id=post_id, status=status, error=error)
        for i, (post_id, status, error) in enumerate(results)
    ]
    for item in items:
        svc.metrics.ingested.labels(item.status).inc()
    rejected = sum(1 for item in items if item.status == "error")
    return schemas.IngestResponse(accepted=len(items) - rejected, rejected=rejected, items=items)
