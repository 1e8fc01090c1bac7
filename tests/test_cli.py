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


def test_llm_settings_come_from_the_environment_and_flags_override_them(
    tmp_path: Path, monkeypatch
):
    """One Settings object: IMA_LLM* and IMA_REDIS_URL are read once; --llm and
    --llm-model replace what the environment said; a bad --llm is a usage error naming
    the option, before any store is opened."""
    from ima.cli.options import with_llm
    from ima.config import Settings

    monkeypatch.setenv("IMA_LLM", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("IMA_LLM_MODEL", "qwen")
    monkeypatch.setenv("IMA_LLM_API_KEY", "sk-secret")
    monkeypatch.setenv("IMA_LLM_TOOLS", "1")
    monkeypatch.setenv("IMA_REDIS_URL", "redis://127.0.0.1:6379/3")
    settings = Settings.load(tmp_path / "data")
    assert (settings.llm.url, settings.llm.model, settings.llm.tools) == (
        "http://127.0.0.1:9/v1", "qwen", True
    )
    assert settings.redis_url == "redis://127.0.0.1:6379/3"
    assert "sk-secret" not in repr(settings)  # keys stay out of logs and tracebacks
    flagged = with_llm(settings, "embedded", None)
    assert (flagged.llm.url, flagged.llm.model, flagged.llm.api_key) == (
        "embedded", "qwen", "sk-secret"
    )
    assert with_llm(settings, None, "llama").llm.url == "http://127.0.0.1:9/v1"

    result = CliRunner().invoke(
        main, ["--data-dir", str(tmp_path / "data"), "ask", "what?", "--llm", "ftp://x"]
    )
    assert result.exit_code == 2
    assert "--llm" in result.output and "a base URL" in result.output
    assert not (tmp_path / "data" / "log.sqlite3").exists()


def test_ask_chat_carries_the_topic_into_a_follow_up(tmp_path: Path):
    """`ima ask --chat`: a follow-up at the prompt keeps the earlier topic, and is cited."""
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    posts = tmp_path / "posts.jsonl"
    posts.write_text("\n".join(json.dumps(record) for record in [
        {"id": "s1", "author": "jr_info", "created_at": (now - timedelta(minutes=30)).isoformat(),
         "text": "Shinkansen trains are delayed in Tokyo after a power failure"},
        {"id": "s2", "author": "nagoya_now",
         "created_at": (now - timedelta(minutes=20)).isoformat(),
         "text": "Nagoya station: Shinkansen services delayed after the Tokyo outage"},
        {"id": "m1", "author": "port_news", "created_at": (now - timedelta(minutes=5)).isoformat(),
         "text": "The Miyajima ferry resumed at 11:30 with a reduced timetable"},
    ]))  # fmt: skip
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path / "data")]
    assert runner.invoke(main, [*data, "ingest", str(posts)]).exit_code == 0
    first = "Are Shinkansen trains delayed in Tokyo?"
    result = runner.invoke(main, [*data, "ask", "--chat", first],
                           input="and what about Nagoya?\nexit\n")  # fmt: skip
    assert result.exit_code == 0, result.output
    follow_up = result.output.split("and what about Nagoya?", 1)[-1]
    assert "@nagoya_now" in follow_up and "@port_news" not in follow_up
    assert runner.invoke(main, [*data, "ask"]).exit_code == 2  # no question, no --chat
