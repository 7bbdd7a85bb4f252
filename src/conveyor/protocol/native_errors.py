"""Errors of the native protocol itself (not of the queue operations it carries).

::

    Exception
    └── ProtocolError           the peer broke the protocol; the connection is dead
        └── LocalProtocolError  we tried to send something the protocol forbids;
                                nothing was sent and the connection is unchanged

A :class:`ProtocolError` carries a ``code`` from :data:`PROTOCOL_ERROR_CODES`. The
server reports one to the client in a connection-level error frame (an
``ErrorResponse`` with no request id) and closes; the client rebuilds it with
``ErrorResponse.to_exception()``. These codes are disjoint from the codes of
:mod:`conveyor.errors`, which name failures of single requests.
"""

from __future__ import annotations

from conveyor import errors

__all__ = [
    "DUPLICATE_REQUEST_ID",
    "FRAME_TOO_LARGE",
    "LocalProtocolError",
    "MALFORMED_FRAME",
    "PROTOCOL_ERROR_CODES",
    "ProtocolError",
    "TOO_MANY_INFLIGHT",
    "TRUNCATED_FRAME",
    "UNEXPECTED_MESSAGE",
    "UNKNOWN_OPERATION",
    "UNSUPPORTED_VERSION",
]

FRAME_TOO_LARGE = "FrameTooLarge"  # a length prefix above the receiver's frame limit
MALFORMED_FRAME = "MalformedFrame"  # not msgpack, or wrong types, or missing fields
UNKNOWN_OPERATION = "UnknownOperation"  # an ``op`` this version does not have
UNEXPECTED_MESSAGE = "UnexpectedMessage"  # valid, but not allowed in this state
DUPLICATE_REQUEST_ID = "DuplicateRequestId"  # a request id already in flight
TOO_MANY_INFLIGHT = "TooManyInflight"  # more requests in flight than the server allows
UNSUPPORTED_VERSION = "UnsupportedVersion"  # no protocol version both sides speak
TRUNCATED_FRAME = "TruncatedFrame"  # the stream ended inside a frame

PROTOCOL_ERROR_CODES = frozenset(
    {
        FRAME_TOO_LARGE,
        MALFORMED_FRAME,
        UNKNOWN_OPERATION,
        UNEXPECTED_MESSAGE,
        DUPLICATE_REQUEST_ID,
        TOO_MANY_INFLIGHT,
        UNSUPPORTED_VERSION,
        TRUNCATED_FRAME,
    }
)
assert not PROTOCOL_ERROR_CODES & errors.ERRORS.keys(), "protocol codes must not shadow errors"


class ProtocolError(Exception):
    """The byte stream broke the native protocol. Not retriable on this connection."""

    def __init__(self, code: str, message: str = "") -> None:
        assert code in PROTOCOL_ERROR_CODES, code
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message or code

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r})"


class LocalProtocolError(ProtocolError):
    """This side asked to send something the protocol forbids. Nothing was sent, and the
    connection's state is exactly what it was before the call."""
