"""`ima eval --real FILE`: answers over real posts and questions a person wrote.

The file is JSONL: `{"kind": "post", …}` records (any record `ima ingest` takes,
with their own dates) and `{"kind": "question", "question", "as_of", "answers",
"support"}` records, where `answers` are the accepted answer strings and `support`
the ids of the posts that hold the answer (both empty: nothing is known, and the
right answer is "nothing found"). `ima.bench.tweetqa` builds one from TweetQA.

In one run, each question is answered by `ima.answer.ask` and searched by the
baseline, plain BM25 with a recency boost (`ima.search` over the question's words,
top 5, no time window), and both are scored for evidence recall (a supporting post
cited, or in the top 5), answer named (an accepted string in the answer text, or in
the top hit), citation validity, future leaks, refusals where nothing is known, and
latency.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ima.answer import verify
from ima.answer.ask import ask
from ima.answer.model import Answer
from ima.ingest.normalize import parse_instant
from ima.post import Post, iso
from ima.search import PostStore, search
from ima.text.analysis import prepare

BASELINE_K = 5
_WORD = re.compile(r"[^\W_]+")
#: the baseline's stop words: a short standard list, nothing tuned to questions
_BASELINE_STOP = frozenset(
    """a an and are as at be by for from has have he her his how i in is it its of on or
    that the their they this to was were what when where which who whom why will with you""".split()
)


@dataclass(frozen=True, slots=True)
class RealCase:
    question: str
    as_of: datetime
    answers: tuple[str, ...]  # empty: nothing is known
    support: frozenset[str]  # native post ids (without the source prefix)


def fold(text: str) -> str:
    """Lowercase words joined by one space, so "Mr. Alcohol" names "mr alcohol"."""
    return " ".join(_WORD.findall(text.lower()))


_CJK = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


def named(answers: Iterable[str], text: str) -> bool:
    """An accepted answer is in `text`: as whole words, or for Japanese (written without
    spaces) as a run of characters, so "奈良" names 「…奈良を代表する…」."""
    folded = f" {fold(text)} "
    solid = folded.replace(" ", "")
    return any(
        (fold(a).replace(" ", "") in solid) if _CJK.search(a) else f" {fold(a)} " in folded
        for a in answers
        if fold(a)
    )


def load(path: Path) -> tuple[list[dict[str, Any]], list[RealCase]]:
    """Posts and cases of a real-text file; raises ValueError naming a bad line."""
    posts: list[dict[str, Any]] = []
    cases: list[RealCase] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                kind = record.pop("kind")
                if kind == "post":
                    posts.append(record)
                elif kind == "question":
                    cases.append(
                        RealCase(
                            record["question"],
                            parse_instant(record["as_of"]),
                            tuple(record.get("answers") or ()),
                            frozenset(record.get("support") or ()),
                        )
                    )
                else:
                    raise ValueError(f"unknown kind {kind!r}")
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ValueError(f"{path}:{number}: {exc}") from None
    return posts, cases


def _native(post: Post) -> str:
    return post.id.split(":", 1)[-1]


def baseline_query(question: str) -> str:
    """The question's words less a few stop words, any of them; Japanese is split into
    words as the index splits it (one unsplit run would be searched as one phrase)."""
    words = [w for w in _WORD.findall(prepare(question).lower()) if w not in _BASELINE_STOP]
    return " OR ".join(f'"{w}"' for w in dict.fromkeys(words))


def _percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@dataclass
class _Row:
    case: RealCase
    answer: Answer
    problems: list[str]
    baseline: list[Post]
    baseline_ms: float

    @property
    def cited(self) -> list[Post]:
        return [c.post for c in self.answer.citations]


def _score(store: PostStore, case: RealCase, answer: Answer) -> list[str]:
    cited = [c.post for c in answer.citations]
    problems = verify.problems(answer.text, cited, case.as_of) if answer.found else []
    for c in answer.citations:
        if store.get(c.post.id) is None:  # type: ignore[attr-defined]
            problems.append(f"[{c.number}] {c.post.id} is not in the store")
    return problems


def run(
    store_factory: Callable[[], Any],
    path: Path,
    *,
    persona: str = "regular",
    embedder: Any = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Ingest the file's posts (and embed them, given an embedder), ask and search every
    question, and score both. `store_factory` opens the same store each time."""
    from ima.ingest import Pipeline, ingest
    from ima.vectors.semantic import Vectors

    records, cases = load(path)
    store = store_factory()
    with Pipeline(store) as pipeline:
        ingest(pipeline, records, source="eval", group=500)
    # reopened, the index holds every post (as a running ima's does a second later),
    # so neither side's figures depend on how far its last commit had got
    store.close()
    store = store_factory()
    rows: list[_Row] = []
    try:
        semantic = None
        if embedder is not None:
            vectors = Vectors(store, embedder)
            vectors.backfill(len(records))
            vectors.worker.drain()
            semantic = vectors.semantic
        if progress:
            progress(f"ingested {len(records)} posts; asking {len(cases)} questions")
        for case in cases:
            answer = ask(store, case.question, as_of=case.as_of, persona=persona,
                         semantic=semantic)  # fmt: skip
            started = time.perf_counter()
            query = baseline_query(case.question)
            hits = search(store, query, as_of=case.as_of, k=BASELINE_K).hits if query else []
            took = (time.perf_counter() - started) * 1000
            problems = _score(store, case, answer)
            rows.append(_Row(case, answer, problems, [h.post for h in hits], took))
    finally:
        store.close()
    return report(rows, path, persona, embedder is not None, len(records))


def _share(flags: list[bool]) -> float:
    return sum(flags) / len(flags) if flags else 1.0


def _recalled(posts: Iterable[Post], case: RealCase) -> bool:
    return any(_native(p) in case.support for p in posts)


def report(rows: list[_Row], path: Path, persona: str, vectors: bool, posts: int) -> dict[str, Any]:
    known = [r for r in rows if r.case.answers]
    unknown = [r for r in rows if not r.case.answers]
    ask_ms = [r.answer.timings_ms.get("total", 0.0) for r in rows]
    base_ms = [r.baseline_ms for r in rows]
    return {
        "file": str(path),
        "posts": posts,
        "questions": len(rows),
        "known": len(known),
        "unknown": len(unknown),
        "persona": persona,
        "vectors": vectors,
        "composer": {
            "evidence_recall": _share([_recalled(r.cited, r.case) for r in known]),
            "answer_named": _share([named(r.case.answers, r.answer.text) for r in known]),
            "citation_validity": _share([not r.problems for r in rows if r.answer.citations]),
            "future_leaks": sum(any(p.created_at > r.case.as_of for p in r.cited) for r in rows),
            "nothing_found_when_unknown": _share([not r.answer.found for r in unknown]),
            "p50_ms": _percentile(ask_ms, 0.5),
            "p99_ms": _percentile(ask_ms, 0.99),
        },
        "baseline": {
            "evidence_recall": _share([_recalled(r.baseline, r.case) for r in known]),
            "answer_named": _share(
                [bool(r.baseline) and named(r.case.answers, r.baseline[0].text) for r in known]
            ),
            "future_leaks": sum(any(p.created_at > r.case.as_of for p in r.baseline) for r in rows),
            "nothing_found_when_unknown": _share([not r.baseline for r in unknown]),
            "p50_ms": _percentile(base_ms, 0.5),
            "p99_ms": _percentile(base_ms, 0.99),
        },
        "cases": [
            {
                "question": r.case.question,
                "as_of": iso(r.case.as_of),
                "expected": list(r.case.answers) or "nothing found",
                "support": sorted(r.case.support),
                "answer": r.answer.text,
                "found": r.answer.found,
                "cited": [_native(p) for p in r.cited],
                "evidence_cited": _recalled(r.cited, r.case),
                "answer_named": named(r.case.answers, r.answer.text),
                "baseline_top": [_native(p) for p in r.baseline],
                "citation_problems": r.problems,
            }
            for r in rows
        ],
    }


def table(report: dict[str, Any]) -> list[str]:
    """The report as a side-by-side table, then each known question the composer missed."""
    ours, base = report["composer"], report["baseline"]
    rows = [
        ("", "extractive answer", f"BM25+recency top {BASELINE_K}"),
        ("evidence recall (a supporting post cited)",
         f"{ours['evidence_recall']:.1%}", f"{base['evidence_recall']:.1%}"),
        ("answer named (in the answer / the top hit)",
         f"{ours['answer_named']:.1%}", f"{base['answer_named']:.1%}"),
        ("citation validity", f"{ours['citation_validity']:.1%}", "–"),
        ("future leaks", str(ours["future_leaks"]), str(base["future_leaks"])),
        ("'nothing found' when nothing is known",
         f"{ours['nothing_found_when_unknown']:.1%}", f"{base['nothing_found_when_unknown']:.1%}"),
        ("latency p50 / p99", f"{ours['p50_ms']:.0f} / {ours['p99_ms']:.0f} ms",
         f"{base['p50_ms']:.0f} / {base['p99_ms']:.0f} ms"),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    lines = [f"{report['questions']} questions ({report['known']} known, {report['unknown']} "
             f"unknown) over {report['posts']} posts"]  # fmt: skip
    lines += [f"{a:<{width}}  {b:<18}  {c}" for a, b, c in rows]
    for case in report["cases"]:
        if case["citation_problems"] or (case["support"] and not case["answer_named"]):
            lines.append(f"\n✗ {case['question']} @ {case['as_of']} "
                         f"(expected {case['expected']})\n{case['answer']}")  # fmt: skip
    return lines


def fun_sample(path: Path, store_factory: Callable[[], Any], count: int) -> list[dict[str, Any]]:
    """The fun voice's answers to `count` known questions of a real-text file, spread
    evenly over it, for a person to label: each with the question's id (a hash of its
    text), the quip, the topic and whether the voice turned sober, and the question and
    its first cited post, to read while labelling (not kept in the labels file)."""
    from ima import quips
    from ima.ingest import Pipeline, ingest
    from ima.text import mood

    records, cases = load(path)
    known = [c for c in cases if c.answers]
    step = max(1, len(known) // max(1, count))
    store = store_factory()
    with Pipeline(store) as pipeline:
        ingest(pipeline, records, source="eval", group=500)
    store.close()
    store = store_factory()
    out = []
    try:
        for case in known[::step][:count]:
            answer = ask(store, case.question, as_of=case.as_of, persona="fun")
            quip = answer.text.splitlines()[0] if answer.found else ""
            texts = [c.post.text for c in answer.citations]
            out.append({
                "id": hashlib.sha256(case.question.encode()).hexdigest()[:12],
                "quip": quip,
                "topic": mood.topic_of(texts) if texts else "",
                "sober": quip in quips.SOBER.values(),
                "question": case.question,
                "post": texts[0][:200] if texts else "",
            })  # fmt: skip
    finally:
        store.close()
    return out


def main(argv: list[str]) -> int:
    """`python -m ima.bench.realtext fun FILE [COUNT]`: print a fun-voice sample as JSONL."""
    import tempfile

    from ima.store import Store

    if len(argv) not in (2, 3) or argv[0] != "fun":
        print("usage: python -m ima.bench.realtext fun FILE [COUNT]")
        return 2
    with tempfile.TemporaryDirectory(prefix="ima-fun-") as tmp:
        rows = fun_sample(Path(argv[1]), lambda: Store(Path(tmp) / "data"),
                          int(argv[2]) if len(argv) == 3 else 40)  # fmt: skip
    for row in rows:
        print(json.dumps(row, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
