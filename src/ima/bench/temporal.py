"""`ima eval`: temporal question answering on a generated stream whose facts change.

Stories (a launch slips, then flies; a score changes; a train line stops and
resumes; in English and Japanese) are told by several independent authors in
varied words, among distractors that share some of their words, copies of stale
posts, spam floods and everyday chatter. Questions are asked at chosen instants:
during each state of each story, before a story begins (nothing may be known yet),
and about things the stream never mentions. Every answer is scored for:

- correctness: the lead statement carries the fact current at the instant
  (or, where nothing is known, the answer says nothing was found);
- newest evidence: a post of the current state is cited;
- citation validity: `ima.answer.verify` finds nothing wrong, and every cited post
  is in the store, created at or before the instant;
- future leaks: no cited post, and no fact of a later state, appears.

The generator is for development; real streams and questions differ, so nothing in
`ima.answer` knows about these stories.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ima.answer import verify
from ima.answer.ask import ask
from ima.answer.model import Answer
from ima.post import iso
from ima.search import PostStore


@dataclass(frozen=True)
class State:
    """One phase of a story: from `offset` on, posts say one of `texts`."""

    offset: timedelta
    texts: tuple[str, ...]
    facts: tuple[str, ...]  # any of these in the lead statement shows the state is known


@dataclass(frozen=True)
class Story:
    lang: str
    questions: tuple[str, ...]
    states: tuple[State, ...]


def _m(minutes: float) -> timedelta:
    return timedelta(minutes=minutes)


STORIES: tuple[Story, ...] = (
    Story(
        "en",
        ("What's the latest on the Artemis III launch?", "Has Artemis III launched yet?"),
        (
            State(
                _m(0),
                (
                    "Artemis III launch is scheduled for 14:00 UTC today, weather looks fine",
                    "NASA says the Artemis III launch is on track for 14:00 UTC",
                    "Counting down to the Artemis III launch at 14:00 UTC!",
                ),
                ("14:00",),
            ),
            State(
                _m(50),
                (
                    "Artemis III launch slipped to 16:30 UTC because of high winds",
                    "High winds: NASA moves the Artemis III launch to 16:30 UTC",
                    "Artemis III is delayed, new launch time 16:30 UTC",
                ),
                ("16:30",),
            ),
            State(
                _m(170),
                (
                    "Artemis III lifted off at 16:32 UTC, the launch was a success",
                    "Liftoff! Artemis III is on its way after launching at 16:32 UTC",
                    "Artemis III has launched successfully at 16:32 UTC",
                ),
                ("16:32", "lifted off", "Liftoff", "launched"),
            ),
        ),
    ),
    Story(
        "en",
        ("What's the score in the Tigers Hawks game?", "Who is winning Tigers vs Hawks?"),
        (
            State(
                _m(0),
                (
                    "Tigers lead the Hawks 2-1 at halftime",
                    "Halftime: Tigers 2, Hawks 1",
                    "The Tigers are up 2-1 on the Hawks at the break",
                ),
                ("2-1", "2, Hawks 1"),
            ),
            State(
                _m(45),
                (
                    "Hawks equalize! Tigers 2-2 Hawks",
                    "It's 2-2 now, the Hawks came back against the Tigers",
                    "Hawks level it at 2-2 with the Tigers",
                ),
                ("2-2",),
            ),
            State(
                _m(100),
                (
                    "Final: the Tigers beat the Hawks 3-2",
                    "Full time, Tigers win 3-2 over the Hawks",
                    "Tigers 3-2 Hawks, that's the final score",
                ),
                ("3-2",),
            ),
        ),
    ),
    Story(
        "en",
        ("Is the Northern Line running?", "What's going on with the Northern Line?"),
        (
            State(
                _m(0),
                (
                    "Northern Line suspended between Camden and Euston due to a signal failure",
                    "No Northern Line trains between Camden and Euston, signal failure",
                    "Signal failure: the Northern Line is suspended from Camden to Euston",
                ),
                ("suspended", "No Northern Line trains"),
            ),
            State(
                _m(70),
                (
                    "Northern Line service has resumed between Camden and Euston",
                    "Good news, Northern Line trains are running again",
                    "The Northern Line is back in service after the signal repair",
                ),
                ("resumed", "running again", "back in service"),
            ),
        ),
    ),
    Story(
        "ja",
        ("山手線は今動いていますか？", "山手線の最新の運行状況は？"),
        (
            State(
                _m(0),
                (
                    "山手線は信号故障のため全線で運転を見合わせています",
                    "信号故障で山手線が運転見合わせ中。駅が混雑しています",
                    "山手線、全線運転見合わせ。信号故障とのこと",
                ),
                ("見合わせ",),
            ),
            State(
                _m(60),
                (
                    "山手線は運転を再開しました",
                    "山手線、運転再開。まだ少し遅れがあります",
                    "山手線が動き出しました。運転再開です",
                ),
                ("再開", "動き出し"),
            ),
        ),
    ),
    Story(
        "ja",
        ("ジャイアンツと阪神の試合はどうなっていますか？", "ジャイアンツ対阪神の最新スコアは？"),
        (
            State(
                _m(0),
                (
                    "ジャイアンツが阪神に3対1でリードしています",
                    "7回表、ジャイアンツ3対1阪神",
                    "ジャイアンツ、阪神相手に3対1でリード中",
                ),
                ("3対1",),
            ),
            State(
                _m(60),
                (
                    "試合終了、阪神がジャイアンツに4対3で逆転勝ち",
                    "阪神が逆転勝利！ジャイアンツに4対3",
                    "ジャイアンツ3対4阪神で試合終了、阪神の逆転勝ち",
                ),
                ("4対3", "3対4", "逆転"),
            ),
        ),
    ),
    Story(
        "ja",
        ("東海道新幹線は遅れていますか？", "東海道新幹線の今の状況を教えて"),
        (
            State(
                _m(0),
                (
                    "東海道新幹線は大雨の影響で最大30分の遅れが出ています",
                    "大雨で東海道新幹線が遅延、最大30分",
                    "東海道新幹線、大雨のため30分ほど遅れています",
                ),
                ("30分",),
            ),
            State(
                _m(80),
                (
                    "東海道新幹線はほぼ平常通りの運転に戻りました",
                    "東海道新幹線の遅れは解消、平常運転です",
                    "東海道新幹線、平常通りに戻ったみたい",
                ),
                ("平常",),
            ),
        ),
    ),
)

DISTRACTORS = (
    "Our app launch is next week, sign up for the beta",
    "The Central Line is running normally this morning",
    "Tigers at the zoo were very playful today",
    "Watching the Hawks practice, looks like a good team this year",
    "Northern lights visible tonight in Scotland",
    "中央線は平常通り運転しています",
    "阪神百貨店のセールが始まりました",
    "新幹線で東京から大阪へ出張中",
    "Launch party for my new book tonight at 19:00",
    "The score for the new film is beautiful",
)
CHATTER = (
    "Coffee first, then emails",
    "What a lovely sunset over the river",
    "Anyone else watching the cooking show tonight?",
    "今日のランチはラーメンでした",
    "週末は雨らしい",
    "Just finished a 10k run, feeling great",
    "猫がかわいすぎる",
    "Reading a good book about the history of maps",
)
SPAM = (
    "WIN FREE CRYPTO NOW!!! Artemis III launch bonus https://spam.example/a #crypto #free "
    "#giveaway #win #airdrop",
    "Northern Line delays? Earn $500 a day from home https://spam.example/b #money #cash "
    "#rich #wfh #free",
)
UNKNOWN = (
    ("What's the latest on the Mars rover?", "en"),
    ("Is the Ginza line running?", "en"),
    ("What happened at the Olympics opening ceremony?", "en"),
    ("北海道で雪は降っていますか？", "ja"),
    ("京都の紅葉の状況は？", "ja"),
)


@dataclass
class Case:
    question: str
    as_of: datetime
    facts: tuple[str, ...]  # empty: nothing is known
    future_facts: tuple[str, ...]
    current_ids: frozenset[str] = frozenset()


@dataclass
class Stream:
    records: list[dict[str, Any]] = field(default_factory=list)
    cases: list[Case] = field(default_factory=list)


def generate(seed: int = 7, start: datetime | None = None) -> Stream:
    rng = random.Random(seed)
    start = start or datetime(2026, 11, 20, 6, 0, tzinfo=UTC)
    stream = Stream()
    counter = [0]

    def emit(text: str, at: datetime, author: str, **extra: Any) -> str:
        counter[0] += 1
        post_id = f"e{counter[0]}"
        stream.records.append(
            {"id": post_id, "text": text, "created_at": iso(at), "author": author, **extra}
        )
        return post_id

    span = timedelta(hours=14)
    for _ in range(400):  # chatter and distractors all day
        at = start + timedelta(seconds=rng.uniform(0, span.total_seconds()))
        pool = CHATTER if rng.random() < 0.6 else DISTRACTORS
        emit(rng.choice(pool), at, f"user{rng.randrange(300)}", likes=rng.randrange(20))
    for index, story in enumerate(STORIES):
        begin = start + timedelta(hours=1 + 1.7 * index)
        for number, state in enumerate(story.states):
            state_start = begin + state.offset
            following = story.states[number + 1].offset if number + 1 < len(story.states) else None
            end = begin + following if following else state_start + _m(90)
            ids = []
            for k, text in enumerate(state.texts):
                at = state_start + _m(rng.uniform(0, 8))
                author = f"{'witness' if k else 'reporter'}{index}_{number}_{k}"
                ids.append(emit(text, at, author, likes=rng.randrange(5, 200)))
            # a stale copy of the previous state, reposted during this one
            if number:
                old = story.states[number - 1].texts[0]
                emit(old, state_start + _m(12), f"copier{index}_{number}", likes=1)
            spam = SPAM[index % len(SPAM)]
            for s in range(3):
                emit(spam + f" {s}", state_start + _m(3 + s), f"spammer{index}")
            later = tuple(f for st in story.states[number + 1 :] for f in st.facts)
            for question in story.questions:
                as_of = state_start + _m(rng.uniform(15, 25))
                if as_of >= end:
                    as_of = state_start + (end - state_start) * 0.8
                stream.cases.append(Case(question, as_of, state.facts, later, frozenset(ids)))
        # before the story begins nothing is known, and nothing of it may leak
        all_facts = tuple(f for st in story.states for f in st.facts)
        stream.cases.append(Case(story.questions[0], begin - _m(30), (), all_facts))
    for question, _lang in UNKNOWN:
        stream.cases.append(Case(question, start + span - _m(10), (), ()))
    stream.records.sort(key=lambda r: r["created_at"])
    return stream


@dataclass
class Score:
    case: Case
    answer: Answer
    correct: bool
    newest_cited: bool | None  # None where nothing is known
    citation_problems: list[str]
    future_leak: bool


def score(store: PostStore, case: Case, answer: Answer) -> Score:
    cited = [c.post for c in answer.citations]
    problems = verify.problems(answer.text, cited, case.as_of) if answer.found else []
    for c in answer.citations:
        stored = store.get(c.post.id) if hasattr(store, "get") else None
        if stored is None:
            problems.append(f"[{c.number}] {c.post.id} is not in the store")
    lead = answer.citations[0].snippet if answer.citations else ""
    leak = any(c.post.created_at > case.as_of for c in answer.citations) or any(
        fact in answer.text for fact in case.future_facts if not any(f in fact for f in case.facts)
    )
    if case.facts:
        correct = answer.found and any(f in lead for f in case.facts)
        newest = any(c.post.id.split(":", 1)[-1] in case.current_ids for c in answer.citations)
    else:
        correct = not answer.found
        newest = None
    return Score(case, answer, correct, newest, problems, leak)


def run(
    store_factory: Callable[[], Any],
    *,
    seed: int = 7,
    persona: str = "regular",
    backend: Any = None,
    embedder: Any = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Generate, ingest (and embed, given an embedder), ask every question, and score."""
    from ima.ingest import Pipeline, ingest
    from ima.vectors.semantic import Vectors

    stream = generate(seed)
    store = store_factory()
    try:
        with Pipeline(store) as pipeline:
            ingest(pipeline, stream.records, source="eval")
        semantic = None
        if embedder is not None:
            vectors = Vectors(store, embedder)
            vectors.backfill(len(stream.records))
            vectors.worker.drain()
            semantic = vectors.semantic
        if progress:
            progress(f"ingested {len(stream.records)} posts; asking {len(stream.cases)} questions")
        scores = []
        for case in stream.cases:
            answer = ask(
                store,
                case.question,
                as_of=case.as_of,
                persona=persona,
                backend=backend,
                semantic=semantic,
            )
            scores.append(score(store, case, answer))
    finally:
        store.close()
    known = [s for s in scores if s.case.facts]
    unknown = [s for s in scores if not s.case.facts]
    cited = [s for s in scores if s.answer.citations]
    return {
        "seed": seed,
        "persona": persona,
        "vectors": embedder is not None,
        "posts": len(stream.records),
        "questions": len(scores),
        "accuracy": sum(s.correct for s in known) / len(known),
        "newest_evidence": sum(bool(s.newest_cited) for s in known) / len(known),
        "nothing_found_when_unknown": sum(s.correct for s in unknown) / len(unknown),
        "citation_validity": sum(not s.citation_problems for s in cited) / max(1, len(cited)),
        "future_leaks": sum(s.future_leak for s in scores),
        "llm_answers_verified": sum(s.answer.backend != "extractive" for s in scores),
        "llm_answers_replaced": sum(bool(s.answer.fallback_reason) for s in scores),
        "cases": [
            {
                "question": s.case.question,
                "as_of": iso(s.case.as_of),
                "expected": list(s.case.facts) or "nothing found",
                "correct": s.correct,
                "newest_cited": s.newest_cited,
                "future_leak": s.future_leak,
                "citation_problems": s.citation_problems,
                "answer": s.answer.text,
                "backend": s.answer.backend,
            }
            for s in scores
        ],
    }
