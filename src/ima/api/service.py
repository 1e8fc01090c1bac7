"""What the API's handlers share: the store, ingest, keys, limits, the LLM, metrics.

Built once by `ima serve` (or a test) and handed to `create_app`; handlers reach it
through `request.app.state.services`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ima.answer.answerers import AnswerFailed
from ima.answer.ask import ask
from ima.answer.converse import Listener, Reply, Turn, converse
from ima.answer.model import Answer
from ima.answer.tools import Scope
from ima.api.errors import ApiError
from ima.api.gate import PriorityGate
from ima.api.keys import KeyStore
from ima.api.quota import Limiter
from ima.api.tiers import Tier
from ima.errors import Overloaded
from ima.ingest.normalize import web_url
from ima.post import Post, iso
from ima.query import clamp_instant
from ima.search import Ranking, noting_missing
from ima.store import Store, StoreStats
from ima.writer import Writer


class Metrics:
    """Prometheus metrics (served at /metrics) in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Histogram(
            "ima_request_seconds",
            "Request latency by route",
            ["route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.quota_rejections = Counter(
            "ima_quota_rejections_total", "Requests refused by limits", ["reason"],
            registry=self.registry,
        )  # fmt: skip
        self.ingested = Counter(
            "ima_ingested_posts_total", "Records acknowledged by ingest", ["status"],
            registry=self.registry,
        )  # fmt: skip
        self.index_lag = Gauge(
            "ima_index_lag_posts", "Posts searchable but not yet in the index",
            registry=self.registry,
        )  # fmt: skip
        self.freshness = Histogram(
            "ima_ingest_to_searchable_seconds",
            "POST /v1/posts: receipt to acknowledgement (committed, hence searchable)",
            registry=self.registry,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.rejected = Gauge(
            "ima_rejected_records", "Records refused at ingest, by kind (in the store)",
            ["kind"], registry=self.registry,
        )  # fmt: skip
        self.dead_letters = Gauge(
            "ima_dead_letters", "Refused records kept with their raw bytes",
            registry=self.registry,
        )  # fmt: skip
        self.writer_up = Gauge(
            "ima_writer_up", "1 while the writer (sources and ingest) runs, else 0",
            registry=self.registry,
        )  # fmt: skip
        self.llm_fallbacks = Counter(
            "ima_llm_fallbacks_total", "LLM answers replaced by the extractive one",
            registry=self.registry,
        )  # fmt: skip


    def observe_store(self, stats: StoreStats, writer_down: str | None) -> None:
        """Gauges read from the store at scrape time."""
        self.index_lag.set(stats.index_lag_posts)
        for kind, count in stats.errors.items():
            self.rejected.labels(kind).set(count)
        self.dead_letters.set(stats.dead_letters)
        self.writer_up.set(0 if writer_down else 1)


@dataclass
class Services:
    store: Store
    #: the store's writing side: sources and ingest (`ima.writer`)
    writer: Writer
    keys: KeyStore
    limiter: Limiter
    tiers: dict[str, Tier]
    no_auth: bool = False
    backend: Any = None
    backend_mode: str = "rephrase"
    vectors: Any = None
    trends: Any = None  # ima.trends.view.StoryView (or the tracker itself), when running
    demo: bool = False  # the posts are a generated demo stream (ima serve --demo)
    notice: str | None = None  # what the web app tells a newcomer (e.g. the default source)
    metrics: Metrics = field(default_factory=Metrics)
    public_url: str = "http://127.0.0.1:8000"
    gate: PriorityGate = field(default_factory=PriorityGate)
    #: extractive answers run in these processes (`ima.answer.answerers`), when set
    answerers: Any = None
    #: how GET /v1/search weighs relevance, recency (IMA_HALF_LIFE_HOURS) and engagement
    ranking: Ranking = field(default_factory=Ranking)

    def url_of(self, post: Post) -> str:
        return self.link(post.id, post.url)

    def link(self, post_id: str, url: str) -> str:
        """Where a citation points: the post's own web page, else this API's copy of it
        (a stored link that is not http(s), from before ingest dropped those, never)."""
        return web_url(url) or f"{self.public_url}/v1/posts/{quote(post_id, safe=':/@')}"

    def card(self, post: Post, number: int | None = None) -> dict[str, Any]:
        """A post as clients show it (`schemas.StoryPost`)."""
        return {"number": number, "post_id": post.id, "url": self.url_of(post),
                "author": post.author.handle, "author_name": post.author.name,
                "created_at": iso(post.created_at), "lang": post.lang,
                "text": post.text}  # fmt: skip

    @contextmanager
    def _slot(self, priority: int) -> Iterator[None]:
        """An answer slot, or 503 when none freed up in time (`gate.Busy`)."""
        try:
            with self.gate.slot(priority):
                yield
        except Overloaded:
            raise ApiError(
                503, "Busy answering others; retry shortly.", code="overloaded",
                headers={"Retry-After": "2"},
            ) from None  # fmt: skip

    def answer(
        self,
        question: str,
        *,
        persona: str,
        priority: int = 0,
        restrict: str = "",
        since: datetime | None = None,
        until: datetime | None = None,
        context: str = "",
        on_text: Any = None,
        sampling: tuple[int | None, float | None] = (None, None),
    ) -> Answer:
        try:
            with self._slot(priority), noting_missing() as missing:
                answer = self._answer(
                    question, persona, restrict, since, until, context, on_text, sampling
                )
        except AnswerFailed as exc:
            raise ApiError(503, f"No answer: {exc}.", code="answer_failed",
                           headers={"Retry-After": "5"}) from None  # fmt: skip
        answer.partial = bool(missing)
        return answer

    def converse(
        self,
        turns: list[Turn],
        *,
        mode: str,
        persona: str,
        priority: int = 0,
        restrict: str = "",
        since: datetime | None = None,
        until: datetime | None = None,
        on_event: Listener | None = None,
        sampling: tuple[int | None, float | None] = (None, None),
        max_turns: int = 2,
    ) -> Reply:
        """A conversation turn with the configured LLM (`ima.answer.converse`)."""
        as_of = datetime.now(UTC) if until is None else min(datetime.now(UTC), until)
        with self._slot(priority), noting_missing() as missing:
            reply = converse(
                self.store, turns, self.backend, mode=mode, persona=persona,
                scope=Scope(as_of, since, restrict), on_event=on_event, sampling=sampling,
                semantic=self.vectors.semantic if self.vectors else None, max_turns=max_turns,
            )  # fmt: skip
        reply.answer.partial = bool(missing)
        if reply.struck or reply.answer.fallback_reason:
            self.metrics.llm_fallbacks.inc()
        return reply

    def _answer(
        self,
        question: str,
        persona: str,
        restrict: str,
        since: datetime | None,
        until: datetime | None,
        context: str,
        on_text: Any,
        sampling: tuple[int | None, float | None],
    ) -> Answer:
        as_of = datetime.now(UTC)
        if until is not None:
            as_of = min(as_of, until)
        if self.answerers is not None and self.backend is None:
            result = self.answerers.answer(
                question, as_of=as_of, persona=persona, restrict=restrict, since=since,
                context=context, sampling=sampling,
            )  # fmt: skip
            if on_text is not None:
                on_text(result.text)  # as `ask` hands over an extractive answer: whole
            return result
        result = ask(
            self.store,
            question,
            as_of=as_of,
            persona=persona,
            backend=self.backend,
            mode=self.backend_mode,
            semantic=self.vectors.semantic if self.vectors else None,
            on_text=on_text,
            restrict=restrict,
            since=since,
            context=context,
            sampling=sampling,
        )
        if result.fallback_reason:
            self.metrics.llm_fallbacks.inc()
        return result


def day_bounds(
    from_date: str | None, to_date: str | None
) -> tuple[datetime | None, datetime | None]:
    """`YYYY-MM-DD` bounds → [start of from_date, end of to_date] in UTC, clamped into the
    span posts can have (`clamp_instant`): a range from year 1 costs what one from 1970
    does, and a date in year 9999 does not overflow."""
    try:
        since = datetime.fromisoformat(from_date).replace(tzinfo=UTC) if from_date else None
        until = datetime.fromisoformat(to_date).replace(tzinfo=UTC) if to_date else None
    except ValueError as exc:
        raise ApiError(400, f"from_date/to_date: {exc}", code="invalid_value") from None
    if until is not None:
        until = clamp_instant(until) + timedelta(days=1, microseconds=-1)
    return (None if since is None else clamp_instant(since)), until


def restriction(
    include: list[str] | None, exclude: list[str] | None, min_faves: int | None = None
) -> str:
    """Handle and engagement filters as query syntax."""
    parts = []
    handles = [h.lstrip("@") for h in include or [] if h.strip("@ ")]
    if handles:
        parts.append("(" + " OR ".join(f"from:{h}" for h in handles) + ")")
    parts += [f"-from:{h.lstrip('@')}" for h in exclude or [] if h.strip("@ ")]
    if min_faves:
        parts.append(f"min_faves:{min_faves}")
    return " ".join(parts)
