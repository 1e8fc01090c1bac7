"""The fun voice's quip written by an LLM: used when it states nothing, the canned line
when it states a fact, fails, or the subject is a tragedy (a scripted chat server on
loopback, and the real llama.cpp server with SmolLM2-135M-Instruct)."""

from datetime import UTC, datetime

import pytest

from conftest import feed, post
from ima import quips
from ima.answer import verify, wit
from ima.answer.ask import ask
from ima.answer.llm import OpenAICompatible, smollm2_gguf
from ima.text.question import understand
from servers import ChatCompletions, llama_cpp_server

AT = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
FINE = "Somewhere, a meme department is working overtime."
HEADLINES = [
    post("ig", "Instagram fined 405 million euros by the Irish data regulator over "
         "children's privacy", "2026-11-22T10:00:00Z", author="tech_desk"),
    post("ig2", "Irish regulator fines Instagram over how it handled teenagers' data",
         "2026-11-22T10:30:00Z", author="euro_news"),
    post("quake", "At least 12 people died after the earthquake struck the coast at dawn",
         "2026-11-22T09:00:00Z", author="wire"),
]  # fmt: skip


@pytest.fixture
def stocked(store):
    feed(store, HEADLINES)
    return store


def _fun(store, question, line):
    """The fun answer with a chat server that writes `line` when asked for a quip, and
    an answer citing nothing (so the extractive one stays) when asked to answer."""

    def reply(body):
        return line if body["messages"][0]["role"] == "user" else "No idea."

    with ChatCompletions(reply) as server:
        backend = OpenAICompatible(server.url("/v1"), model="m")
        answer = ask(store, question, as_of=AT, persona="fun", backend=backend, mode="answer")
    return answer, server.bodies


def test_a_line_that_states_nothing_opens_the_fun_answer(stocked):
    answer, bodies = _fun(stocked, "Why was Instagram fined?", FINE)
    assert answer.text.splitlines()[0] == FINE
    quip_prompt = bodies[0]["messages"][-1]["content"]
    assert "Instagram" not in quip_prompt and "405" not in quip_prompt  # no post text given
    assert verify.problems(answer.text, [c.post for c in answer.citations], AT) == []


@pytest.mark.parametrize(
    "line",
    [
        "Instagram just lost 405 million euros down the back of the sofa.",  # name, number
        "Regulators finally read the terms and conditions on Tuesday.",  # a date
        "Somewhere, teenagers' data got expensive.",  # the posts' own words: a claim
        "Nice. [1]",  # a citation
        "Great news! Also the ferry sank.",  # two sentences
        "規制当局は今日もお仕事中。",  # not the asker's language
        "Somewhere, a rocket is quietly judging us all.",  # another topic
    ],
)
def test_a_line_that_states_a_fact_is_rejected_for_the_canned_one(stocked, line):
    answer, _ = _fun(stocked, "Why was Instagram fined?", line)
    opening = answer.text.splitlines()[0]
    assert opening != line
    assert opening == quips.quip(understand("Why was Instagram fined?"),
                                 _statements(stocked), lead_only=True)  # fmt: skip


def _statements(store):
    """The statements the Instagram answer leads with, as the canned quip sees them."""
    from ima.answer.ask import retrieve
    from ima.answer.compose import compose, key_weights

    question = understand("Why was Instagram fined?")
    weights = key_weights(question, *store.term_stats(question.lookup))
    posts = retrieve(store, question, AT, question.window)
    return compose(question, posts, AT, weights).statements


def test_a_tragedy_gets_no_joke_and_the_model_is_not_asked(stocked):
    answer, bodies = _fun(stocked, "What happened after the earthquake on the coast?", FINE)
    assert answer.text.splitlines()[0] == quips.SOBER["en"]
    # the one request made is the answer's, asked for in the regular voice
    assert len(bodies) == 1 and "witty" not in bodies[0]["messages"][0]["content"]


def test_a_failing_backend_keeps_the_canned_line(stocked):
    with ChatCompletions(FINE, status=503) as server:
        backend = OpenAICompatible(server.url("/v1"), model="m")
        answer = ask(stocked, "Why was Instagram fined?", as_of=AT, persona="fun",
                     backend=backend, mode="answer")  # fmt: skip
    assert answer.text.splitlines()[0] in {q for qs in quips._QUIPS.values() for q in qs}


def test_the_check_reads_japanese_names_and_numbers():
    ja = understand("インスタグラムはなぜ罰金を科されたの？")
    posts = ["インスタグラムがアイルランドの規制当局から罰金を科された"]
    assert wit.states("どこかで経理の方がため息をつきました。", ja, posts) == ""
    assert wit.states("アイルランドの役人は忙しそうです。", ja, posts)  # a place name
    assert wit.states("罰金は三億円だそうです。", ja, posts)  # a number
    assert wit.states("Someone is sighing.", ja, posts)  # not Japanese


@pytest.fixture(scope="module")
def llama_server():
    """llama-cpp-python's own OpenAI-compatible server with SmolLM2-135M-Instruct (the
    Gemma 3 270M base model writes nothing when asked for a line)."""
    with llama_cpp_server(smollm2_gguf(), n_ctx=1024, threads=1) as base:
        yield base


def test_the_real_llama_cpp_servers_quip_is_checked_before_use(stocked, llama_server):
    backend = OpenAICompatible(llama_server, model="smollm2-135m")
    question = understand("Why was Instagram fined?")
    statements = _statements(stocked)
    canned = quips.quip(question, statements, lead_only=True)
    line = wit.written(backend, question, statements, canned)
    # a small base model often writes facts or several lines: either way, what opens
    # the answer states nothing
    texts = [s.post.text for s in statements]
    assert line == canned or wit.states(line, question, texts) == ""
    assert line.strip()
