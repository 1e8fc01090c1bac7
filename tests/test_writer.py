"""The writer process of `ima serve`: it owns the store's writing side, and the process
that started it follows the store, so what the writer acknowledges is searchable there
at once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import post, wait_for
from ima.config import Settings
from ima.search import search
from ima.sources.spec import SourceSpec
from ima.store import Store
from ima.writer import WriterConfig, WriterProcess, WriterUnavailable

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _config(data: Path, **options) -> WriterConfig:
    settings = Settings(data_dir=data, commit_interval=0.05, embed=False)
    return WriterConfig(settings, workers=0, **options)


def _ids(store: Store, query: str) -> list[str]:
    return sorted(h.post.id for h in search(store, query, as_of=NOW).hits)


def test_what_the_writer_acknowledges_is_searchable_here_at_once(tmp_path):
    writer = WriterProcess(_config(tmp_path / "data"))
    try:
        assert not writer.store.writable  # the writer process holds the writing side
        for n in range(1, 6):
            outcomes = asyncio.run(writer.write(
                [post(n, f"tide gauge number{n} reads high at the harbor")], "test"
            ))  # fmt: skip
            assert outcomes == [(f"test:{n}", "new", None)]
            assert _ids(writer.store, f"number{n}") == [f"test:{n}"]  # no wait, no retry
            assert writer.store.last_seq == n  # what live feeds watch for news
        bad = asyncio.run(writer.write([{"id": "x"}, post(9, "second tide reading")], "test"))
        assert [status for _, status, _ in bad] == ["error", "new"]
        assert "missing" in bad[0][2]
    finally:
        writer.close()
    reopened = Store(tmp_path / "data")
    try:
        assert reopened.writable  # the writer let go of the store when it stopped
        assert reopened.counts()["posts"] == 6
    finally:
        reopened.close()


def test_sources_run_in_the_writer_and_report_their_health(tmp_path):
    records = tmp_path / "stream.jsonl"
    records.write_text("".join(
        json.dumps(post(n, f"volcano w{n}a w{n}b w{n}c w{n}d")) + "\n" for n in range(1, 21)
    ))  # fmt: skip
    spec = SourceSpec("file", "archive", str(records))
    writer = WriterProcess(_config(tmp_path / "data", specs=[spec]))
    try:
        wait_for(lambda: writer.store.counts()["posts"] == 20, "the file to be stored")
        # searchable here too, not only stored: this process followed the writer's commits
        wait_for(lambda: all(len(_ids(writer.store, f"w{n}a")) == 1 for n in range(1, 21)),
                 "the file's posts to become searchable")  # fmt: skip
        wait_for(lambda: writer.sources() and writer.sources()[0]["events"] == 20,
                 "the writer to report the source's health")  # fmt: skip
        assert writer.sources()[0]["name"] == "archive"
    finally:
        writer.close()


def test_a_second_writer_on_the_same_store_is_refused_plainly(tmp_path):
    holder = Store(tmp_path / "data")
    try:
        with pytest.raises(WriterUnavailable, match="another ima process is writing"):
            WriterProcess(_config(tmp_path / "data"))
    finally:
        holder.close()


def test_when_the_writer_dies_writes_are_refused_reads_go_on_and_it_comes_back(tmp_path):
    writer = WriterProcess(_config(tmp_path / "data"))
    try:
        asyncio.run(writer.write([post(1, "aurora visible tonight in the north")], "test"))
        first = writer.pid
        os.kill(first, signal.SIGKILL)
        with pytest.raises(WriterUnavailable):
            asyncio.run(writer.write([post(2, "aurora again")], "test"))
        # the write may fail (a broken pipe) before the death is seen
        wait_for(lambda: writer.down() is not None, "the writer's death to be seen")
        assert "exit code -9" in writer.down()  # what /healthz reports meanwhile
        assert _ids(writer.store, "aurora") == ["test:1"]
        wait_for(lambda: writer.down() is None, "the writer to be started again", timeout=30)
        assert writer.pid != first and writer.restarts == 1
        again = asyncio.run(writer.write([post(2, "aurora again")], "test"))
        assert again == [("test:2", "new", None)]
        assert _ids(writer.store, "aurora") == ["test:1", "test:2"]
    finally:
        writer.close()


def test_closing_while_the_writer_restarts_stops_whichever_writer_runs(tmp_path):
    writer = WriterProcess(_config(tmp_path / "data"))
    os.kill(writer.pid, signal.SIGKILL)
    wait_for(lambda: writer.down() is not None, "the writer's death to be seen")
    started = time.monotonic()
    writer.close()  # during the restart's wait, or its start: either is abandoned
    assert time.monotonic() - started < 10
    assert writer.down() == "the writer has stopped"
    reopened = Store(tmp_path / "data")
    try:
        assert reopened.writable  # no writer is left holding the store
    finally:
        reopened.close()
