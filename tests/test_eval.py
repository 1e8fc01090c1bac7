"""`ima eval`: the temporal QA harness holds the issue's bars on its generated stream."""

import json
from pathlib import Path

from click.testing import CliRunner

from ima.bench.temporal import generate, run
from ima.cli import main
from ima.store import Store


def test_the_generated_stream_has_every_kind_of_case():
    stream = generate(seed=3)
    unknown = [c for c in stream.cases if not c.facts]
    assert len(stream.records) > 400 and len(stream.cases) > 30
    assert any("?" in c.question and c.future_facts for c in unknown)  # before a story
    assert any(not c.future_facts for c in unknown)  # never mentioned
    assert any("スパム" in r["text"] or "spam.example" in r["text"] for r in stream.records)


def test_extractive_answers_meet_the_bars(tmp_path: Path):
    report = run(lambda: Store(tmp_path / "data"), seed=11)
    assert report["accuracy"] >= 0.9
    assert report["nothing_found_when_unknown"] >= 0.9
    assert report["citation_validity"] == 1.0
    assert report["future_leaks"] == 0


def test_eval_command_prints_a_table_and_json():
    runner = CliRunner()
    table = runner.invoke(main, ["eval", "--no-vectors", "--persona", "fun"])
    assert table.exit_code == 0, table.output
    assert "citation validity" in table.output and "future leaks" in table.output
    report = json.loads(runner.invoke(main, ["eval", "--no-vectors", "--json"]).stdout)
    assert report["questions"] == len(report["cases"]) and report["future_leaks"] == 0


def test_ask_command(tmp_path: Path):
    runner = CliRunner()
    data = str(tmp_path / "data")
    examples = Path(__file__).parent.parent / "examples"
    runner.invoke(main, ["--data-dir", data, "ingest", str(examples / "posts.jsonl")])
    result = runner.invoke(
        main,
        ["--data-dir", data, "ask", "東京の地震について教えて", "--as-of", "2026-11-22T12:00Z"],
    )
    assert result.exit_code == 0, result.output
    assert "[1] @tokyo_news" in result.output
    answer = json.loads(
        runner.invoke(
            main,
            ["--data-dir", data, "ask", "Is the Ginza line running?", "--json",
             "--as-of", "2026-11-22T12:00Z"],
        ).stdout
    )  # fmt: skip
    assert answer["found"] is False and answer["citations"] == []
    bad = runner.invoke(main, ["--data-dir", data, "ask", "  "])
    assert bad.exit_code == 2 and "empty" in bad.output
    llm = runner.invoke(main, ["--data-dir", data, "ask", "hi", "--llm", "ftp://x"])
    assert llm.exit_code == 2 and "--llm" in llm.output


def test_embed_command_fills_the_vector_share(tmp_path: Path):
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path / "data")]
    examples = Path(__file__).parent.parent / "examples"
    runner.invoke(main, [*data, "ingest", str(examples / "posts.jsonl")])
    embedded = runner.invoke(main, [*data, "embed"])
    assert embedded.exit_code == 0 and "100.0% of stored posts have vectors" in embedded.stdout
    stats = json.loads(runner.invoke(main, [*data, "stats", "--json"]).stdout)
    assert stats["embedded_share"] == 1.0
    again = runner.invoke(main, [*data, "embed"])
    assert "embedded 0 posts" in again.stdout  # nothing left to do
