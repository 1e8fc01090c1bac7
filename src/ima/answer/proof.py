"""Proof per sentence of a model's answer: cited and verified, or the model's own.

Each sentence an LLM writes in a conversation is one of two things. Cited: every `[n]`
must hold (`ima.answer.verify`), or the sentence is struck and, when the turn searched,
replaced by the next statement of the extractive answer (the posts' own words, cited).
Uncited: it is labelled as the model's own knowledge, unless it is a claim about now (a
time word, a number, or, in a turn that searched, a key word of the question), which
nothing backs: that is struck too. Every strike says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from ima.answer import verify
from ima.answer.model import Citation
from ima.answer.route import NOW_WORDS
from ima.post import Post
from ima.text import analysis

#: posts: cited and verified; model: its own knowledge; ima: what ima says of the search
Source = Literal["posts", "model", "ima"]


@dataclass(frozen=True, slots=True)
class Said:
    """A sentence shown: from the posts (with the numbers it cites, and the posts they
    number, so a stream can link it before the answer is whole) or the model."""

    text: str
    source: Source
    citations: tuple[int, ...] = ()
    cited: tuple[Post, ...] = field(default=(), compare=False)

    def to_json(self) -> dict:
        return {"text": self.text, "source": self.source, "citations": list(self.citations)}


@dataclass(frozen=True, slots=True)
class Struck:
    """A model sentence not shown, why, and what stands in its place (if anything)."""

    text: str
    reason: str
    replaced_by: str = ""

    def to_json(self) -> dict:
        return {"text": self.text, "reason": self.reason, "replaced_by": self.replaced_by}


@dataclass(slots=True)
class Proof:
    """The checked answer, built sentence by sentence; `posts` grows when a replacement
    cites a post the model was not given."""

    posts: list[Post]
    as_of: datetime
    topic: frozenset[str] = frozenset()  # the searched question's key words, as terms
    extractive: list[Citation] = field(default_factory=list)
    said: list[Said] = field(default_factory=list)
    struck: list[Struck] = field(default_factory=list)

    def check(self, sentence: str) -> list[Said]:
        """The sentence as it may be shown (itself, its replacement, or nothing)."""
        if not sentence.strip():
            return []
        reason = self._trouble(sentence)
        if not reason:
            numbers = tuple(verify.cited_numbers(sentence))
            cited = tuple(self.posts[n - 1] for n in numbers)
            shown = Said(sentence.strip(), "posts" if numbers else "model", numbers, cited)
            self.said.append(shown)
            return [shown]
        replacement = self._replacement()
        instead = replacement.text if replacement else ""
        self.struck.append(Struck(sentence.strip(), reason, instead))
        return [replacement] if replacement else []

    def grounding(self) -> list[Said]:
        """In a turn that searched and found posts, the lead statement when no sentence
        shown cites one: an answer about now always carries the posts' own words."""
        if not self.extractive or any(s.source == "posts" for s in self.said):
            return []
        replacement = self._replacement()
        if replacement is None:
            return []
        self.struck.append(Struck("", "the model cited no post", replacement.text))
        return [replacement]

    def _trouble(self, sentence: str) -> str:
        if "<<<" in sentence or ">>>" in sentence:
            return "echoes the prompt's fence around posts"
        if verify.cites_any(sentence):
            return "; ".join(verify.problems(sentence, self.posts, self.as_of))
        if NOW_WORDS.search(sentence):
            return "a claim about now that cites no post"
        numbers = verify.problems(sentence, [], self.as_of)
        if numbers:
            return numbers[0]
        if self.topic & set(analysis.terms(sentence)):
            return "speaks of the searched topic but cites no post"
        return ""

    def _replacement(self) -> Said | None:
        """The next extractive statement not shown yet, cited by its number in `posts`."""
        used = {n for s in self.said for n in s.citations}
        for statement in self.extractive:
            ids = [p.id for p in self.posts]
            if statement.post.id not in ids:
                self.posts.append(statement.post)
                ids.append(statement.post.id)
            number = ids.index(statement.post.id) + 1
            if number in used:
                continue
            text = f"{statement.snippet.strip()} [{number}]"
            if verify.problems(text, self.posts, self.as_of):
                continue
            shown = Said(text, "posts", (number,), (self.posts[number - 1],))
            self.said.append(shown)
            return shown
        return None

    def citations(self) -> list[Citation]:
        """The posts the shown sentences cite, by their numbers."""
        numbers = dict.fromkeys(n for s in self.said for n in s.citations)
        return [Citation(n, self.posts[n - 1], self.posts[n - 1].text[:280]) for n in numbers]
