"""Recording a spoken question from a microphone until the speaker stops.

Endpointing is by energy against the room's own noise floor, learnt from the first
frames: cheap enough for any CPU, and the recording is what Whisper then hears in full
(its own silence handling, see `stt`, deals with the quiet edges). Capture goes through
`sounddevice` (MIT; it needs the PortAudio library), an optional dependency: without it,
or without an input device, the error says so and a file can be given instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

RATE = 16_000
FRAME_SECONDS = 0.03


class MicrophoneError(RuntimeError):
    """No microphone can be recorded from; the message says why and what to do instead."""


@dataclass(frozen=True, slots=True)
class Endpointing:
    margin_db: float = 12.0  # speech is this much louder than the noise floor
    floor_db: float = -60.0  # ...and never quieter than this (a silent, digital input)
    calibrate_s: float = 0.3  # the first frames teach the noise floor
    start_s: float = 0.09  # this much loud audio in a row starts the question
    stop_s: float = 0.8  # this much quiet after speech ends it
    wait_s: float = 8.0  # no speech by then: give up
    max_s: float = 30.0  # a question never records longer than this
    preroll_s: float = 0.3  # kept from before speech started, so first sounds are not cut


def _level_db(frame: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(frame, dtype=np.float64)))) if len(frame) else 0.0
    return 20 * np.log10(max(rms, 1e-10))


def until_silence(frames: Iterable[np.ndarray], rate: int = RATE,
                  rules: Endpointing = Endpointing()) -> np.ndarray:  # fmt: skip
    """The speech in `frames` (float32 mono), from just before it starts to the first
    long enough pause after it; empty when nobody spoke within `rules.wait_s`. Stops
    reading `frames` as soon as it has decided, so a live stream ends there."""
    before: list[np.ndarray] = []  # until speech starts: the last few frames only
    speech: list[np.ndarray] | None = None
    floor: list[float] = []
    threshold = np.inf
    heard = loud = quiet = 0.0  # seconds: all of it, loud in a row, quiet since speech
    for frame in frames:
        seconds = len(frame) / rate
        heard += seconds
        level = _level_db(frame)
        if speech is not None:
            speech.append(frame)
            quiet = quiet + seconds if level <= threshold else 0.0
            if quiet >= rules.stop_s or heard >= rules.max_s:
                break
            continue
        before.append(frame)
        if heard <= rules.calibrate_s:
            floor.append(level)
            continue
        if threshold == np.inf:
            threshold = max(float(np.median(floor)) + rules.margin_db, rules.floor_db)
        loud = loud + seconds if level > threshold else 0.0
        if loud >= rules.start_s:
            speech = before
            continue
        if heard >= rules.wait_s:
            break
        while sum(map(len, before[1:])) / rate >= loud + rules.preroll_s:
            before.pop(0)
    if speech is None:
        return np.zeros(0, np.float32)
    return np.concatenate(speech).astype(np.float32, copy=False)


def microphone(rate: int = RATE) -> Iterator[np.ndarray]:
    """Frames from the default input device, as they are captured, until closed; the
    MicrophoneError comes at once, before any frame is asked for."""
    try:
        import sounddevice
    except ImportError:
        raise MicrophoneError("recording needs the sounddevice package (pip install "
                              "'ima[mic]') and the PortAudio library; or pass an audio "
                              "file") from None
    except OSError:  # the package is there, the PortAudio library is not
        raise MicrophoneError("recording needs the PortAudio library (apt install "
                              "libportaudio2); or pass an audio file") from None
    try:
        sounddevice.query_devices(kind="input")
    except (ValueError, sounddevice.PortAudioError):
        raise MicrophoneError("no microphone (audio input device) found; "
                              "pass an audio file instead") from None
    return _frames(sounddevice.InputStream, rate)


def _frames(opened: Any, rate: int) -> Iterator[np.ndarray]:
    block = int(rate * FRAME_SECONDS)
    with opened(samplerate=rate, channels=1, dtype="float32", blocksize=block) as stream:
        while True:
            frame, _overflowed = stream.read(block)
            yield frame.reshape(-1).copy()
