"""A small HTTP/1.1 server: ``httptools`` parsing under an ``asyncio.Protocol``.

It serves the SQS API, the admin API, metrics, health checks and the console on one
port. It does only what those need: keep-alive, pipelined requests answered in order,
``Content-Length`` and chunked request bodies, a bound on header and body size, and a
clean close on shutdown. Handlers are ``async def handler(request) -> Response``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus

import httptools

log = logging.getLogger("conveyor.http")

request_bytes_max = 2 * 1024 * 1024  # an SQS batch is at most 1 MiB of payload
header_bytes_max = 64 * 1024
pipeline_depth_max = 64  # requests parsed ahead of the one being answered


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    peer: str = ""


@dataclass(slots=True)
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)


Handler = Callable[[Request], Awaitable[Response]]

_REASONS = {s.value: s.phrase for s in HTTPStatus}


def render(resp: Response, keep_alive: bool) -> bytes:
    head = [f"HTTP/1.1 {resp.status} {_REASONS.get(resp.status, 'Status')}"]
    head.append(f"Content-Length: {len(resp.body)}")
    if resp.content_type:
        head.append(f"Content-Type: {resp.content_type}")
    for name, value in resp.headers:
        head.append(f"{name}: {value}")
    if not keep_alive:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + resp.body


class HttpProtocol(asyncio.Protocol):
    """One connection. Requests are parsed as bytes arrive and answered in order."""

    def __init__(self, handler: Handler, connections: set[HttpProtocol]) -> None:
        self._handler = handler
        self._connections = connections
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._peer = ""
        self._url = b""
        self._headers: dict[str, str] = {}
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._body_bytes = 0
        self._pending: deque[tuple[Request, bool]] = deque()
        self._worker: asyncio.Task[None] | None = None
        self._closing = False
        self._paused = False
        self._too_large: str | None = None  # set in a parser callback, answered 413 after
        self.idle = True

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else ""
        self._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        self._closing = True
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._error(400, b"upgrades are not supported")
        except httptools.HttpParserError as exc:
            # an exception raised in a callback arrives wrapped: say what it was
            if self._too_large is not None:
                self._error(413, self._too_large.encode())
            else:
                self._error(400, f"malformed HTTP request: {exc}".encode())
        except _TooLarge as exc:
            self._error(413, str(exc).encode())

    # -- httptools callbacks
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._header_bytes = 0
        self._body = []
        self._body_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > header_bytes_max:
            self._too_large = "request line too long"
            raise _TooLarge(self._too_large)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > header_bytes_max:
            self._too_large = "headers too large"
            raise _TooLarge(self._too_large)
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        prev = self._headers.get(key)
        self._headers[key] = text if prev is None else f"{prev}, {text}"

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > request_bytes_max:
            self._too_large = f"request body larger than {request_bytes_max} bytes"
            raise _TooLarge(self._too_large)
        self._body.append(body)

    def on_message_complete(self) -> None:
        url = httptools.parse_url(self._url)
        path = url.path.decode("latin-1") if url.path else "/"
        query = url.query.decode("latin-1") if url.query else ""
        req = Request(
            method=self._parser.get_method().decode("latin-1"),
            path=path,
            query=query,
            headers=self._headers,
            body=b"".join(self._body),
            peer=self._peer,
        )
        self._pending.append((req, self._parser.should_keep_alive()))
        if len(self._pending) >= pipeline_depth_max and self._transport and not self._paused:
            self._transport.pause_reading()
            self._paused = True
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._serve())

    # -- answering
    async def _serve(self) -> None:
        while self._pending and not self._closing:
            req, keep_alive = self._pending.popleft()
            self.idle = False
            try:
                resp = await self._handler(req)
            except Exception:
                log.exception("handler failed", extra={"path": req.path})
                resp = Response(500, b'{"error": "internal error"}')
            if self._transport is None or self._transport.is_closing():
                return
            self._transport.write(render(resp, keep_alive))
            self.idle = True
            if not keep_alive:
                self._transport.close()
                self._closing = True
                return
            if self._paused and len(self._pending) < pipeline_depth_max // 2:
                self._transport.resume_reading()
                self._paused = False

    def _error(self, status: int, message: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(render(Response(status, message, "text/plain"), False))
            self._transport.close()
        self._closing = True

    def close_when_idle(self) -> None:
        """For shutdown: close now if nothing is being answered, else after it."""
        if self._transport is None:
            return
        if self.idle and not self._pending:
            self._transport.close()
        else:
            self._pending.clear()


class _TooLarge(Exception):
    pass


async def start_http(
    handler: Handler, host: str, port: int
) -> tuple[asyncio.Server, set[HttpProtocol]]:
    connections: set[HttpProtocol] = set()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: HttpProtocol(handler, connections), host, port, reuse_address=True
    )
    return server, connections
