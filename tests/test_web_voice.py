"""The web page's voice: push-to-talk in headless Chromium with a recorded WAV file as
its (fake) microphone, ending in a cited answer that plays as it streams in; and the page
without one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from api_server import serving
from conftest import feed, post
from test_web import CHROMIUM, FLAGS

QUESTION = Path(__file__).parent / "data" / "speech" / "librivox-austen-0880.wav"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[tuple[str, str]]:
    with serving(tmp_path_factory.mktemp("web-voice") / "data") as (base, svc):
        feed(svc.store, [
            post("p1", "Police say the young man seen at the harbour was not ill disposed: "
                 "he was a lost tourist looking for his ferry.", author="harbour_police"),
            post("p2", "Bakery on Main Street sells out of bread again", author="maineats"),
        ])  # fmt: skip
        yield base.removesuffix("/v1"), svc.keys.create("web voice", "premium_plus")[1]


def _signed_in(browser, site):
    base, key = site
    page = browser.new_context(locale="en-US").new_page()
    page.goto(base + "/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#app")).to_be_visible()
    return page


def test_push_to_talk_ends_in_a_played_cited_answer(site):
    microphone = [
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={QUESTION}%noloop",
        "--autoplay-policy=no-user-gesture-required",
    ]  # fmt: skip
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS + microphone)
        page = _signed_in(browser, site)
        page.get_by_role("button", name="Talk").click()
        expect(page.locator("#talk-note")).to_contain_text("Listening")
        page.wait_for_timeout(4000)  # the recording lasts 3 s
        page.get_by_role("button", name="Stop and ask").click()
        question = page.locator(".message.user").last
        expect(question).to_contain_text("young man", ignore_case=True, timeout=60_000)
        answer = page.locator(".message.assistant").last
        expect(answer.locator(".card").first).to_contain_text("@harbour_police", timeout=30_000)
        # played as it streamed in (Web Audio), to its end; then kept to play again
        expect(answer).to_have_attribute("data-speech", "played", timeout=90_000)
        page.wait_for_function(
            "() => document.querySelector('audio.spoken')?.duration > 2", timeout=10_000
        )
        expect(answer.get_by_role("button", name="Read aloud")).to_be_visible()
        browser.close()


def test_without_a_microphone_the_page_says_so_and_typing_still_works(site):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = _signed_in(browser, site)
        page.get_by_role("button", name="Talk").click()
        expect(page.locator("#talk-note")).to_contain_text("No microphone")
        page.get_by_label("Ask about what's happening").fill("the young man at the harbour")
        page.get_by_role("button", name="Ask").click()
        answer = page.locator(".message.assistant").last
        expect(answer.locator(".card").first).to_contain_text("@harbour_police", timeout=30_000)
        browser.close()
