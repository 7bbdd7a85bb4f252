"""The blocking client: :class:`Client`.

Why plain sockets and not an event loop in a thread
===================================================

Measured on the development machine (2-core AMD EPYC VM, Python 3.11, server on
127.0.0.1), one ping at a time:

* against a minimal ping server: a blocking socket doing ``sendall`` then ``recv``,
  ~72 µs per round trip; an asyncio.Protocol client on an event loop in a background
  thread (``run_coroutine_threadsafe(...).result()``), ~270 µs;
* against ``conveyor serve``: this :class:`Client`, ~160 µs; :class:`AsyncClient` on a
  background loop driven the same way, ~340 µs; :class:`AsyncClient` awaited on its own
  loop, ~220 µs.

The two thread hand-offs (wake the loop, wake the caller) cost more than the request.
So the sync client does its own I/O on the calling thread, and shares with the asyncio
client only the sans-IO parts (the codec, :mod:`.calls`, :mod:`.retry`).

Sharing one connection between threads
======================================

Requests from many threads are pipelined on one socket. A caller encodes its request and
registers a slot for its id (under the connection's state lock), writes the frame (under
a write lock, so frames never interleave), then waits for its slot. Whoever waits and
finds nobody reading becomes the reader: it reads the socket, feeds the codec and fills
the slots of every response it decodes (its own and other threads'), waking the others,
until its own answer is in; then it hands reading to the next waiter. A single thread
therefore reads its own answer with no thread switch at all, and a long poll in one
thread does not hold up a ping in another.

Deadlines are as in the asyncio client: ``timeout_s`` covers connect, attempts and
backoff, a long poll adds its wait; a request that timed out with nothing received on
the connection meanwhile closes the connection as dead.

System calls
============

After the handshake the socket is blocking and the waiting happens inside ``recv`` and
``send``: a request is one ``send``, its answer one ``recv``, two system calls a round
trip. The earlier non-blocking socket waited with ``poll`` before the ``recv`` (three),
and cost 15-30 µs more a round trip on loopback (measured here: a 1 KiB request and a
64-byte answer, blocking ``recv`` 80-86 µs, ``poll`` then ``recv`` 97-117 µs; one
durable send at a time through this client, +5 % msg/s with fsync and +15 % without,
medians of alternating pairs). A socket with a Python timeout would ``poll`` before
every call as well, and a selector adds its own bookkeeping. The waits are bounded by
the kernel: ``SO_RCVTIMEO`` is ``read_slice_s`` (shortened when a deadline is nearer,
set only when it changes, so a steady client pays nothing for it), ``SO_SNDTIMEO`` is
``write_timeout_s`` (a ``send`` that finds the buffer full waits for room that long, and
a server that stops reading fails the connection). A reader blocked in ``recv`` is
woken by a close from another thread: failing the connection shuts the socket down.
Nobody reads an idle connection, so a request written after a pause first looks for a
close by the server with one ``recv`` that does not wait (``MSG_DONTWAIT``,
``idle_check_s``): after a server restart the request goes to a new connection instead
of into the dead one.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from conveyor import errors
from conveyor.client import calls
from conveyor.client.aio import read_chunk_bytes
from conveyor.client.errors import ClientClosed, ConnectFailed, ConnectionLost, Timeout
from conveyor.client.retry import should_retry
from conveyor.protocol import native as n
from conveyor.types import BatchEntry, Message, MessageAttribute, QueueInfo, SendResult

if TYPE_CHECKING:
    from conveyor.client.consumer import Consumer
    from conveyor.client.producer import Producer

__all__ = ["Client"]

log = logging.getLogger("conveyor.client")
T = TypeVar("T")

_FINAL_REFUSALS = (errors.AccessDenied, errors.InvalidSecurity, n.ProtocolError)
# A connection that received nothing for this long is looked at (one recv that does
# not wait) before a request is written to it: an idle socket has no reader, so a close
# by the server is seen only then. Shorter than any server restart; a client sending
# steadily never pays the look.
idle_check_s = 0.05
# A reader blocked in recv wakes at least this often to look at its deadline.
read_slice_s = 1.0


def _set_timeval(sock: socket.socket, option: int, seconds: float) -> None:
    """SO_RCVTIMEO / SO_SNDTIMEO: how long one blocking recv / send may wait (0 would
    mean for ever, so at least a millisecond)."""
    usec = max(1000, int(seconds * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, option, struct.pack("ll", *divmod(usec, 1_000_000)))


class _Deadline(Exception):
    """The call's deadline passed (turned into Timeout by the caller)."""


class _Slot:
    __slots__ = ("done", "error", "response")

    def __init__(self) -> None:
        self.done = False
        self.response: n.Response | None = None
        self.error: BaseException | None = None


class _Connection:
    """One socket and its codec, shared by threads (see the module docstring)."""

    def __init__(
        self, sock: socket.socket, conn: n.NativeConnection, write_timeout_s: float
    ) -> None:
        self.sock = sock
        self.conn = conn
        self.write_timeout_s = write_timeout_s
        self.lock = threading.Lock()  # guards the codec, slots, reading, closed, waiters
        self.cond = threading.Condition(self.lock)
        self.waiters = 0  # threads in cond.wait (nobody to notify when 0)
        self.write_lock = threading.Lock()  # one frame written at a time
        self.slots: dict[int, _Slot] = {}
        self.reading = False  # a thread is the reader
        self.closed: BaseException | None = None
        self.last_rx = time.monotonic()
        sock.settimeout(None)  # blocking: waits happen inside recv and send
        self.read_timeout_s = read_slice_s  # SO_RCVTIMEO now (the reader changes it)
        _set_timeval(sock, socket.SO_RCVTIMEO, read_slice_s)
        _set_timeval(sock, socket.SO_SNDTIMEO, write_timeout_s)

    @classmethod
    def open(
        cls,
        host: str,
        port: int,
        timeout_s: float,
        hello_name: str,
        token: str | None,
        max_frame_bytes: int,
        write_timeout_s: float,
    ) -> _Connection:
        deadline = time.monotonic() + timeout_s
        try:
            sock = socket.create_connection((host, port), timeout=timeout_s)
        except OSError as exc:
            raise ConnectFailed(f"cannot connect to {host}:{port}: {exc}") from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = n.NativeConnection("client", max_frame_bytes=max_frame_bytes)
            sock.sendall(conn.send(conn.hello(client=hello_name, token=token)))
            while True:
                event = conn.next_event()
                if event is n.NEED_DATA:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise ConnectFailed(f"no handshake from {host}:{port} in {timeout_s} s")
                    sock.settimeout(remaining)
                    conn.receive_data(sock.recv(read_chunk_bytes))
                elif isinstance(event, n.Welcome):
                    break
                elif isinstance(event, n.ErrorResponse):
                    refusal = event.to_exception()
                    if isinstance(refusal, _FINAL_REFUSALS):
                        raise refusal
                    raise ConnectFailed(f"{host}:{port} refused the connection: {refusal}")
                else:
                    raise ConnectFailed(f"{host}:{port} closed the connection in the handshake")
        except BaseException as exc:
            sock.close()
            if isinstance(exc, OSError):
                raise ConnectFailed(f"handshake with {host}:{port} failed: {exc}") from exc
            if isinstance(exc, n.ProtocolError) and not isinstance(exc, _FINAL_REFUSALS):
                raise ConnectFailed(str(exc)) from exc
            raise
        return cls(sock, conn, write_timeout_s)

    @property
    def usable(self) -> bool:
        return self.closed is None

    def fail(self, exc: BaseException) -> None:
        with self.lock:
            self._fail_locked(exc)

    def _fail_locked(self, exc: BaseException) -> None:
        if self.closed is not None:
            return
        self.closed = exc
        lost: BaseException = (
            exc if isinstance(exc, ClientClosed) else ConnectionLost(f"connection lost: {exc}")
        )
        for slot in self.slots.values():
            if not slot.done:
                slot.error, slot.done = lost, True
        self.slots.clear()
        self._notify_locked()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        # The socket itself is closed by whoever holds no reference to it any more
        # (the reader may be inside recv on it).
        if not self.reading:
            self._close_socket()

    def _close_socket(self) -> None:
        self.sock.close()

    def _wait_locked(self, remaining: float) -> None:
        self.waiters += 1
        try:
            self.cond.wait(remaining)
        finally:
            self.waiters -= 1

    def _notify_locked(self) -> None:
        if self.waiters:
            self.cond.notify_all()

    # -- one request
    def request(self, req: n.Request, deadline: float, checked: bool = False) -> n.Response:
        with self.lock:
            if (
                not self.slots
                and not self.reading
                and self.closed is None
                and time.monotonic() - self.last_rx >= idle_check_s
            ):
                self._check_idle_locked()
            while self.closed is None and self.conn.inflight >= self.conn.max_inflight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _Deadline
                self._wait_locked(remaining)
            if self.closed is not None:
                raise ConnectFailed(
                    f"the connection closed before the request was sent: {self.closed}"
                )
            rid = self.conn.new_request_id()
            req.id = rid
            data = bytearray()
            self.conn.send_into(req, data, checked=checked)  # LocalProtocolError: not sent
            slot = _Slot()
            self.slots[rid] = slot
        try:
            with self.write_lock:
                self._send_all(data)
        except OSError as exc:
            self.fail(exc)
        return self._wait(slot, deadline)

    def _check_idle_locked(self) -> None:
        """Nothing is in flight and nobody reads, so a server that closed the connection
        meanwhile (a restart, a drain) went unnoticed. Look without waiting: if the
        close is there, the connection fails now and the request goes to a new one as
        never sent, instead of being written into a dead socket and failing with an
        unknown outcome (which a send does not retry)."""
        try:
            data = self.sock.recv(read_chunk_bytes, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except (OSError, ValueError) as exc:
            self._fail_locked(exc)
            return
        self.last_rx = time.monotonic()
        self._feed_locked(data)  # b"" (the close) or the server's goodbye fails it

    def _send_all(self, data: bytes | bytearray) -> None:
        """Write all of ``data`` (under the write lock). TimeoutError (an OSError) if it
        takes longer than ``write_timeout_s`` (a server that stopped reading): each
        ``send`` waits for room at most that long (``SO_SNDTIMEO``)."""
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent == len(data):
            return
        deadline = time.monotonic() + self.write_timeout_s
        with memoryview(data) as view:
            while sent < len(data):
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"could not write to the server in {self.write_timeout_s} s")
                try:
                    sent += self.sock.send(view[sent:])
                except BlockingIOError:
                    pass

    def _wait(self, slot: _Slot, deadline: float) -> n.Response:
        with self.lock:
            while not slot.done:
                if not self.reading and self.closed is None:
                    self.reading = True
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _Deadline
                self._wait_locked(remaining)
        if not slot.done:
            try:
                self._read_until(slot, deadline)
            finally:
                with self.lock:
                    self.reading = False
                    self._notify_locked()
                    if self.closed is not None:
                        self._close_socket()
        if slot.error is not None:
            raise slot.error
        assert slot.response is not None
        return slot.response

    def _read_until(self, slot: _Slot, deadline: float) -> None:
        """Read and dispatch responses until ``slot`` is filled (this thread is the
        reader). One ``recv`` waits at most ``read_slice_s`` (``SO_RCVTIMEO``, set only
        when it changes: shorter when the deadline is nearer, back after); a close by
        another thread (``shutdown``) wakes it."""
        sock = self.sock
        while not slot.done:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Deadline
            want = min(remaining, read_slice_s)
            try:
                if abs(want - self.read_timeout_s) > 0.01:  # within 10 ms of it: as good
                    _set_timeval(sock, socket.SO_RCVTIMEO, want)
                    self.read_timeout_s = want
                data = sock.recv(read_chunk_bytes)
            except BlockingIOError:
                continue  # the wait passed with nothing to read
            except (OSError, ValueError) as exc:
                self.fail(exc)
                return
            with self.lock:
                self.last_rx = time.monotonic()
                self._feed_locked(data)

    def _feed_locked(self, data: bytes) -> None:
        if self.closed is not None:
            return
        self.conn.receive_data(data)
        try:
            while (event := self.conn.next_event()) is not n.NEED_DATA:
                if isinstance(event, n.Response):
                    self._fill(event.id, event, None)
                elif isinstance(event, n.ErrorResponse):
                    if event.id is not None:
                        self._fill(event.id, None, event.to_exception())
                    else:
                        self._fail_locked(event.to_exception())
                        return
                else:  # ConnectionClosed (a Welcome cannot come twice: the codec refuses)
                    self._fail_locked(ConnectionResetError("the server closed the connection"))
                    return
        except n.ProtocolError as exc:
            if self.conn.state is n.State.ERROR and self.write_lock.acquire(timeout=1.0):
                try:
                    self._send_all(self.conn.send(n.error_response(None, exc)))
                except OSError:
                    pass
                finally:
                    self.write_lock.release()
            self._fail_locked(exc)
        self._notify_locked()

    def _fill(self, rid: int, response: n.Response | None, error: BaseException | None) -> None:
        slot = self.slots.pop(rid, None)
        if slot is not None:  # None: its caller timed out and left
            slot.response, slot.error, slot.done = response, error, True


class Client(calls.ClientOptions):
    """A blocking client of a Conveyor server's native protocol.

    ``Client("127.0.0.1:9325")`` or ``Client(host=..., port=...)``. Its methods mirror
    :class:`conveyor.Broker` and return the same types, so code written against the
    embedded broker runs against a server. Thread-safe: threads share one pipelined
    connection, made on first use and again after it drops. ``timeout_s`` bounds each
    call (connect, attempts and backoff; a long poll adds its wait),
    ``connect_timeout_s`` each connection attempt, ``retry`` how many attempts a call
    gets (the rule is in :mod:`conveyor.client.retry`).
    """

    def _setup(self) -> None:
        self._conn: _Connection | None = None
        self._lock = threading.Lock()  # one connect at a time

    def __repr__(self) -> str:
        return f"<Client {self.host}:{self.port}{' closed' if self._closed else ''}>"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection; calls in flight fail with ClientClosed."""
        with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.fail(ClientClosed("the client was closed"))

    # ------------------------------------------------------------------ connection
    def _connection(self, deadline: float) -> _Connection:
        conn = self._conn
        if conn is not None and conn.usable:
            return conn
        with self._lock:
            if self._closed:
                raise ClientClosed("the client is closed")
            conn = self._conn
            if conn is not None and conn.usable:
                return conn
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Deadline
            conn = _Connection.open(
                self.host,
                self.port,
                min(self.connect_timeout_s, remaining),
                self._client_name,
                self._token,
                self._max_frame_bytes,
                self.timeout_s,
            )
            self._conn = conn
            self.connections_made += 1
            return conn

    @property
    def peer_max_frame_bytes(self) -> int:
        c = self._conn
        return c.conn.peer_max_frame_bytes if c is not None else n.frame_bytes_min

    def _run(self, call: calls.Call[T]) -> T:
        deadline = time.monotonic() + self.timeout_s + call.wait_s
        attempt = 0
        while True:
            conn: _Connection | None = None
            started = time.monotonic()
            try:
                conn = self._connection(deadline)
                return call.convert(conn.request(call.request, deadline, call.checked))
            except _Deadline:
                if conn is not None and conn.last_rx < started:
                    log.warning(
                        "no answer from %s:%s; closing the connection", self.host, self.port
                    )
                    conn.fail(Timeout("no data from the server"))
                raise Timeout(
                    f"{call.request.OP} got no answer within {self.timeout_s + call.wait_s:.3g} s"
                ) from None
            except (errors.ConveyorError, n.ProtocolError) as exc:
                attempt += 1
                if (
                    self._closed
                    or attempt >= self.retry.attempts
                    or not should_retry(exc, call.safety)
                ):
                    raise
                delay = self.retry.backoff_s(attempt)
                if time.monotonic() + delay >= deadline:
                    raise
                log.debug("retrying %s after %r in %.3f s", call.request.OP, exc, delay)
                time.sleep(delay)

    def _ensure_connected(self) -> None:
        conn = self._conn
        if conn is not None and conn.usable:
            return
        try:
            self._connection(time.monotonic() + self.connect_timeout_s)
        except (errors.ConveyorError, n.ProtocolError, _Deadline):
            pass  # left for the call to meet (and retry)

    # ------------------------------------------------------------------ queues
    def ping(self) -> None:
        """One round trip to the server."""
        self._run(calls.ping())

    def cluster_status(self) -> dict[str, Any]:
        """Cluster mode: nodes, partitions, leaders, ISR and lag, as the server sees them."""
        return self._run(calls.cluster_status())

    def drain_node(self, node: str, *, cancel: bool = False) -> int:
        """Cluster mode: move every replica off ``node`` (``cancel``: stop). Returns how
        many replicas the node still holds; it may leave once that is 0."""
        return self._run(calls.drain_node(node, cancel))

    def create_queue(
        self,
        name: str,
        config: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> QueueInfo:
        """Create a queue; creating it again with identical attributes is a no-op."""
        self._run(calls.create_queue(name, config, tags))
        return calls.without_stats(self._run(calls.get_queue(name)))

    def get_queue(self, name: str) -> QueueInfo:
        return self._run(calls.get_queue(name))

    def list_queues(self, prefix: str = "") -> list[str]:
        names: list[str] = []
        after: str | None = None
        while True:
            page = self._run(calls.list_queues_page(prefix, after))
            names.extend(page.names)
            if page.next is None or not page.names:
                return names
            after = page.next

    def set_queue(self, name: str, changes: Mapping[str, Any]) -> QueueInfo:
        self._run(calls.set_queue(name, changes))
        return calls.without_stats(self._run(calls.get_queue(name)))

    def tag_queue(self, name: str, tags: Mapping[str, str], remove: Sequence[str] = ()) -> None:
        self._run(calls.tag_queue(name, tags, remove))

    def delete_queue(self, name: str) -> None:
        self._run(calls.delete_queue(name))

    def purge_queue(self, name: str) -> None:
        self._run(calls.purge_queue(name))

    # ------------------------------------------------------------------ messages
    def send(
        self,
        queue: str,
        body: bytes | str,
        *,
        attributes: Mapping[str, MessageAttribute] | None = None,
        delay_s: int | None = None,
        group_id: str | None = None,
        dedup_id: str | None = None,
        system: Mapping[str, str] | None = None,
    ) -> SendResult:
        """Send one message; returns once the server has made it durable."""
        return self._run(
            calls.send(
                queue,
                body,
                attributes=attributes,
                delay_s=delay_s,
                group_id=group_id,
                dedup_id=dedup_id,
                system=system,
            )
        )

    def send_batch(
        self, queue: str, entries: Sequence[BatchEntry]
    ) -> list[SendResult | errors.ConveyorError]:
        """Send many messages; a result or an error per entry, in order. Batches above
        the protocol's entry or frame limit are split into several requests."""
        wire = calls.wire_batch(entries)
        if not wire.entries:
            return self._run(calls.send_batch(queue, []))
        self._ensure_connected()
        parts = calls.send_batch_calls(queue, wire, self.peer_max_frame_bytes)
        if len(parts) == 1:
            return self._run(parts[0])
        out: list[SendResult | errors.ConveyorError] = []
        for part in parts:
            res = self._run(part)
            out.extend(res)
        return out

    def receive(
        self,
        queue: str,
        max_messages: int = 1,
        *,
        visibility_timeout_s: int | None = None,
        wait_s: float | None = None,
        attempt_id: str | None = None,
    ) -> list[Message]:
        """Receive up to ``max_messages``; with ``wait_s`` > 0, wait for one to arrive
        (``None``: the queue's receive wait time)."""
        return self._run(
            calls.receive(queue, max_messages, visibility_timeout_s, wait_s, attempt_id)
        )

    def peek(self, queue: str, max_messages: int = 10) -> list[Message]:
        return self._run(calls.peek(queue, max_messages))

    def delete(self, queue: str, receipt_handle: str) -> None:
        self._run(calls.delete(queue, receipt_handle))

    def delete_batch(
        self, queue: str, receipt_handles: Sequence[str]
    ) -> list[errors.ConveyorError | None]:
        parts = calls.chunks(receipt_handles)
        if len(parts) == 1:
            return self._run(calls.delete_batch(queue, parts[0]))
        out: list[errors.ConveyorError | None] = []
        for part in parts:
            res = self._run(calls.delete_batch(queue, part))
            out.extend(res)
        return out

    def change_visibility(self, queue: str, receipt_handle: str, timeout_s: int) -> None:
        self._run(calls.change_visibility(queue, receipt_handle, timeout_s))

    def change_visibility_batch(
        self, queue: str, entries: Sequence[tuple[str, int]]
    ) -> list[errors.ConveyorError | None]:
        out: list[errors.ConveyorError | None] = []
        for part in calls.chunks(entries):
            res = self._run(calls.change_visibility_batch(queue, part))
            out.extend(res)
        return out

    def redrive(
        self, source: str, destination: str | None = None, max_messages: int | None = None
    ) -> int:
        return self._run(calls.redrive(source, destination, max_messages))

    # ------------------------------------------------------------------ helpers
    def consume(
        self,
        queue: str,
        handler: Callable[[Message], object] | None = None,
        **options: Any,
    ) -> Consumer:
        """A :class:`~conveyor.client.consumer.Consumer` of ``queue``: iterate it, or
        pass ``handler`` to run it at once (until stopped or ``limit`` messages)."""
        from conveyor.client.consumer import Consumer

        consumer = Consumer(self, queue, **options)
        if handler is not None:
            consumer.run(handler)
        return consumer

    def producer(self, queue: str, **options: Any) -> Producer:
        """A :class:`~conveyor.client.producer.Producer` that batches sends to ``queue``."""
        from conveyor.client.producer import Producer

        return Producer(self, queue, **options)
