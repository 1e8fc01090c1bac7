"""A lean HTTP/1.1 client for load generation: one keep-alive connection per client.

The load generator shares the machine's cores with the server it measures, so every
millisecond it spends on itself is a millisecond the server waits for a core and a
reply waits to be read. A general client (httpx) spent several times what this does
per request. It speaks only what `ima serve` answers with: Content-Length or chunked
bodies, keep-alive, plain HTTP on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass


class HttpError(Exception):
    """The server broke the protocol or closed the connection mid-response."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[bytes, bytes]  # names lower-cased
    body: bytes


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes]]:
    """A response's status and header fields (names lower-cased)."""
    status_line = await reader.readline()
    if not status_line:
        raise HttpError("connection closed before a response")
    status = int(status_line.split(b" ", 2)[1])
    fields: dict[bytes, bytes] = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip()
    return status, fields


async def read_response(reader: asyncio.StreamReader) -> Response:
    status, fields = await read_head(reader)
    if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
        parts = []
        while size := int((await reader.readline()).split(b";")[0], 16):
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        await reader.readline()  # the blank line after the last chunk (no trailers sent)
        content = b"".join(parts)
    else:
        content = await reader.readexactly(int(fields.get(b"content-length", b"0")))
    return Response(status, fields, content)


async def send_chunked(
    host: str, port: int, target: str, headers: dict[str, str], chunk: bytes, count: int,
    *, timeout: float = 30,
) -> tuple[Response, int]:
    """POST a body of `count` × `chunk` with chunked transfer encoding on a connection of
    its own, reading the answer while sending: a server that refuses the body answers
    and closes before the body ends. Returns the response and the bytes sent."""
    reader, writer = await asyncio.open_connection(host, port)
    lines = [f"POST {target} HTTP/1.1", f"Host: {host}:{port}", "Transfer-Encoding: chunked"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    answer = asyncio.create_task(read_response(reader))
    sent = 0
    try:
        framed = b"%x\r\n%s\r\n" % (len(chunk), chunk)
        for _ in range(count):
            if answer.done():
                break
            writer.write(framed)
            await writer.drain()
            sent += len(chunk)
        else:
            writer.write(b"0\r\n\r\n")
        return await asyncio.wait_for(answer, timeout), sent
    except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
        if answer.done() and answer.exception() is None:  # answered, then reset: fine
            return answer.result(), sent
        raise HttpError(f"chunked POST {target}: {exc!r}") from exc
    finally:
        answer.cancel()
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


class Connection:
    def __init__(self, host: str, port: int, *, timeout: float = 30) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, target: str, headers: dict[str, str], body: bytes = b""
    ) -> Response:
        """Send one request and read its whole response."""
        try:
            return await asyncio.wait_for(self._exchange(method, target, headers, body),
                                          self.timeout)  # fmt: skip
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
            await self.close()
            raise HttpError(f"{method} {target}: {exc!r}") from exc

    async def _exchange(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Response:
        if self._reader is not None and self._reader.at_eof():
            await self.close()  # the server closed it while idle (its keep-alive timeout)
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host}:{self.port}",
                 f"Content-Length: {len(body)}"]  # fmt: skip
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        assert self._reader is not None
        response = await read_response(self._reader)
        if response.headers.get(b"connection", b"").lower() == b"close":
            await self.close()
        return response

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
