"""Trust in a worker: earned by checks passed, lost by checks failed.

Workers are untrusted by default. A new worker's every embedding batch is re-computed
in part locally; once it has passed `TRUSTED_AFTER` checks, one batch in `SAMPLE_EVERY`.
Each failed check (a wrong vector, a citation that does not hold, a malformed reply)
halves its score; after `QUARANTINE_AFTER` failures it gets no more work, and stays
reported in `ima fleet list` until the operator removes it. Reputations are kept in a
file (`save`, `load`): a restart of `ima serve` neither forgives a liar nor makes a
trusted worker start over.
"""

from __future__ import annotations

import json
import logging
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)

TRUSTED_AFTER = 20
SAMPLE_EVERY = 10
QUARANTINE_AFTER = 3


@dataclass(slots=True)
class Reputation:
    passed: int = 0
    failed: int = 0
    score: float = 0.5  # from 0 (a liar) to 1 (long trusted)
    quarantined: bool = False
    reason: str = ""

    def should_check(self, rng: random.Random) -> bool:
        """Whether to check this result: always while new, then a sample."""
        return self.passed < TRUSTED_AFTER or rng.random() < 1 / SAMPLE_EVERY

    def passed_check(self) -> None:
        self.passed += 1
        self.score = min(1.0, self.score + (1 - self.score) / TRUSTED_AFTER)

    def failed_check(self, reason: str) -> bool:
        """Count a failure; True when this one quarantines the worker."""
        self.failed += 1
        self.score /= 2
        self.reason = reason[:200]
        if self.failed >= QUARANTINE_AFTER and not self.quarantined:
            self.quarantined = True
            return True
        return False


#: a worker's name → its reputation, and when it was last seen (Unix time)
Known = dict[str, tuple[Reputation, float]]


def save(path: Path, known: Known) -> None:
    """Write `known` to `path`, whole or not at all."""
    body = {name: {**asdict(rep), "last_seen": seen} for name, (rep, seen) in known.items()}
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(body))
    os.replace(partial, path)


def load(path: Path, since: float, most: int) -> Known:
    """The reputations `save` wrote that are worth keeping: the quarantined, and those of
    workers seen since `since`, at most `most` (the most recently seen). A missing file
    is a fleet without a past; an unreadable one is said so, and taken as one."""
    try:
        body = json.loads(path.read_text())
        known = {
            str(name): (Reputation(int(e["passed"]), int(e["failed"]), float(e["score"]),
                                   bool(e["quarantined"]), str(e["reason"])[:200]),
                        float(e["last_seen"]))
            for name, e in dict(body).items()
        }  # fmt: skip
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        log.warning("fleet: reputations in %s unreadable (%s): starting afresh", path, exc)
        return {}
    kept = [(n, e) for n, e in known.items() if e[0].quarantined or e[1] >= since]
    kept.sort(key=lambda item: item[1][1], reverse=True)
    return dict(kept[:most])
