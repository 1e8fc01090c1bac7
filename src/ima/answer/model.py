"""The answer as every interface hands it out: text, citations, freshness, provenance."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ima.post import Post, iso


@dataclass(frozen=True, slots=True)
class Citation:
    """Post `number` ([n] in the text) and the snippet of it that supports the claim."""

    number: int
    post: Post
    snippet: str

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "post_id": self.post.id,
            "url": self.post.url,
            "author": self.post.author.handle,
            "author_name": self.post.author.name,
            "created_at": iso(self.post.created_at),
            "snippet": self.snippet,
        }


@dataclass(slots=True)
class Answer:
    question: str
    text: str
    citations: list[Citation]
    as_of: datetime
    found: bool  # False: nothing relevant was found in the window
    window_s: float
    persona: str
    language: str
    backend: str  # "extractive", or the LLM backend whose verified output this is
    fallback_reason: str = ""  # why an LLM answer was replaced by the extractive one
    timings_ms: dict[str, float] = field(default_factory=dict)
    partial: bool = False  # a search it rests on left posts out (a cluster's partition)

    @property
    def evidence_age_s(self) -> float | None:
        """How old the newest cited post was at `as_of`."""
        if not self.citations:
            return None
        newest = max(c.post.created_at for c in self.citations)
        return max(0.0, (self.as_of - newest).total_seconds())

    def to_json(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "text": self.text,
            "citations": [c.to_json() for c in self.citations],
            "as_of": iso(self.as_of),
            "found": self.found,
            "window_s": self.window_s,
            "evidence_age_s": self.evidence_age_s,
            "persona": self.persona,
            "language": self.language,
            "backend": self.backend,
            "fallback_reason": self.fallback_reason,
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
            "partial": self.partial,
        }
