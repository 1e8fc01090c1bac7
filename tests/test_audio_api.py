"""`/v1/audio/transcriptions` and `/v1/audio/speech` through the official `openai`
client against a real server, with recorded speech (tests/data/speech/README.md)."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import av
import openai
import pytest

from api_server import serving

SPEECH = Path(__file__).parent / "data" / "speech"
SAID = {"librivox-austen-0880.wav": "he was not an ill disposed young man",
        "librivox-austen-0930.wav": "he might even have been made amiable himself"}  # fmt: skip


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]", " ", text.lower().replace("-", " ")).split()


def overlap(heard: str, said: str) -> float:
    """The share of the said words that were heard (a rough, order-free recall)."""
    got = words(heard)
    return sum(1 for w in words(said) if w in got) / len(words(said))


def transcode(wav: Path, container: str, codec: str) -> bytes:
    """The recording re-encoded into another container, as a browser or phone sends it."""
    out = io.BytesIO()
    with av.open(str(wav)) as source, av.open(out, "w", format=container) as target:
        stream = target.add_stream(codec, rate=48000 if codec == "libopus" else 16000,
                                   layout="mono")  # fmt: skip
        for frame in source.decode(audio=0):
            frame.pts = None
            for packet in stream.encode(frame):
                target.mux(packet)
        for packet in stream.encode(None):
            target.mux(packet)
    return out.getvalue()


def seconds_of(data: bytes) -> float:
    with av.open(io.BytesIO(data)) as container:
        return sum(f.samples / f.sample_rate for f in container.decode(audio=0))


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory):
    with serving(tmp_path_factory.mktemp("audio") / "data") as (base, svc):
        keys = {tier: svc.keys.create(f"test {tier}", tier)[1]
                for tier in ("free", "premium_plus", "audio2")}  # fmt: skip
        yield base, keys


def client(api, tier: str = "premium_plus") -> openai.OpenAI:
    base, keys = api
    return openai.OpenAI(base_url=base, api_key=keys[tier], max_retries=0, timeout=120)


def test_transcribes_recorded_speech_with_openai_names(api):
    for name, said in SAID.items():
        with open(SPEECH / name, "rb") as f:
            result = client(api).audio.transcriptions.create(model="whisper-1", file=f)
        assert overlap(result.text, said) >= 0.85, result.text
        assert result.usage.seconds >= 2


@pytest.mark.parametrize(("container", "codec", "suffix"), [
    ("flac", "flac", "flac"), ("mp3", "libmp3lame", "mp3"), ("ogg", "libopus", "ogg"),
    ("webm", "libopus", "webm"),
])  # fmt: skip
def test_every_accepted_container(api, container, codec, suffix):
    data = transcode(SPEECH / "librivox-austen-0880.wav", container, codec)
    text = client(api).audio.transcriptions.create(
        model="gpt-4o-transcribe", file=(f"q.{suffix}", data), response_format="text",
        language="en",
    )  # fmt: skip
    assert overlap(text, SAID["librivox-austen-0880.wav"]) >= 0.85, text


def test_verbose_json_words_segments_and_subtitles(api):
    path = SPEECH / "librivox-austen-0930.wav"
    verbose = client(api).audio.transcriptions.create(
        model="whisper-1", file=path.open("rb"), response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )  # fmt: skip
    assert verbose.language == "english" and 2.5 < verbose.duration < 4
    assert [w.word.lower().strip(".,") for w in verbose.words][:3] == ["he", "might", "even"]
    starts = [w.start for w in verbose.words]
    assert starts == sorted(starts) and verbose.words[-1].end <= verbose.duration + 0.1
    assert verbose.segments and verbose.segments[0].text
    srt = client(api).audio.transcriptions.create(model="whisper-1", file=path.open("rb"),
                                                  response_format="srt")  # fmt: skip
    assert srt.startswith("1\n00:00:0") and " --> " in srt and "amiable" in srt.lower()
    vtt = client(api).audio.transcriptions.create(model="whisper-1", file=path.open("rb"),
                                                  response_format="vtt")  # fmt: skip
    assert vtt.startswith("WEBVTT\n\n00:00:0") and "amiable" in vtt.lower()


def test_streamed_transcription_sends_deltas_then_the_text(api):
    stream = client(api).audio.transcriptions.create(
        model="gpt-4o-transcribe", file=(SPEECH / "librivox-austen-0880.wav").open("rb"),
        stream=True,
    )  # fmt: skip
    events = list(stream)
    assert [e.type for e in events][-1] == "transcript.text.done"
    assert any(e.type == "transcript.text.delta" for e in events)
    assert overlap(events[-1].text, SAID["librivox-austen-0880.wav"]) >= 0.85


def test_speech_round_trip_in_english_streamed_as_synthesized(api):
    text = ("The Harbour Bridge reopened to traffic tonight. Police said the crash hurt no one. "
            "Trains run on time again. Drivers should still expect delays.")  # fmt: skip
    started = time.perf_counter()
    with client(api).audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=text, response_format="wav"
    ) as response:
        assert response.headers["content-type"] == "audio/wav"
        chunks = response.iter_bytes()
        first = next(chunks)
        first_at = time.perf_counter() - started
        audio = first + b"".join(chunks)
    total = time.perf_counter() - started
    assert first_at < 0.75 * total  # the first sentence went out before the last was made
    assert 6 < seconds_of(audio) < 20
    heard = client(api).audio.transcriptions.create(model="whisper-1", file=("a.wav", audio),
                                                    language="en")  # fmt: skip
    assert overlap(heard.text, text) >= 0.7, heard.text


@pytest.mark.parametrize("fmt", ["mp3", "opus", "flac", "pcm"])
def test_speech_formats_decode(api, fmt):
    said = client(api).audio.speech.create(
        model="gpt-4o-mini-tts", voice="nova", input="Good evening.", response_format=fmt
    )
    audio = said.read()
    # pcm: 24 kHz 16-bit mono, as OpenAI's
    seconds = len(audio) / 2 / 24000 if fmt == "pcm" else seconds_of(audio)
    assert 0.4 < seconds < 3


def test_japanese_speech_is_heard_back_in_japanese(api):
    audio = client(api).audio.speech.create(model="tts-1", voice="alloy", response_format="wav",
                                            input="東京で電車が止まりました。").read()  # fmt: skip
    heard = client(api).audio.transcriptions.create(
        model="whisper-1", file=("ja.wav", audio), response_format="verbose_json"
    )
    assert heard.language == "japanese" and "東京" in heard.text and "電車" in heard.text


def test_voice_model_and_tier_errors(api):
    with pytest.raises(openai.PermissionDeniedError, match="fun voice"):
        client(api, "free").audio.speech.create(model="tts-1", voice="ima-fun", input="Hi.")
    fun = client(api).audio.speech.create(model="tts-1", voice="ima-fun", input="Hi there!",
                                          response_format="wav").read()  # fmt: skip
    assert seconds_of(fun) > 0.3
    with pytest.raises(openai.BadRequestError, match="voice"):
        client(api).audio.speech.create(model="tts-1", voice="robot", input="Hi.")
    with pytest.raises(openai.NotFoundError, match="model"):
        client(api).audio.speech.create(model="eleven", voice="alloy", input="Hi.")
    with pytest.raises(openai.NotFoundError, match="model"):
        client(api).audio.transcriptions.create(model="whisper-9", file=("a.wav", b"RIFF"))
    with pytest.raises(openai.BadRequestError, match="input"):
        client(api).audio.speech.create(model="tts-1", voice="alloy", input="x" * 5000)
    listed = {m.id for m in client(api).models.list()}
    assert {"whisper-1", "gpt-4o-transcribe", "tts-1", "ima-whisper-base", "ima-tts"} <= listed


def test_audio_seconds_are_metered_by_tier(api):
    limited = client(api, "audio2")  # 2 audio seconds a day
    path = SPEECH / "librivox-austen-0880.wav"  # 3.0 s: allowed (none spent yet), spends the day
    assert limited.audio.transcriptions.create(model="whisper-1", file=path.open("rb")).text
    with pytest.raises(openai.RateLimitError, match="audio seconds") as refused:
        limited.audio.transcriptions.create(model="whisper-1", file=path.open("rb"))
    assert int(refused.value.response.headers["retry-after"]) > 0
    with pytest.raises(openai.RateLimitError, match="audio seconds"):
        limited.audio.speech.create(model="tts-1", voice="alloy", input="Hello.")


def test_a_server_without_the_voice_extra_answers_503_naming_it(api, monkeypatch):
    """Without the `voice` extra (here: a module it needs made missing, as it is on an
    install without `[voice]`), both endpoints refuse with 503 `voice_unavailable`, not a
    500 from the first import that fails."""
    from ima.api import audio

    monkeypatch.setattr(audio, "_loaded", {})
    monkeypatch.setattr(audio, "_NEEDS", {kind: ("ima_voice_extra_not_installed",)
                                          for kind in audio._NEEDS})  # fmt: skip
    speaking = client(api)
    with pytest.raises(openai.APIStatusError) as refused:
        speaking.audio.speech.create(model="tts-1", voice="alloy", input="hello")
    assert refused.value.status_code == 503 and "voice" in str(refused.value)
    with pytest.raises(openai.APIStatusError) as refused:
        speaking.audio.transcriptions.create(model="whisper-1", file=("q.wav", b"RIFF0000"))
    assert refused.value.status_code == 503
    assert refused.value.body["code"] == "voice_unavailable"
