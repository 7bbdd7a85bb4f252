"""The native protocol's server side: an ``asyncio.Protocol`` over the sans-IO codec.

Each connection owns a :class:`~conveyor.protocol.native.NativeConnection`. Bytes from
the socket go into the codec; every whole request that comes out is answered against
the :class:`~conveyor.broker.aio.AsyncBroker` as soon as it is decoded, so a client may
pipeline up to ``max_inflight`` requests and they are answered as each finishes (a long
poll does not hold up the sends behind it). A request is answered without an
``asyncio.Task``: its coroutine is run by hand (:class:`_Answer`) up to the future it
waits on (an fsync, a long poll), and resumed by that future's done-callback — or, for
an fsync (:class:`~conveyor.broker.aio.DurableFuture`), at once by the fsync round that
made it durable, so the answer leaves in that same loop round. A task costs a loop round
more per wait (its first step finds the future already done) and its own bookkeeping;
one request at a time is bound by exactly such per-request costs (answering in the
fsync's round and fsyncing in the round after the request, not two later, made one
send at a time 1.15 times as fast: median of 12 pairs of runs against the previous
code).
Responses are encoded by the codec as they complete and written at once, or with one
``transport.write`` per burst when several requests are in flight: those of one read,
or of one loop round.

Backpressure: when the socket's write buffer is full (a client that does not read), the
connection stops reading until it drains; the codec bounds what a client may have in
flight. A protocol error (garbage, a frame over the limit, a duplicate request id) is
answered with a connection-level error frame and the connection is closed; it never
reaches the broker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, cast

import msgspec

from conveyor import __version__, errors
from conveyor.broker.aio import AsyncBroker, DurableFuture, durable, loop_syncer
from conveyor.protocol import native as n
from conveyor.protocol.native_errors import ProtocolError
from conveyor.server.wire import write_gathered
from conveyor.types import Message, MessageAttribute, QueueInfo, SendEntry, SendResult

log = logging.getLogger("conveyor.native")

SERVER_NAME = f"conveyor/{__version__}"


class _Answer:
    """One request being answered: its coroutine, stepped by hand the way a task steps
    it (``send`` until it yields the future it waits on, then again from that future's
    done-callback), minus the task's own loop round and bookkeeping. Outside any task,
    so a handler must not need one (``asyncio.timeout`` does: see
    ``NativeHandler.starts_by_hand``)."""

    __slots__ = ("_coro", "_on_done", "_waiting", "done")

    def __init__(self, coro: Coroutine[Any, Any, None], on_done: Callable[[_Answer], None]) -> None:
        self._coro = coro
        self._on_done = on_done
        self._waiting: asyncio.Future[Any] | None = None
        self.done = False

    def step(self, value: Any = None, exc: BaseException | None = None) -> None:
        try:
            waiting = self._coro.send(value) if exc is None else self._coro.throw(exc)
        except StopIteration:
            self._finish()
            return
        except asyncio.CancelledError:
            self._finish()
            return
        except Exception:
            log.exception("request failed")
            self._finish()
            return
        if getattr(waiting, "_asyncio_future_blocking", None):
            waiting._asyncio_future_blocking = False  # what a task does with a future
            self._waiting = waiting
            if type(waiting) is DurableFuture:
                waiting.direct = self._wake  # answered in the fsync's own loop round
            else:
                waiting.add_done_callback(self._wake)
        elif waiting is None:  # a bare yield (asyncio.sleep(0)): go on next round
            asyncio.get_running_loop().call_soon(self.step)
        else:
            self.step(exc=RuntimeError(f"a request handler yielded {waiting!r}"))

    def _wake(self, fut: asyncio.Future[Any]) -> None:
        self._waiting = None
        try:
            value = fut.result()
        except BaseException as exc:  # the coroutine gets it, as in a task
            self.step(exc=exc)
        else:
            self.step(value)

    def cancel(self) -> None:
        """As ``Task.cancel``: the future it waits on is cancelled, and the coroutine
        gets a CancelledError when it resumes."""
        waiting = self._waiting
        if waiting is not None:
            if type(waiting) is DurableFuture and waiting.direct is not None:
                waiting.direct = None  # a cancelled future resolves through callbacks
                waiting.add_done_callback(self._wake)
            waiting.cancel()

    def _finish(self) -> None:
        self.done = True
        self._on_done(self)


class _Sending:
    """A send answered by :meth:`NativeHandler.send_now`, waiting for its fsync: what
    the connection keeps of it to cancel it, as it keeps an :class:`_Answer`."""

    __slots__ = ("_proto", "fut")

    def __init__(self, proto: NativeProtocol) -> None:
        self._proto = proto
        self.fut: DurableFuture | None = None

    def answer(self, resp: n.Response | n.ErrorResponse) -> None:
        self.fut = None
        self._proto._write(resp)
        self._proto._answered(self)

    def cancel(self) -> None:
        """The connection is gone: drop the answer."""
        fut, self.fut = self.fut, None
        if fut is not None:
            fut.direct = None
            fut.cancel()
            self._proto._answered(self)


# --------------------------------------------------------------------------- conversions
def _attrs_in(attrs: dict[str, n.MessageAttribute]) -> dict[str, MessageAttribute] | None:
    if not attrs:
        return None
    return {
        k: MessageAttribute(a.data_type, a.string_value, a.binary_value) for k, a in attrs.items()
    }


def _attrs_out(attrs: dict[str, MessageAttribute]) -> dict[str, n.MessageAttribute]:
    return {
        k: n.MessageAttribute(
            data_type=a.data_type, string_value=a.string_value, binary_value=a.binary_value
        )
        for k, a in attrs.items()
    }


def message_out(m: Message) -> n.Message:
    return n.Message(
        message_id=m.message_id,
        body=m.body,
        receipt_handle=m.receipt_handle,
        attributes=_attrs_out(m.attributes) if m.attributes else {},
        system=m.system,
        sent_ms=m.sent_ms,
        receive_count=m.receive_count,
        first_receive_ms=m.first_receive_ms,
        group_id=m.group_id,
        dedup_id=m.dedup_id,
        sequence_number=m.sequence_number,
    )


def config_out(info: QueueInfo) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(info.config)
    return out


def stats_out(info: QueueInfo) -> dict[str, Any]:
    if info.stats is None:
        return {}
    out: dict[str, Any] = msgspec.to_builtins(info.stats)
    return out


def _failed(req: n.Request, exc: BaseException) -> n.ErrorResponse:
    """The answer to a request that raised: its error, or InternalError for a bug."""
    if isinstance(exc, errors.ConveyorError):
        return n.error_response(req.id, exc)
    log.error("request failed", exc_info=exc, extra={"op": req.OP})
    return n.error_response(req.id, errors.InternalError("internal error"))


def _entry_in(r: n.SendRequest | n.SendEntry) -> SendEntry:
    return SendEntry(
        body=r.body,
        attributes=_attrs_in(r.attributes),
        delay_s=r.delay_s,
        group_id=r.group_id,
        dedup_id=r.dedup_id,
        system=r.system or None,
    )


def _results(
    results: list[errors.ConveyorError | None],
) -> list[n.ErrorInfo | None]:
    return [None if r is None else n.error_info(r) for r in results]


# --------------------------------------------------------------------------- operations
class NativeHandler:
    """Runs one decoded request against the broker and returns its response frame."""

    def __init__(
        self, broker: AsyncBroker, on_request: Callable[[str, str], None] | None = None
    ) -> None:
        self.broker = broker
        self._on_request = on_request  # (op, "OK" or error code), e.g. for metrics
        self._ops: dict[type[n.Request], Callable[[Any], Awaitable[n.Response]]] = {
            n.CreateQueueRequest: self.create_queue,
            n.DeleteQueueRequest: self.delete_queue,
            n.PurgeQueueRequest: self.purge_queue,
            n.ListQueuesRequest: self.list_queues,
            n.GetQueueRequest: self.get_queue,
            n.SetQueueRequest: self.set_queue,
            n.TagQueueRequest: self.tag_queue,
            n.SendRequest: self.send,
            n.SendBatchRequest: self.send_batch,
            n.ReceiveRequest: self.receive,
            n.PeekRequest: self.peek,
            n.DeleteRequest: self.delete,
            n.DeleteBatchRequest: self.delete_batch,
            n.ChangeVisibilityRequest: self.change_visibility,
            n.ChangeVisibilityBatchRequest: self.change_visibility_batch,
            n.RedriveRequest: self.redrive,
            n.PingRequest: self.ping,
            n.ReplicateRequest: self.not_clustered,
            n.ClusterStatusRequest: self.not_clustered,
            n.DrainNodeRequest: self.not_clustered,
            n.MoveInRequest: self.not_clustered,
        }

    # a handler may be started outside any task (see the module docstring); one that
    # needs a task from the start (asyncio.timeout) says False
    starts_by_hand = True

    async def handle_from(self, req: n.Request, client: str) -> n.Response | n.ErrorResponse:
        """:meth:`handle` for a connection whose client named itself ``client``."""
        return await self.handle(req)

    async def handle(self, req: n.Request) -> n.Response | n.ErrorResponse:
        try:
            resp: n.Response | n.ErrorResponse = await self._ops[type(req)](req)
        except Exception as exc:
            resp = _failed(req, exc)
        self._count(req, resp)
        return resp

    def _count(self, req: n.Request, resp: n.Response | n.ErrorResponse) -> None:
        if self._on_request is not None:
            self._on_request(req.OP, resp.code if isinstance(resp, n.ErrorResponse) else "OK")

    # a send may be answered by send_now; a handler that routes sends elsewhere says False
    sends_now = True

    def send_now(
        self, r: n.SendRequest, answer: Callable[[n.Response | n.ErrorResponse], None]
    ) -> DurableFuture | None:
        """:meth:`handle` of a send, without coroutines: the message is appended now, and
        ``answer`` gets the response once it is durable, at once or from the fsync round
        of the future returned (cancel that future, with ``direct`` cleared, to drop the
        answer). One send at a time is bound by the server's Python per request, and the
        coroutines of :meth:`handle`, :meth:`send` and :meth:`AsyncBroker.send_batch`
        are a good part of it."""
        broker = self.broker.sync
        start = time.perf_counter()
        try:
            observe = broker._queue(r.queue).m.send_duration.observe
            # without attributes the request has every field of an entry, under the same
            # name and of the same type, as the wire entries of send_batch
            entry: Any = r if not r.attributes else _entry_in(r)  # duck-typed: no cast
            results, waits = broker.send_begin(r.queue, [entry])
            fut = durable(waits)
        except Exception as exc:
            self._answer_send(r, answer, None, exc)
            return None

        def done(fut: asyncio.Future[None] | None = None) -> None:
            exc = None if fut is None else fut.exception()
            if exc is None:
                observe(time.perf_counter() - start)
            self._answer_send(r, answer, results[0], exc)

        if fut is None or fut.done():
            done(fut)
            return None
        fut.direct = done
        return fut

    def _answer_send(
        self,
        r: n.SendRequest,
        answer: Callable[[n.Response | n.ErrorResponse], None],
        result: SendResult | errors.ConveyorError | None,
        exc: BaseException | None,
    ) -> None:
        if exc is None and isinstance(result, errors.ConveyorError):
            exc = result
        resp: n.Response | n.ErrorResponse
        if exc is not None:
            resp = _failed(r, exc)
        else:
            assert isinstance(result, SendResult)
            resp = n.SendResponse(
                id=r.id,
                message_id=result.message_id,
                sequence_number=result.sequence_number,
                duplicate=result.duplicate,
            )
        self._count(r, resp)
        answer(resp)

    async def create_queue(self, r: n.CreateQueueRequest) -> n.Response:
        info, created = await self.broker.ensure_queue(r.name, r.config, r.tags)
        return n.CreateQueueResponse(id=r.id, name=info.name, created=created)

    async def delete_queue(self, r: n.DeleteQueueRequest) -> n.Response:
        await self.broker.delete_queue(r.name)
        return n.DeleteQueueResponse(id=r.id)

    async def purge_queue(self, r: n.PurgeQueueRequest) -> n.Response:
        await self.broker.purge_queue(r.name)
        return n.PurgeQueueResponse(id=r.id)

    async def list_queues(self, r: n.ListQueuesRequest) -> n.Response:
        names = await self.broker.list_queues(r.prefix)
        if r.after is not None:
            names = [name for name in names if name > r.after]
        page = names[: r.limit]
        more = len(names) > r.limit
        return n.ListQueuesResponse(id=r.id, names=page, next=page[-1] if more else None)

    async def get_queue(self, r: n.GetQueueRequest) -> n.Response:
        info = await self.broker.get_queue(r.name)
        return n.GetQueueResponse(
            id=r.id,
            name=info.name,
            config=config_out(info),
            stats=stats_out(info),
            tags=info.tags,
            uid=info.uid,
            created_ms=info.created_ms,
            modified_ms=info.modified_ms,
        )

    async def set_queue(self, r: n.SetQueueRequest) -> n.Response:
        await self.broker.set_queue(r.name, r.config)
        return n.SetQueueResponse(id=r.id)

    async def tag_queue(self, r: n.TagQueueRequest) -> n.Response:
        await self.broker.tag_queue(r.name, r.tags, r.remove)
        return n.TagQueueResponse(id=r.id)

    async def send(self, r: n.SendRequest) -> n.Response:
        res = await self.broker.send(
            r.queue,
            r.body,
            attributes=_attrs_in(r.attributes),
            delay_s=r.delay_s,
            group_id=r.group_id,
            dedup_id=r.dedup_id,
            system=r.system or None,
        )
        return n.SendResponse(
            id=r.id,
            message_id=res.message_id,
            sequence_number=res.sequence_number,
            duplicate=res.duplicate,
        )

    async def send_batch(self, r: n.SendBatchRequest) -> n.Response:
        wire = r.entries
        if any(e.attributes for e in wire):
            entries = [_entry_in(e) for e in wire]
        else:
            # Without attributes a wire entry has every field the broker reads, under
            # the same name and of the same type ({} for None): it is taken as it is,
            # which saves building a second object per message.
            entries = cast("list[SendEntry]", wire)
        results = await self.broker.send_batch(r.queue, entries)
        return n.SendBatchResponse(
            id=r.id,
            results=[
                n.error_info(res)
                if isinstance(res, errors.ConveyorError)
                else n.SendResult(
                    message_id=res.message_id,
                    sequence_number=res.sequence_number,
                    duplicate=res.duplicate,
                )
                for res in results
            ],
        )

    async def receive(self, r: n.ReceiveRequest) -> n.Response:
        msgs = await self.broker.receive(
            r.queue,
            r.max_messages,
            visibility_timeout_s=r.visibility_timeout_s,
            wait_s=r.wait_s,
            attempt_id=r.attempt_id,
        )
        return n.ReceiveResponse(id=r.id, messages=[message_out(m) for m in msgs])

    async def peek(self, r: n.PeekRequest) -> n.Response:
        msgs = await self.broker.peek(r.queue, r.max_messages)
        return n.PeekResponse(id=r.id, messages=[message_out(m) for m in msgs])

    async def delete(self, r: n.DeleteRequest) -> n.Response:
        await self.broker.delete(r.queue, r.receipt_handle)
        return n.DeleteResponse(id=r.id)

    async def delete_batch(self, r: n.DeleteBatchRequest) -> n.Response:
        results = await self.broker.delete_batch(r.queue, r.receipt_handles)
        return n.DeleteBatchResponse(id=r.id, results=_results(results))

    async def change_visibility(self, r: n.ChangeVisibilityRequest) -> n.Response:
        await self.broker.change_visibility(r.queue, r.receipt_handle, r.timeout_s)
        return n.ChangeVisibilityResponse(id=r.id)

    async def change_visibility_batch(self, r: n.ChangeVisibilityBatchRequest) -> n.Response:
        results = await self.broker.change_visibility_batch(
            r.queue, [(e.receipt_handle, e.timeout_s) for e in r.entries]
        )
        return n.ChangeVisibilityBatchResponse(id=r.id, results=_results(results))

    async def redrive(self, r: n.RedriveRequest) -> n.Response:
        moved = await self.broker.redrive(r.source, r.destination, r.max_messages)
        return n.RedriveResponse(id=r.id, moved=moved)

    async def not_clustered(self, r: n.Request) -> n.Response:
        raise errors.UnsupportedOperation(f"{r.OP}: this node is not in cluster mode")

    async def ping(self, r: n.PingRequest) -> n.Response:
        return n.PingResponse(id=r.id)


# --------------------------------------------------------------------------- connections
class NativeProtocol(asyncio.Protocol):
    def __init__(
        self,
        handler: NativeHandler,
        connections: set[NativeProtocol],
        *,
        node_id: str,
        max_frame_bytes: int,
    ) -> None:
        self._handler = handler
        self._connections = connections
        self._node_id = node_id
        self._conn = n.NativeConnection("server", max_frame_bytes=max_frame_bytes)
        self._transport: asyncio.Transport | None = None
        self._syncer = loop_syncer(asyncio.get_running_loop())  # made by the loop
        # requests being answered
        self._pending: set[_Answer | _Sending | asyncio.Task[None]] = set()
        self._drained: asyncio.Future[None] | None = None
        self._out: list[bytes] = []  # encoded answers not yet written
        self._in_pump = False
        self._flush_scheduled = False
        self._closing = False
        self._peer_done = False
        self.peer = ""
        self.client = ""  # the name the client gave in its Hello

    # -- asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._connections.add(self)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        self._transport = None
        for answer in list(self._pending):
            answer.cancel()  # nobody is left to answer; parked long polls go away

    def data_received(self, data: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        self._conn.receive_data(data)
        self._pump_and_flush()

    def eof_received(self) -> bool:
        self._conn.receive_data(b"")
        self._peer_done = True
        self._pump_and_flush()
        return True  # keep our side open to answer what is in flight

    def _pump_and_flush(self) -> None:
        """Answer what arrived; the answers ready now go out in one write. The fsync of
        what the requests appended runs when they are all in (at once if nothing else
        waits in the loop: see ``_LoopSyncer.release``)."""
        syncer = self._syncer
        syncer.hold()
        self._in_pump = True
        try:
            self._pump()
        finally:
            self._in_pump = False
            self._flush()
            syncer.release()

    def pause_writing(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None:
            self._transport.resume_reading()

    # -- frames
    def _pump(self) -> None:
        conn = self._conn
        while True:
            try:
                event = conn.next_event()
            except ProtocolError as exc:
                log.info(
                    "protocol error; closing connection",
                    extra={"peer": self.peer, "code": exc.code, "error": exc.message},
                )
                self._write(n.error_response(None, exc))
                self._close()
                return
            if event is n.NEED_DATA:
                return
            if isinstance(event, n.Request):
                if self._closing:  # shutting down: nothing done, safe for the client to retry
                    self._write(
                        n.error_response(event.id, errors.Unavailable("the server is stopping"))
                    )
                    continue
                self._start(event)
            elif isinstance(event, n.Hello):
                self.client = event.client
                self._write(conn.welcome(server=SERVER_NAME, node_id=self._node_id))
            elif isinstance(event, n.ConnectionClosed):
                self._close_when_done()
                return
            else:  # an ErrorResponse without id: the client says why it leaves
                self._close()
                return

    def _start(self, req: n.Request) -> None:
        if type(req) is n.SendRequest and self._handler.sends_now:
            sending = _Sending(self)
            self._pending.add(sending)
            sending.fut = self._handler.send_now(req, sending.answer)
            return
        coro = self._answer(req)
        if self._handler.starts_by_hand:
            answer = _Answer(coro, self._answered)
            self._pending.add(answer)
            answer.step()
        else:
            task = asyncio.get_running_loop().create_task(coro)
            self._pending.add(task)
            task.add_done_callback(self._answered)

    def _answered(self, answer: _Answer | _Sending | asyncio.Task[None]) -> None:
        self._pending.discard(answer)
        if not self._pending:
            if self._drained is not None and not self._drained.done():
                self._drained.set_result(None)
            if self._peer_done or self._closing:
                self._close()

    async def _answer(self, req: n.Request) -> None:
        resp = await self._handler.handle_from(req, self.client)
        if not self._write(resp) and isinstance(resp, n.ReceiveResponse) and resp.messages:
            # the messages were leased but cannot reach the client: release them now
            # rather than leave them invisible for a whole visibility timeout
            assert isinstance(req, n.ReceiveRequest)
            await self._handler.broker.change_visibility_batch(
                req.queue, [(m.receipt_handle, 0) for m in resp.messages]
            )

    def _write(self, frame: n.Frame) -> bool:
        """Send a frame (with the others of this burst); False if it could not be
        (closed, or over the client's limit)."""
        if self._transport is None or self._transport.is_closing():
            return False
        try:
            data = self._conn.send(frame)
        except ProtocolError as exc:  # e.g. a response over the client's frame limit
            req_id = getattr(frame, "id", None)
            log.warning("cannot send response", extra={"peer": self.peer, "error": exc.message})
            if req_id is not None and not isinstance(frame, n.ErrorResponse):
                self._write(n.error_response(req_id, errors.InvalidParameterValue(exc.message)))
            return False
        self._out.append(data)
        if not self._in_pump and not self._flush_scheduled:
            if len(self._pending) <= 1:  # the only request in flight: no one to wait for
                self._flush()
            else:  # answers that end in one loop round (one fsync's worth) share a write
                self._flush_scheduled = True
                asyncio.get_running_loop().call_soon(self._flush)
        return True

    def _flush(self) -> None:
        self._flush_scheduled = False
        write_gathered(self._transport, self._out)

    def _close_when_done(self) -> None:
        if not self._pending:
            self._close()

    def _close(self) -> None:
        self._closing = True
        self._flush()
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    # -- shutdown
    def stop_reading(self) -> None:
        """Take no new requests (they are answered Unavailable, which a client may retry
        elsewhere or later); answer those in flight, then close."""
        self._closing = True
        self._close_when_done()

    async def drain(self) -> None:
        if self._pending:
            self._drained = asyncio.get_running_loop().create_future()
            await self._drained
        self._close()

    def abort(self) -> None:
        for answer in list(self._pending):
            answer.cancel()
        if self._transport is not None:
            self._transport.abort()


async def start_native(
    broker: AsyncBroker,
    host: str,
    port: int,
    *,
    node_id: str,
    max_frame_bytes: int,
    on_request: Callable[[str, str], None] | None = None,
    handler: NativeHandler | None = None,
) -> tuple[asyncio.Server, set[NativeProtocol]]:
    """Listen for native connections; ``handler`` replaces the single-node one."""
    if handler is None:
        handler = NativeHandler(broker, on_request)
    connections: set[NativeProtocol] = set()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: NativeProtocol(
            handler, connections, node_id=node_id, max_frame_bytes=max_frame_bytes
        ),
        host,
        port,
        reuse_address=True,
    )
    return server, connections
