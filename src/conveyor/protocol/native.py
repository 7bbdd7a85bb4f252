"""Conveyor's native protocol: a sans-IO connection state machine (in the h11 style).

Bytes go in with :meth:`NativeConnection.receive_data` (``b""`` means end of stream),
decoded events come out of :meth:`NativeConnection.next_event`, and
:meth:`NativeConnection.send` turns an event into the bytes to write. No sockets, no
event loop, no clock: the asyncio server and the clients drive it.

Framing
=======

::

    +-------------------------+-------------------------------------------+
    | length: u32, big-endian | body: one msgpack map of ``length`` bytes |
    +-------------------------+-------------------------------------------+

``length`` counts the body only. Each side announces the largest body it accepts
(``max_frame_bytes`` in Hello and Welcome); a length prefix above the receiver's limit
is a :class:`ProtocolError` as soon as the 4 prefix bytes are seen, so the body is never
waited for. Before the handshake a side assumes the peer accepts
:data:`frame_bytes_min`.

The body's ``op`` names the message (:mod:`conveyor.protocol.native_messages`).

Connection states
=================

One table, :data:`TRANSITIONS`, holds every allowed step: (role, state, direction, kind
of frame) -> next state. Anything not in it is a :class:`ProtocolError` when received and
a :class:`LocalProtocolError` when sent (a refused send changes nothing). ``docs/
native-protocol.md`` prints the table (:func:`transitions_markdown`).

* ``IDLE`` — nothing exchanged yet. The client sends Hello first.
* ``HANDSHAKE`` — Hello sent / received. The server answers Welcome (-> ``OPEN``) or a
  connection-level ErrorResponse (-> ``CLOSED``).
* ``OPEN`` — requests and responses, pipelined: the client may have up to
  ``max_inflight`` requests in flight, and the server may answer them in any order.
* ``PEER_CLOSED`` (server) — the client ended its stream; the server may still answer
  requests in flight.
* ``CLOSED`` — finished: an end of stream, or a connection-level ErrorResponse sent or
  received. Nothing more is sent or received.
* ``ERROR`` — a ProtocolError was raised on receive. The only thing left to do is
  ``send(error_response(None, exc))`` (-> ``CLOSED``) and close the transport.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence
from typing import Any, Final, Literal, NoReturn, TypeAlias, cast

import msgspec

from conveyor.protocol import native_messages
from conveyor.protocol.native_errors import (
    DUPLICATE_REQUEST_ID,
    FRAME_TOO_LARGE,
    MALFORMED_FRAME,
    PROTOCOL_ERROR_CODES,
    TOO_MANY_INFLIGHT,
    TRUNCATED_FRAME,
    UNEXPECTED_MESSAGE,
    UNKNOWN_OPERATION,
    UNSUPPORTED_VERSION,
    LocalProtocolError,
    ProtocolError,
)
from conveyor.protocol.native_messages import *  # noqa: F403 - re-exported, see __all__
from conveyor.protocol.native_messages import (
    OPS,
    SUPPORTED_VERSIONS,
    ClientMessage,
    ErrorResponse,
    Hello,
    Request,
    Response,
    ServerMessage,
    Welcome,
    frame_bytes_default,
    frame_bytes_max,
    frame_bytes_min,
    inflight_requests_default,
    inflight_requests_max,
    request_id_max,
)

__all__ = [
    "NEED_DATA",
    "PROTOCOL_ERROR_CODES",
    "TRANSITIONS",
    "ConnectionClosed",
    "Direction",
    "Event",
    "Frame",
    "FrameKind",
    "LocalProtocolError",
    "NativeConnection",
    "NeedData",
    "ProtocolError",
    "Role",
    "Sentinel",
    "State",
    "frame_header_bytes",
    "transitions_markdown",
]
__all__ += native_messages.__all__

_HEADER: Final = struct.Struct(">I")
frame_header_bytes: Final = _HEADER.size
# Consumed bytes at the front of the receive buffer are dropped once they pass this
# (and always when the buffer is fully consumed), so a long pipeline of small frames
# neither copies the buffer per frame nor grows it without bound.
buffer_compact_bytes: Final = 64 * 1024

assert frame_header_bytes == 4
assert frame_bytes_max < 2 ** (8 * frame_header_bytes)


class Sentinel(enum.Enum):
    NEED_DATA = "NEED_DATA"


NEED_DATA: Final = Sentinel.NEED_DATA
"""Returned by ``next_event`` when no whole frame is buffered: feed more bytes."""
NeedData: TypeAlias = Literal[Sentinel.NEED_DATA]


class ConnectionClosed(msgspec.Struct, frozen=True):
    """The peer ended its stream (``receive_data(b"")``) at a frame boundary. Returned
    by ``next_event`` from then on. Never on the wire."""


Event: TypeAlias = ClientMessage | ServerMessage | ConnectionClosed
"""What ``next_event`` returns (besides NEED_DATA)."""
Frame: TypeAlias = Hello | Welcome | Request | Response | ErrorResponse
"""What ``send`` takes: any message (a request or response of any op)."""


class _FastEnum(enum.Enum):
    """Members hash by identity (in C): they are singletons, and the transition table is
    looked up with a tuple of four of them on every frame (Enum's own __hash__ is Python
    code)."""

    __hash__ = object.__hash__


class Role(_FastEnum):
    CLIENT = "client"
    SERVER = "server"


class State(_FastEnum):
    IDLE = "IDLE"
    HANDSHAKE = "HANDSHAKE"
    OPEN = "OPEN"
    PEER_CLOSED = "PEER_CLOSED"
    CLOSED = "CLOSED"
    ERROR = "ERROR"


class Direction(_FastEnum):
    SEND = "send"
    RECEIVE = "receive"


class FrameKind(_FastEnum):
    HELLO = "hello"
    WELCOME = "welcome"
    REQUEST = "request"
    RESPONSE = "response"  # including an ErrorResponse with a request id
    CLOSE_ERROR = "error (no id)"  # a connection-level ErrorResponse
    EOF = "end of stream"


_C, _S = Role.CLIENT, Role.SERVER
_SEND, _RECV = Direction.SEND, Direction.RECEIVE
_K = FrameKind
_St = State

TRANSITIONS: Final[dict[tuple[Role, State, Direction, FrameKind], State]] = {
    # client
    (_C, _St.IDLE, _SEND, _K.HELLO): _St.HANDSHAKE,
    (_C, _St.IDLE, _RECV, _K.CLOSE_ERROR): _St.CLOSED,
    (_C, _St.IDLE, _RECV, _K.EOF): _St.CLOSED,
    (_C, _St.HANDSHAKE, _RECV, _K.WELCOME): _St.OPEN,
    (_C, _St.HANDSHAKE, _RECV, _K.CLOSE_ERROR): _St.CLOSED,
    (_C, _St.HANDSHAKE, _RECV, _K.EOF): _St.CLOSED,
    (_C, _St.OPEN, _SEND, _K.REQUEST): _St.OPEN,
    (_C, _St.OPEN, _RECV, _K.RESPONSE): _St.OPEN,
    (_C, _St.OPEN, _RECV, _K.CLOSE_ERROR): _St.CLOSED,
    (_C, _St.OPEN, _RECV, _K.EOF): _St.CLOSED,
    (_C, _St.OPEN, _SEND, _K.CLOSE_ERROR): _St.CLOSED,
    (_C, _St.ERROR, _SEND, _K.CLOSE_ERROR): _St.CLOSED,
    # server
    (_S, _St.IDLE, _RECV, _K.HELLO): _St.HANDSHAKE,
    (_S, _St.IDLE, _SEND, _K.CLOSE_ERROR): _St.CLOSED,
    (_S, _St.IDLE, _RECV, _K.EOF): _St.CLOSED,
    (_S, _St.HANDSHAKE, _SEND, _K.WELCOME): _St.OPEN,
    (_S, _St.HANDSHAKE, _SEND, _K.CLOSE_ERROR): _St.CLOSED,
    (_S, _St.HANDSHAKE, _RECV, _K.CLOSE_ERROR): _St.CLOSED,
    (_S, _St.HANDSHAKE, _RECV, _K.EOF): _St.CLOSED,
    (_S, _St.OPEN, _RECV, _K.REQUEST): _St.OPEN,
    (_S, _St.OPEN, _SEND, _K.RESPONSE): _St.OPEN,
    (_S, _St.OPEN, _SEND, _K.CLOSE_ERROR): _St.CLOSED,
    (_S, _St.OPEN, _RECV, _K.CLOSE_ERROR): _St.CLOSED,
    (_S, _St.OPEN, _RECV, _K.EOF): _St.PEER_CLOSED,
    (_S, _St.PEER_CLOSED, _SEND, _K.RESPONSE): _St.PEER_CLOSED,
    (_S, _St.PEER_CLOSED, _SEND, _K.CLOSE_ERROR): _St.CLOSED,
    (_S, _St.ERROR, _SEND, _K.CLOSE_ERROR): _St.CLOSED,
}


def transitions_markdown() -> str:
    """The transition table as a Markdown table (printed in docs/native-protocol.md)."""
    lines = ["| role | state | direction | frame | next state |", "|---|---|---|---|---|"]
    for (role, state, direction, kind), new in TRANSITIONS.items():
        lines.append(
            f"| {role.value} | `{state.value}` | {direction.value} | {kind.value} | `{new.value}` |"
        )
    return "\n".join(lines) + "\n"


def _kind(message: Frame) -> FrameKind:
    if isinstance(message, Request):
        return FrameKind.REQUEST
    if isinstance(message, Response):
        return FrameKind.RESPONSE
    if isinstance(message, ErrorResponse):
        return FrameKind.CLOSE_ERROR if message.id is None else FrameKind.RESPONSE
    if isinstance(message, Hello):
        return FrameKind.HELLO
    if isinstance(message, Welcome):
        return FrameKind.WELCOME
    raise LocalProtocolError(UNEXPECTED_MESSAGE, f"{type(message).__name__} is not a frame")


class _OpOnly(msgspec.Struct):
    """Just enough of a body to tell an unknown ``op`` from a malformed frame."""

    op: str


def _no_extensions(code: int, data: memoryview) -> object:
    raise ValueError(f"msgpack extension type {code} is not used by this protocol")


# Created once: msgspec decoders hold no per-call state.
_DECODERS: Final[dict[Role, msgspec.msgpack.Decoder[Any]]] = {
    Role.SERVER: msgspec.msgpack.Decoder(ClientMessage, ext_hook=_no_extensions),
    Role.CLIENT: msgspec.msgpack.Decoder(ServerMessage, ext_hook=_no_extensions),
}
# What decoding garbage can raise: DecodeError/ValidationError, UnicodeDecodeError (a
# ValueError) for a bad UTF-8 string, ValueError from _no_extensions, RecursionError for
# deep nesting.
_DECODE_ERRORS: Final = (msgspec.MsgspecError, ValueError, RecursionError)
_OP_DECODER: Final = msgspec.msgpack.Decoder(_OpOnly)
_KNOWN_OPS: Final = {
    Role.SERVER: frozenset({"hello", "error", *OPS}),
    Role.CLIENT: frozenset({"welcome", "error", *OPS}),
}


def _check_limit(name: str, value: int, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer from {lo} to {hi}, got {value!r}")


class NativeConnection:
    """One end of one native-protocol connection.

    ``max_frame_bytes`` is the largest frame body this side accepts (announced to the
    peer in the handshake). ``max_inflight`` is, for a server, how many requests a
    client may have in flight (announced in Welcome); a client uses the smaller of its
    own and the server's.
    ``versions`` are the protocol versions this side speaks.

    With ``check_sends`` (the default for a client), :meth:`send` decodes each frame it
    encodes the way the peer will, and refuses (LocalProtocolError, nothing sent) what
    the peer would reject: a ``str`` body, 1001 batch entries, a request id above 2**32.
    msgspec does not check types when encoding, so without it such a mistake is only
    found by the peer, which closes the connection. A server builds its responses from
    the broker's typed results and skips the check by default (it costs about one
    decode per frame). A caller that has proved a frame well-typed itself (the clients'
    builders do so for their hot calls, :mod:`conveyor.client.calls`) passes
    ``checked=True`` to skip it for that frame.
    """

    def __init__(
        self,
        role: Role | Literal["client", "server"],
        *,
        max_frame_bytes: int = frame_bytes_default,
        max_inflight: int = inflight_requests_default,
        versions: Sequence[int] = SUPPORTED_VERSIONS,
        check_sends: bool | None = None,
    ) -> None:
        _check_limit("max_frame_bytes", max_frame_bytes, frame_bytes_min, frame_bytes_max)
        _check_limit("max_inflight", max_inflight, 1, inflight_requests_max)
        if not versions or not set(versions) <= set(SUPPORTED_VERSIONS):
            raise ValueError(f"versions must be some of {SUPPORTED_VERSIONS}, got {versions!r}")
        self.role: Final = Role(role)
        self.max_frame_bytes: Final = max_frame_bytes
        self.versions: Final = tuple(sorted(set(versions)))
        self._state = State.IDLE
        self._error: ProtocolError | None = None
        self._buf: bytes | bytearray = bytearray()  # bytes: taken over as received
        self._pos = 0  # bytes of _buf already consumed
        self._eof = False
        self._decoder = _DECODERS[self.role]
        peer_role = Role.SERVER if self.role is Role.CLIENT else Role.CLIENT
        check = self.role is Role.CLIENT if check_sends is None else check_sends
        self._send_checker = _DECODERS[peer_role] if check else None
        self._encoder = msgspec.msgpack.Encoder()
        self._inflight: dict[int, str] = {}  # request id -> op
        self._next_id = 0
        # a client lowers it to the server's (from Welcome) if that is smaller
        self.max_inflight = max_inflight
        self.peer_max_frame_bytes = frame_bytes_min  # until the handshake says
        self.version: int | None = None  # negotiated in the handshake
        self.peer_hello: Hello | None = None  # the server keeps the client's Hello
        self.peer_welcome: Welcome | None = None  # the client keeps the server's Welcome
        self._invariants()

    # ------------------------------------------------------------------ introspection
    @property
    def state(self) -> State:
        return self._state

    @property
    def inflight(self) -> int:
        """Requests sent (client) or received (server) and not yet answered."""
        return len(self._inflight)

    @property
    def buffered_bytes(self) -> int:
        """Bytes received and not yet returned as events. An I/O layer that stops calling
        ``next_event`` (backpressure) should stop reading once this passes
        ``max_frame_bytes``."""
        return len(self._buf) - self._pos

    def __repr__(self) -> str:
        return (
            f"<NativeConnection {self.role.value} {self._state.value} "
            f"v{self.version} inflight={len(self._inflight)}>"
        )

    # ------------------------------------------------------------------ handshake helpers
    def hello(self, *, client: str = "", token: str | None = None) -> Hello:
        """The Hello this client should send."""
        return Hello(
            versions=list(self.versions),
            client=client,
            token=token,
            max_frame_bytes=self.max_frame_bytes,
        )

    def welcome(self, *, server: str = "", node_id: str = "") -> Welcome:
        """The Welcome this server should send, once it has received a good Hello."""
        if self.role is not Role.SERVER or self._state is not State.HANDSHAKE:
            raise LocalProtocolError(UNEXPECTED_MESSAGE, "welcome() needs a received Hello")
        assert self.version is not None
        return Welcome(
            version=self.version,
            server=server,
            node_id=node_id,
            max_frame_bytes=self.max_frame_bytes,
            max_inflight=self.max_inflight,
        )

    def new_request_id(self) -> int:
        """A request id not in flight (ids count up and wrap at 2**32)."""
        assert len(self._inflight) <= request_id_max
        while True:
            rid = self._next_id
            self._next_id = 0 if rid == request_id_max else rid + 1
            if rid not in self._inflight:
                return rid

    # ------------------------------------------------------------------ receiving
    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Add received bytes; ``b""`` means the peer ended its stream.

        ``bytes`` that arrive while nothing is buffered (the usual case: a read that
        holds whole frames) are kept as they are and decoded in place; only a partial
        frame left at their end is copied (:meth:`_need_data`). That spares a copy of
        every frame and the regrowth of the buffer: about a fifth of the codec's cost
        of a 100-message receive. Other buffer types may be reused by the caller, so
        they are always copied."""
        if self._eof:
            if data:
                raise LocalProtocolError(UNEXPECTED_MESSAGE, "data received after end of stream")
            return
        if not data:
            self._eof = True
            return
        if self._state is State.ERROR or self._state is State.CLOSED:
            return  # nothing more will be parsed: do not buffer
        buf = self._buf
        if type(buf) is bytes:  # a partial frame left in received bytes: copy it now
            self._buf = bytearray(memoryview(buf)[self._pos :])
            self._pos = 0
        elif not buf and type(data) is bytes:
            self._buf = data  # nothing buffered: decoded in place
            return
        self._buf += data

    def next_event(self) -> Event | NeedData:
        """The next whole event, or NEED_DATA. Raises ProtocolError if the bytes break
        the protocol; the connection is then in ERROR for good."""
        if self._state is State.ERROR:
            assert self._error is not None
            raise self._error
        if self._state is State.CLOSED or self._state is State.PEER_CLOSED:
            return ConnectionClosed()
        buf = self._buf
        start = self._pos
        available = len(buf) - start
        if available < frame_header_bytes:
            if not self._eof:
                return self._need_data()
            if available:
                self._fail(TRUNCATED_FRAME, "the stream ended inside a frame header")
            self._transition(Direction.RECEIVE, FrameKind.EOF, "end of stream")
            return ConnectionClosed()
        (length,) = _HEADER.unpack_from(buf, start)
        if length > self.max_frame_bytes:
            self._fail(
                FRAME_TOO_LARGE,
                f"a frame of {length} bytes exceeds the limit of {self.max_frame_bytes}",
            )
        end = start + frame_header_bytes + length
        if len(buf) < end:
            if self._eof:
                self._fail(TRUNCATED_FRAME, "the stream ended inside a frame")
            return self._need_data()
        message = self._decode(start + frame_header_bytes, end)
        self._pos = end
        if end == len(buf):
            self._release_buffer()
        elif end >= buffer_compact_bytes and type(buf) is bytearray:
            del buf[:end]
            self._pos = 0
        self._on_receive(message)
        return message

    def _need_data(self) -> NeedData:
        """NEED_DATA; received bytes holding consumed frames and a partial one keep only
        the partial one (a copy of it), so the frames before it are not held on to."""
        if self._pos and type(self._buf) is bytes:
            self._buf = bytearray(memoryview(self._buf)[self._pos :])
            self._pos = 0
        return NEED_DATA

    def _decode(self, start: int, end: int) -> ClientMessage | ServerMessage:
        view = memoryview(self._buf)
        body = view[start:end]
        try:
            message: ClientMessage | ServerMessage = self._decoder.decode(body)
        except _DECODE_ERRORS as exc:
            code = MALFORMED_FRAME
            try:
                op = _OP_DECODER.decode(body).op
                if op not in _KNOWN_OPS[self.role]:
                    code = UNKNOWN_OPERATION
            except _DECODE_ERRORS:
                pass
            detail = str(exc)[:200]
            self._fail(code, detail if code == MALFORMED_FRAME else f"{detail} (unknown op)")
        finally:
            body.release()
            view.release()
        return message

    def _on_receive(self, message: ClientMessage | ServerMessage) -> None:
        kind = _kind(message)
        op = message.__struct_config__.tag
        new_state = TRANSITIONS.get((self.role, self._state, Direction.RECEIVE, kind))
        if new_state is None:
            self._fail(
                UNEXPECTED_MESSAGE, f"{op!r} cannot be received in state {self._state.value}"
            )
        if kind is FrameKind.REQUEST:
            rid = cast(Request, message).id
            if rid in self._inflight:
                self._fail(DUPLICATE_REQUEST_ID, f"request id {rid} is already in flight")
            if len(self._inflight) >= self.max_inflight:
                self._fail(TOO_MANY_INFLIGHT, f"more than {self.max_inflight} requests in flight")
            self._inflight[rid] = cast(str, op)
        elif kind is FrameKind.RESPONSE:
            rid = cast(Response, message).id  # or an ErrorResponse with an id
            sent_op = self._inflight.get(rid)
            if sent_op is None:
                self._fail(UNEXPECTED_MESSAGE, f"a response to request id {rid}, not in flight")
            if op != sent_op and op != "error":
                self._fail(
                    UNEXPECTED_MESSAGE, f"a {op!r} response to the {sent_op!r} request {rid}"
                )
            del self._inflight[rid]
        elif isinstance(message, Hello):
            common = set(message.versions) & set(self.versions)
            if not common:
                self._fail(
                    UNSUPPORTED_VERSION,
                    f"the client speaks versions {sorted(set(message.versions))}, "
                    f"this server {list(self.versions)}",
                )
            self.version = max(common)
            self.peer_max_frame_bytes = message.max_frame_bytes
            self.peer_hello = message
        elif isinstance(message, Welcome):
            if message.version not in self.versions:
                self._fail(
                    UNSUPPORTED_VERSION,
                    f"the server chose version {message.version}, not one of {list(self.versions)}",
                )
            self.version = message.version
            self.peer_max_frame_bytes = message.max_frame_bytes
            self.max_inflight = min(self.max_inflight, message.max_inflight)
            self.peer_welcome = message
        self._enter(new_state)

    def _fail(self, code: str, message: str) -> NoReturn:
        """Enter ERROR for good and raise."""
        self._error = ProtocolError(code, message)
        self._state = State.ERROR
        self._release_buffer()
        self._invariants()
        raise self._error

    def _release_buffer(self) -> None:
        self._buf = bytearray()
        self._pos = 0

    # ------------------------------------------------------------------ sending
    def send(self, event: Frame, *, checked: bool = False) -> bytes:
        """The bytes of one frame carrying ``event``. Raises LocalProtocolError, and
        changes nothing, if the protocol does not allow sending it now. ``checked``: the
        caller vouches that the peer accepts ``event``'s field types and bounds, so the
        ``check_sends`` decode is skipped (the frame limit is checked all the same)."""
        out = bytearray()
        self.send_into(event, out, checked=checked)
        return bytes(out)

    def send_into(self, event: Frame, out: bytearray, *, checked: bool = False) -> None:
        """Like :meth:`send`, but appends the frame to ``out`` (to gather many frames
        into one write). On LocalProtocolError ``out`` is left as it was."""
        kind = _kind(event)
        new_state = TRANSITIONS.get((self.role, self._state, Direction.SEND, kind))
        op = event.__struct_config__.tag
        if new_state is None:
            raise LocalProtocolError(
                UNEXPECTED_MESSAGE,
                f"a {self.role.value} cannot send {op!r} in state {self._state.value}",
            )
        rid = -1
        if kind is FrameKind.REQUEST:
            rid = cast(Request, event).id
            if rid in self._inflight:
                raise LocalProtocolError(DUPLICATE_REQUEST_ID, f"request id {rid} is in flight")
            if len(self._inflight) >= self.max_inflight:
                raise LocalProtocolError(
                    TOO_MANY_INFLIGHT,
                    f"{self.max_inflight} requests are in flight; wait for a response",
                )
        elif kind is FrameKind.RESPONSE:
            rid = cast(Response, event).id  # or an ErrorResponse with an id
            sent_op = self._inflight.get(rid)
            if sent_op is None:
                raise LocalProtocolError(UNEXPECTED_MESSAGE, f"request id {rid} is not in flight")
            if op != sent_op and op != "error":
                raise LocalProtocolError(
                    UNEXPECTED_MESSAGE, f"a {op!r} response to the {sent_op!r} request {rid}"
                )
        elif isinstance(event, Hello):
            if not set(event.versions) <= set(self.versions):
                raise LocalProtocolError(UNSUPPORTED_VERSION, "Hello offers a version not spoken")
            if event.max_frame_bytes != self.max_frame_bytes:
                raise LocalProtocolError(
                    UNEXPECTED_MESSAGE, "Hello must announce this connection's max_frame_bytes"
                )
        elif isinstance(event, Welcome) and (
            event.version != self.version
            or event.max_frame_bytes != self.max_frame_bytes
            or event.max_inflight != self.max_inflight
        ):
            raise LocalProtocolError(
                UNEXPECTED_MESSAGE,
                "Welcome must carry the negotiated version and this connection's limits "
                "(use NativeConnection.welcome())",
            )

        start = len(out)
        out += b"\0\0\0\0"
        try:
            self._encoder.encode_into(event, out, start + frame_header_bytes)
        except (TypeError, ValueError, OverflowError, msgspec.EncodeError) as exc:
            del out[start:]
            raise LocalProtocolError(MALFORMED_FRAME, f"cannot encode {op!r}: {exc}") from exc
        length = len(out) - start - frame_header_bytes
        if length > self.peer_max_frame_bytes:
            del out[start:]
            raise LocalProtocolError(
                FRAME_TOO_LARGE,
                f"a {op!r} frame of {length} bytes exceeds the peer's limit of "
                f"{self.peer_max_frame_bytes}",
            )
        if self._send_checker is not None and not checked:
            self._check_encoding(out, start, op)
        _HEADER.pack_into(out, start, length)

        # commit
        if kind is FrameKind.REQUEST:
            self._inflight[rid] = cast(str, op)
        elif kind is FrameKind.RESPONSE:
            del self._inflight[rid]
        self._enter(new_state)

    def _check_encoding(self, out: bytearray, start: int, op: object) -> None:
        assert self._send_checker is not None
        problem = None
        with memoryview(out) as view, view[start + frame_header_bytes :] as body:
            try:
                self._send_checker.decode(body)
            except _DECODE_ERRORS as exc:
                problem = str(exc)
        if problem is not None:
            del out[start:]
            raise LocalProtocolError(MALFORMED_FRAME, f"the peer would reject {op!r}: {problem}")

    # ------------------------------------------------------------------ checks
    def _transition(self, direction: Direction, kind: FrameKind, what: str) -> None:
        new_state = TRANSITIONS.get((self.role, self._state, direction, kind))
        if new_state is None:
            self._fail(UNEXPECTED_MESSAGE, f"{what} in state {self._state.value}")
        self._enter(new_state)

    def _enter(self, new_state: State) -> None:
        """Move to ``new_state`` (from a TRANSITIONS entry) and check the invariants;
        staying in a state (every request and response) checks only the cheap one."""
        if new_state is self._state:
            assert len(self._inflight) <= self.max_inflight
            return
        self._state = new_state
        if new_state is State.CLOSED:
            self._release_buffer()
        self._invariants()

    def _invariants(self) -> None:
        assert 0 <= self._pos <= len(self._buf)
        assert len(self._inflight) <= self.max_inflight
        assert self._state is not State.ERROR or self._error is not None
        if self._state in (State.OPEN, State.PEER_CLOSED):
            assert self.version in self.versions
        if self._state in (State.IDLE, State.HANDSHAKE):
            assert not self._inflight
        if self._state is State.CLOSED or self._state is State.ERROR:
            assert not self._buf
