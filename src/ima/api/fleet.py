"""`GET /v1/fleet` (operator keys only) and the `X-Ima-Fleet` header: who answered.

The fleet's workers are the operator's business: their names, speeds and reputations
are shown only to keys named in `IMA_OPERATOR_KEYS` (or to anyone with `--no-auth`).
Every response to a request that the fleet served or fell back from carries
`X-Ima-Fleet: worker NAME` or `X-Ima-Fleet: local` (streams: sent before the answer,
so they carry none).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ima.api import schemas
from ima.api.auth import Caller, services
from ima.api.errors import ApiError
from ima.fleet.supervisor import ROUTE, Supervisor

router = APIRouter(tags=["fleet"])
HEADER = b"x-ima-fleet"


@dataclass(frozen=True, slots=True)
class FleetView:
    """What the API needs of the fleet: the supervisor and who may look at it."""

    supervisor: Supervisor
    operators: frozenset[str]


class FleetWorker(BaseModel):
    name: str
    kinds: list[str]
    state: str = Field(description="live, gone (no heartbeat) or quarantined")
    jobs_per_s: float
    queue: int
    done: int
    jobs_here: int = Field(description="Jobs this server's supervisor got answered by it")
    latency_ms: float | None
    rss_mb: float
    reputation: float = Field(description="0 (failed its checks) to 1 (long trusted)")
    checks_passed: int
    checks_failed: int
    reason: str = Field(description="The last failed check, if any")
    last_seen: float = Field(description="Unix time of its last heartbeat")


class Fleet(BaseModel):
    workers: list[FleetWorker]


@router.get("/v1/fleet", response_model=Fleet, responses=schemas.errors(401, 403, 404))
def fleet(request: Request, who: Caller) -> Fleet:
    """The fleet's workers as this server sees them (operator keys only)."""
    view: FleetView | None = getattr(request.app.state, "fleet", None)
    if not services(request).no_auth and (view is None or who.key_id not in view.operators):
        raise ApiError(403, "Only operator keys may see the fleet (IMA_OPERATOR_KEYS).",
                       code="not_operator")  # fmt: skip
    if view is None:
        raise ApiError(404, "This server runs no fleet (ima serve --fleet URL).", code="no_fleet")
    return Fleet(workers=[FleetWorker(**w) for w in view.supervisor.snapshot()])


class RouteHeader:
    """Gives each HTTP request a place where the fleet notes who answered it, and puts
    that in the response's `X-Ima-Fleet` header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        holder: dict[str, str] = {}
        token = ROUTE.set(holder)  # handler threads get a copy of this context: same dict

        async def noted(message: Message) -> None:
            if message["type"] == "http.response.start" and "route" in holder:
                headers: list[Any] = [*message.get("headers", ())]
                headers.append((HEADER, holder["route"].encode("latin-1", "replace")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, noted)
        finally:
            ROUTE.reset(token)
