"""The voice's parts on their own: spoken citations, phonemes, encoders, audio metering."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime
from pathlib import Path

import av
import numpy as np
import pytest

from ima.answer.model import Answer, Citation
from ima.api.quota import RedisLimiter, SqliteLimiter
from ima.post import Author, Post
from ima.voice import phonemes
from ima.voice.encode import encode
from ima.voice.spoken import speakable
from ima.voice.tts import pieces, sentences


def _answer(text: str, language: str, *handles: str) -> Answer:
    now = datetime(2026, 11, 30, tzinfo=UTC)
    cited = [Citation(n, Post(id=f"t:{n}", source="t", author=Author(handle=h), text="x",
                              lang=language, created_at=now, ingested_at=now), "x")
             for n, h in enumerate(handles, 1)]  # fmt: skip
    return Answer("q", text, cited, now, True, 3600, "regular", language, "extractive")


def test_citations_are_said_as_according_to_handle():
    text = "The bridge reopened at 22:40 [2]. It was closed after a crash [1, 2]. See https://x.example/y"
    answer = _answer(text, "en", "citynews", "traffic.bsky.social")
    assert speakable(answer) == (
        "The bridge reopened at 22:40, according to @traffic. It was closed after a crash, "
        "according to @citynews and @traffic. See"
    )
    japanese = _answer("橋は再開しました[1]。", "ja", "nhk_news")
    assert speakable(japanese) == "橋は再開しました（@nhk_newsによると）。"


def test_english_phonemes_read_numbers_and_split_sentences():
    assert phonemes.number_words(2026) == "two thousand twenty six"
    assert phonemes.number_words(1_000_001) == "one million one"
    said = phonemes.english("Hello world. 42 people were hurt!")
    assert said == ["həlˈoʊ wɚld.", "fˈɔːɹtiː tuː pˈiːpəl wɚ hɚt!"]
    assert phonemes.english("citynews")[0] == phonemes.english("city news")[0]
    assert sentences("One. Two!  三。四？") == ["One.", "Two!", "三。", "四？"]
    assert pieces("At 22:40, 22,000 left; then more. Others, later.") == [
        "At 22:40,", "22,000 left;", "then more.", "Others, later."]  # fmt: skip
    assert pieces("日曜日の夜遅く、橋は再開しました。バスは、通常です。") == [
        "日曜日の夜遅く、", "橋は再開しました。", "バスは、通常です。"]  # fmt: skip


@pytest.mark.parametrize("fmt", ["mp3", "opus", "flac", "wav"])
def test_each_format_streams_and_decodes(fmt):
    tone = (0.3 * np.sin(np.arange(24000) / 8)).astype(np.float32)
    parts = list(encode(iter([tone, tone, tone]), 24000, fmt))
    assert len([p for p in parts if p]) >= 2  # bytes went out before the last chunk
    with av.open(io.BytesIO(b"".join(parts))) as container:
        seconds = sum(f.samples / f.sample_rate for f in container.decode(audio=0))
    assert 2.9 < seconds < 3.1


def test_audio_seconds_spend_in_sqlite(tmp_path: Path):
    limiter = SqliteLimiter(tmp_path / "quota.sqlite3")
    assert limiter.spend("k", "audio_seconds", 4.5, 5).allowed
    assert limiter.spend("k", "audio_seconds", 4.5, 5).allowed  # 4.5 < 5: may end past it
    refused = limiter.spend("k", "audio_seconds", 0, 5)
    assert not refused.allowed and refused.reason == "daily" and refused.retry_after > 0
    assert limiter.spend("other", "audio_seconds", 1, 5).allowed
    limiter.close()


def test_audio_seconds_spend_in_redis():
    prefix = f"ima-test:{uuid.uuid4().hex[:8]}"
    limiter = RedisLimiter("redis://127.0.0.1:6379/0", prefix=prefix)
    try:
        assert limiter.spend("k", "audio_seconds", 4.5, 5).allowed
        assert limiter.spend("k", "audio_seconds", 4.5, 5).allowed
        assert not limiter.spend("k", "audio_seconds", 0, 5).allowed
        assert limiter.spend("k", "audio_seconds", 1, float("inf")).allowed  # counted after
    finally:
        for key in limiter.client.scan_iter(f"{prefix}:*"):
            limiter.client.delete(key)
        limiter.close()
