"""Exact and near-duplicate detection, so copy-paste floods collapse onto one original.

Two posts are copies when their words match exactly (case, punctuation, emoji,
links and spacing are already gone), or when their sets of word 3-shingles overlap
with Jaccard similarity ≥ `min_similarity`; candidates come from MinHash banding
(LSH) and are then checked exactly. Posts whose numbers differ are never copies
("score 2-1" vs "score 3-1" is news, not a flood), and texts shorter than
`MIN_TERMS` are left alone (a thousand people saying "good morning" are not a flood).
Memory is bounded: eight generations of at most `capacity / 8` originals each (and,
to look a batch up at once, their keys sorted in arrays: 10 MB at the default capacity).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Sequence
from itertools import islice
from typing import NamedTuple

import numpy as np

from ima.ingest import _fingerprints  # C: the per-word work (_fingerprints.c says why)

MIN_TERMS = 6
_HASHES, _BANDS = 24, 6
_ROWS = _HASHES // _BANDS
_rng = np.random.default_rng(20261122)
_MUL = _rng.integers(1, 2**63, _HASHES, dtype=np.uint64) | np.uint64(1)
_ADD = _rng.integers(1, 2**63, _HASHES, dtype=np.uint64)
_BAND_MIX = _rng.integers(1, 2**63, _ROWS, dtype=np.uint64) | np.uint64(1)
_BAND_SALT = _rng.integers(1, 2**63, _BANDS, dtype=np.uint64)  # band i's values differ from j's
# Odd multipliers mix three term hashes into one shingle hash (wrapping uint64 arithmetic).
_MIX1 = 0x9E3779B97F4A7C15
_MIX2 = 0xC2B2AE3D27D4EB4F
_PARAMETERS = (MIN_TERMS, _MIX1, _MIX2, _MUL.tobytes(), _ADD.tobytes(), _BAND_MIX.tobytes(),
               _BAND_SALT.tobytes())  # fmt: skip
_new = tuple.__new__


class Fingerprint(NamedTuple):
    """A text's duplicate signature (a named tuple: ingest's preparing processes send
    one per post, and the committing process rebuilds it without running `__init__`)."""

    key: int
    numbers: int
    shingles: bytes  # uint64 shingle hashes, in text order
    bands: tuple[int, ...]


def fingerprints(texts: Sequence[str]) -> list[Fingerprint | None]:
    """Fingerprints of prepared texts, None where too short (_fingerprints.c says how:
    the words are the runs of letters and digits of the lowercased text)."""
    return [row if row is None else _new(Fingerprint, row)
            for row in _fingerprints.fingerprints(texts, *_PARAMETERS)]  # fmt: skip


def _jaccard(a: bytes, b: bytes) -> float:
    left = set(np.frombuffer(a, dtype=np.uint64).tolist())
    right = set(np.frombuffer(b, dtype=np.uint64).tolist())
    return len(left & right) / len(left | right)


_Entry = tuple[int, int, bytes, str]
#: a batch with fewer fingerprints than this is looked up post by post, unscreened: the
#: screen's fixed cost (tens of µs) would be more than it saves
SCREEN_MIN = 16


class Screen(NamedTuple):
    """`DedupIndex.screen`'s answer for a batch, which `original_of` reads."""

    upto: int  # the newest table (by number) the screen looked in, and every older one
    suspects: frozenset[int]  # `Fingerprint.key` of each that shares a key with those


class DedupIndex:
    """Recent originals by exact key and by MinHash band; answers "copy of whom?".

    Remembers the last `capacity` originals, at least the last 7/8 of that: the tables
    are eight generations, the oldest dropped whole when a new one starts. Eight small
    tables rather than two large ones, because growing or freeing a table of 350k
    entries held the interpreter lock for 20 to 40 ms, a pause for every request
    of `ima serve`.
    """

    GENERATIONS = 8

    def __init__(self, capacity: int = 100_000, min_similarity: float = 0.8) -> None:
        self.capacity = capacity
        self.min_similarity = min_similarity
        # Exact keys and band values share one int-keyed table (collisions are checked).
        # Entries are plain tuples (key, numbers, shingles, post_id), not Fingerprints:
        # the garbage collector stops tracking tuples of plain values, and dicts of
        # those, instead of rescanning 100k instances; in `ima serve` those scans
        # paused every thread for up to 164 ms.
        self._tables: deque[dict[int, _Entry]] = deque([{}])  # newest first
        self._newest = 0  # the newest table's number; the one i places older is newest - i
        # The keys of every sealed (full) table, sorted, and the newest table they cover:
        # what `screen` looks a batch up in. Built in a thread after each seal.
        self._sealed: tuple[np.ndarray, int] = (np.empty(0, np.uint64), -1)
        self._sorted_keys: dict[int, np.ndarray] = {}  # of each sealed table, by number
        self._building = threading.Lock()

    def screen(self, fps: Sequence[Fingerprint]) -> Screen | None:
        """Which of a batch's fingerprints share a key with a sealed table, all looked up
        at once (None: too few to be worth it, or nothing sealed yet).

        Most posts are no copy, and each had cost seven probes of eight tables, mostly
        waiting on memory: the tables are megabytes. One sorted array is searched for
        the whole batch, and a fingerprint it clears is then looked for only in the
        tables sealed since (README "Performance notes": 5.5–7.4 µs a post one by one,
        3.2–3.3 screened)."""
        keys, upto = self._sealed
        if len(fps) < SCREEN_MIN or not len(keys):
            return None
        wanted = np.array([k for fp in fps for k in (fp.key, *fp.bands)], dtype=np.uint64)
        at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
        shared = (keys[at] == wanted).reshape(len(fps), 1 + _BANDS).any(axis=1)
        return Screen(upto, frozenset(fps[i].key for i in np.flatnonzero(shared).tolist()))

    def original_of(self, fp: Fingerprint, screen: Screen | None = None) -> str | None:
        """The id of the original `fp` copies, if one is remembered; `screen`: its batch's,
        if it was screened."""
        # Most posts share no key with any remembered one: one C-level test a table
        # (`isdisjoint` probes the post's seven keys) settles that, where looking each
        # key up table by table took 56 lookups from Python.
        keys = (fp.key, *fp.bands)
        looked: Iterable[dict[int, _Entry]] = self._tables
        if screen is not None and fp.key not in screen.suspects:  # only those sealed since
            looked = islice(looked, max(0, self._newest - screen.upto))
        tables = [table for table in looked if not table.keys().isdisjoint(keys)]
        if not tables:
            return None

        def find(key: int) -> _Entry | None:  # in the newest table that has it
            for table in tables:
                hit = table.get(key)
                if hit is not None:
                    return hit
            return None

        exact = find(fp.key)
        if exact is not None and exact[0] == fp.key:
            return exact[3]
        for band in fp.bands:
            hit = find(band)
            if hit is None:
                continue
            _key, numbers, shingles, post_id = hit
            if numbers == fp.numbers and (_jaccard(shingles, fp.shingles) >= self.min_similarity):
                return post_id
        return None

    def remember(self, fp: Fingerprint, post_id: str) -> None:
        tables = self._tables
        if len(tables[0]) >= self.capacity // self.GENERATIONS * (1 + _BANDS):
            tables.appendleft({})
            self._newest += 1
            if len(tables) > self.GENERATIONS:
                tables.pop()
            threading.Thread(
                target=self._seal, args=(list(tables)[1:], self._newest - 1),
                name="ima-dedup-seal", daemon=True,
            ).start()  # fmt: skip
        entry = (fp.key, fp.numbers, fp.shingles, post_id)
        current = tables[0]
        current[fp.key] = entry
        for band in fp.bands:
            current[band] = entry

    def _seal(self, sealed: list[dict[int, _Entry]], newest: int) -> None:
        """Make `screen` search the sealed tables (newest first, the first numbered
        `newest`). Off the committing thread: a table's keys are read a slice at a time,
        letting the interpreter lock go between slices, and numpy sorts without it (8 ms
        for 600,000 keys). Threads of two seals may run in either order: each covers
        every table sealed when it started."""
        with self._building:
            if newest <= self._sealed[1]:
                return
            numbers = range(newest, newest - len(sealed), -1)
            for number, table in zip(numbers, sealed, strict=True):
                if number not in self._sorted_keys:
                    keys, slices = iter(table), []
                    while len(part := np.fromiter(islice(keys, 8192), np.uint64)):
                        slices.append(part)
                    self._sorted_keys[number] = np.sort(np.concatenate([part, *slices]))
            for forgotten in [n for n in self._sorted_keys if n not in numbers]:
                del self._sorted_keys[forgotten]
            merged = np.sort(np.concatenate(list(self._sorted_keys.values())), kind="stable")
            self._sealed = (merged, newest)
