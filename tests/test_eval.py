"""`ima eval`: the temporal QA harness holds the issue's bars on its generated stream."""

import json
from pathlib import Path

from click.testing import CliRunner

from ima.bench import realtext
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


REAL = [
    {"kind": "post", "id": "p1", "author": "cityhall", "created_at": "2026-03-02T09:00:00Z",
     "text": "The mayor of Springfield, Ana Ruiz, opened the new Elm Street bridge on Monday."},
    {"kind": "post", "id": "p2", "author": "weather_desk", "created_at": "2026-03-02T10:00:00Z",
     "text": "Heavy snow is expected in Springfield tonight. Schools will open late."},
    {"kind": "post", "id": "p3", "author": "later_news", "created_at": "2026-03-09T10:00:00Z",
     "text": "The Elm Street bridge closed again for repairs, said Ana Ruiz."},
    {"kind": "question", "question": "who opened the elm street bridge?",
     "as_of": "2026-03-02T12:00:00Z", "answers": ["Ana Ruiz"], "support": ["p1"]},
    {"kind": "question", "question": "what is expected in springfield tonight?",
     "as_of": "2026-03-02T12:00:00Z", "answers": ["heavy snow"], "support": ["p2"]},
    {"kind": "question", "question": "who won the chess olympiad final?",
     "as_of": "2026-03-02T12:00:00Z", "answers": [], "support": []},
]  # fmt: skip


def test_real_text_mode_scores_the_answers_beside_the_baseline(tmp_path: Path):
    data = tmp_path / "real.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in REAL))
    report = realtext.run(lambda: Store(tmp_path / "data"), data)
    assert (report["known"], report["unknown"]) == (2, 1)
    ours, base = report["composer"], report["baseline"]
    assert ours["evidence_recall"] == 1.0 and ours["answer_named"] == 1.0
    assert ours["citation_validity"] == 1.0 and ours["nothing_found_when_unknown"] == 1.0
    assert ours["future_leaks"] == 0 and base["future_leaks"] == 0  # p3 is after every as_of
    assert base["evidence_recall"] == 1.0
    assert all("p3" not in case["baseline_top"] for case in report["cases"])
    table = "\n".join(realtext.table(report))
    assert "BM25+recency top 5" in table and "evidence recall" in table


def test_real_text_mode_names_a_bad_line(tmp_path: Path):
    data = tmp_path / "real.jsonl"
    data.write_text('{"kind": "post"}\n{"kind": "question", "question": "x"}\n')
    result = CliRunner().invoke(main, ["eval", "--real", str(data), "--no-vectors"])
    assert result.exit_code == 2 and "real.jsonl:2" in result.output


def test_answer_named_compares_words_not_punctuation():
    assert realtext.named(["mr. alcohol"], "with “Mr Alcohol” [1]")
    assert not realtext.named(["ruiz"], "Ana Ruizova [1]")
    assert realtext.named(["「奈良」"], "「8世紀の首都は奈良でした。」[1]")  # no spaces in Japanese
    assert not realtext.named(["京都"], "「8世紀の首都は奈良でした。」[1]")


def test_the_baseline_splits_japanese_into_words():
    assert realtext.baseline_query("奈良の大仏は?") == '"奈良" OR "の" OR "大仏" OR "は"'
    assert realtext.baseline_query("Who is the mayor?") == '"mayor"'
