"""Uploaded audio to 16 kHz mono samples, refusing what is not audio, or too long.

Uploads are untrusted: only a few containers are accepted (whatever FFmpeg can probe
is a much larger surface), the declared duration is checked before decoding, and
decoding stops as soon as the samples pass the cap, so memory stays bounded.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import av
import numpy as np

RATE = 16_000
#: FFmpeg demuxer names of the containers OpenAI's transcription API accepts
CONTAINERS = frozenset({"wav", "flac", "mp3", "ogg", "matroska,webm", "mov,mp4,m4a,3gp,3g2,mj2"})
ACCEPTED = "WAV, FLAC, MP3, OGG/Opus, WebM or M4A"


class AudioError(ValueError):
    """The upload cannot be transcribed; the message says why, in the client's terms."""

    def __init__(self, message: str, *, too_long: bool = False) -> None:
        super().__init__(message)
        self.too_long = too_long


@dataclass(frozen=True, slots=True)
class Audio:
    samples: np.ndarray  # float32, mono, RATE Hz
    container: str

    @property
    def seconds(self) -> float:
        return len(self.samples) / RATE


def decode(data: bytes, *, max_seconds: float) -> Audio:
    """The upload's first audio track, resampled to RATE Hz mono float32."""
    if not data:
        raise AudioError("the file is empty")
    try:
        container = av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
    except (av.FFmpegError, ValueError, EOFError):
        raise AudioError(f"the file is not audio that can be read ({ACCEPTED})") from None
    with container:
        name = container.format.name
        if name not in CONTAINERS:
            raise AudioError(f"the file is {name!r}, not audio in {ACCEPTED}")
        stream = next((s for s in container.streams if s.type == "audio"), None)
        if stream is None:
            raise AudioError("the file has no audio track")
        declared = container.duration / av.time_base if container.duration else None
        if name == "wav":  # FFmpeg takes a WAV's length from the file's size
            declared = _wav_seconds(data) or declared
        if declared is not None and declared > max_seconds:
            raise _too_long(declared, max_seconds)
        samples = _samples(container, stream, max_seconds)
    if not len(samples):
        raise AudioError("the file holds no audio samples (truncated or corrupt)")
    # a WAV or FLAC header states its length: much less than that means a cut-off file
    if declared is not None and name in ("wav", "flac") and len(samples) / RATE < declared * 0.9:
        raise AudioError(
            f"the file is truncated: its header declares {declared:.1f} s, it holds "
            f"{len(samples) / RATE:.1f} s"
        )
    return Audio(samples, name)


def _samples(container: av.container.InputContainer, stream: av.AudioStream,
             max_seconds: float) -> np.ndarray:  # fmt: skip
    resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
    limit = int(max_seconds * RATE)
    parts, count = [], 0
    try:
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                part = out.to_ndarray().reshape(-1)
                count += len(part)
                if count > limit:
                    raise _too_long(None, max_seconds)
                parts.append(part)
        parts.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    except (av.FFmpegError, ValueError, EOFError):
        if count == 0:
            raise AudioError("the audio cannot be decoded (truncated or corrupt)") from None
        # a damaged tail: keep what decoded, as players do
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def _wav_seconds(data: bytes) -> float | None:
    """The length a WAV header declares (its data chunk's size over the byte rate), if
    it declares one: a streamed WAV leaves the size unset."""
    rate, at = 0, 12
    while at + 8 <= min(len(data), 1 << 16):
        kind, size = data[at : at + 4], struct.unpack_from("<I", data, at + 4)[0]
        if kind == b"fmt " and at + 16 <= len(data):
            rate = struct.unpack_from("<I", data, at + 16)[0]  # bytes per second
        if kind == b"data":
            return size / rate if rate and 0 < size < 0xFFFFFFF0 else None
        at += 8 + size + (size & 1)
    return None


def _too_long(declared: float | None, max_seconds: float) -> AudioError:
    said = f" ({declared:.0f} s)" if declared is not None else ""
    return AudioError(f"the audio is longer than {max_seconds:.0f} s{said}", too_long=True)
