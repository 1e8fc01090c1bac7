"""What travels between `ima serve` and its workers: subjects, headers and job bodies.

Every body is JSON. A job goes to one worker's own subject (`ima.fleet.w.ID.KIND`),
chosen by the supervisor (which routes, hedges and checks: no job goes to "any
worker"). Workers heartbeat on `ima.fleet.hb.ID`, and are a NATS micro service
(`ima-worker`) so `$SRV.PING/INFO/STATS` discover and count them. With
credentials, the NATS server itself (user permissions) lets worker ID publish only its
own heartbeats and answers, and subscribe only to its own subjects.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from ima.errors import BadInput

PREFIX = "ima.fleet"
KINDS = ("embed", "compose", "generate")
SERVICE = "ima-worker"
VERSION = "0.1.0"
REQUEST_ID = "Ima-Request-Id"
ERROR = "Ima-Error"  # set on a reply that carries an error message instead of a result
SEQ = "Ima-Seq"  # a generate stream's piece number, from 0
DONE = "Ima-Done"  # on the last message of a generate stream (its body is empty)
MAX_PROMPT_CHARS = 64_000
HEARTBEAT_S = 1.0
GONE_AFTER_S = 3.5  # a worker silent this long is taken for gone
MAX_EMBED_TEXTS = 64  # one embed job's texts, at most
EMBED_BATCH = 16  # what `ima serve` sends: small enough to spread and to hedge
MAX_TEXT_CHARS = 4_000
MAX_COMPOSE_POSTS = 60
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


class ProtocolError(ValueError):
    """A message that does not follow the protocol (malformed, or past a limit)."""


def check_name(name: str) -> str:
    """A worker name: letters, digits, `_` and `-`, at most 40 (it is a NATS subject token)."""
    if not _NAME.match(name):
        raise BadInput(f"worker name must be 1-40 letters, digits, _ or -, got {name!r}")
    return name


def job_subject(worker: str, kind: str) -> str:
    return f"{PREFIX}.w.{worker}.{kind}"


def heartbeat_subject(worker: str) -> str:
    return f"{PREFIX}.hb.{worker}"


HEARTBEATS = f"{PREFIX}.hb.*"
CANCEL = f"{PREFIX}.cancel"  # body: "REQUEST_ID WORKER": that worker drops or stops that job


def cancel_body(request_id: str, worker: str) -> bytes:
    """Cancels go to one worker: the same request id may go on at another."""
    return f"{request_id} {worker}".encode()


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A worker's state, each second: what it does, how busy it is, how fast."""

    worker: str
    kinds: tuple[str, ...]
    model: str  # the embedder's name: embeddings of two models never mix
    queue: int  # jobs waiting or running
    done: int
    failures: int
    rate: float  # jobs per second, recent
    rss_mb: float
    started: float

    def encode(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def decode(cls, data: bytes) -> Heartbeat:
        body = _object(data)
        try:
            beat = cls(
                worker=check_name(str(body["worker"])),
                kinds=tuple(k for k in body["kinds"] if k in KINDS),
                model=str(body["model"])[:200],
                queue=int(body["queue"]),
                done=int(body["done"]),
                failures=int(body["failures"]),
                rate=float(body["rate"]),
                rss_mb=float(body["rss_mb"]),
                started=float(body["started"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"bad heartbeat: {exc}") from None
        return beat


@dataclass(frozen=True, slots=True)
class EmbedJob:
    texts: list[str]
    model: str

    def encode(self) -> bytes:
        return json.dumps({"texts": self.texts, "model": self.model}).encode()

    @classmethod
    def decode(cls, data: bytes) -> EmbedJob:
        body = _object(data)
        texts = body.get("texts")
        if not isinstance(texts, list) or not 0 < len(texts) <= MAX_EMBED_TEXTS:
            raise ProtocolError(f"texts must be a list of 1-{MAX_EMBED_TEXTS} strings")
        if not all(isinstance(t, str) and len(t) <= MAX_TEXT_CHARS for t in texts):
            raise ProtocolError(f"each text must be a string of at most {MAX_TEXT_CHARS}")
        return cls(texts, str(body.get("model", "")))


@dataclass(frozen=True, slots=True)
class ComposeJob:
    """What `ask` composes an answer from: the question (and its words as the posts
    spell them, `spelled`, when that differs), the posts retrieved for it (flat,
    `ima.post.flatten`), the instant it is asked as of (µs), the key terms' weights, the
    persona, whether the window was widened past the question's, when the posts they
    quote were posted (µs, for those not among them) and the similarity of those found
    by meaning."""

    question: str
    posts: list[list[Any]]
    as_of_us: int
    weights: dict[str, float]
    persona: str = "regular"
    spelled: str = ""
    widened: bool = False
    quoted: dict[str, int] = field(default_factory=dict)
    similar: dict[str, float] = field(default_factory=dict)

    def encode(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False).encode()

    @classmethod
    def decode(cls, data: bytes) -> ComposeJob:
        body = _object(data)
        try:
            quoted, similar = dict(body.get("quoted", {})), dict(body.get("similar", {}))
            if max(len(quoted), len(similar)) > MAX_COMPOSE_POSTS:
                raise BadInput(f"more than {MAX_COMPOSE_POSTS} quoted or similar posts")
            job = cls(
                question=str(body["question"])[:MAX_TEXT_CHARS],
                posts=list(body["posts"])[:MAX_COMPOSE_POSTS],
                as_of_us=int(body["as_of_us"]),
                weights={str(k): float(v) for k, v in dict(body["weights"]).items()},
                persona=str(body.get("persona", "regular")),
                spelled=str(body.get("spelled", ""))[:MAX_TEXT_CHARS],
                widened=bool(body.get("widened", False)),
                quoted={str(k): int(v) for k, v in quoted.items()},
                similar={str(k): float(v) for k, v in similar.items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"bad compose job: {exc}") from None
        return job


@dataclass(frozen=True, slots=True)
class GenerateJob:
    """A fenced prompt to stream an answer for; `prefix` is the text a client has seen
    already (from a worker that died): the answer goes on from there, never repeating it."""

    messages: list[dict[str, str]]
    max_tokens: int = 400
    temperature: float = 0.2
    prefix: str = ""

    def encode(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False).encode()

    @classmethod
    def decode(cls, data: bytes) -> GenerateJob:
        body = _object(data)
        try:
            messages = [{"role": str(m["role"]), "content": str(m["content"])}
                        for m in body["messages"]]  # fmt: skip
            job = cls(messages, int(body.get("max_tokens", 400)),
                      float(body.get("temperature", 0.2)), str(body.get("prefix", "")))  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"bad generate job: {exc}") from None
        size = sum(len(m["content"]) for m in job.messages) + len(job.prefix)
        if not job.messages or size > MAX_PROMPT_CHARS or not 0 < job.max_tokens <= 4096:
            raise ProtocolError(f"a prompt of 1-{MAX_PROMPT_CHARS} characters, 1-4096 tokens")
        return job


@dataclass(frozen=True, slots=True)
class Composed:
    """A worker's extractive answer: its text, and for each citation [n] the index of
    the post (among those sent) that it quotes, with the quoted passage."""

    text: str
    found: bool
    citations: list[tuple[int, str]] = field(default_factory=list)

    def encode(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False).encode()

    @classmethod
    def decode(cls, data: bytes) -> Composed:
        body = _object(data)
        try:
            return cls(
                text=str(body["text"]),
                found=bool(body["found"]),
                citations=[(int(i), str(s)) for i, s in body["citations"]],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"bad compose reply: {exc}") from None


def _object(data: bytes) -> dict[str, Any]:
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ProtocolError("not a JSON object")
    return body
