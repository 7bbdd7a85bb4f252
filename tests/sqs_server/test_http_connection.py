"""The HTTP connection (``conveyor.server.http``): order, batching of answers, waits.

Handlers that finish without waiting are run by hand (no task) and their answers to
pipelined requests leave in one write; a handler that waits gets a task, and what was
answered before it is written first. These tests drive :class:`HttpProtocol` with a
fake transport (every write is visible), then once over a real socket.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Awaitable, Callable

import pytest

from conveyor.server.http import HttpProtocol, Request, Response, start_http


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.paused = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 5555) if name == "peername" else default

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


def get(path: str, *, close: bool = False) -> bytes:
    extra = "Connection: close\r\n" if close else ""
    return f"GET {path} HTTP/1.1\r\nHost: h\r\n{extra}\r\n".encode()


def bodies(writes: list[bytes]) -> list[str]:
    """The bodies of the responses in ``writes``, in order."""
    out = []
    for chunk in b"".join(writes).split(b"HTTP/1.1 ")[1:]:
        out.append(chunk.split(b"\r\n\r\n", 1)[1].decode())
    return out


def connect(
    handler: Callable[[Request], Awaitable[Response]],
) -> tuple[HttpProtocol, FakeTransport]:
    proto = HttpProtocol(handler, set())
    transport = FakeTransport()
    proto.connection_made(transport)
    return proto, transport


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_pipelined_answers_leave_in_order_in_one_write() -> None:
    seen: list[str] = []

    async def handler(req: Request) -> Response:
        seen.append(f"{req.method} {req.path}?{req.query} {req.headers['host']}")
        return Response(200, req.path.encode(), "text/plain")

    async def main() -> None:
        proto, transport = connect(handler)
        proto.data_received(get("/a") + get("/b?x=1") + get("/c"))
        assert transport.writes and len(transport.writes) == 1  # answered at once, together
        assert bodies(transport.writes) == ["/a", "/b", "/c"]
        assert seen == ["GET /a? h", "GET /b?x=1 h", "GET /c? h"]
        assert proto.idle and not transport.closed

    asyncio.run(main())


def test_a_waiting_handler_does_not_hold_back_answers_before_it() -> None:
    release: dict[str, asyncio.Future[None]] = {}
    order: list[str] = []

    async def handler(req: Request) -> Response:
        order.append(f"start {req.path}")
        if req.path.startswith("/wait"):
            fut = release[req.path] = asyncio.get_running_loop().create_future()
            await fut
        order.append(f"end {req.path}")
        return Response(200, req.path.encode(), "text/plain")

    async def main() -> None:
        proto, transport = connect(handler)
        proto.data_received(get("/a") + get("/wait1") + get("/b") + get("/wait2") + get("/c"))
        # /a is written before /wait1 waits; nothing after /wait1 has started
        assert bodies(transport.writes) == ["/a"]
        assert order == ["start /a", "end /a", "start /wait1"]
        assert not proto.idle
        # more requests while one waits join the queue
        proto.data_received(get("/d"))
        release["/wait1"].set_result(None)
        await settle()
        assert bodies(transport.writes) == ["/a", "/wait1", "/b"]
        release["/wait2"].set_result(None)
        await settle()
        assert bodies(transport.writes) == ["/a", "/wait1", "/b", "/wait2", "/c", "/d"]
        assert proto.idle
        # and the connection goes on answering without a task
        proto.data_received(get("/e"))
        assert bodies(transport.writes)[-1] == "/e"
        assert order == [
            f"{what} {path}"
            for path in ["/a", "/wait1", "/b", "/wait2", "/c", "/d", "/e"]
            for what in ("start", "end")
        ]

    asyncio.run(main())


def test_handler_errors_answer_500_and_keep_the_connection() -> None:
    async def handler(req: Request) -> Response:
        if req.path == "/boom":
            raise RuntimeError("boom")
        if req.path == "/late-boom":
            await asyncio.sleep(0)
            raise RuntimeError("late boom")
        return Response(200, b"ok", "text/plain")

    async def main() -> None:
        proto, transport = connect(handler)
        proto.data_received(get("/boom") + get("/ok") + get("/late-boom") + get("/ok"))
        await settle()
        statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", b"".join(transport.writes))
        assert statuses == [b"500", b"200", b"500", b"200"]
        assert not transport.closed

    asyncio.run(main())


def test_connection_close_stops_after_that_answer() -> None:
    answered: list[str] = []

    async def handler(req: Request) -> Response:
        answered.append(req.path)
        return Response(200, b"", "")

    async def main() -> None:
        proto, transport = connect(handler)
        proto.data_received(get("/a") + get("/last", close=True))
        assert answered == ["/a", "/last"]
        raw = b"".join(transport.writes)
        assert raw.count(b"HTTP/1.1 200 OK") == 2
        assert raw.endswith(b"Connection: close\r\n\r\n")
        assert transport.closed
        proto.data_received(get("/never"))
        assert answered == ["/a", "/last"]
        # requests after "Connection: close" in the same bytes are a parse error (llhttp)
        proto, transport = connect(handler)
        proto.data_received(get("/b") + get("/last", close=True) + get("/never"))
        assert transport.writes[-1].startswith(b"HTTP/1.1 400 ") and transport.closed

    asyncio.run(main())


def test_malformed_and_oversized_requests_close_the_connection() -> None:
    async def handler(req: Request) -> Response:
        raise AssertionError("not reached")

    async def main() -> None:
        proto, transport = connect(handler)
        proto.data_received(b"NONSENSE\r\n\r\n")
        assert transport.writes[0].startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert transport.closed

        proto, transport = connect(handler)
        huge = 3 * 1024 * 1024
        proto.data_received(
            f"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {huge}\r\n\r\n".encode() + b"x" * huge
        )
        assert transport.writes[0].startswith(b"HTTP/1.1 413 ")
        assert transport.closed

    asyncio.run(main())


def test_close_when_idle_waits_for_the_answer_in_progress() -> None:
    gate: list[asyncio.Future[None]] = []

    async def handler(req: Request) -> Response:
        if req.path == "/wait":
            gate.append(asyncio.get_running_loop().create_future())
            await gate[0]
        return Response(200, req.path.encode(), "text/plain")

    async def main() -> None:
        proto, transport = connect(handler)
        proto.data_received(get("/a"))
        proto.close_when_idle()
        assert transport.closed  # idle: at once

        proto, transport = connect(handler)
        proto.data_received(get("/wait") + get("/dropped"))
        proto.close_when_idle()
        assert not transport.closed
        gate[0].set_result(None)
        await settle()
        assert bodies(transport.writes) == ["/wait"]
        assert transport.closed

    asyncio.run(main())


def test_a_lost_connection_cancels_the_waiting_handler() -> None:
    outcome: list[str] = []

    async def handler(req: Request) -> Response:
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise
        return Response()

    async def main() -> None:
        proto, transport = connect(handler)
        proto.data_received(get("/wait"))
        await settle()
        proto.connection_lost(None)
        await settle()
        assert outcome == ["cancelled"]
        assert transport.writes == []

    asyncio.run(main())


def test_handlers_may_return_any_awaitable() -> None:
    def handler(req: Request) -> Awaitable[Response]:
        fut: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        fut.get_loop().call_soon(fut.set_result, Response(200, req.path.encode(), "text/plain"))
        return fut

    async def main() -> None:
        proto, transport = connect(handler)
        proto.data_received(get("/x") + get("/y"))
        await settle()
        assert bodies(transport.writes) == ["/x", "/y"]

    asyncio.run(main())


@pytest.mark.timeout(30)
def test_real_sockets_share_the_read_buffer() -> None:
    async def handler(req: Request) -> Response:
        if req.path == "/slow":
            await asyncio.sleep(0.01)
        return Response(200, req.body or req.path.encode(), "text/plain")

    def exchange(sock: socket.socket, data: bytes, answers: int) -> list[str]:
        sock.sendall(data)
        reader = sock.makefile("rb")
        out = []
        for _ in range(answers):
            assert reader.readline().startswith(b"HTTP/1.1 200 ")
            length = 0
            while (line := reader.readline()) != b"\r\n":
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            out.append(reader.read(length).decode())
        return out

    async def main() -> None:
        server, connections = await start_http(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        with (
            socket.create_connection(("127.0.0.1", port)) as one,
            socket.create_connection(("127.0.0.1", port)) as two,
        ):
            post = b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\n\r\n"
            first = await loop.run_in_executor(
                None, exchange, one, get("/a") + post + b"A" * 7 + get("/slow"), 3
            )
            second = await loop.run_in_executor(
                None, exchange, two, post + b"B" * 7 + get("/y") + get("/z"), 3
            )
            again = await loop.run_in_executor(None, exchange, one, post + b"B" * 7, 1)
            assert first == ["/a", "A" * 7, "/slow"]
            assert second == ["B" * 7, "/y", "/z"]
            assert again == ["B" * 7]
            assert len(connections) == 2
        server.close()
        await server.wait_closed()

    asyncio.run(main())
