"""Build a Japanese real-text set for `ima eval --real` from JaQuAD.

JaQuAD (SkelterLabs, 2022; CC BY-SA 3.0) is paragraphs of Japanese Wikipedia articles
with questions and answers written by people who read each paragraph. Its files are
not part of `ima`: this module turns a copy of its `data/` folder into the JSONL that
`ima.bench.realtext` reads. Wikipedia has no post times, so every paragraph is
posted on one day and every question asked 12 hours later: the set measures
Japanese retrieval, whole sentences and passages of long articles, not time.

- Posts: every paragraph of the dev articles (an article is many paragraphs), each
  article's by an author of its own (one source, as an outlet's articles are).
- Known questions: one per paragraph, the first whose answer is in the paragraph and
  not in the question and that shares two key words with it, one of them in at most
  1% of the paragraphs (as `ima.text.question.understand` reads them, a name of
  several terms one word); 150 of them.
- Unknown questions: train questions (other articles) that no stored paragraph
  shares two key words with.

Run: `python -m ima.bench.jaquad JAQUAD_DATA_DIR OUT.jsonl`.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ima.text import analysis
from ima.text.question import understand

POSTED = "2026-01-01T00:00:00Z"
ASKED = "2026-01-01T12:00:00Z"
KNOWN = 150
UNKNOWN = 50


def _paragraphs(folder: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(folder.glob("*.json")):
        for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
            for paragraph in article["paragraphs"]:
                yield article["title"], paragraph


def _post_id(text: str) -> str:
    return "w" + hashlib.sha256(text.encode()).hexdigest()[:12]


def build(data: Path) -> Iterator[dict[str, Any]]:
    """Posts first, then known and unknown questions, as JSONL records."""
    dev = list(_paragraphs(data / "dev"))
    terms = {p["context"]: set(analysis.terms(p["context"])) for _, p in dev}
    spread = Counter(t for found in terms.values() for t in found)
    rare = len(terms) // 100
    for title, paragraph in dev:
        yield {"kind": "post", "id": _post_id(paragraph["context"]), "text": paragraph["context"],
               "author": _post_id(title), "author_name": title, "created_at": POSTED}  # fmt: skip
    kept = 0
    for _, paragraph in dev:
        context = paragraph["context"]
        for qa in paragraph["qas"]:
            answers = [a["text"] for a in qa["answers"] if a["text"] in context]
            asked = understand(qa["question"])
            shared = asked.terms & terms[context]
            if (
                not answers
                or any(a in qa["question"] for a in answers)
                or asked.key_words(shared) < 2
                or min(spread[t] for t in shared) > rare
            ):
                continue
            yield {"kind": "question", "id": qa["id"], "question": qa["question"],
                   "as_of": ASKED, "answers": answers, "support": [_post_id(context)]}  # fmt: skip
            kept += 1
            break
        if kept >= KNOWN:
            break
    unknown = 0
    for _, paragraph in _paragraphs(data / "train"):
        for qa in paragraph["qas"][:1]:
            asked = understand(qa["question"])
            if asked.key_words(asked.terms) < 2 or any(
                asked.key_words(found) >= 2 for found in terms.values()
            ):
                continue
            yield {"kind": "question", "id": qa["id"], "question": qa["question"],
                   "as_of": ASKED, "answers": [], "support": []}  # fmt: skip
            unknown += 1
        if unknown >= UNKNOWN:
            break


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m ima.bench.jaquad JAQUAD_DATA_DIR OUT.jsonl", file=sys.stderr)
        return 2
    with Path(argv[1]).open("w", encoding="utf-8") as out:
        for record in build(Path(argv[0])):
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
