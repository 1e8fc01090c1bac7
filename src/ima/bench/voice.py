"""`ima bench voice`: a spoken question's round trip through a real `ima serve`.

The question is `question-en.wav` beside this file: 5.3 s of recorded English (a
LibriVox reading of *Sense and Sensibility*, public domain, as cut in PocketSphinx's
test data, BSD-2-Clause). Each round is what a voice client does: upload it to
`/v1/audio/transcriptions`, ask `/v1/chat/completions` the text heard, and stream the
answer from `/v1/audio/speech` (WAV). A first round loads the models and is not
counted. Reported: transcription time, the first audio byte of the answer after the
upload was sent (loopback: the upload itself takes no time), the synthesis real-time
factor (seconds to make audio over its length) of the answer and of a fixed English
and a fixed Japanese passage, the server's peak RSS with the voice loaded, and the
machine's load average before and after (on a shared machine every figure depends on it).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import httpx

from ima.api.keys import KeyStore
from ima.bench.serve import memory_mb, seed, served
from ima.synthetic.chatter import Stream

QUESTION = Path(__file__).with_name("question-en.wav")
#: fixed passages for the synthesis real-time factor, three sentences each
PASSAGES = {
    "en": "The bridge reopened to traffic late on Sunday evening. Police said the crash "
    "left two people with minor injuries. Buses run on their usual routes again.",
    "ja": "日曜日の夜遅く、橋は通行を再開しました。警察によると、事故で二人が軽いけがをしました。"
    "バスは通常の路線に戻っています。",
}


def _round(client: httpx.Client, question: bytes) -> dict[str, float]:
    started = time.perf_counter()
    heard = client.post("/v1/audio/transcriptions", data={"model": "whisper-1"},
                        files={"file": ("question.wav", question)})  # fmt: skip
    heard.raise_for_status()
    transcribed = time.perf_counter()
    chat = client.post(
        "/v1/chat/completions",
        json={"model": "ima", "messages": [{"role": "user", "content": heard.json()["text"]}]},
    )
    chat.raise_for_status()
    answered = time.perf_counter()
    first, seconds, spent = _spoken(client, chat.json()["choices"][0]["message"]["content"])
    return {"transcription_s": transcribed - started, "answer_s": answered - transcribed,
            "first_audio_byte_s": answered + first - started, "answer_audio_s": seconds,
            "synthesis_rtf": spent / seconds if seconds else 0.0}  # fmt: skip


def _spoken(client: httpx.Client, text: str) -> tuple[float, float, float]:
    """Seconds to the first audio byte, seconds of audio, seconds to make it all."""
    started = time.perf_counter()
    first, size = None, 0
    with client.stream(
        "POST",
        "/v1/audio/speech",
        json={"model": "tts-1", "voice": "alloy", "input": text, "response_format": "pcm"},
    ) as spoken:
        spoken.raise_for_status()
        for chunk in spoken.iter_bytes():
            first = first or time.perf_counter()
            size += len(chunk)
    done = time.perf_counter()
    return (first or done) - started, size / 2 / 24000, done - started  # pcm: 16-bit, 24 kHz


def _synthesis(client: httpx.Client, language: str) -> dict[str, float]:
    first, seconds, spent = _spoken(client, PASSAGES[language])
    return {f"synthesis_rtf_{language}": spent / seconds if seconds else 0.0,
            f"synthesis_first_byte_s_{language}": first}  # fmt: skip


def run(rounds: int = 3, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    say = progress or (lambda _m: None)
    question = QUESTION.read_bytes()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="ima-bench-voice-") as tmp:
        data = Path(tmp) / "data"
        say("ingesting 2,000 posts to answer from")
        seed(data, Path(tmp), iter(Stream(2000, seed=7)), 2000)
        keys = KeyStore(data / "keys.sqlite3")
        key = keys.create("voice", "load")[1]
        keys.close()
        with (
            served(data, Path(tmp)) as server,
            httpx.Client(
                base_url=server.base, headers={"Authorization": f"Bearer {key}"}, timeout=120
            ) as client,
        ):
            say("warming up (loads the models)")
            _round(client, question)
            _synthesis(client, "ja")
            found = []
            for n in range(rounds):
                say(f"round {n + 1} of {rounds}")
                found.append(_round(client, question) | _synthesis(client, "en")
                             | _synthesis(client, "ja"))  # fmt: skip
            peak = memory_mb(server.process.pid, "VmHWM")
    figures: dict[str, Any] = {"question_s": 5.3, "rounds": rounds}
    for name in found[0]:
        figures[name] = round(statistics.median(r[name] for r in found), 3)
    figures["server_peak_rss_mb"] = peak
    figures["cpus"] = os.cpu_count()
    figures["load_average_before"] = [round(x, 2) for x in load_before]
    figures["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return figures


@click.command("voice")
@click.option("--rounds", default=3, show_default=True, help="Measured round trips (median).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench_voice(rounds: int, as_json: bool) -> None:
    """A 5-second spoken English question through `ima serve`: transcription time,
    first audio byte of the answer, synthesis real-time factor (English, Japanese),
    peak RSS, and the machine's load average while it ran."""
    import json

    figures = run(rounds, progress=lambda m: click.echo(m, err=True))
    if as_json:
        click.echo(json.dumps(figures, indent=2))
        return
    for name, value in figures.items():
        click.echo(f"{name:>22}: {value}")
