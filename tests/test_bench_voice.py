"""`ima bench voice` end to end: one measured round trip through a real `ima serve`."""

from ima.bench.voice import run


def test_bench_voice_measures_a_spoken_round_trip():
    figures = run(rounds=1)
    assert figures["rounds"] == 1 and figures["question_s"] == 5.3
    assert 0 < figures["transcription_s"] < figures["first_audio_byte_s"]
    assert figures["answer_audio_s"] > 1  # the answer was spoken, not an empty stream
    assert 0 < figures["synthesis_rtf"] < 10
    assert figures["server_peak_rss_mb"] > 100  # the voice models are loaded in the server
    for language in ("en", "ja"):
        assert figures[f"synthesis_first_byte_s_{language}"] > 0
        assert 0 < figures[f"synthesis_rtf_{language}"] < 20
    assert len(figures["load_average_before"]) == len(figures["load_average_after"]) == 3
