"""A small HTTP/1.1 server: ``httptools`` parsing under an ``asyncio.Protocol``.

It serves the SQS API, the admin API, metrics, health checks and the console on one
port. It does only what those need: keep-alive, pipelined requests answered in order,
``Content-Length`` and chunked request bodies, a bound on header and body size, and a
clean close on shutdown. Handlers are ``async def handler(request) -> Response``.

How a connection answers (the per-request cost is what the SQS API's speed rests on):

* Bytes are parsed as they arrive; each complete request joins the connection's queue.
  When the bytes of one ``data_received`` are parsed, the queue is answered in order.
* A handler is first run by hand, without a task: most requests (every SQS request
  with ``fsync=never``, health checks, metrics) finish without waiting, and cost no
  task and no trip round the event loop. Their answers are collected and written with
  one ``write`` (one ``send`` system call for all the requests pipelined together).
* The first handler that does wait (for an fsync, a long poll, a worker thread) gets a
  task that goes on running that same coroutine (:func:`_resume`); what was answered
  before it is written first, so a wait never holds back answers that are ready. The
  task then answers the rest of the queue, each answer written before the next request
  starts, and ends when the queue is empty.
"""

from __future__ import annotations

import asyncio
import logging
import types
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import httptools

from conveyor.server.wire import write_gathered

log = logging.getLogger("conveyor.http")

request_bytes_max = 2 * 1024 * 1024  # an SQS batch is at most 1 MiB of payload
header_bytes_max = 64 * 1024
pipeline_depth_max = 64  # requests parsed ahead of the one being answered
header_names_cached_max = 256  # raw header name -> its lower-case str, for names seen
read_buffer_bytes = 256 * 1024  # what one recv may read (asyncio's own default)


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # names in lower case; repeated headers joined with ", "
    body: bytes
    peer: str = ""


@dataclass(slots=True)
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)


Handler = Callable[[Request], Awaitable[Response]]

_STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n" for s in HTTPStatus}
_METHODS = {
    m.encode("ascii"): m for m in ("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH")
}
_header_names: dict[bytes, str] = {}


def render(resp: Response, keep_alive: bool) -> bytes:
    body = resp.body
    status = _STATUS_LINES.get(resp.status) or f"HTTP/1.1 {resp.status} Status\r\n"
    headers = resp.headers
    if len(headers) == 1:  # an SQS answer: its request id
        name, value = headers[0]
        extra = f"{name}: {value}\r\n"
    else:
        extra = "".join([f"{name}: {value}\r\n" for name, value in headers])
    end = "\r\n" if keep_alive else "Connection: close\r\n\r\n"
    if content_type := resp.content_type:
        head = (
            f"{status}Content-Length: {len(body)}\r\nContent-Type: {content_type}\r\n{extra}{end}"
        )
    else:
        head = f"{status}Content-Length: {len(body)}\r\n{extra}{end}"
    return head.encode("latin-1") + body


def _internal_error() -> Response:
    return Response(500, b'{"error": "internal error"}')


async def _awaiting(aw: Awaitable[Response]) -> Response:
    return await aw


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Response], waiting: Any) -> Generator[Any, Any, Response]:
    """Go on running ``coro``, already run by hand up to its first wait (it yielded
    ``waiting``), in the task that awaits this: ``yield from`` for a started coroutine.
    What the task sends or throws in (a result, a cancellation) goes on to ``coro``."""
    while True:
        try:
            sent = yield waiting
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:
            try:
                waiting = coro.throw(exc)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
        else:
            try:
                waiting = coro.send(sent)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]


class _Waiting:
    """A request whose handler is waiting: its coroutine, what it waits on, and how to
    answer it."""

    __slots__ = ("coro", "keep_alive", "path", "waiting")

    def __init__(
        self, coro: Coroutine[Any, Any, Response], waiting: Any, keep_alive: bool, path: str
    ) -> None:
        self.coro = coro
        self.waiting = waiting
        self.keep_alive = keep_alive
        self.path = path


class HttpProtocol(asyncio.BufferedProtocol):
    """One connection. Requests are parsed as bytes arrive and answered in order.

    Bytes are received into ``read_buffer`` (``recv_into``: no new bytes object per
    read). The connections of one server share one buffer, which is safe because the
    event loop's thread reads into it and parses it in one go, and the parser copies
    what it keeps; without one, each connection gets its own.
    """

    def __init__(
        self,
        handler: Handler,
        connections: set[HttpProtocol],
        read_buffer: memoryview | None = None,
    ) -> None:
        self._handler = handler
        self._connections = connections
        self._read_buffer = read_buffer
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._peer = ""
        self._url = b""
        self._headers: dict[str, str] = {}
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._body_bytes = 0
        self._pending: deque[tuple[Request, bool]] = deque()
        self._out: list[bytes] = []  # answers not written yet
        self._worker: asyncio.Task[None] | None = None
        self._closing = False
        self._close_when_done = False
        self._paused = False
        self._too_large: str | None = None  # set in a parser callback, answered 413 after
        self.idle = True  # no handler is waiting

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

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._read_buffer is None:
            self._read_buffer = memoryview(bytearray(read_buffer_bytes // 4))
        return self._read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        assert self._read_buffer is not None
        self.data_received(self._read_buffer[:nbytes])

    def data_received(self, data: bytes | memoryview) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._error(400, b"upgrades are not supported")
            return
        except httptools.HttpParserError as exc:
            # an exception raised in a callback arrives wrapped: say what it was
            if self._too_large is not None:
                self._error(413, self._too_large.encode())
            else:
                self._error(400, f"malformed HTTP request: {exc}".encode())
            return
        except _TooLarge as exc:
            self._error(413, str(exc).encode())
            return
        if self._worker is None and self._pending:
            waiting = self._answer_ready()
            if waiting is not None:
                self.idle = False
                self._worker = asyncio.get_running_loop().create_task(self._serve(waiting))

    # -- httptools callbacks (no on_message_begin: on_message_complete starts afresh)
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
        key = _header_names.get(name)
        if key is None:
            key = name.decode("latin-1").lower()
            if len(_header_names) < header_names_cached_max:
                _header_names[name] = key
        text = value.decode("latin-1")
        headers = self._headers
        if key in headers:
            headers[key] = f"{headers[key]}, {text}"
        else:
            headers[key] = text

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > request_bytes_max:
            self._too_large = f"request body larger than {request_bytes_max} bytes"
            raise _TooLarge(self._too_large)
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._url == b"/":
            path, query = "/", ""
        else:
            url = httptools.parse_url(self._url)
            path = url.path.decode("latin-1") if url.path else "/"
            query = url.query.decode("latin-1") if url.query else ""
        raw_method = self._parser.get_method()
        method = _METHODS.get(raw_method) or raw_method.decode("latin-1")
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        req = Request(method, path, query, self._headers, body, self._peer)
        self._url = b""
        self._headers = {}
        self._header_bytes = 0
        self._body = []
        self._body_bytes = 0
        self._pending.append((req, self._parser.should_keep_alive()))
        if len(self._pending) >= pipeline_depth_max and self._transport and not self._paused:
            self._transport.pause_reading()
            self._paused = True

    # -- answering
    def _next(self) -> tuple[Request, bool] | None:
        """The next queued request, if the connection goes on; reading resumes when the
        queue is short again."""
        pending = self._pending
        if not pending or self._closing:
            return None
        item = pending.popleft()
        if self._paused and len(pending) < pipeline_depth_max // 2:
            assert self._transport is not None
            self._transport.resume_reading()
            self._paused = False
        return item

    def _answer_ready(self) -> _Waiting | None:
        """Answer queued requests in order for as long as their handlers finish without
        waiting, then write the answers. Returns the first request that waits (its
        handler started), or None when the queue is empty or the connection closing."""
        pending = self._pending
        handler = self._handler
        out = self._out
        while pending and not self._closing:  # self._next(), inline
            req, keep_alive = pending.popleft()
            if self._paused and len(pending) < pipeline_depth_max // 2:
                assert self._transport is not None
                self._transport.resume_reading()
                self._paused = False
            try:
                aw = handler(req)
                coro = aw if type(aw) is types.CoroutineType else _awaiting(aw)
                waiting = coro.send(None)
            except StopIteration as stop:
                resp = stop.value
            except Exception:
                log.exception("handler failed", extra={"path": req.path})
                resp = _internal_error()
            else:
                self._flush()
                return _Waiting(coro, waiting, keep_alive, req.path)
            transport = self._transport
            if keep_alive and transport is not None and not transport.is_closing():
                out.append(render(resp, True))  # self._reply(), its common case inline
            elif not self._reply(resp, keep_alive):
                return None
        self._flush()
        return None

    async def _serve(self, first: _Waiting) -> None:
        """Finish a request whose handler waits, then the queue behind it. Those are
        awaited directly (when one waits, the next probably will: an fsync each), each
        answer written before the next request starts; once the queue is empty, new
        requests are answered by hand again."""
        try:
            try:
                resp = await _resume(first.coro, first.waiting)
            except Exception:
                log.exception("handler failed", extra={"path": first.path})
                resp = _internal_error()
            if not self._reply(resp, first.keep_alive):
                return
            while (item := self._next()) is not None:
                req, keep_alive = item
                self._flush()
                try:
                    resp = await self._handler(req)
                except Exception:
                    log.exception("handler failed", extra={"path": req.path})
                    resp = _internal_error()
                if not self._reply(resp, keep_alive):
                    return
            self._flush()
        finally:
            self._worker = None
            self.idle = True
            if self._close_when_done and not self._closing and self._transport is not None:
                self._flush()
                self._transport.close()
                self._closing = True

    def _reply(self, resp: Response, keep_alive: bool) -> bool:
        """Queue one answer for writing; False when the connection is done."""
        transport = self._transport
        if transport is None or transport.is_closing():
            self._out.clear()
            self._closing = True
            return False
        self._out.append(render(resp, keep_alive))
        if not keep_alive:
            self._flush()
            transport.close()
            self._closing = True
            return False
        return True

    def _flush(self) -> None:
        write_gathered(self._transport, self._out)

    def _error(self, status: int, message: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(render(Response(status, message, "text/plain"), False))
            self._transport.close()
        self._closing = True

    def close_when_idle(self) -> None:
        """For shutdown: close now if nothing is being answered, else after it."""
        if self._transport is None:
            return
        self._pending.clear()
        if self.idle:
            self._transport.close()
        else:
            self._close_when_done = True


class _TooLarge(Exception):
    pass


async def start_http(
    handler: Handler, host: str, port: int
) -> tuple[asyncio.Server, set[HttpProtocol]]:
    connections: set[HttpProtocol] = set()
    read_buffer = memoryview(bytearray(read_buffer_bytes))
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: HttpProtocol(handler, connections, read_buffer), host, port, reuse_address=True
    )
    return server, connections
