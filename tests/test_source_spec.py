"""Source specs, TOML configs with environment overrides, and `ima stream`/`ima publish`."""

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from ima.cli import main
from ima.sources import spec
from ima.sources.jetstream import Jetstream
from ima.sources.mastodon import Mastodon
from ima.sources.nats import NatsSource
from ima.sources.replay import ReplayFile
from ima.sources.rss import Feed
from ima.sources.xapi import XStream
from test_source_nats import _drop_stream

EXAMPLES = Path(__file__).parent.parent / "examples"


def test_short_specs_build_their_sources():
    env = {"IMA_MASTODON_TOKEN": "m-token", "IMA_X_BEARER_TOKEN": "x-token"}
    built = [
        spec.build(spec.parse(text), env)
        for text in (
            "bluesky",
            "bluesky:ws://127.0.0.1:6008/subscribe",
            "mastodon:https://mastodon.example#hashtag:python",
            "mastodon:wss://mastodon.example#public,hashtag:python",
            "x",
            "rss:https://news.example/feed.xml",
            "nats:nats://127.0.0.1:4222/team.posts",
            f"file:{EXAMPLES / 'posts.jsonl'}",
        )
    ]
    types = [type(s) for s in built]
    assert types == [Jetstream, Jetstream, Mastodon, Mastodon, XStream, Feed, NatsSource,
                     ReplayFile]  # fmt: skip
    assert built[0].url == "wss://jetstream2.us-east.bsky.network/subscribe"
    assert built[2].token == "m-token" and built[2].streams[0].param == "python"
    assert len(built[3].streams) == 2 and built[3].websocket
    assert built[4].token == "x-token"
    assert built[6].subject == "team.posts"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("telegram", "unknown source type 'telegram'"),
        ("mastodon", "needs a url"),
        ("x", "bearer token"),
        ("rss:ftp://example.com/feed", "http:// or https://"),
        ("nats:http://127.0.0.1:4222/x", "nats://HOST:PORT/SUBJECT"),
        ("mastodon:https://m.example#nonsense", "unknown Mastodon stream"),
        ("file:/no/such/file.jsonl", "no such file"),
    ],
)
def test_bad_specs_say_what_is_wrong(text: str, message: str):
    with pytest.raises(spec.SpecError, match=message):
        spec.build(spec.parse(text), {})


def test_toml_config_with_environment_overrides(tmp_path: Path):
    config = tmp_path / "sources.toml"
    config.write_text(
        """
[[sources]]
type = "bluesky"
name = "bsky"
url = "wss://jetstream1.us-west.bsky.network/subscribe"
collections = ["app.bsky.feed.post"]
rewind_s = 3

[[sources]]
type = "rss"
name = "harbour-news"
url = "https://news.example/feed.xml"
interval_s = 60
"""
    )
    declared = spec.load(config)
    env = {
        "IMA_SOURCE_BSKY_URL": "ws://127.0.0.1:6008/subscribe",
        "IMA_SOURCE_BSKY_DIDS": "did:plc:a, did:plc:b",
        "IMA_SOURCE_HARBOUR_NEWS_INTERVAL_S": "120",
    }
    declared = [spec.declare({"type": d.type, "name": d.name, "url": d.url, **d.options}, env)
                for d in declared]  # fmt: skip
    bsky, news = (spec.build(d, env) for d in declared)
    assert bsky.url == "ws://127.0.0.1:6008/subscribe"
    assert bsky.dids == ["did:plc:a", "did:plc:b"] and bsky.collections == ["app.bsky.feed.post"]
    assert news.interval_s == 120
    config.write_text('[[sources]]\ntype = "rss"\nurl = "https://n.example"\ncolour = "red"\n')
    with pytest.raises(spec.SpecError, match="unknown option 'colour'"):
        spec.load(config)
    config.write_text("[[sources]\n")
    with pytest.raises(spec.SpecError, match=r"sources\.toml"):
        spec.load(config)


def test_stream_command_runs_files_and_reports_health(tmp_path: Path):
    runner = CliRunner()
    data = str(tmp_path / "data")
    result = runner.invoke(
        main,
        ["--data-dir", data, "stream", f"file:{EXAMPLES / 'posts.jsonl'}",
         f"file:{EXAMPLES / 'bad-records.jsonl'}", "--quiet", "--workers", "0"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "10 new, 1 updated, 0 deleted, 1 copied/reposted, 3 rejected" in result.output
    stats = json.loads(runner.invoke(main, ["--data-dir", data, "stats", "--json"]).output)
    assert [s["name"] for s in stats["sources"]] == ["file", "file-2"]
    assert stats["sources"][1]["events"] == 4
    bad = runner.invoke(main, ["--data-dir", data, "stream", "carrier-pigeon"])
    assert bad.exit_code == 2 and "unknown source type" in bad.output
    none = runner.invoke(main, ["--data-dir", data, "stream"])
    assert none.exit_code == 2 and "name at least one SOURCE" in none.output


def test_publish_reports_what_was_confirmed():
    subject = f"test.cli.{uuid.uuid4().hex[:8]}"
    runner = CliRunner()
    try:
        published = runner.invoke(
            main, ["publish", str(EXAMPLES / "posts.csv"), "--subject", subject]
        )
        assert published.exit_code == 0, published.output
        assert "published 2 records" in published.output
    finally:
        asyncio.run(_drop_stream(subject))
    unreachable = runner.invoke(
        main, ["publish", str(EXAMPLES / "posts.csv"), "--nats", "nats://127.0.0.1:1"]
    )
    assert unreachable.exit_code == 1 and "cannot reach NATS" in unreachable.output
