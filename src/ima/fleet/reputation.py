"""Trust in a worker: earned by checks passed, lost by checks failed.

Workers are untrusted by default. A new worker's every embedding batch is re-computed
in part locally; once it has passed `TRUSTED_AFTER` checks, one batch in `SAMPLE_EVERY`.
Each failed check (a wrong vector, a citation that does not hold, a malformed reply)
halves its score; after `QUARANTINE_AFTER` failures it gets no more work, and stays
reported in `ima fleet list` until the operator removes or restarts it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

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
