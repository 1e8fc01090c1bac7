"""`ima talk`: a spoken question in, the answer printed with its citations and spoken.

The question is a file, or, without one, recorded from the microphone until the
speaker pauses (`ima.voice.listen`).

Registered in `ima.cli`; the same steps the API offers as three calls
(`/v1/audio/transcriptions`, `/v1/chat/completions`, `/v1/audio/speech`).
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from ima.config import Settings
from ima.errors import BadInput
from ima.query import parse_as_of

MAX_QUESTION_SECONDS = 120.0


@click.command("talk")
@click.argument(
    "question", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default="answer.wav",
    show_default=True,
    help="Where the spoken answer goes (.wav, .mp3, .flac, .opus).",
)
@click.option(
    "--persona",
    type=click.Choice(["regular", "fun"]),
    default="regular",
    show_default=True,
    help="The voice: regular, or fun (livelier, and sarcastic).",
)
@click.option("--as-of", "as_of", help="Answer as of this instant (ISO 8601 or epoch seconds).")
@click.option(
    "--language",
    type=click.Choice(["en", "ja"]),
    help="The question's language (detected when left out).",
)
@click.pass_obj
def talk(settings: Settings, question: Path | None, out: Path, persona: str,
         as_of: str | None, language: str | None) -> None:  # fmt: skip
    """Answer a spoken QUESTION (an audio file) from the posts, aloud.

    Without QUESTION, records from the microphone until you pause. Prints what was
    heard, the answer and the posts it cites; writes the answer, read with each
    citation said as "according to @handle", to --out.
    """
    from ima.answer.ask import ask
    from ima.voice.encode import FORMATS, encode
    from ima.voice.spoken import speakable
    from ima.voice.stt import Transcriber
    from ima.voice.tts import RATE, Synthesizer

    fmt = out.suffix.lstrip(".").lower()
    if fmt not in FORMATS or fmt == "pcm":
        raise click.BadParameter("use a .wav, .mp3, .flac or .opus name", param_hint="--out")
    try:
        instant = parse_as_of(as_of)
    except BadInput as exc:
        raise click.BadParameter(str(exc), param_hint="--as-of") from None
    samples = _recorded() if question is None else _read(question)
    heard = Transcriber().transcribe(samples, language=language) if len(samples) else None
    if heard is None or not heard.text:
        raise click.UsageError(f"{question or 'microphone'}: no speech heard")
    click.echo(f"heard ({heard.language}): {heard.text}", err=True)
    store = settings.open_store()
    try:
        answer = ask(store, heard.text, as_of=instant, persona=persona)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    finally:
        store.close()
    click.echo(answer.text)
    for c in answer.citations:
        when = c.post.created_at.strftime("%Y-%m-%d %H:%M UTC")
        click.echo(f"  [{c.number}] @{c.post.author.handle} · {when} · {c.post.url or c.post.id}")
    spoken = Synthesizer().speak(speakable(answer), style=persona)
    with open(out, "wb") as sink:
        for data in encode(spoken, RATE, fmt):
            sink.write(data)
    click.echo(f"spoken answer: {out}", err=True)


def _read(question: Path) -> np.ndarray:
    from ima.voice.decode import AudioError, decode

    try:
        return decode(question.read_bytes(), max_seconds=MAX_QUESTION_SECONDS).samples
    except AudioError as exc:
        raise click.UsageError(f"{question}: {exc}") from None


def _recorded() -> np.ndarray:
    from ima.voice.listen import MicrophoneError, microphone, until_silence

    try:
        frames = microphone()
        click.echo("listening: ask your question, then pause", err=True)
        return until_silence(frames)
    except MicrophoneError as exc:
        raise click.UsageError(str(exc)) from None
