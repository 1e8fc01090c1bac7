"""`ima talk`: a recorded question, answered from real posts in the store, spoken."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from conftest import feed, post
from ima.config import Settings
from ima.voice.decode import decode
from ima.voice.stt import Transcriber
from ima.voice.talk import talk

QUESTION = Path(__file__).parent / "data" / "speech" / "librivox-austen-0880.wav"


def test_talk_answers_a_recorded_question_aloud_with_citations_said(tmp_path: Path):
    settings = Settings.load(tmp_path / "data")
    store = settings.open_store()
    feed(store, [
        post("p1", "Police say the young man seen at the harbour was not ill disposed: he "
             "was a lost tourist looking for his ferry.", author="harbour_police"),
        post("p2", "Bakery on Main Street sells out of bread again", author="maineats"),
    ])  # fmt: skip
    store.close()
    out = tmp_path / "answer.wav"
    # a fixed instant: the spoken answer (and so what is heard back) must not vary with the day
    args = [str(QUESTION), "--out", str(out), "--as-of", "2026-11-22T11:00:00Z"]
    result = CliRunner().invoke(talk, args, obj=settings)
    assert result.exit_code == 0, result.output
    assert "@harbour_police" in result.stdout and "[1]" in result.stdout
    assert "heard (en): He was not an ill-disposed young man" in result.stderr
    spoken = decode(out.read_bytes(), max_seconds=120)
    assert spoken.seconds > 2
    heard = Transcriber().transcribe(spoken.samples, language="en").text.lower()
    assert "according to" in heard and "tourist" in heard, heard
    assert "[1]" not in heard and "one" not in heard.split()


def test_talk_refuses_what_is_not_audio(tmp_path: Path):
    bad = tmp_path / "question.wav"
    bad.write_text("not audio")
    result = CliRunner().invoke(talk, [str(bad)], obj=Settings.load(tmp_path / "data"))
    assert result.exit_code == 2 and "not audio" in result.output
