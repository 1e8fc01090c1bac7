"""Build a real stream of crisis tweets with event labels, for `ima eval trends --real`.

Source: the CrisisNLP "labeled data (CrowdFlower)" collection (Imran, Mitra, Castillo:
"Twitter as a Lifeline: Human-annotated Twitter Corpora for NLP of Crisis-related
Messages", LREC 2016; https://crisisnlp.qcri.org), eleven crises of 2013-2015
(earthquakes in Pakistan, California, Chile, Nepal; floods in India and Pakistan;
hurricane Odile, typhoon Hagupit, cyclone Pam; Ebola and MERS), about 1,300-3,000
labelled tweets each, the Chilean earthquake in Spanish and in English. Its terms
allow research use and ask that the tweet texts not be redistributed: this script is
committed, the texts are not. A public copy of the files lives in the GitHub
repository SusuXu-s-Lab/Hierarchical-Earthquake-Casualty-Information-Retrieval under
`data/CrisisNLP_labeled_data_crowdflower/` (one `*_labeled_data.tsv` per crisis:
tweet_id, tweet_text, label).

The files carry no dates and no authors. A tweet id is a Twitter snowflake, so its
creation time is `(id >> 22) + 1288834974657` ms. Authors are unknown, so each tweet
is its own author: manual retweets ("RT @x: …") are the copies a stream is full of,
and trends must count them once. Tweets labelled not related to the crisis stay in
the stream, unlabelled (`event` null).

    python -m ima.bench.crisis_stream DIR OUT.jsonl
"""

from __future__ import annotations

import csv
import html
import json
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from ima.post import iso

TWITTER_EPOCH_MS = 1288834974657
NOT_ABOUT_IT = "not_related_or_irrelevant"
# per crisis: the names a story about it would carry (places, storm and disease names)
EVENTS: dict[str, tuple[str, ...]] = {
    "2013_Pakistan_eq": ("pakistan", "balochistan", "awaran", "baluchistan"),
    "2014_California_Earthquake": ("california", "napa"),
    "2014_Chile_Earthquake": ("chile", "iquique", "chilean", "arica"),
    "2014_Hurricane_Odile": ("odile", "cabo", "baja", "mexico"),
    "2014_India_floods": ("india", "kashmir", "srinagar", "jammu"),
    "2014_MERS": ("mers", "coronavirus", "saudi"),
    "2014_Pakistan_floods": ("pakistan", "punjab", "kashmir", "jhelum", "chenab"),
    "2014_Philippines_Typhoon_Hagupit": ("hagupit", "ruby", "rubyph", "philippines", "samar"),
    "2014_ebola": ("ebola", "liberia", "sierra", "guinea"),
    "2015_Cyclone_Pam": ("pam", "vanuatu", "cyclonepam"),
    "2015_Nepal_Earthquake": ("nepal", "kathmandu", "everest", "nepalearthquake"),
}
_SPANISH = frozenset("de la que el en los del las por con para una se su al es y".split())


def event_of(path: Path) -> str:
    """The crisis a file is about: its name up to the language or labelling suffix."""
    name = re.sub(r"_(cl|en)?_?(CF_)?labeled_data$", "", path.stem)
    name = re.sub(r"_(en|cl|CF|cf)$", "", name)
    return next(e for e in EVENTS if name.startswith(e))


def created_at(tweet_id: int) -> datetime:
    return datetime.fromtimestamp(((tweet_id >> 22) + TWITTER_EPOCH_MS) / 1000, tz=UTC)


def _spanish(text: str) -> bool:
    words = text.lower().split()
    return sum(w in _SPANISH for w in words) >= max(2, len(words) // 6)


def records(directory: Path) -> Iterator[dict]:
    """Every labelled tweet of the collection's files as a post record, with `event`."""
    for path in sorted(directory.rglob("*_labeled_data.tsv")):  # flat, or as the copy has them
        event = event_of(path)
        with path.open(encoding="utf-8", errors="replace", newline="") as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                tweet_id = int(row["tweet_id"].strip("'\""))
                text = html.unescape(row["tweet_text"])  # the API escaped & < >
                record = {
                    "id": str(tweet_id),
                    "text": text,
                    "author": f"u{tweet_id}",
                    "created_at": iso(created_at(tweet_id)),
                    "event": None if row["label"] == NOT_ABOUT_IT else event,
                }
                if _spanish(text):
                    record["lang"] = "es"
                yield record


def build(directory: Path, out: Path) -> int:
    """Write the stream, in time order; returns the number of posts."""
    rows = sorted(records(directory), key=lambda r: r["created_at"])
    with out.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(rows)


if __name__ == "__main__":
    count = build(Path(sys.argv[1]), Path(sys.argv[2]))
    print(f"{count} posts written to {sys.argv[2]}")
