"""The HTTP server under the API: uvicorn, with the limits a public port needs.

A request's head (request line and headers) may take at most `MAX_HEAD_BYTES` and
must arrive within `HEAD_TIMEOUT_S` of the connection opening or of the previous
response, or the connection is refused (431) or closed (408): uvicorn's httptools
protocol bounds neither, so an 8 MB header was read whole and slow-header clients
held their connections for as long as they liked.

A body refused before its end (413) is read on and dropped for up to `LINGER_S`, as
nginx does, before the connection closes: closing at once, with the body still
arriving, resets the connection, and the client may lose the refusal it was sent.

The process keeps to two of glibc's memory arenas and maps large blocks on their own
(`limit_malloc_arenas`, called before its first thread starts).

On SIGTERM (or Ctrl-C) live feeds end at once, requests still running after
`GRACE_S` are cancelled, and the app's shutdown stops the writer; a second signal
ends the process at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
from collections.abc import Callable
from http import HTTPStatus
from types import FrameType

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ima.api import errors

MAX_HEAD_BYTES = 32 * 1024
HEAD_TIMEOUT_S = 10.0
LINGER_S = 2.0
GRACE_S = 5.0
MALLOC_ARENAS = 2
MMAP_THRESHOLD = 256 * 1024
_M_ARENA_MAX, _M_MMAP_THRESHOLD = -8, -3  # mallopt's parameter numbers (glibc's malloc.h)


class BoundedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bounded request head, in size and in time."""

    _head_bytes = 0
    _head_timer: asyncio.TimerHandle | None = None
    _linger: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def _await_head(self) -> None:
        self._head_bytes = 0
        self._head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._head_too_slow)

    def _head_arrived(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def data_received(self, data: bytes) -> None:
        if self._head_timer is not None:  # still reading a head: count it up to its end
            end = data.find(b"\r\n\r\n")
            self._head_bytes += len(data) if end < 0 else end + 4
            if self._head_bytes > MAX_HEAD_BYTES:
                self._head_arrived()
                self._refuse(431, f"request head over {MAX_HEAD_BYTES} bytes", "headers")
                return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._head_arrived()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        queued = bool(self.pipeline)  # a request already read starts now: no head to wait for
        unread = self.cycle.more_body  # answered before its body ended (refused)
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if unread:  # uvicorn drops the rest as it comes; the next head follows its end
            self._linger = self.loop.call_later(LINGER_S, self.transport.close)
        elif not queued:
            self._await_head()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self._linger is not None:  # the refused body has ended: the connection goes on
            self._linger.cancel()
            self._linger = None
            self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_arrived()
        if self._linger is not None:
            self._linger.cancel()
        super().connection_lost(exc)

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is running (its head came with a pipelined one)
        self._refuse(408, f"request head not received within {HEAD_TIMEOUT_S:g} s", None)

    def _refuse(self, status: int, message: str, param: str | None) -> None:
        """Answer with an error of the API's shape and close: what else the client
        sends is not read."""
        if self.transport.is_closing():
            return
        content = json.dumps(errors.body(status, message, param)).encode()
        head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
                f"content-type: application/json\r\ncontent-length: {len(content)}\r\n"
                "connection: close\r\n\r\n")  # fmt: skip
        self.transport.write(head.encode() + content)
        self.transport.close()


class Server(uvicorn.Server):
    """uvicorn's server, which tells the app's feeds to end when a signal asks it to
    stop, and ends the process on a second signal, whatever it was waiting for (a
    writer that does not answer: uvicorn would ignore a second SIGTERM). Nothing
    acknowledged is lost: a post is acknowledged once committed, and the helper
    processes end with this one."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self.on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit:
            os._exit(128 + sig)
        super().handle_exit(sig, frame)
        self.on_exit()


def config(app: object, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(app, host=host, port=port, log_level="warning", http=BoundedHttpTools,
                          timeout_graceful_shutdown=GRACE_S)  # fmt: skip


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> None:
    """glibc gives threads that allocate at once arenas of their own (up to eight per
    core), and memory freed in one is not reused by the others: with the API's worker
    threads, the process grew 0.2 MB/s under load (README "Hardening"); with two arenas
    it stayed flat. Blocks of `MMAP_THRESHOLD` or more (request bodies, large parses)
    are mapped and unmapped on their own, so a burst of large requests leaves no heap
    behind (glibc would otherwise raise that threshold to the largest block freed).
    Nothing happens where the C library is not glibc."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_ARENA_MAX, arenas)
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def serve(app: object, host: str, port: int, on_exit: Callable[[], None]) -> None:
    """Serve `app` until a signal; `on_exit` is called on each one."""
    Server(config(app, host, port), on_exit).run()
