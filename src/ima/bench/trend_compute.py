"""How long the stories at an instant take to compute from the log alone, at full rate.

The computation (`ima.trends.instant`) reads only the log, so the log is filled in
bulk, straight into its SQLite file through the store's schema (`create_empty_log`):
`--hours` of posts at `--rate` posts/s (by default 1,000/s for 24 h, 86.4 million
posts; with `--hours 48` also the day before, which the computation reads to learn what
is usual), one post every 1/rate s, numbered in time order: every post of those hours
is written, none left out. Filling that many through ingest would take hours here.
Background posts are texts of the synthetic stream (`ima.synthetic.chatter`: Zipf
English, a third Japanese) from a pool of `POOL` per kind, by authors drawn from
`AUTHORS`; planted in the last day are a topic one post in 40 is about in the last
hour, a topic one in 250 is about over the last 12 hours (a hashtag), each post by its
own author, and one account posting one in 100 posts of the last hour. The lexical
index, which the computation asks only for each bursting item's newest and best posts,
holds the planted posts and one background post in 1,000 of the last day (marked as
covering the whole log, so that opening the store does not index the rest).

Then, in a fresh process, with the log file's pages dropped from the OS cache and no
trend history, the store is opened and the stories of all windows at the last instant
are asked for: wall and CPU seconds from opening the store to the answer, and when
the last post was read; posts in the lookback, posts read (a sample past
`ima.trends.instant.MAX_POSTS`), peak RSS, and whether the planted topics were found.

    python -m ima.bench.trend_compute --rate 1000 --hours 24 [--data DIR] [--json]

`--data` keeps the filled store (~210 bytes a post), to measure again without filling it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ima.store import POST_COLUMNS as COLUMNS

POOL = 4096  # texts per kind of post
AUTHORS = 10_000_019  # background authors
CHUNK = 2_000_000  # posts per transaction of the fill
END_US = 1_790_000_000_000_000  # the last post's creation time (2026-09-21)
QUAKE, STRIKE, FLOOD = "quakeville", "#harborstrike", "flooder"
# what each post n is: 1 the last hour's topic, 2 the 12 hours' hashtag, 3 the flood
_KIND = (
    "CASE WHEN n > :quake_from AND h % 40 = 7 THEN 1 "
    "WHEN n > :strike_from AND h % 250 = 11 THEN 2 "
    "WHEN n > :quake_from AND h % 100 = 13 THEN 3 ELSE 0 END"
)
# a hash of n (mod a prime), so that which post is what does not follow any stride
_HASH = "n * 2654435761 % 4294967291"
_SERIES = "WITH RECURSIVE s(n) AS (SELECT :low UNION ALL SELECT n + 1 FROM s WHERE n < :high)"
_FILL = f"""
INSERT INTO posts ({COLUMNS})
{_SERIES}, h(n, h) AS (SELECT n, {_HASH} FROM s),
k(n, h, kind, c) AS (SELECT n, h, {_KIND}, :first_us + (n - 1) * 1000000 / :rate FROM h)
SELECT n, 'b' || n, 'bench',
    CASE k.kind WHEN 0 THEN 'u' || (h % {AUTHORS}) WHEN 3 THEN '{FLOOD}' ELSE 'e' || n END,
    '', NULL, CASE k.kind WHEN 0 THEN '' ELSE p.text END, p.lang, c, c, '', NULL, NULL,
    NULL, p.hashtags, '', '', 0, 0, 0, 0, NULL, 0.0, 0, 0, p.prepared
FROM k JOIN temp.pool p ON p.kind = k.kind
    AND p.k = CASE k.kind WHEN 3 THEN 0 ELSE h / 7 % {POOL} END
"""


def _cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def _pool() -> list[tuple[int, int, str, str, str, str]]:
    """(kind, k, text, lang, hashtags, prepared text) of every pooled post."""
    from ima.synthetic.chatter import Stream
    from ima.text import analysis

    stream = Stream(1, seed=5)
    rows = []
    for kind, topic in enumerate((None, QUAKE.capitalize(), STRIKE, None)):
        for k in range(POOL if kind != 3 else 1):
            japanese = kind == 0 and k % 3 == 0
            text = stream.japanese(None) if japanese else stream.english(topic)
            tags = " ".join(analysis.fold(t) for t in re.findall(r"#(\w+)", text))
            rows.append((kind, k, text, "ja" if japanese else "en", tags, analysis.prepare(text)))
    return rows


def fill(data: Path, rate: int, hours: float, say: Any = print) -> int:
    """Fill the log at `data` in bulk and index its sample; returns the posts written."""
    from ima.store import create_empty_log

    posts = int(rate * hours * 3600)
    data.mkdir(parents=True, exist_ok=True)
    create_empty_log(data / "log.sqlite3")
    conn = sqlite3.connect(data / "log.sqlite3", isolation_level=None)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-1000000")
    conn.execute("CREATE TEMP TABLE pool (kind, k, text, lang, hashtags, prepared, "
                 "PRIMARY KEY (kind, k))")  # fmt: skip
    conn.executemany("INSERT INTO temp.pool VALUES (?, ?, ?, ?, ?, ?)", _pool())
    day = min(posts, rate * 86_400)
    marks = {
        "first_us": END_US - (posts - 1) * 1_000_000 // rate,
        "rate": rate,
        "quake_from": posts - rate * 3600,
        "strike_from": posts - rate * 12 * 3600,
    }
    started = time.perf_counter()
    for low in range(1, posts + 1, CHUNK):
        conn.execute("BEGIN")
        conn.execute(_FILL, {**marks, "low": low, "high": min(posts, low + CHUNK - 1)})
        conn.execute("COMMIT")
        done = min(posts, low + CHUNK - 1)
        say(f"  {done:,} posts logged ({done / (time.perf_counter() - started):,.0f}/s)")
    conn.execute("PRAGMA journal_mode=WAL")
    _index(conn, data, {**marks, "low": posts - day + 1, "high": posts}, posts)
    conn.close()
    return posts


def _index(conn: sqlite3.Connection, data: Path, marks: dict[str, int], last_seq: int) -> None:
    """Index the planted posts and one background post in 1,000 of the last day, and
    mark the index as covering the log up to `last_seq`."""
    from ima.store.lexical import LexicalIndex
    from ima.store.store import _fresh_doc

    wanted = f"{_KIND} IN (1, 2) OR n % 1000 = 0"
    conn.execute(f"CREATE TEMP TABLE wanted AS {_SERIES}, h(n, h) AS "
                 f"(SELECT n, {_HASH} FROM s) SELECT n FROM h WHERE {wanted}", marks)  # fmt: skip
    rows = conn.execute(f"SELECT {COLUMNS} FROM posts WHERE seq IN (SELECT n FROM temp.wanted)")
    index = LexicalIndex(data / "index")
    index.add(_fresh_doc(r[0], r[1:25], r[25]) for r in rows)
    index.commit(last_seq)
    index.close()


def _drop_cached(path: Path) -> None:
    """Drop the file's pages from the OS page cache, so that reading it is cold."""
    for name in (path, Path(f"{path}-wal")):
        if name.exists():
            fd = os.open(name, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def measure(data: Path) -> dict[str, Any]:
    """Compute the stories at the store's newest instant with no history recorded."""
    from ima.store import Store
    from ima.trends.instant import LOOKBACK_US
    from ima.trends.view import FILE, StoryView

    for suffix in ("", "-wal", "-shm"):
        (data / (FILE + suffix)).unlink(missing_ok=True)
    _drop_cached(data / "log.sqlite3")
    read = [0, 0.0]
    cpu, wall = _cpu_s(), time.perf_counter()  # from opening the store

    def progress(n: int) -> None:
        read[:] = [n, time.perf_counter() - wall]

    store = Store(data)
    view = StoryView(store)
    try:
        at_us = view.now()
        stories = view.across(at_us, progress)
        wall, cpu = time.perf_counter() - wall, _cpu_s() - cpu
        lookback = store.count_created(at_us - LOOKBACK_US, at_us)  # after: it warms the cache
    finally:
        view.close()
        store.close()
    items = {item for story in stories for item in story["items"]}
    return {
        "posts_in_lookback": lookback, "posts_read": read[0], "read_s": round(read[1], 2),
        "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "stories": len(stories),
        "planted_found": sorted({QUAKE, STRIKE} & items), "flood_found": FLOOD in items,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=1000, help="posts per second")
    parser.add_argument("--hours", type=float, default=24, help="hours of stream before T")
    parser.add_argument("--data", type=Path, help="keep (or reuse) the filled store here")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    tmp = None if args.data else Path(tempfile.mkdtemp(prefix="ima-bench-"))
    data = args.data or tmp / "data"
    say = (lambda _: None) if args.json else (lambda line: print(line, flush=True))
    try:
        if not (data / "log.sqlite3").exists():
            started = time.perf_counter()
            filled = fill(data, args.rate, args.hours, say)
            say(f"filled {filled:,} posts in {time.perf_counter() - started:.0f} s "
                f"({(data / 'log.sqlite3').stat().st_size / filled:.0f} bytes a post)")  # fmt: skip
            # measured in a fresh process: nothing of the fill in its memory or caches
            child = subprocess.run([sys.executable, "-m", "ima.bench.trend_compute", "--data",
                                    str(data), "--json"], capture_output=True, text=True,
                                   check=True)  # fmt: skip
            figures = json.loads(child.stdout)
        else:
            figures = measure(data)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(figures))
        return
    print(f"stories at T from {figures['posts_in_lookback']:,} posts in the lookback "
          f"({figures['posts_read']:,} read, in {figures['read_s']} s): {figures['wall_s']} s "
          f"({figures['cpu_s']} CPU s), peak RSS {figures['peak_rss_mb']:,} MB; "
          f"{figures['stories']} stories, planted topics found: "
          f"{', '.join(figures['planted_found']) or 'none'}; flood a story: "
          f"{figures['flood_found']}")  # fmt: skip


if __name__ == "__main__":
    main()
