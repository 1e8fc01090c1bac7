"""RSS and Atom feeds, polled with ETags, against a loopback server."""

import asyncio

import httpx

from ima.ingest import Pipeline
from ima.search import search
from ima.sources.base import FrameError, Sink
from ima.sources.rss import Feed
from servers import Feeds

RSS = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel>
  <title>City &amp; Harbour News</title><language>en</language>
  <item>
    <title>Ferry service suspended</title>
    <link>https://news.example/ferry</link>
    <guid>https://news.example/ferry</guid>
    <description>&lt;p&gt;High winds stop the &lt;b&gt;ferries&lt;/b&gt; tonight.&lt;/p&gt;
    </description>
    <pubDate>Sun, 22 Nov 2026 09:30:00 GMT</pubDate>
  </item>
  <item>
    <title>Market opens late</title>
    <link>https://news.example/market</link>
    <pubDate>Sun, 22 Nov 2026 08:00:00 GMT</pubDate>
  </item>
</channel></rss>"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="ja">
  <title>鉄道ニュース</title>
  <entry>
    <id>tag:rail.example,2026:1</id>
    <title>新幹線が運転見合わせ</title>
    <link href="https://rail.example/1"/>
    <updated>2026-11-22T09:45:00Z</updated>
    <summary>強風のため、東海道新幹線は運転を見合わせています。</summary>
  </entry>
</feed>""".encode()


def _poll(store, feed: Feed, times: int) -> Pipeline:
    pipeline = Pipeline(store)

    async def main() -> None:
        sink = Sink(pipeline, asyncio.get_running_loop())
        async with httpx.AsyncClient() as client:
            for _ in range(times):
                try:
                    await feed.poll(client, sink)
                except FrameError as exc:
                    feed.health.error(exc.kind)

    with pipeline:
        asyncio.run(main())
    return pipeline


def test_rss_and_atom_items_become_news_posts_and_polls_are_conditional(store):
    with Feeds({"/rss.xml": RSS, "/atom.xml": ATOM, "/broken": b"<html>not a feed"}) as server:
        rss = Feed("news", server.url("/rss.xml"))
        atom = Feed("rail", server.url("/atom.xml"))
        broken = Feed("broken", server.url("/broken"))
        _poll(store, rss, 2)
        _poll(store, atom, 1)
        _poll(store, broken, 1)
        assert server.statuses[:2] == [200, 304]  # the second poll sent If-None-Match
    ferry = store.get("news:https://news.example/ferry").post
    assert ferry.source == "news"
    assert ferry.text == "Ferry service suspended\nHigh winds stop the ferries tonight."
    assert ferry.author.name == "City & Harbour News" and ferry.url == "https://news.example/ferry"
    assert ferry.created_at.isoformat() == "2026-11-22T09:30:00+00:00"
    assert store.get("news:https://news.example/market") is not None  # no guid: the link
    assert [h.post.id for h in search(store, "運転見合わせ source:news").hits] == [
        "news:tag:rail.example,2026:1"
    ]
    assert store.stats().posts == 3
    assert broken.health.errors == {"invalid_feed": 1}


def test_a_second_poll_of_a_changed_feed_adds_only_new_items(store):
    with Feeds({"/rss.xml": RSS}) as server:
        feed = Feed("news", server.url("/rss.xml"))
        _poll(store, feed, 1)
        server.documents["/rss.xml"] = RSS.replace(b"Market opens late", b"Market opens on time")
        pipeline = _poll(store, feed, 1)
    assert pipeline.stats.new == 0 and pipeline.stats.updated == 2
    assert store.stats().posts == 2
