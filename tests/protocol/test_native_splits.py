"""However the byte stream is cut, the same events come out: whole, one byte at a time,
and in random (seeded) pieces. ``pytest --seed N`` replays one seed."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from native_samples import MESSAGE, drain, requests, response_for

from conveyor.protocol import native as n

SEEDS = range(20)


def transcript() -> tuple[bytes, bytes, list[n.Event], list[n.Event]]:
    """Both directions of a session: handshake, every request (twice, pipelined), the
    responses in reverse order, a large frame, then the client hangs up."""
    client = n.NativeConnection("client")
    server = n.NativeConnection("server")
    c2s = bytearray()
    s2c = bytearray()
    client_events: list[n.Event] = []
    server_events: list[n.Event] = []

    def to_server(event: n.ClientMessage) -> None:
        data = client.send(event)
        c2s.extend(data)
        server.receive_data(data)
        server_events.extend(drain(server))

    def to_client(event: n.ServerMessage) -> None:
        data = server.send(event)
        s2c.extend(data)
        client.receive_data(data)
        client_events.extend(drain(client))

    to_server(client.hello(client="splits"))
    to_client(server.welcome(server="s", node_id="n"))
    reqs = requests(1) + requests(100)
    for r in reqs:
        to_server(r)
    for r in reversed(reqs):
        to_client(response_for(r))
    big = n.ReceiveRequest(id=500, queue="q")
    to_server(big)
    to_client(n.ReceiveResponse(id=500, messages=[MESSAGE] * 200))
    server.receive_data(b"")
    server_events.extend(drain(server))
    assert isinstance(server_events[-1], n.ConnectionClosed)
    return bytes(c2s), bytes(s2c), server_events, client_events


C2S, S2C, SERVER_EVENTS, CLIENT_EVENTS = transcript()


def feed(role: str, pieces: Iterator[bytes], eof: bool) -> list[n.Event]:
    """Feed ``pieces`` to a fresh connection of ``role`` that plays its side of the
    transcript as events arrive (a server welcomes the Hello; a client sends Hello, and
    its requests once welcomed), so every frame read is allowed in its state."""
    conn = n.NativeConnection(role)  # type: ignore[arg-type]
    if role == "client":
        conn.send(conn.hello(client="splits"))
    events: list[n.Event] = []
    for piece in pieces:
        conn.receive_data(piece)
        while (event := conn.next_event()) is not n.NEED_DATA:
            events.append(event)
            if isinstance(event, n.Hello):
                conn.send(conn.welcome(server="s", node_id="n"))
            elif isinstance(event, n.Welcome):
                for r in requests(1) + requests(100) + [n.ReceiveRequest(id=500, queue="q")]:
                    conn.send(r)
    if eof:
        conn.receive_data(b"")
        events.extend(drain(conn))
    return events


def whole(data: bytes) -> Iterator[bytes]:
    yield data


def bytewise(data: bytes) -> Iterator[bytes]:
    for i in range(len(data)):
        yield data[i : i + 1]


def random_pieces(data: bytes, rng: random.Random) -> Iterator[bytes]:
    i = 0
    while i < len(data):
        size = rng.choice((1, 2, 3, 4, 5, rng.randint(1, 64), rng.randint(1, 4096)))
        yield data[i : i + size]
        i += size


def seeds(seed_option: int | None) -> list[int]:
    return [seed_option] if seed_option is not None else list(SEEDS)


def test_server_whole_and_bytewise() -> None:
    assert feed("server", whole(C2S), eof=True) == SERVER_EVENTS
    assert feed("server", bytewise(C2S), eof=True) == SERVER_EVENTS


def test_client_whole_and_bytewise() -> None:
    assert feed("client", whole(S2C), eof=False) == CLIENT_EVENTS
    assert feed("client", bytewise(S2C), eof=False) == CLIENT_EVENTS


def test_random_splits(seed_option: int | None) -> None:
    for seed in seeds(seed_option):
        rng = random.Random(seed)
        assert feed("server", random_pieces(C2S, rng), eof=True) == SERVER_EVENTS, seed
        assert feed("client", random_pieces(S2C, rng), eof=False) == CLIENT_EVENTS, seed


def test_memoryview_and_bytearray_pieces() -> None:
    pieces = (
        memoryview(p) if i % 2 else bytearray(p)
        for i, p in enumerate(random_pieces(C2S, random.Random(1)))
    )
    assert feed("server", pieces, eof=True) == SERVER_EVENTS  # type: ignore[arg-type]


@pytest.mark.parametrize("cut", [1, 3, 4, 5, 17])
def test_need_data_until_the_frame_is_whole(cut: int) -> None:
    conn = n.NativeConnection("server")
    data = C2S
    first_frame = 4 + int.from_bytes(data[:4], "big")
    conn.receive_data(data[:cut])
    assert conn.next_event() is n.NEED_DATA
    conn.receive_data(data[cut:first_frame])
    assert isinstance(conn.next_event(), n.Hello)
    assert conn.next_event() is n.NEED_DATA
