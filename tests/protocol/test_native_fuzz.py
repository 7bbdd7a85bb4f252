"""Fuzzing against one rule: whatever bytes arrive, ``next_event`` returns events or raises
ProtocolError, nothing else, and never buffers more than one frame.

Inputs: raw garbage, well-framed garbage bodies, msgpack maps with real ops and random
fields, and valid sessions with seeded random mutations (``pytest --seed N`` replays one).
"""

from __future__ import annotations

import random
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from native_samples import frame, pair, requests, response_for, state

from conveyor.protocol import native as n

ENC = msgspec.msgpack.Encoder()
LIMIT = n.frame_bytes_min
MUTATION_SEEDS = range(300)
FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def open_pair(role: str) -> n.NativeConnection:
    """A connection of ``role`` after the handshake, with the smallest frame limit."""
    client, server = pair(server_frame_bytes=LIMIT, client_frame_bytes=LIMIT)
    if role == "client":
        for r in requests(1):  # responses to these ids are then in order
            client.send(r)
        return client
    return server


def fresh(role: str) -> n.NativeConnection:
    conn = n.NativeConnection(role, max_frame_bytes=LIMIT)  # type: ignore[arg-type]
    if role == "client":
        conn.send(conn.hello())
    return conn


def consume(conn: n.NativeConnection, pieces: list[bytes], eof: bool = True) -> list[n.Event]:
    """Feed ``pieces``; the only exception allowed out is ProtocolError, and after every
    NEED_DATA less than one whole frame (header included) may be buffered."""
    events: list[n.Event] = []
    try:
        for piece in pieces:
            conn.receive_data(piece)
            while True:
                event = conn.next_event()
                if event is n.NEED_DATA:
                    assert conn.buffered_bytes < 4 + LIMIT
                    break
                events.append(event)
                if isinstance(event, n.ConnectionClosed):
                    return events
        if eof:
            conn.receive_data(b"")
            while not isinstance(event := conn.next_event(), n.ConnectionClosed):
                assert event is not n.NEED_DATA
                events.append(event)
    except n.ProtocolError as exc:
        assert type(exc) is n.ProtocolError, exc  # never a LocalProtocolError on receive
        assert exc.code in n.PROTOCOL_ERROR_CODES
        assert conn.state is n.State.ERROR
        assert conn.buffered_bytes == 0
        # the server can always report it and close
        conn.send(n.error_response(None, exc))
        assert state(conn) is n.State.CLOSED
    return events


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for p in points:
        out.append(data[last:p])
        last = p
    out.append(data[last:])
    return [p for p in out if p]


ROLES = st.sampled_from(["client", "server"])
CUTS = st.lists(st.integers(min_value=0, max_value=1 << 16), max_size=8)


@FUZZ
@given(role=ROLES, data=st.binary(max_size=2048), cuts=CUTS, handshake=st.booleans())
def test_garbage(role: str, data: bytes, cuts: list[int], handshake: bool) -> None:
    conn = open_pair(role) if handshake else fresh(role)
    consume(conn, split(data, cuts))


@FUZZ
@given(role=ROLES, bodies=st.lists(st.binary(max_size=300), max_size=5), cuts=CUTS)
def test_framed_garbage(role: str, bodies: list[bytes], cuts: list[int]) -> None:
    data = b"".join(frame(b) for b in bodies)
    consume(open_pair(role), split(data, cuts))


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=True)
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
FIELD_NAMES = sorted(
    {f for cls in (*n.REQUEST_TYPES, *n.RESPONSE_TYPES) for f in cls.__struct_fields__}
    | {
        f
        for cls in (n.Hello, n.Welcome, n.ErrorResponse, n.Message, n.SendEntry)
        for f in cls.__struct_fields__
    }
)
OPS = [*n.OPS, "hello", "welcome", "error", "nope"]


@st.composite
def op_maps(draw: st.DrawFn) -> dict[str, Any]:
    """A map with a real op and a mix of real and random fields and values."""
    body: dict[str, Any] = {"op": draw(st.sampled_from(OPS))}
    if draw(st.booleans()):
        body["id"] = draw(st.integers(min_value=0, max_value=40) | VALUES)
    names = draw(st.lists(st.sampled_from(FIELD_NAMES) | st.text(max_size=6), max_size=6))
    for name in names:
        body[name] = draw(VALUES)
    return body


@settings(FUZZ, max_examples=150)
@given(role=ROLES, bodies=st.lists(op_maps(), min_size=1, max_size=3), handshake=st.booleans())
def test_maps_with_real_ops(role: str, bodies: list[dict[str, Any]], handshake: bool) -> None:
    conn = open_pair(role) if handshake else fresh(role)
    data = b"".join(frame(ENC.encode(b)) for b in bodies)
    consume(conn, [data])


@FUZZ
@given(
    role=ROLES, length=st.integers(min_value=0, max_value=2**32 - 1), tail=st.binary(max_size=64)
)
def test_length_prefixes(role: str, length: int, tail: bytes) -> None:
    conn = open_pair(role)
    consume(conn, [length.to_bytes(4, "big"), tail], eof=False)
    if length > LIMIT:
        assert conn.state is n.State.CLOSED  # refused before any body byte arrived


# --- mutations of valid sessions ------------------------------------------------------------
def valid_streams() -> dict[str, bytes]:
    """What a server reads (Hello, every request) and what a client reads (Welcome, the
    responses in reverse order, the first one an error)."""
    client = n.NativeConnection("client", max_frame_bytes=LIMIT)
    c2s = bytearray(client.send(client.hello(client="fuzz", token="t")))
    reqs = requests(1)
    s2c = bytearray(frame(ENC.encode(n.Welcome(version=1, max_frame_bytes=LIMIT))))
    for r in reqs:
        c2s += frame(ENC.encode(r))
    for r in reversed(reqs[1:]):
        s2c += frame(ENC.encode(response_for(r)))
    s2c += frame(ENC.encode(n.ErrorResponse(id=reqs[0].id, code="InternalError")))
    return {"server": bytes(c2s), "client": bytes(s2c)}


STREAMS = valid_streams()


def mutate(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        if not buf:
            break
        i = rng.randrange(len(buf))
        choice = rng.randrange(6)
        if choice == 0:
            buf[i] ^= 1 << rng.randrange(8)
        elif choice == 1:
            buf[i] = rng.randrange(256)
        elif choice == 2:
            del buf[i : i + rng.randint(1, 8)]
        elif choice == 3:
            buf[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif choice == 4:
            buf[i] = rng.choice((0x00, 0x7F, 0x80, 0xC0, 0xC1, 0xC4, 0xD9, 0xDC, 0xDE, 0xFF))
        else:
            del buf[i:]
    return bytes(buf)


def test_mutated_sessions(seed_option: int | None) -> None:
    seeds = [seed_option] if seed_option is not None else list(MUTATION_SEEDS)
    for seed in seeds:
        rng = random.Random(seed)
        for role in ("server", "client"):
            data = mutate(STREAMS[role], rng)
            conn = fresh(role)
            pieces = split(data, [rng.randrange(len(data) + 1) for _ in range(rng.randint(0, 10))])
            events = _consume_session(conn, pieces)
            assert isinstance(events, list), seed


def _consume_session(conn: n.NativeConnection, pieces: list[bytes]) -> list[n.Event]:
    """Like consume(), but a server welcomes a Hello and a client, once welcomed, sends
    the requests the responses answer, so a mutated stream gets past the handshake."""
    events: list[n.Event] = []
    try:
        for piece in pieces:
            conn.receive_data(piece)
            while (event := conn.next_event()) is not n.NEED_DATA:
                assert conn.buffered_bytes < 4 + LIMIT
                events.append(event)
                if isinstance(event, n.ConnectionClosed):
                    return events
                if isinstance(event, n.Hello):
                    conn.send(conn.welcome())
                elif isinstance(event, n.Welcome):
                    for r in requests(1):
                        conn.send(r)
            assert conn.buffered_bytes < 4 + LIMIT
        conn.receive_data(b"")
        events.extend(_rest(conn))
    except n.ProtocolError as exc:
        assert type(exc) is n.ProtocolError and exc.code in n.PROTOCOL_ERROR_CODES
        assert conn.state is n.State.ERROR and conn.buffered_bytes == 0
    return events


def _rest(conn: n.NativeConnection) -> list[n.Event]:
    events: list[n.Event] = []
    while not isinstance(event := conn.next_event(), n.ConnectionClosed):
        assert event is not n.NEED_DATA
        events.append(event)
    return events


def test_unmutated_sessions_are_valid() -> None:
    for role in ("server", "client"):
        events = _consume_session(fresh(role), [STREAMS[role]])
        assert len(events) == 1 + len(requests(1)), role
