"""Recording until silence, fed a real recording between stretches of its own room noise
as a microphone would deliver it: 30 ms frames, read one at a time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ima.config import Settings
from ima.voice.decode import decode
from ima.voice.listen import (
    FRAME_SECONDS,
    RATE,
    Endpointing,
    MicrophoneError,
    microphone,
    until_silence,
)
from ima.voice.talk import talk

SPEECH = Path(__file__).parent / "data" / "speech"
FRAME = int(RATE * FRAME_SECONDS)


def _recording(name: str) -> np.ndarray:
    return decode((SPEECH / name).read_bytes(), max_seconds=60).samples


def _room(seconds: float) -> np.ndarray:
    """The recording's own background (its first 0.24 s, before the reader speaks), looped."""
    noise = _recording("librivox-austen-0880.wav")[: int(0.24 * RATE)]
    return np.resize(noise, int(seconds * RATE))


class _Microphone:
    """Frames of `audio`, counting how many were taken."""

    def __init__(self, audio: np.ndarray) -> None:
        self.audio, self.taken = audio, 0

    def __iter__(self) -> Iterator[np.ndarray]:
        for at in range(0, len(self.audio), FRAME):
            self.taken += 1
            yield self.audio[at : at + FRAME]


def test_records_the_question_and_stops_at_the_pause_after_it():
    question = _recording("librivox-austen-0880.wav")
    later = _recording("librivox-austen-0930.wav")  # someone speaking after the pause
    lead, pause = _room(1.5), _room(3.0)
    stream = np.concatenate([lead, question, pause, later])
    mic = _Microphone(stream)
    rules = Endpointing()
    got = until_silence(mic, rules=rules)
    start = next(at for at in range(0, len(stream), FRAME)
                 if np.array_equal(stream[at : at + len(got)], got))  # fmt: skip
    end = start + len(got)
    # from at most the pre-roll before the first word (0.27 s in) to the pause after the last
    earliest = len(lead) - (rules.preroll_s + 2 * FRAME_SECONDS) * RATE
    assert earliest <= start <= len(lead) + 0.3 * RATE
    assert len(lead) + len(question) - 0.1 * RATE <= end
    assert end <= len(lead) + len(question) + (rules.stop_s + 2 * FRAME_SECONDS) * RATE
    # it stopped listening at the pause: the later speech was never read
    assert mic.taken * FRAME < len(lead) + len(question) + len(pause)


def test_silence_alone_gives_nothing_once_the_wait_is_over():
    rules = Endpointing(wait_s=2.0)
    mic = _Microphone(_room(20.0))
    assert len(until_silence(mic, rules=rules)) == 0
    assert mic.taken * FRAME_SECONDS == pytest.approx(2.0, abs=FRAME_SECONDS)


def test_a_speaker_who_never_stops_is_cut_at_the_cap():
    question = _recording("librivox-austen-0880.wav")
    rules = Endpointing(max_s=4.0)
    got = until_silence(_Microphone(np.concatenate([_room(1.0), np.tile(question, 5)])),
                        rules=rules)  # fmt: skip
    assert 2.5 * RATE <= len(got) <= 4.0 * RATE


def test_talk_without_a_file_or_a_microphone_says_so(tmp_path: Path):
    try:
        next(microphone())
    except MicrophoneError as exc:
        missing = str(exc)
    else:
        pytest.skip("this machine has a microphone to record from")
    result = CliRunner().invoke(talk, [], obj=Settings.load(tmp_path / "data"))
    assert result.exit_code == 2 and missing in result.output
    assert "pass an audio file" in missing and "Traceback" not in result.output
