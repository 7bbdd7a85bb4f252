"""Errors the client raises on its own (the server's errors are :mod:`conveyor.errors`).

::

    ConveyorError
    ├── Unavailable (retriable)
    │   ├── ConnectFailed     no connection could be made; the request was never sent
    │   └── ConnectionLost    the connection broke with the request in flight: it may
    │                         or may not have been carried out
    ├── Timeout (retriable, also a TimeoutError)
    │                         no answer before the call's deadline: it may or may not
    │                         have been carried out
    └── ClientClosed          the client was closed

"Was it carried out?" is what decides whether a call is retried (see
:mod:`conveyor.client.retry`): after ConnectFailed always; after ConnectionLost only
when repeating the request is harmless; after Timeout never (the deadline is spent).
"""

from __future__ import annotations

from conveyor import errors

__all__ = ["ClientClosed", "ConnectFailed", "ConnectionLost", "Timeout"]


class ConnectFailed(errors.Unavailable):
    """Connecting (TCP connect and handshake) failed; no request was sent on it."""

    code = "ConnectFailed"


class ConnectionLost(errors.Unavailable):
    """The connection ended while the request was in flight; its outcome is unknown."""

    code = "ConnectionLost"


class Timeout(errors.ConveyorError, TimeoutError):
    """The call's deadline passed before an answer came; its outcome is unknown."""

    code = "Timeout"
    retriable = True
    sender_fault = False
    http_status = 504


class ClientClosed(errors.ConveyorError):
    """The client (or the helper) was closed; no request was sent."""

    code = "ClientClosed"
