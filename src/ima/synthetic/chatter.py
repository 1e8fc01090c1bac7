"""A synthetic social stream for benchmarks: realistic in shape, not in meaning.

Words follow a Zipf law over an English vocabulary (common words, then coined
ones) and a Japanese one (real nouns and verbs joined by particles); about a
third of posts are Japanese. The stream has authors with heavy-tailed follower
counts, reposts of recent posts, copy-paste floods, topic bursts and later records
that update an earlier post's engagement. Deterministic for a given seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

_EN_COMMON = [
    "the",
    "be",
    "to",
    "of",
    "and",
    "a",
    "in",
    "that",
    "have",
    "it",
    "for",
    "not",
    "on",
    "with",
    "he",
    "as",
    "you",
    "do",
    "at",
    "this",
    "but",
    "his",
    "by",
    "from",
    "they",
    "we",
    "say",
    "her",
    "she",
    "or",
    "an",
    "will",
    "my",
    "one",
    "all",
    "would",
    "there",
    "their",
    "what",
    "so",
    "up",
    "out",
    "if",
    "about",
    "who",
    "get",
    "which",
    "go",
    "me",
    "when",
    "make",
    "can",
    "like",
    "time",
    "no",
    "just",
    "him",
    "know",
    "take",
    "people",
    "into",
    "year",
    "your",
    "good",
    "some",
    "could",
    "them",
    "see",
    "other",
    "than",
    "then",
    "now",
    "look",
    "only",
    "come",
    "its",
    "over",
    "think",
    "also",
    "back",
    "after",
    "use",
    "two",
    "how",
    "our",
    "work",
    "first",
    "well",
    "way",
    "even",
    "new",
    "want",
    "because",
    "any",
    "these",
    "give",
    "day",
    "most",
    "us",
    "news",
    "game",
    "team",
    "city",
    "train",
    "launch",
    "rocket",
    "storm",
    "rain",
    "market",
    "price",
    "vote",
    "election",
    "music",
    "movie",
    "school",
    "police",
    "fire",
    "road",
    "traffic",
    "delay",
    "station",
    "update",
    "live",
    "breaking",
    "score",
    "win",
    "lose",
    "match",
    "earthquake",
    "weather",
    "flight",
    "airport",
    "power",
    "outage",
    "phone",
    "app",
    "release",
    "today",
    "tonight",
    "morning",
]
_JA_NOUNS = [
    "地震",
    "新幹線",
    "東京",
    "大阪",
    "京都",
    "天気",
    "台風",
    "電車",
    "駅",
    "会社",
    "学校",
    "政府",
    "選挙",
    "試合",
    "映画",
    "音楽",
    "ニュース",
    "情報",
    "速報",
    "事故",
    "火事",
    "道路",
    "渋滞",
    "空港",
    "飛行機",
    "ロケット",
    "打ち上げ",
    "株価",
    "円安",
    "大雨",
    "停電",
    "避難",
    "警報",
    "首相",
    "発表",
    "今日",
    "明日",
    "週末",
    "ライブ",
    "新曲",
    "ゲーム",
    "優勝",
    "猫",
    "ラーメン",
]
_JA_PARTICLES = ["が", "を", "に", "で", "は", "も", "と", "の", "から", "まで"]
_JA_VERBS = [
    "発生しました",
    "運転見合わせ",
    "再開しました",
    "中止です",
    "延期されました",
    "始まりました",
    "終わりました",
    "発表しました",
    "決まりました",
    "増えています",
    "続いています",
    "すごい",
    "楽しみ",
]


def _coined(rng: random.Random, n: int) -> list[str]:
    syllables = [c + v for c in "bcdfghjklmnprstvz" for v in "aeiou"]
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    return sorted(words)


class Stream:
    """Generates `posts` records spread over the `duration` before `end`."""

    def __init__(
        self,
        posts: int,
        *,
        seed: int = 7,
        end: datetime | None = None,
        duration: timedelta | None = None,
        vocabulary: int = 20_000,
    ) -> None:
        self.posts = posts
        self.rng = random.Random(seed)
        self.np_rng = np.random.default_rng(seed)
        self.end = end or datetime.now(UTC)
        self.duration = duration or timedelta(seconds=max(60, posts / 200))
        self.en_vocab = _EN_COMMON + _coined(self.rng, vocabulary - len(_EN_COMMON))
        self.authors = [f"user{i}" for i in range(max(100, posts // 20))]

    def _zipf_indices(self, n: int, size: int) -> np.ndarray:
        return (self.np_rng.zipf(1.15, n) - 1) % size

    def english(self, topic: str | None) -> str:
        n = self.rng.randint(6, 30)
        words = [self.en_vocab[i] for i in self._zipf_indices(n, len(self.en_vocab))]
        if topic:
            words.insert(self.rng.randrange(len(words)), topic)
        return " ".join(words).capitalize() + self.rng.choice([".", "!", "?", ""])

    def japanese(self, topic: str | None) -> str:
        parts = []
        for _ in range(self.rng.randint(2, 5)):
            noun = _JA_NOUNS[int(self._zipf_indices(1, len(_JA_NOUNS))[0])]
            parts.append(noun + self.rng.choice(_JA_PARTICLES))
        if topic:
            parts.insert(0, topic + "で")
        return "".join(parts) + self.rng.choice(_JA_VERBS) + self.rng.choice(["。", "！", ""])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        rng = self.rng
        start = self.end - self.duration
        step = self.duration / max(1, self.posts)
        recent: list[dict[str, Any]] = []
        burst_topic: str | None = None
        flood_text: str | None = None
        for n in range(self.posts):
            created = start + step * n
            roll = rng.random()
            if n % 5000 == 0:  # a new topic starts bursting, or the burst ends
                burst_topic = rng.choice([None, f"topic{n}", "#breaking", "地震"])
                flood_text = (
                    None if rng.random() < 0.5 else self.english(None) + " http://spam.example/x"
                )
            record: dict[str, Any] = {
                "id": str(n),
                "created_at": created.isoformat().replace("+00:00", "Z"),
                "author": {
                    "handle": rng.choice(self.authors),
                    "followers": int(self.np_rng.pareto(1.2) * 50),
                },
                "source": "synthetic",
            }
            if recent and roll < 0.08:  # repost
                original = rng.choice(recent)
                record.update(text=original["text"], repost_of=original["id"])
            elif recent and roll < 0.12:  # engagement update of an earlier post
                original = dict(rng.choice(recent))
                original["metrics"] = {
                    "likes": rng.randint(1, 5000),
                    "reposts": rng.randint(0, 800),
                }
                yield original
                continue
            elif flood_text and roll < 0.16:  # copy-paste flood
                record["text"] = flood_text + " " + rng.choice(["!!", "", "🔥", "#ad"])
            else:
                topic = burst_topic if rng.random() < 0.2 else None
                japanese = rng.random() < 0.33
                record["text"] = self.japanese(topic) if japanese else self.english(topic)
                record["metrics"] = {"likes": int(self.np_rng.pareto(1.5) * 3)}
            if len(recent) < 1000:
                recent.append(record)
            else:
                recent[rng.randrange(1000)] = record
            yield record
