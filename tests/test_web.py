"""The web app end to end: headless Chromium (Debian's package, driven by Playwright)
against the real app on loopback. Screenshots land in docs/screenshots/."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect, sync_playwright

from api_server import serving
from conftest import feed, post
from ima import demo
from ima.api import grants
from ima.bench.serve import free_port, wait_until_up
from ima.trends.tracker import Trends
from test_trends import chatter, event

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
XSS = "<img src=x onerror=alert(1)>"
DESKTOP, PHONE = {"width": 1280, "height": 900}, {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[tuple[str, dict[str, str]]]:
    """A server with half an hour of chatter and a burst happening now, trends following."""
    data = tmp_path_factory.mktemp("web") / "data"
    now = datetime.now(UTC)
    with serving(data) as (base, svc):
        svc.trends = Trends(svc.store)
        svc.trends.follow()
        feed(svc.store, chatter(27, start=now - timedelta(minutes=30)))
        feed(svc.store, event(now - timedelta(minutes=3)))
        feed(svc.store, [post("x1", XSS, (now - timedelta(minutes=1)).isoformat(),
                              author="prankster")])  # fmt: skip
        keys = {tier: svc.keys.create(f"web {tier}", tier)[1] for tier in ("free", "premium_plus")}
        # the premium_plus key also sends the post the live feed is to show
        grants.grant(svc.keys.path, keys["premium_plus"].split("-")[1], [])
        deadline = time.monotonic() + 20
        while not svc.trends.current("5m"):
            assert time.monotonic() < deadline, "no story was found"
            time.sleep(0.2)
        yield base.removesuffix("/v1"), keys
        svc.trends.close()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


def _page(browser, site, tier: str, viewport=DESKTOP, lang: str = "en-US") -> tuple[Page, list]:
    base, keys = site
    context = browser.new_context(viewport=viewport, locale=lang)
    page = context.new_page()
    seen: list = []
    page.on("request", lambda request: seen.append(request.url))
    page.on("dialog", lambda dialog: seen.append(f"DIALOG {dialog.message}") or dialog.dismiss())
    page.goto(base + "/")
    page.get_by_label("API key").fill(keys[tier])
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#app")).to_be_visible()
    return page, seen


def _ask(page: Page, question: str) -> None:
    page.get_by_label("Ask about what's happening").fill(question)
    page.get_by_role("button", name="Ask").click()
    expect(page.locator(".message.assistant").last.locator(".card").first).to_be_visible(
        timeout=20_000
    )


def test_sign_in_ask_and_see_cited_cards_a_story_and_the_live_feed(browser, site):
    base, keys = site
    page, seen = _page(browser, site, "premium_plus")
    _ask(page, "What's happening on Kellerman Street?")
    answer = page.locator(".message.assistant").last
    expect(answer.locator(".answer")).to_contain_text("Kellerman")
    expect(answer.locator(".age")).to_contain_text("Based on posts from the last")
    first = answer.locator(".card").first
    expect(first.locator(".handle")).to_contain_text("@local")
    assert first.locator("time").get_attribute("datetime")
    assert first.locator("a").get_attribute("href").startswith(base + "/v1/posts/")
    story = page.locator("#story-list .story").first
    expect(story).to_contain_text("Kellerman", timeout=15_000)
    expect(story.locator("svg.spark")).to_be_visible()
    # a post arriving now, on the conversation's topic, shows up in the live feed
    expect(page.locator("#feed-topic")).to_contain_text("kellerman", ignore_case=True)
    fresh = post("live1", "Kellerman Street: crews now say the water main is fixed",
                 datetime.now(UTC).isoformat(), author="cityworks")  # fmt: skip
    sent = httpx.post(f"{base}/v1/posts", json=[fresh],
                      headers={"Authorization": f"Bearer {keys['premium_plus']}"})  # fmt: skip
    assert sent.status_code == 200
    expect(page.locator("#feed-posts .card").first).to_contain_text("fixed", timeout=15_000)
    # the key never travels in a URL
    assert not [url for url in seen if keys["premium_plus"] in url]
    for name in ("chat", "feed", "stories"):
        page.locator(f"#{name}").screenshot(path=SHOTS / f"{name}-desktop.png")
    page.set_viewport_size(PHONE)
    for name in ("chat", "feed", "stories"):
        page.locator(f"#{name}").screenshot(path=SHOTS / f"{name}-phone.png")
    # clicking a story asks about it
    page.set_viewport_size(DESKTOP)
    asked = page.locator(".message.user").count()
    story.locator("button.title").click()
    expect(page.locator(".message.user")).to_have_count(asked + 1)


def test_voice_switch_follows_the_tier(browser, site):
    page, _ = _page(browser, site, "free")
    fun = page.get_by_label("Fun")
    expect(fun).to_be_disabled()
    expect(page.locator("#voice-note")).to_contain_text("not part of the free tier")
    plus, _ = _page(browser, site, "premium_plus")
    plus.get_by_label("Fun").check()
    _ask(plus, "What's happening on Kellerman Street?")
    text = plus.locator(".message.assistant").last.locator(".answer").inner_text()
    assert not text.startswith("As of")  # the fun voice opens with its own line


def test_post_text_is_shown_as_text_never_as_html(browser, site):
    page, seen = _page(browser, site, "premium_plus")
    _ask(page, "Anything about onerror alert?")
    cards = page.locator(".message.assistant").last.locator(".card .text")
    expect(cards.filter(has_text=XSS)).to_have_count(1)
    assert page.locator(".card img").count() == 0
    page.wait_for_timeout(500)
    assert not [s for s in seen if s.startswith("DIALOG")]


def test_japanese_interface_follows_the_browser_and_switches(browser, site):
    base, keys = site
    context = browser.new_context(viewport=DESKTOP, locale="ja-JP")
    page = context.new_page()
    page.goto(base + "/")
    expect(page.locator("#signin-title")).to_have_text("サインイン")
    page.get_by_label("APIキー").fill(keys["free"])
    page.get_by_role("button", name="サインイン").click()
    expect(page.locator("#feed-title")).to_have_text("ライブフィード")
    page.get_by_label("言語").select_option("en")
    expect(page.locator("#feed-title")).to_have_text("Live feed")


def test_no_serious_accessibility_violations(browser, site):
    page, _ = _page(browser, site, "premium_plus")
    _ask(page, "What's happening on Kellerman Street?")
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        results = Axe().run(page)
        serious = [v for v in results.response["violations"]
                   if v["impact"] in ("serious", "critical")]  # fmt: skip
        assert serious == [], [(v["id"], v["help"]) for v in serious]


def test_serve_demo_replays_a_labelled_generated_stream(browser, tmp_path: Path):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "ima", "--data-dir", str(tmp_path / "data"), "serve", "--demo",
         "--no-auth", "--no-embed", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base}/healthz", server)
        me = httpx.get(f"{base}/v1/me").json()
        assert me["demo"] is True and me["auth"] is False and me["notice"] is None
        assert [s["name"] for s in me["sources"]] == ["demo"]
        assert httpx.get(f"{base}/healthz").json()["posts"] > 10_000  # the stored history
        page = httpx.get(f"{base}/")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        tab = browser.new_page()
        tab.goto(base + "/")  # no sign-in in --no-auth mode, and the demo is labelled
        expect(tab.locator("#app")).to_be_visible()
        expect(tab.locator("#banner")).to_contain_text("generated stream, not real posts")
        expect(tab.locator("#sign-out")).to_be_hidden()
        tab.close()
    finally:
        server.terminate()
        server.wait(20)


def test_demo_history_is_past_and_the_rest_arrives_later(tmp_path: Path):
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    history, source = demo.prepare(tmp_path, now=now)
    assert history and all(r["source"] == "demo" for r in history)
    assert max(datetime.fromisoformat(r["created_at"]) for r in history) <= now
    future = [json.loads(line) for line in source.path.read_text().splitlines()]
    assert future and min(datetime.fromisoformat(r["created_at"]) for r in future) > now
    assert source.speed == 1.0


def test_with_no_source_serve_follows_jetstream_and_says_so(browser, tmp_path: Path):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "ima", "--data-dir", str(tmp_path / "data"), "serve",
         "--no-auth", "--no-embed", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base}/healthz", server)
        me = httpx.get(f"{base}/v1/me").json()
        assert "Bluesky's public Jetstream" in me["notice"] and "--demo" in me["notice"]
        assert [s["name"] for s in me["sources"]] == ["bluesky"]
        # this machine cannot reach it: the page says so, why, and what to do
        deadline = time.monotonic() + 20
        while not httpx.get(f"{base}/v1/me").json()["sources"][0]["last_error"]:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        page = browser.new_page()
        page.goto(base + "/")
        banner = page.locator("#banner")
        expect(banner).to_contain_text("Bluesky's public Jetstream")
        expect(banner).to_contain_text("Cannot reach bluesky")
        expect(banner).to_contain_text("ima serve --demo")
        page.close()
    finally:
        server.terminate()
        _, err = server.communicate(timeout=20)
    assert "Bluesky's public Jetstream" in err
