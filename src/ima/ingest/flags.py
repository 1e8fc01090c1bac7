"""Cheap suspicion signals computed once per post at ingest.

Posts are untrusted: a post that tries to steer a model reading it is flagged so
that later stages can fence or drop it; a spam score lets ranking demote floods of
hashtags, links and mentions.
"""

from __future__ import annotations

import re
import string

_INJECTION = re.compile(
    r"ignore (all |any )?(the )?(previous|prior|above|earlier) (instructions|prompts?|messages)"
    r"|disregard (all |the )?(previous|prior|above) "
    r"|you are now |new instructions:|system prompt|</?(system|assistant|instructions?)>"
    r"|\[/?(system|inst)\]|<\|im_(start|end)\|>|cite \[\d+\]"
    r"|(以前|前|上記)の(指示|命令)を(無視|忘れ)|システムプロンプト",
    re.IGNORECASE,
)
_BAIT = re.compile(
    r"\b(free|win|winner|giveaway|airdrop|crypto|earn \$?\d+|click here|limited offer|"
    r"bonus|promo code|dm me)\b|無料|稼げる|プレゼント|当選|副業",
    re.IGNORECASE,
)
_UPPER = string.ascii_uppercase.encode()
_LOWER = string.ascii_lowercase.encode()


# Every injection pattern contains one of these; most posts contain none, cheaply.
_TRIGGER = re.compile(
    r"ignore|disregard|you are now|instruction|system|prompt|assistant|inst\]|<\|im_|cite \["
    r"|指示|命令|システム"
)


#: a post scoring this or more is left out of answers and trends (`spam_score`)
SPAM_LIMIT = 0.6


def injection_suspect(text: str) -> bool:
    return _TRIGGER.search(text.lower()) is not None and _INJECTION.search(text) is not None


def _ascii_letters(text: str) -> tuple[int, int]:
    """(upper-case, all) ASCII letters in `text`, counted by deleting them from its ASCII
    bytes: a regex's `findall` built a list of every letter, 1.2 µs of a post's 1.6."""
    ascii_bytes = text.encode("ascii", "ignore")
    upper = len(ascii_bytes) - len(ascii_bytes.translate(None, _UPPER))
    return upper, upper + len(ascii_bytes) - len(ascii_bytes.translate(None, _LOWER))


def spam_score(text: str, hashtags: int, mentions: int, links: int) -> float:
    """0 (ordinary) to 1 (almost surely spam), from shape alone."""
    score = 0.15 * max(0, hashtags - 3) + 0.15 * max(0, mentions - 3) + 0.2 * max(0, links - 1)
    if links and _BAIT.search(text):  # money or prizes, and a link to collect them
        score += 0.35
    if len(text) >= 20:
        upper, letters = _ascii_letters(text)
        if upper >= 20 and upper > 0.8 * letters:
            score += 0.3
    return min(1.0, round(score, 3))
