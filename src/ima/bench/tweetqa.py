"""Build the real-text development set for `ima eval --real` from TweetQA.

TweetQA (Xiong et al., ACL 2019; CC BY-SA 4.0) is tweets that news articles
embedded, with questions and answers written by crowd workers who read each tweet.
Its files are not part of `ima`: this module turns a copy of them (the original
`dev.json`, `train.json`, `test.json`) into the JSONL `ima.bench.realtext` reads.

- Posts: every dated tweet of dev and train (train's are the distractors), dated by
  the author's signature at its end ("… (@handle) January 27, 2015", taken as noon
  UTC of that day), with the handle as author.
- Known questions: dev questions asked 12 hours after their tweet, kept when a
  person could search them (they share two content words with the tweet, one of
  them rare in the store) and an accepted answer is in the tweet but not in the
  question. The selection reads only the question, its tweet and its answers.
- Unknown questions: test questions, whose tweets are not in the store, asked on
  their tweet's day, kept when no post of the store up to then shares two of their
  key words (as `ima.text.question.understand` reads them): nothing in the store
  is about them, and the accepted answer is "nothing found".

Run: `python -m ima.bench.tweetqa DIR OUT.jsonl` for the development set, and with
`--held-out` for a second set whose known questions are train's (over the same
posts), kept for checking that what was tuned on dev holds.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ima.text import analysis
from ima.text.question import understand

_SIGNATURE = re.compile(r"\(@(\w{1,50})\)\s*([A-Z][a-z]+ \d{1,2}, \d{4})\s*$")
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    """the a an and or of to in on at for with by from is are was were be been what who whom
    whose which when where why how did does do this that these those it its his her their
    they he she we you i my our your has have had not no as about after before into than
    then there here will would can could should may might also just one two more most""".split()
)
ASKED_AFTER = timedelta(hours=12)
RARE = 50  # a word in at most this many tweets (1% of the store) narrows the search
KNOWN = 200
UNKNOWN = 50


def fold(text: str) -> str:
    """Lowercase words joined by one space: how answers are compared with answer texts."""
    return " ".join(_WORD.findall(text.lower()))


def _dated(tweet: str) -> tuple[str, datetime] | None:
    match = _SIGNATURE.search(tweet)
    if match is None:
        return None
    try:
        day = datetime.strptime(match.group(2), "%B %d, %Y")
    except ValueError:
        return None
    return match.group(1), day.replace(hour=12, tzinfo=UTC)


def _post_id(tweet: str) -> str:
    return "t" + hashlib.sha256(tweet.encode()).hexdigest()[:12]


def _content(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if len(w) > 2 and w not in _STOP}


def _iso(instant: datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")


def build(folder: Path, held_out: bool = False) -> Iterator[dict[str, Any]]:
    """Posts first, then known and unknown questions, as JSONL records; `held_out` asks
    train's questions instead of dev's, and other test questions."""
    dev = json.loads((folder / "dev.json").read_text())
    train = json.loads((folder / "train.json").read_text())
    test = json.loads((folder / "test.json").read_text())
    posts: dict[str, tuple[str, datetime]] = {}
    for row in dev + train:
        dated = _dated(row["Tweet"])
        if dated is not None:
            posts.setdefault(row["Tweet"], dated)
    spread = Counter(w for tweet in posts for w in _content(tweet))
    for tweet, (handle, at) in sorted(posts.items(), key=lambda p: (p[1][1], p[0])):
        yield {"kind": "post", "id": _post_id(tweet), "text": tweet, "author": handle,
               "created_at": _iso(at)}  # fmt: skip
    per_tweet: Counter[str] = Counter()
    kept = 0
    for row in train if held_out else dev:
        tweet, question = row["Tweet"], row["Question"]
        if tweet not in posts or per_tweet[tweet] >= 2 or kept >= KNOWN:
            continue
        shared = _content(question) & _content(tweet)
        answers = [a for a in dict.fromkeys(row["Answer"]) if fold(a)]
        named = [a for a in answers if fold(a) in fold(tweet) and fold(a) not in fold(question)]
        if len(shared) < 2 or min(spread[w] for w in shared) > RARE or not named:
            continue
        per_tweet[tweet] += 1
        kept += 1
        yield {"kind": "question", "id": row["qid"], "question": question,
               "as_of": _iso(posts[tweet][1] + ASKED_AFTER), "answers": named,
               "support": [_post_id(tweet)]}  # fmt: skip
    unknown = 0
    words = [(at, set(analysis.terms(tweet))) for tweet, (_, at) in posts.items()]
    for row in test[len(test) // 2 :] if held_out else test:
        dated = _dated(row["Tweet"])
        asked = understand(row["Question"])
        if dated is None or row["Tweet"] in posts or asked.key_words(asked.terms) < 2:
            continue
        as_of = dated[1] + ASKED_AFTER
        if any(asked.key_words(content) >= 2 for at, content in words if at <= as_of):
            continue
        unknown += 1
        if unknown > UNKNOWN:
            break
        yield {"kind": "question", "id": row["qid"], "question": row["Question"],
               "as_of": _iso(as_of), "answers": [], "support": []}  # fmt: skip


def main(argv: list[str]) -> int:
    held_out = "--held-out" in argv
    paths = [a for a in argv if a != "--held-out"]
    if len(paths) != 2:
        print("usage: python -m ima.bench.tweetqa TWEETQA_DIR OUT.jsonl [--held-out]",
              file=sys.stderr)  # fmt: skip
        return 2
    with Path(paths[1]).open("w", encoding="utf-8") as out:
        for record in build(Path(paths[0]), held_out):
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
