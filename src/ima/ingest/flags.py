"""Cheap suspicion signals computed once per post at ingest.

Posts are untrusted: a post that tries to steer a model reading it is flagged so
that later stages can fence or drop it; a spam score lets ranking demote floods of
hashtags, links and mentions.
"""

from __future__ import annotations

import re

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
_ASCII_LETTER = re.compile(r"[A-Za-z]")
_ASCII_UPPER = re.compile(r"[A-Z]")


# Every injection pattern contains one of these; most posts contain none, cheaply.
_TRIGGER = re.compile(
    r"ignore|disregard|you are now|instruction|system|prompt|assistant|inst\]|<\|im_|cite \["
    r"|指示|命令|システム"
)


#: a post scoring this or more is left out of answers and trends (`spam_score`)
SPAM_LIMIT = 0.6


def injection_suspect(text: str) -> bool:
    return _TRIGGER.search(text.lower()) is not None and _INJECTION.search(text) is not None


def spam_score(text: str, hashtags: int, mentions: int, links: int) -> float:
    """0 (ordinary) to 1 (almost surely spam), from shape alone."""
    score = 0.15 * max(0, hashtags - 3) + 0.15 * max(0, mentions - 3) + 0.2 * max(0, links - 1)
    if links and _BAIT.search(text):  # money or prizes, and a link to collect them
        score += 0.35
    if len(text) >= 20:
        upper = len(_ASCII_UPPER.findall(text))
        if upper >= 20 and upper > 0.8 * len(_ASCII_LETTER.findall(text)):
            score += 0.3
    return min(1.0, round(score, 3))
