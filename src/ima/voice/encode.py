"""Audio out in the formats OpenAI's speech API offers, encoded as it is synthesized.

Each chunk of samples is encoded and its bytes handed on at once, so the first
sentence can play while later ones are still being made. WAV goes out with its
length unset (as streamed WAV does); the others go through PyAV's bundled FFmpeg.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable, Iterator

import av
import numpy as np

#: response_format -> (media type, FFmpeg container, codec) ; wav and pcm need none
FORMATS = {
    "mp3": ("audio/mpeg", "mp3", "libmp3lame"),
    "opus": ("audio/ogg", "ogg", "libopus"),
    "flac": ("audio/flac", "flac", "flac"),
    "wav": ("audio/wav", "", ""),
    "pcm": ("audio/pcm", "", ""),
}


def pcm16(samples: np.ndarray) -> np.ndarray:
    return (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")


def wav_header(rate: int) -> bytes:
    """A mono 16-bit WAV header whose sizes say 'unknown' (streamed)."""
    unknown = 0xFFFFFFFF
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    return b"RIFF" + struct.pack("<I", unknown) + b"WAVEfmt " + struct.pack("<I", 16) + fmt \
        + b"data" + struct.pack("<I", unknown)  # fmt: skip


class _Sink(io.RawIOBase):
    """Where the muxer writes; drained after every chunk."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.parts.append(bytes(data))
        return len(data)

    def drain(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        return out


def encode(chunks: Iterable[np.ndarray], rate: int, fmt: str) -> Iterator[bytes]:
    """The bytes of `fmt` for float32 mono `chunks` at `rate` Hz, as each chunk comes."""
    if fmt in ("wav", "pcm"):
        if fmt == "wav":
            yield wav_header(rate)
        for chunk in chunks:
            yield pcm16(chunk).tobytes()
        return
    _, container_name, codec = FORMATS[fmt]
    sink = _Sink()
    container = av.open(sink, mode="w", format=container_name)
    try:
        stream = container.add_stream(codec, rate=rate, layout="mono")
        for chunk in chunks:
            frame = av.AudioFrame.from_ndarray(pcm16(chunk)[None, :], format="s16", layout="mono")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                container.mux(packet)
            if data := sink.drain():
                yield data
        for packet in stream.encode(None):
            container.mux(packet)
    finally:
        container.close()
    yield sink.drain()
