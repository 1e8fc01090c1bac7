"""`ima bench feed` runs its three systems for real (SQLite FTS5, and a real `ima serve`
fed over HTTP and over a real NATS JetStream): every probe post it acknowledged is found
by a search, and each flat-out run took posts. Its figures are benchmarks, not asserted."""

from __future__ import annotations

import pytest

from ima.bench.feed import Batches, run


def test_batches_end_each_with_a_probe_word_no_other_post_holds():
    batches = Batches(2_000, 10, 500)
    assert sum(len(b) for b in batches.batches) == 2_000
    assert all(10 <= len(b) <= 500 for b in batches.batches[:-1])
    for batch, word in zip(batches.batches, batches.words, strict=True):
        assert batch[-1]["text"].endswith(word)
        assert not any(word in r.get("text", "") for r in batch[:-1])
    assert len(set(batches.words)) == len(batches.words)
    other = Batches(2_000, 500, 500, seed=12)
    assert not set(batches.words) & set(other.words)  # nor ids: another set's is an edit
    assert not {r["id"] for b in batches.batches for r in b} & {
        r["id"] for b in other.batches for r in b
    }


def test_every_acknowledged_probe_is_found_on_every_path():
    figures = run(rate=400, seconds=1)
    for name in ("fts5", "http", "nats"):
        system = figures[name]
        assert system["lost"] == 0, (name, system)
        assert system["findable_ms"]["requests"] >= 2, (name, system)
        assert system["flat_out"]["posts_per_s"], (name, system)
    for name in ("http", "nats"):
        assert figures[name]["errors"] == 0 and figures[name]["server_errors"] == 0


def test_only_the_paths_asked_for_are_run():
    figures = run(rate=400, seconds=1, paths=("fts5",))
    assert figures["fts5"]["flat_out"]["posts_per_s"]
    assert "http" not in figures and "nats" not in figures
    with pytest.raises(ValueError, match="kafka"):
        run(paths=("nats", "kafka"))
