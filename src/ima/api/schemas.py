"""The API contract: request and response models (the OpenAPI schema comes from these)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

MAX_MESSAGES = 50
MAX_CONTENT_CHARS = 8_000


def _calendar_day(value: str) -> str:
    """A `YYYY-MM-DD` that names a real day (not 2026-02-30, not year 0)."""
    try:
        date.fromisoformat(value)
    except ValueError:
        raise ValueError("not a calendar day (YYYY-MM-DD)") from None
    return value


Date = Annotated[
    str,
    Field(pattern=r"^\d{4}-\d{2}-\d{2}$", examples=["2026-11-22"]),
    AfterValidator(_calendar_day),
]
Handle = Annotated[str, Field(pattern=r"^@?[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$")]


class ContentPart(BaseModel):
    type: str = Field(max_length=32)
    text: str | None = Field(default=None, max_length=MAX_CONTENT_CHARS)


class _Said(BaseModel):
    """A message's content: a string, or parts of which the text ones count."""

    content: (
        Annotated[str, Field(max_length=MAX_CONTENT_CHARS)]
        | Annotated[list[ContentPart], Field(max_length=20)]
    )

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return " ".join(
            part.text or "" for part in self.content if part.type in ("text", "input_text")
        )


class Message(_Said):
    role: Literal["system", "user", "assistant", "developer", "tool"]


class XSource(BaseModel):
    """A `search_parameters.sources` entry. `x` takes handle and engagement filters;
    other types (web, news, rss) search the posts of those sources."""

    type: Literal["x", "web", "news", "rss"]
    included_x_handles: list[Handle] | None = Field(default=None, max_length=10)
    excluded_x_handles: list[Handle] | None = Field(default=None, max_length=10)
    post_favorite_count: int | None = Field(default=None, ge=0)
    post_view_count: int | None = Field(default=None, ge=0)


class SearchParameters(BaseModel):
    mode: Literal["off", "auto", "on"] = "auto"
    sources: list[XSource] | None = Field(default=None, max_length=4)
    from_date: Date | None = None
    to_date: Date | None = None
    max_search_results: int = Field(default=20, ge=1, le=50)
    return_citations: bool = True


class ChatRequest(BaseModel):
    model: str = Field(default="ima", max_length=64, examples=["ima", "ima-fun"])
    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: bool = False
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=4096)
    user: str | None = Field(default=None, max_length=256)
    persona: Literal["regular", "fun"] | None = None
    search_parameters: SearchParameters | None = None


class ChatMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: ChatMessageOut
    finish_reason: Literal["stop"] = "stop"


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    num_sources_used: int


class StoryPost(BaseModel):
    """A post as a story shows it; `number` is its citation number in the summary."""

    number: int | None = None
    post_id: str
    url: str
    author: str
    author_name: str
    created_at: str
    lang: str
    text: str


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses, each with an `ErrorBody`."""
    return {status: {"model": ErrorBody} for status in statuses}


#: OpenAPI `responses` for an operation that can answer as Server-Sent Events
EVENT_STREAM: dict[int | str, dict[str, Any]] = {200: {"content": {"text/event-stream": {}}}}


class SaidOut(BaseModel):
    text: str
    source: Literal["posts", "model", "ima"] = Field(
        description="posts: cited and verified; model: the model's own knowledge, uncited; "
        "ima: what ima says of the search."
    )
    citations: list[int]


class StruckOut(BaseModel):
    text: str
    reason: str
    replaced_by: str = Field(description="What stands in its place, or empty: removed.")


class TurnInfo(BaseModel):
    """ima's extension: whether this turn searched and why, and the proof per sentence."""

    searched: bool
    reason: str
    sentences: list[SaidOut] = Field(description="Each sentence shown, and its source.")
    removed: list[StruckOut] = Field(description="Model sentences not shown, and why.")
    context_dropped: int = Field(description="Earlier messages left out of the context.")
    context_summary: str = Field(
        default="", description="The model's one-line summary of the messages left out."
    )
    context_note: str


PARTIAL_ANSWER = (
    "ima's extension: the answer rests on a partial search (a partition of a cluster did "
    "not answer in time); always false on a single store."
)


class ChatResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    citations: list[str] = Field(description="URLs of the posts the answer cites, in order.")
    citation_posts: list[StoryPost] = Field(
        default_factory=list, description="ima's extension: the cited posts, as cards."
    )
    turn: TurnInfo | None = None
    partial: bool = Field(False, description=PARTIAL_ANSWER)


class XSearchTool(BaseModel):
    type: Literal["x_search", "live_search"]
    allowed_x_handles: list[Handle] | None = Field(default=None, max_length=10)
    excluded_x_handles: list[Handle] | None = Field(default=None, max_length=10)
    from_date: Date | None = None
    to_date: Date | None = None


class InputMessage(_Said):
    role: Literal["system", "user", "assistant", "developer"]
    type: Literal["message"] | None = None


class ResponsesRequest(BaseModel):
    model: str = Field(default="ima", max_length=64)
    input: (
        Annotated[str, Field(min_length=1, max_length=MAX_CONTENT_CHARS)]
        | Annotated[list[InputMessage], Field(min_length=1, max_length=MAX_MESSAGES)]
    )
    tools: list[XSearchTool] | None = Field(default=None, max_length=4)
    stream: bool = False
    persona: Literal["regular", "fun"] | None = None
    instructions: str | None = Field(default=None, max_length=MAX_CONTENT_CHARS)
    max_output_tokens: int | None = Field(default=None, ge=1, le=4096)
    temperature: float | None = Field(default=None, ge=0, le=2)
    tool_choice: Literal["auto", "none", "required"] | None = Field(
        default=None, description="With an LLM: none never searches, required always does."
    )
    max_turns: int | None = Field(default=None, ge=1, le=5, description="Rounds of search.")
    include: list[Literal["x_search_call.results"]] | None = Field(
        default=None, max_length=4, description="x_search_call.results: the posts read."
    )


class UrlCitation(BaseModel):
    type: Literal["url_citation"] = "url_citation"
    url: str
    start_index: int
    end_index: int
    title: str


class OutputText(BaseModel):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[UrlCitation]


class OutputMessage(BaseModel):
    type: Literal["message"] = "message"
    id: str
    role: Literal["assistant"] = "assistant"
    status: Literal["completed"] = "completed"
    content: list[OutputText]


class CustomToolCall(BaseModel):
    """A search ima ran for the answer, shaped as xAI streams its server-side tools."""

    type: Literal["custom_tool_call"] = "custom_tool_call"
    id: str
    call_id: str
    name: str
    input: str = Field(description="The tool input, as JSON text.")
    status: Literal["completed", "failed"] = "completed"
    results: list[StoryPost] | None = Field(
        default=None, description="The posts read (with include x_search_call.results)."
    )


class ResponsesUsage(BaseModel):
    input_tokens: int
    output_tokens: int
    total_tokens: int
    num_searches: int
    num_posts_read: int
    num_server_side_tools_used: int = 0
    server_side_tool_usage_details: dict[str, int] = Field(default_factory=dict)


class ResponsesResponse(BaseModel):
    id: str
    object: Literal["response"] = "response"
    created_at: int
    model: str
    status: Literal["completed"] = "completed"
    output: list[CustomToolCall | OutputMessage]
    usage: ResponsesUsage
    citations: list[str]
    turn: TurnInfo | None = None
    partial: bool = Field(False, description=PARTIAL_ANSWER)


class PostOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    source: str
    text: str
    url: str
    created_at: str
    author: dict[str, Any]


class SearchHit(BaseModel):
    score: float
    post: PostOut


class MissingRange(BaseModel):
    since: str | None = Field(description="Creation time the range starts at; null: unknown.")
    until: str | None = Field(description="Creation time it ends at; null: open or unknown.")


class SearchResponse(BaseModel):
    query: str
    as_of: str
    took_ms: float
    hits: list[SearchHit]
    partial: bool = Field(
        False, description="Some posts could not be searched (a partition of a cluster "
        "did not answer in time); always false on a single store."
    )  # fmt: skip
    missing: list[MissingRange] = Field(
        default_factory=list, description="The ranges of creation times left out."
    )


class IngestItem(BaseModel):
    index: int
    id: str | None
    status: str
    error: str | None = None


class IngestResponse(BaseModel):
    accepted: int
    rejected: int
    items: list[IngestItem]


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "ima"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Health(BaseModel):
    status: Literal["ok", "down"]
    reason: str | None = Field(None, description="Why the writer is down, when it is.")
    posts: int
    index_lag_posts: int
    rejected_records: int = Field(0, description="Records refused at ingest, ever.")
    dead_letters: int = Field(0, description="Refused records kept (`ima stats --dead`).")
    sources: list[dict[str, Any]]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(BaseModel):
    error: ErrorDetail


class StorySentence(BaseModel):
    text: str = Field(description="A sentence quoted from the cited post.")
    citation: int = Field(description="The number of the post it quotes, in `citations`.")


class TimelinePoint(BaseModel):
    at: str
    posts: int


class StoryOut(BaseModel):
    id: str
    window: str
    title: str = Field(description="Words of the story's own posts.")
    headline: str = Field(description="The title in the requested voice.")
    lang: str
    summary: str = Field(description="Two or three quoted sentences, each cited [n].")
    sentences: list[StorySentence]
    citations: list[StoryPost]
    top_posts: list[StoryPost]
    items: list[str] = Field(description="The bursting words, strongest first.")
    authors: int
    posts: int
    timeline: list[TimelinePoint]
    languages: dict[str, int]
    first_post_at: str
    detected_at: str
    updated_at: str
    surprise: float = Field(description="-log10 of the chance of this burst at the usual rate.")


class SourceState(BaseModel):
    name: str
    connected: bool
    last_error: str | None = None


class Me(BaseModel):
    """What the caller may do here, and what this server is following (for the web app)."""

    tier: str
    fun: bool = Field(description="Whether the caller's tier includes the fun voice.")
    auth: bool = Field(description="False in --no-auth (local) mode.")
    demo: bool = Field(description="True when the posts are a generated demo stream.")
    notice: str | None = Field(default=None, description="What to tell a newcomer, if anything.")
    sources: list[SourceState]
