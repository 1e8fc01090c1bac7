"""Who is asking, and may they: API keys, tiers, rate limits and daily quotas."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from ima.api.errors import ApiError
from ima.api.service import Services
from ima.api.tiers import LOCAL, Tier


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    tier: Tier


def missing_key() -> ApiError:
    return ApiError(401, "Missing API key: send 'Authorization: Bearer <key>' (ima keys create).",
                    code="missing_api_key")  # fmt: skip


def bearer(header: str) -> str | None:
    """The key an `Authorization` header presents, if it presents one."""
    scheme, _, presented = header.partition(" ")
    return (presented.strip() or None) if scheme.lower() == "bearer" else None


def services(request: Request) -> Services:
    return request.app.state.services


def principal(request: Request) -> Principal:
    """The caller's key and tier, after spending one request of its budget.

    401 without a valid key, 429 (with Retry-After) past a limit. With `--no-auth`
    everyone is the local user with every feature.
    """
    svc = services(request)
    if svc.no_auth:
        who = request.state.principal = Principal("local", LOCAL)
        return who
    presented = bearer(request.headers.get("authorization", ""))
    if presented is None:
        raise missing_key()
    key = svc.keys.verify(presented)
    if key is None:
        raise ApiError(401, "Invalid or revoked API key.", code="invalid_api_key")
    tier = svc.tiers.get(key.tier)
    if tier is None:
        raise ApiError(403, f"The key's tier {key.tier!r} is not offered here.", code="no_tier")
    decision = svc.limiter.admit(key.id, tier)
    if not decision.allowed:
        svc.metrics.quota_rejections.labels(decision.reason).inc()
        wait = max(1, math.ceil(decision.retry_after))
        what = "per-minute rate limit" if decision.reason == "rate" else "daily quota"
        raise ApiError(
            429,
            f"The {tier.name} tier's {what} is used up; retry in {wait} s.",
            code="rate_limit_exceeded" if decision.reason == "rate" else "quota_exceeded",
            headers={
                "Retry-After": str(wait),
                "x-ratelimit-limit-requests": str(tier.requests_per_minute),
            },
        )
    who = request.state.principal = Principal(key.id, tier)  # feeds count theirs by key
    return who


#: a handler parameter that authenticates the caller and spends one request of its budget
Caller = Annotated[Principal, Depends(principal)]


def persona_for(
    requested: str | None, model: str, who: Principal, *, field: str = "persona"
) -> str:
    """The persona a request asks for (its `field`, or the `ima-fun` model), if its tier
    allows it."""
    persona = requested or ("fun" if model.endswith("-fun") else "regular")
    if persona == "fun" and not who.tier.fun:
        raise ApiError(
            403,
            f"The fun voice needs a tier that includes it; {who.tier.name} does not.",
            param=field if requested else "model",
            code="tier_lacks_fun",
        )
    return persona
