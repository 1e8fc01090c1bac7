"""How long an extractive answer takes over a big store: `python -m ima.bench.answers`.

The synthetic stream of `ima bench ingest` (`ima.synthetic.chatter`: Zipfian English and
Japanese, reposts, floods, bursts) is ingested into a temporary store; then topical
questions in both languages ("What's the latest on W1 W2?", "Nの状況は？") and open
ones ("What's happening?") are asked as of the stream's end, and each answer's time
is measured, end to end (`ask`, lexical retrieval, no LLM), beside a baseline in the
same run: plain BM25 with the recency boost over the same store (`ima.search`, the
question's words, top 5, as `ima eval --real` has it), which finds but answers nothing.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ima.answer.ask import ask
from ima.bench.realtext import BASELINE_K, baseline_query
from ima.ingest import Pipeline, ingest
from ima.search import search
from ima.store import Store
from ima.synthetic.chatter import _JA_NOUNS, Stream


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def questions(stream: Stream, count: int, seed: int = 11) -> list[str]:
    """Topical questions in English and Japanese, and an open one every tenth."""
    rng = random.Random(seed)
    words = stream.en_vocab[30:400]
    out = []
    for n in range(count):
        if n % 10 == 9:
            out.append(rng.choice(["What's happening?", "今何が起きてる？"]))
        elif n % 3 == 2:
            out.append(f"{rng.choice(_JA_NOUNS)}の状況は？")
        else:
            out.append(f"What's the latest on {rng.choice(words)} {rng.choice(words)}?")
    return out


def run(posts: int, asked: int, workdir: Path, workers: int = 0) -> dict[str, Any]:
    end = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    stream = Stream(posts, end=end)
    store = Store(workdir / "data")
    started = time.perf_counter()
    with Pipeline(store, workers=workers) as pipeline:
        ingest(pipeline, iter(stream), source="synthetic", group=256)
    ingested_s = time.perf_counter() - started
    timings: dict[str, list[float]] = {"topical": [], "open": []}
    baseline: list[float] = []
    found = 0
    try:
        for question in questions(stream, asked):
            began = time.perf_counter()
            answer = ask(store, question, as_of=end)
            took = (time.perf_counter() - began) * 1000
            kind = "open" if "happening" in question or "何が" in question else "topical"
            timings[kind].append(took)
            found += answer.found
            began = time.perf_counter()
            query = baseline_query(question)
            if query:
                search(store, query, as_of=end, k=BASELINE_K)
            baseline.append((time.perf_counter() - began) * 1000)
        stats = store.counts()
    finally:
        store.close()
    every = timings["topical"] + timings["open"]
    return {
        "posts": posts,
        "stored": stats,
        "ingest_s": round(ingested_s, 1),
        "questions": len(every),
        "found": found,
        "p50_ms": round(_percentile(every, 0.5), 1),
        "p99_ms": round(_percentile(every, 0.99), 1),
        **{
            f"{kind}_p50_ms": round(_percentile(values, 0.5), 1) for kind, values in timings.items()
        },
        "baseline_p50_ms": round(_percentile(baseline, 0.5), 1),
        "baseline_p99_ms": round(_percentile(baseline, 0.99), 1),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m ima.bench.answers", description=__doc__)
    parser.add_argument("--posts", type=int, default=100_000, help="posts in the store")
    parser.add_argument("--questions", type=int, default=200, help="questions asked")
    parser.add_argument("--workers", type=int, default=0, help="ingest worker processes")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ima-bench-answers-") as tmp:
        print(json.dumps(run(args.posts, args.questions, Path(tmp), args.workers), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
