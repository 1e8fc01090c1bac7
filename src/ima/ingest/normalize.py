"""Raw records in the replay schema → `Post`, liberal in what is accepted.

The schema (README "Post records") is what files, `POST /v1/posts` and the bus
carry: `id`, `text`, `created_at` are required; `author` is a handle or an object;
`source`, `lang`, `url`, `metrics`, and reply/quote/repost ids are optional.
Anything wrong raises `RecordError` naming the field, and nothing partial is kept.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from ima.errors import BadInput
from ima.ingest import flags, lang
from ima.post import Post, to_us, unflatten

MAX_TEXT_CHARS = 25_000
MAX_FIELD_CHARS = 2_048
MAX_FUTURE_SKEW = timedelta(minutes=10)
#: no post is older than the Unix epoch; earlier instants are refused, not wrapped around
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
MAX_NESTING = 64  # JSON deeper than this is refused before it is parsed
_NO_METRICS = (0, 0, 0, 0)

_URL = re.compile(r"https?://[^\s<>\"'）」]+", re.IGNORECASE)
_HASHTAG = re.compile(r"(?:^|(?<=[^\w&/]))[#＃]([^\W_][\w]{0,99})")
_MENTION = re.compile(r"(?:^|(?<=[^\w/]))@([A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}[A-Za-z0-9_]?)")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # keeps \t \n \r
_EPOCH_STRING = re.compile(r"\s*-?\d+(\.\d+)?\s*")
_SOURCE = re.compile(r"^[a-z][a-z0-9_\-]{0,31}$")
_WEB_URL = re.compile(r"https?://[^\s\x00-\x1f]+\Z", re.IGNORECASE)


class RecordError(BadInput):
    """A record that cannot become a post; `kind` is a short stable name for counting."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind

    def __reduce__(self) -> tuple:
        return (RecordError, (self.kind, str(self)))


class JsonLine(NamedTuple):
    """One line of a JSON Lines stream, not parsed yet (parsing is part of normalizing)."""

    number: int
    data: bytes

    def parse(self) -> dict[str, Any]:
        try:
            text = self.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RecordError(
                "invalid_utf8", f"line {self.number}: invalid UTF-8 at byte {exc.start}"
            ) from None
        record = loads(text, f"line {self.number}")
        if not isinstance(record, dict):
            raise RecordError("bad_type", f"line {self.number}: expected a JSON object")
        return record


def nesting_depth(text: str | bytes) -> int:
    """How deep brackets nest in JSON text (strings skipped), counted without recursion:
    `json.loads` recurses per level, and a line nested 100,000 deep must be refused
    before it can exhaust the stack."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if data.count(b"[") + data.count(b"{") <= MAX_NESTING:
        return 0  # cannot be deep: the common case costs two counts
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def loads(text: str | bytes, where: str) -> Any:
    """`json.loads` that refuses deep nesting and never raises anything but `RecordError`."""
    if nesting_depth(text) > MAX_NESTING:
        raise RecordError("too_deep", f"{where}: JSON nested deeper than {MAX_NESTING} levels")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordError("invalid_json", f"{where}: {exc.msg} at column {exc.colno}") from None
    except (UnicodeDecodeError, RecursionError, ValueError) as exc:
        raise RecordError("invalid_json", f"{where}: {type(exc).__name__}") from None


def _aliases(table: dict[str, tuple[str, ...]]) -> dict[str, str]:
    return {alias: name for name, aliases in table.items() for alias in aliases}


_RECORD_ALIASES = _aliases(
    {
        "id": ("post_id", "uri"),
        "created_at": ("createdAt", "timestamp", "time", "date"),
        "text": ("content",),
        "author": ("user", "handle", "username", "account"),
        "author_name": ("name", "display_name"),
        "followers": ("author_followers",),
        "lang": ("language",),
        "url": ("link", "permalink"),
        "reply_to": ("in_reply_to", "in_reply_to_id", "reply_to_id"),
        "quote_of": ("quoted_id", "quote_id"),
        "repost_of": ("retweeted_id", "reblog_of"),
        "metrics": ("public_metrics",),
    }
)
_AUTHOR_ALIASES = _aliases(
    {
        "handle": ("username", "screen_name", "acct", "did"),
        "name": ("display_name", "displayName"),
        "followers": ("followers_count", "followersCount"),
    }
)
_METRIC_ALIASES = _aliases(
    {
        "likes": ("like_count", "favorite_count", "favourites_count", "faves"),
        "reposts": ("repost_count", "retweet_count", "reblogs_count", "boosts"),
        "replies": ("reply_count", "replies_count"),
        "views": ("view_count", "impression_count"),
    }
)
_AUTHOR_NAMES = frozenset(("handle", "name", "followers"))
_METRICS = ("likes", "reposts", "replies", "views")
_METRIC_NAMES = frozenset(_METRICS)
_TOP_LEVEL_METRICS = _METRIC_NAMES | frozenset(_METRIC_ALIASES)


def _canonical(record: Mapping[str, Any], aliases: dict[str, str]) -> Mapping[str, Any]:
    """`record` with alias keys renamed; the common, canonical record costs one set test."""
    present = aliases.keys() & record.keys()
    if not present:
        return record
    out = dict(record)
    for alias in aliases:  # in table order, so the first alias listed wins
        if alias in present and out.get(aliases[alias]) in (None, ""):
            out[aliases[alias]] = record[alias]
    return out


def _string(value: Any, field: str, limit: int = MAX_FIELD_CHARS) -> str:
    if type(value) is str and len(value) <= limit:  # the common case, checked cheaply
        return value
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RecordError("bad_type", f"{field}: expected a string, got {type(value).__name__}")
    text = str(value)
    if len(text) > limit:
        raise RecordError("too_long", f"{field}: {len(text)} characters, limit {limit}")
    return text


def _count(value: Any, field: str) -> int:
    if type(value) is int and 0 <= value <= 2**62:  # the common case, checked cheaply
        return value
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RecordError("bad_type", f"{field}: expected a non-negative whole number")
    return min(value, 2**62)


def parse_instant(value: Any, field: str = "created_at") -> datetime:
    """ISO 8601 with or without zone (naive means UTC), or epoch seconds/milliseconds."""
    if isinstance(value, str) and ":" not in value and _EPOCH_STRING.fullmatch(value):
        value = float(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise RecordError("bad_timestamp", f"{field}: not a finite number")
        seconds = value / 1000 if abs(value) >= 1e12 else value
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise RecordError("bad_timestamp", f"{field}: epoch {value} out of range") from None
    if not isinstance(value, str):
        raise RecordError("bad_type", f"{field}: expected an ISO 8601 string or epoch seconds")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise RecordError("bad_timestamp", f"{field}: {value[:40]!r} is not ISO 8601") from None
    if instant.tzinfo is None:
        return instant.replace(tzinfo=UTC)
    try:
        return instant.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+12:00 is in year 0, which has no datetime
        raise RecordError("bad_timestamp", f"{field}: {value[:40]!r} is out of range") from None


def _prefixed(source: str, native: Any, field: str) -> str:
    native_id = _string(native, field, 256).strip()
    if not native_id:
        raise RecordError("missing_field", f"{field}: empty id")
    return native_id if native_id.startswith(source + ":") else f"{source}:{native_id}"


def _author(record: Mapping[str, Any]) -> tuple[str, str, int | None]:
    """(handle, display name, followers)."""
    raw = record.get("author")
    if raw is None or raw == "":
        raise RecordError("missing_field", "author: missing")
    if isinstance(raw, dict):
        if not raw.keys() <= _AUTHOR_NAMES:
            raw = _canonical(raw, _AUTHOR_ALIASES)
        handle, name, followers = raw.get("handle"), raw.get("name"), raw.get("followers")
        if handle is None or handle == "":
            raise RecordError("missing_field", "author.handle: missing")
    else:
        handle, name, followers = raw, record.get("author_name"), record.get("followers")
    handle = _string(handle, "author.handle", 256).lstrip("@").strip()
    if not handle:
        raise RecordError("missing_field", "author: empty handle")
    return (
        handle,
        "" if name is None else _string(name, "author.name", 256),
        None if followers is None or followers == "" else _count(followers, "followers"),
    )


def _metrics(record: Mapping[str, Any]) -> tuple[int, int, int, int]:
    """(likes, reposts, replies, views)."""
    nested = record.get("metrics") or {}
    if not isinstance(nested, dict):
        raise RecordError("bad_type", "metrics: expected an object")
    if _TOP_LEVEL_METRICS.isdisjoint(record.keys()):
        if not nested:
            return _NO_METRICS
    else:  # counts given beside the other fields, not under "metrics"
        nested = {**_canonical(record, _METRIC_ALIASES), **nested}
    if not nested.keys() <= _METRIC_NAMES:
        nested = _canonical(nested, _METRIC_ALIASES)
    counts = []
    for name in _METRICS:
        value = nested.get(name)
        counts.append(0 if value is None or value == "" else _count(value, f"metrics.{name}"))
    likes, reposts, replies, views = counts
    return likes, reposts, replies, views


def _clean_text(raw: Any) -> str:
    if raw is None:
        return ""
    text = _string(raw, "text", MAX_TEXT_CHARS)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise RecordError("invalid_unicode", "text: contains unpaired surrogates") from None
    return _CONTROL.sub("", unicodedata.normalize("NFC", text))


def web_url(value: Any) -> str:
    """A post's link, only if it is http(s): a `javascript:` or `data:` URL from a post
    would otherwise reach clients as a citation's link."""
    if value is None or value == "":
        return ""
    url = _string(value, "url").strip()
    return url if _WEB_URL.match(url) else ""


def normalize(
    record: Any,
    *,
    default_source: str = "file",
    now: datetime | None = None,
    allowed_sources: frozenset[str] | None = None,
    dropped: list[str] | None = None,
) -> Post:
    """Build a `Post` from one record; raises `RecordError` on anything invalid (see
    `normalize_flat`, what ingest calls)."""
    return unflatten(
        normalize_flat(
            record,
            default_source=default_source,
            now=now,
            allowed_sources=allowed_sources,
            dropped=dropped,
        )
    )


def normalize_flat(
    record: Any,
    *,
    default_source: str = "file",
    now: datetime | None = None,
    allowed_sources: frozenset[str] | None = None,
    dropped: list[str] | None = None,
) -> tuple:
    """One record → the post in flat form (`ima.post.flatten`'s tuple), built directly:
    ingest stores and sends that form, and building a `Post` of five objects only to
    flatten it again cost a tenth of a preparing process's time. Raises `RecordError`
    on anything invalid.

    `allowed_sources`, when given, are the sources besides `default_source` a record may
    claim (records sent over HTTP belong to their key's own source unless it was granted
    others): a post cannot pass itself off as another source's, nor change its counts.
    Fields left out of an otherwise good record are named in `dropped` (`url_not_http`)."""
    if isinstance(record, JsonLine):
        record = record.parse()
    if not isinstance(record, dict):
        raise RecordError("bad_type", f"record: expected an object, got {type(record).__name__}")
    record = _canonical(record, _RECORD_ALIASES)
    now = now or datetime.now(UTC)
    source = _string(record.get("source") or default_source, "source", 32).strip().lower()
    if not _SOURCE.match(source):
        raise RecordError("bad_value", f"source: {source[:32]!r} is not a short lowercase name")
    if allowed_sources is not None and source != default_source and source not in allowed_sources:
        raise RecordError("source_not_granted", f"source: {source!r} is not granted to this sender")
    native_id, created_raw = record.get("id"), record.get("created_at")
    if native_id is None or native_id == "":
        raise RecordError("missing_field", "id: missing")
    if created_raw is None or created_raw == "":
        raise RecordError("missing_field", "created_at: missing")
    created_at = parse_instant(created_raw)
    if created_at < EARLIEST:
        raise RecordError("bad_timestamp", f"created_at: {created_at.date()} is before 1970")
    if created_at > now + MAX_FUTURE_SKEW:
        raise RecordError(
            "future_timestamp",
            f"created_at: {created_at.isoformat()} is more than "
            f"{int(MAX_FUTURE_SKEW.total_seconds() // 60)} minutes in the future",
        )
    links = {name: record.get(name) for name in ("reply_to", "quote_of", "repost_of")}
    text_raw = record.get("text")
    if text_raw is None and links["repost_of"] is None:
        raise RecordError("missing_field", "text: missing")
    text = _clean_text(text_raw)
    urls = _URL.findall(text) if "://" in text else []
    hashtags = (
        list(dict.fromkeys(tag.lower() for tag in _HASHTAG.findall(text)))
        if "#" in text or "＃" in text
        else []
    )
    mentions = list(dict.fromkeys(m.lower() for m in _MENTION.findall(text))) if "@" in text else []
    declared = record.get("lang")
    if isinstance(declared, list):
        declared = declared[0] if declared else None
    url = web_url(record.get("url"))
    if dropped is not None and not url and record.get("url"):
        dropped.append("url_not_http")
    ids = {
        name: None if value is None or value == "" else _prefixed(source, value, name)
        for name, value in links.items()
    }
    post_id = _prefixed(source, native_id, "id")
    handle, name, followers = _author(record)  # checked in this order, as fields are listed
    return (
        post_id, source, handle, name, followers, text,
        lang.normalize_tag(_string(declared, "lang", 35)) if declared else lang.detect(text),
        to_us(created_at), to_us(now), url, ids["reply_to"], ids["quote_of"], ids["repost_of"],
        " ".join(hashtags), " ".join(mentions), " ".join(urls), *_metrics(record),
        None, flags.spam_score(text, len(hashtags), len(mentions), len(urls)),
        int(flags.injection_suspect(text)), 0,
    )  # fmt: skip
