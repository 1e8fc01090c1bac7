"""Answers in processes of their own: a read-only store that follows the writer, and
the answerers of `ima serve` seeing every post committed before a question."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import feed, post
from ima.answer.answerers import Answerers, AnswerFailed
from ima.bench.serve import free_port, wait_until_up
from ima.ingest.changes import Delete
from ima.search import search
from ima.store import Store

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _ids(store: Store, query: str) -> list[str]:
    return sorted(h.post.id for h in search(store, query, as_of=NOW).hits)


@pytest.fixture
def writer(tmp_path):
    store = Store(tmp_path / "data", commit_interval=0.05)
    yield store
    store.close()


def _wait_for_index(store: Store) -> None:
    deadline = time.monotonic() + 10
    while store.lexical.committed_seq < store.log.last_seq:
        assert time.monotonic() < deadline, "the index did not commit"
        time.sleep(0.02)


def test_a_read_only_store_follows_what_the_writer_commits(writer):
    feed(writer, [post(1, "the harbor bridge is closed for repairs")])
    reader = Store(writer.data_dir)
    try:
        assert not reader.writable
        assert _ids(reader, "bridge") == ["test:1"]
        feed(writer, [post(2, "harbor bridge reopened this morning")])
        assert _ids(reader, "bridge") == ["test:1"]  # not looked at the log since
        reader.refresh()
        assert _ids(reader, "bridge") == ["test:1", "test:2"]  # from its fresh segment
        _wait_for_index(writer)
        reader.refresh()  # the writer's index has it now: the reader reloads, drops memory
        assert reader.lexical.committed_seq == writer.log.last_seq
        assert reader.stats().fresh_segments == 0
        assert _ids(reader, "bridge") == ["test:1", "test:2"]
        feed(writer, [Delete("test:1"), post(3, "ferries replace the harbor bridge")])
        reader.refresh()
        assert _ids(reader, "bridge") == ["test:2", "test:3"]
        assert reader.get("test:1") is None
    finally:
        reader.close()


def test_a_refresh_with_nothing_new_changes_nothing(writer):
    feed(writer, [post(1, "quiet day at the observatory")])
    reader = Store(writer.data_dir)
    try:
        before = reader.stats()
        reader.refresh()
        reader.refresh()
        assert reader.stats().fresh_segments == before.fresh_segments
        assert _ids(reader, "observatory") == ["test:1"]
    finally:
        reader.close()


def test_answerers_cite_posts_committed_after_they_started(writer):
    feed(writer, [post(1, "Heavy snow closes the mountain pass", at="2026-11-22T11:00:00Z",
                       author="roads")])  # fmt: skip
    answerers = Answerers(writer.data_dir, 2, vectors=False)
    try:
        first = answerers.answer("Is the mountain pass open?", as_of=NOW, persona="regular")
        assert [c.post.id for c in first.citations] == ["test:1"]
        feed(writer, [post(2, "The mountain pass reopened after the snow plows came through",
                           at="2026-11-22T11:50:00Z", author="county")])  # fmt: skip
        # both processes must see it, whichever takes the question
        for _ in range(4):
            later = answerers.answer("Is the mountain pass open?", as_of=NOW, persona="regular")
            assert "test:2" in [c.post.id for c in later.citations]
            assert later.backend == "extractive" and later.found
        feed(writer, [Delete("test:2")])
        for _ in range(4):
            gone = answerers.answer("Is the mountain pass open?", as_of=NOW, persona="regular")
            assert "test:2" not in [c.post.id for c in gone.citations]
    finally:
        answerers.close()


def test_answerers_need_a_process():
    with pytest.raises(ValueError):
        Answerers(Path("."), 0, vectors=False)


def test_answerers_come_back_after_one_is_killed(writer, caplog):
    feed(writer, [post(1, "Lighthouse lamp replaced on the north cape", author="coast")])
    answerers = Answerers(writer.data_dir, 1, vectors=False)
    try:
        for child in multiprocessing.active_children():
            os.kill(child.pid, signal.SIGKILL)
        answer = answerers.answer("What about the lighthouse lamp?", as_of=NOW, persona="regular")
        assert [c.post.id for c in answer.citations] == ["test:1"]
        assert "an answerer process died" in caplog.text
    finally:
        answerers.close()


def test_an_answer_past_its_deadline_is_stopped_and_the_answerer_goes_on(writer):
    feed(writer, [post(1, "Lighthouse lamp replaced on the north cape", author="coast")])
    hasty = Answerers(writer.data_dir, 1, vectors=False, deadline_s=0.000_001)
    try:
        with pytest.raises(AnswerFailed, match="longer than"):
            hasty.answer("What about the lighthouse lamp?", as_of=NOW, persona="regular")
        with pytest.raises(AnswerFailed):  # the same process takes the next one
            hasty.answer("And the lamp?", as_of=NOW, persona="regular")
    finally:
        hasty.close()


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def _descendants(pid: int) -> set[int]:
    found = _children(pid)
    for child in list(found):
        found |= _descendants(child)
    return found


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_no_helper_process_outlives_the_server(tmp_path, how):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "ima", "--data-dir", str(tmp_path / "data"), "serve",
         "--no-auth", "--no-embed", "--no-default-source", "--workers", "1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", server)
        children = _descendants(server.pid)
        assert len(children) >= 4  # the writer and ingest's worker in it, the answerers
        server.send_signal(how)
        server.wait(20)
        deadline = time.monotonic() + 10
        while any(_alive(child) for child in children):
            assert time.monotonic() < deadline, "a child of the server outlived it"
            time.sleep(0.1)
    finally:
        if server.poll() is None:
            server.kill()
