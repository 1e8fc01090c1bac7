"""The command line, run as a user runs it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ima.cli import main

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.fixture
def run(tmp_path: Path):
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(
            main, ["--data-dir", str(tmp_path / "data"), *args], catch_exceptions=False
        )

    return invoke


def test_ingest_search_stats_reindex(run):
    result = run("ingest", str(EXAMPLES / "posts.jsonl"), str(EXAMPLES / "posts.csv"))
    assert result.exit_code == 0
    assert "13 records" in result.output
    assert "11 new, 1 updated, 1 copied/reposted, 0 rejected" in result.output
    bad = run("ingest", str(EXAMPLES / "bad-records.jsonl"))
    assert bad.exit_code == 1  # some records were rejected
    assert "1 new, 0 updated, 0 copied/reposted, 3 rejected" in bad.output
    assert "rejected invalid_json: 1" in bad.output and "rejected future_timestamp: 1" in bad.output

    found = json.loads(run("search", "地震", "--json").output)
    assert [h["post"]["id"] for h in found["hits"]] == ["example:1", "example:2"]
    assert run("search", "新幹線 -運転見合わせ", "--json").output.count('"id": "example:') == 1

    as_of = json.loads(
        run("search", "artemis launch", "--as-of", "2026-11-22T09:30:00Z", "--json").output
    )
    assert [h["post"]["id"] for h in as_of["hits"]] == ["example:5"]

    text = run("search", "artemis", "--explain").output
    assert "@spacedesk" in text and "1 copy" in text and "relevance=" in text

    stats = json.loads(run("stats", "--json").output)
    assert stats["posts"] == 13 and stats["copies"] == 1 and stats["errors"]["missing_field"] == 1
    assert "reindexed 12 posts" in run("reindex").output
    again = json.loads(run("search", "地震", "--json").output)
    assert [h["post"]["id"] for h in again["hits"]] == ["example:1", "example:2"]


def test_bad_queries_and_options_fail_clearly(run):
    bad = run("search", 'rocket "launch')
    assert bad.exit_code == 2 and "unclosed quote (at column 8)" in bad.output
    assert "Traceback" not in bad.output
    assert run("search", "x", "--as-of", "tomorrow").exit_code == 2
    assert run("search", "x", "--k", "0").exit_code == 2
    assert run("ingest", "/no/such/file.jsonl").exit_code == 2


def test_console_script_is_installed(tmp_path: Path):
    ima = Path(sys.executable).parent / "ima"  # installed beside the interpreter
    assert ima.exists(), "pip install -e . provides the ima command"
    out = subprocess.run(
        [ima, "--data-dir", str(tmp_path), "stats", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout)["posts"] == 0


def test_bench_ingest_reports_every_figure(tmp_path: Path):
    result = CliRunner().invoke(
        main,
        [
            "bench",
            "ingest",
            "--posts",
            "3000",
            "--fresh-posts",
            "400",
            "--rate",
            "2000",
            "--queries",
            "20",
            "--workers",
            "0",
            "--json",
        ],
        catch_exceptions=False,
    )
    figures = json.loads(result.output[result.output.index("{") :])
    assert figures["posts"] == 3000
    assert figures["sustained_posts_per_s"] > 0 and figures["raw_tantivy_posts_per_s"] > 0
    assert figures["ingest"]["received"] == 3000
    assert figures["freshness"]["samples"] == 40
    assert figures["search"]["queries"] == 20
    assert figures["peak_rss_mb"] > 0


def test_settings_from_the_environment_are_checked(run, monkeypatch):
    monkeypatch.setenv("IMA_BATCH_SIZE", "0")
    result = run("stats")
    assert result.exit_code != 0 and "IMA_BATCH_SIZE must be between 1 and 100000" in result.output
    monkeypatch.setenv("IMA_BATCH_SIZE", "lots")
    assert "must be a number" in run("stats").output


def test_source_name_is_checked_before_reading(run):
    result = run("ingest", "--source", "Bad Name", str(EXAMPLES / "posts.csv"))
    assert result.exit_code == 2 and "short lowercase name" in result.output
