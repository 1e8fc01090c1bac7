"""Models, health and metrics."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ima.api import audio, schemas
from ima.api.auth import Caller, services
from ima.api.chat import MODELS

router = APIRouter(tags=["system"])
_STARTED = int(time.time())


@router.get("/v1/models", response_model=schemas.ModelList)
def list_models(who: Caller) -> schemas.ModelList:
    """`ima` (the regular voice) and `ima-fun` (the fun voice, for tiers that include it);
    the speech models (`ima-whisper-base`, `ima-tts`) and OpenAI's names for them."""
    names = (*MODELS, *audio.MODELS)
    return schemas.ModelList(data=[schemas.ModelCard(id=m, created=_STARTED) for m in names])


@router.get("/v1/me", response_model=schemas.Me, responses=schemas.errors(401))
def me(request: Request, who: Caller) -> schemas.Me:
    """The caller's tier and what it includes; the sources this server follows."""
    svc = services(request)
    states = []
    for health in svc.writer.sources():
        states.append(schemas.SourceState(name=health["name"], connected=health["connected"],
                                          last_error=health.get("last_error")))  # fmt: skip
    return schemas.Me(tier=who.tier.name, fun=who.tier.fun, auth=not svc.no_auth,
                      demo=svc.demo, notice=svc.notice, sources=states)  # fmt: skip


@router.get("/healthz", response_model=schemas.Health, responses={503: {"model": schemas.Health}})
def health(request: Request) -> Response:
    """Liveness, with the store's size, index lag and each source's health; 503 with the
    reason while the writer (sources and ingest) is down."""
    svc = services(request)
    stats = svc.store.stats()
    down = svc.writer.down()
    report = schemas.Health(
        status="ok" if down is None else "down",
        reason=down,
        posts=stats.posts,
        index_lag_posts=stats.index_lag_posts,
        rejected_records=sum(stats.errors.values()),
        dead_letters=stats.dead_letters,
        sources=svc.writer.sources(),
    )
    return Response(report.model_dump_json(), 200 if down is None else 503,
                    media_type="application/json")  # fmt: skip


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(request: Request) -> Response:
    """Prometheus metrics: ingest, index lag, freshness, request latency, quota rejections."""
    svc = services(request)
    svc.metrics.observe_store(svc.store.stats(), svc.writer.down())
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)
