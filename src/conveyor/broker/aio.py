"""The embedded broker for asyncio code (and the core the server runs on).

:class:`AsyncBroker` has the methods of :class:`~conveyor.broker.Broker`, awaitable. The
hot operations (send, receive, delete, change visibility) never block the event loop:
they decide and commit under the queue's lock on the loop's thread (a memory operation
and one ``write``), then await durability through the log's ``on_durable`` callback,
which the committer thread resolves after its fsync. So one fsync answers every request
that arrived while the previous one ran, with no thread per request.

Who fsyncs: when the records a round of the event loop appended are few
(``bounds.loop_sync_bytes_max``), the loop fsyncs them itself a round later, or at the
end of the read that brought the request when nothing else waits in the loop
(:class:`_LoopSyncer`), which for one request at a time is cheaper and sooner than
waking a committer thread and being woken back by it (measured: ≈ 1.4 times the
requests a second, ≈ 40 % less server CPU per request). Larger rounds, and rounds that
would leave the loop less than half its time for requests, go to the committer, so
under load the loop goes on decoding and appending while the disk works.

A long poll parks a future on the queue (:class:`~conveyor.broker.broker.Parked`); a
send wakes one parked receiver per message that became visible, so ten thousand parked
receivers cost a future and a timer each, and no CPU until a message comes. Rare
operations (queue management, purge, redrive, dead-letter moves) run in a worker
thread.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence, Sized
from typing import Any, Protocol

from conveyor import errors
from conveyor.broker.broker import Broker, Parked, Pick, Waits, _Queue
from conveyor.storage import bounds
from conveyor.storage.file_log import FileLog
from conveyor.types import BatchEntry, Message, MessageAttribute, QueueInfo, SendEntry, SendResult


class _LoopWaker:
    """Runs callbacks from other threads on one event loop, with one wake-up of the loop
    per burst: an fsync round that makes a hundred requests durable writes the loop's
    self-pipe once, not a hundred times."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # weakly: the loop is this object's key in _wakers, which must not keep it alive
        self._loop = weakref.ref(loop)
        self.thread = threading.get_ident()
        self._lock = threading.Lock()
        self._pending: list[tuple[Callable[[BaseException | None], None], Any]] = []
        self._scheduled = False

    def call(self, fn: Callable[[BaseException | None], None], arg: Any) -> None:
        if threading.get_ident() == self.thread:
            fn(arg)
            return
        with self._lock:
            self._pending.append((fn, arg))
            if self._scheduled:
                return
            self._scheduled = True
        loop = self._loop()
        if loop is not None:
            loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            items, self._pending = self._pending, []
            self._scheduled = False
        for fn, arg in items:
            fn(arg)


_Done = Callable[[BaseException | None], None]


class _AnyThread(Protocol):
    """A callback for ``on_durable`` both on success (no argument) and on error."""

    def __call__(self, exc: BaseException | None = None) -> None: ...


_wakers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopWaker] = (
    weakref.WeakKeyDictionary()
)


def _waker(loop: asyncio.AbstractEventLoop) -> _LoopWaker:
    waker = _wakers.get(loop)
    if waker is None:
        waker = _wakers[loop] = _LoopWaker(loop)
    return waker


def _from_any_thread(waker: _LoopWaker, done: _Done) -> _AnyThread:
    """``done`` as a callback a committer thread may call: run on the loop."""

    def from_any_thread(exc: BaseException | None = None) -> None:
        waker.call(done, exc)

    return from_any_thread


class _LoopSyncer:
    """Small fsync rounds run by the event loop itself: the requests of one loop round
    share one fsync, run in the round that follows it. What the first round set off
    joins that fsync when its callback was scheduled before the first wait: a send wakes
    a parked long poll before it waits, so the poll's delivery (appended when it resumes,
    ahead of the fsync in the loop's queue) shares the send's fsync instead of waiting
    for one of its own.

    The loop does nothing else while it fsyncs, so it keeps to at most half its time
    in fsyncs: a round that comes sooner after the last one than that one took goes to
    the committer instead (under load, the loop goes on decoding while the disk works,
    as without this class)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending: dict[FileLog, list[tuple[int, _Done]]] = {}
        self._free_at = 0.0  # loop time from which an fsync keeps within half the time
        self._held = 0
        # the loop's queue of callbacks to run (asyncio's own loops have one; None for
        # another loop, which then always gets the fsync a round later)
        ready = getattr(loop, "_ready", None)
        self._ready: Sized | None = ready if isinstance(ready, Sized) else None

    def add(self, log: FileLog, offset: int, done: _Done) -> None:
        pending = self._pending
        if not pending and not self._held:
            self._loop.call_soon(self._run)
        waits = pending.get(log)
        if waits is None:
            waits = pending[log] = []
        waits.append((offset, done))

    def hold(self) -> None:
        """Called by a callback of the loop that may append (a connection reading its
        requests) before it starts: the fsync of what it appends is decided by
        :meth:`release`, when it is done."""
        self._held += 1

    def release(self) -> None:
        """The end of :meth:`hold`. When nothing else is left to run in this round of
        the loop, or scheduled for the next, no other request can share the fsync by
        waiting for it: it runs now, rather than a round later (a ``select`` and a round
        of the loop sooner, for one request at a time). Otherwise a round later, as
        always, so that it covers what the rest of this round appends."""
        self._held -= 1
        if self._held or not self._pending:
            return
        ready = self._ready
        if ready is not None and not len(ready):
            self._run()
        else:
            self._loop.call_soon(self._run)

    def _run(self) -> None:
        pending, self._pending = self._pending, {}
        for log, waits in pending.items():
            start = time.monotonic()
            inline = start >= self._free_at
            try:
                synced = inline and log.sync_if_small(bounds.loop_sync_bytes_max)
            except Exception as exc:  # the log failed or closed: so does every wait
                for _, done in waits:
                    done(exc)
                continue
            if inline:
                end = time.monotonic()
                self._free_at = end + (end - start)
            if synced:
                for _, done in waits:
                    done(None)
            else:  # too much for the loop, or a committer round is running: wait for it
                waker = _waker(self._loop)
                for offset, done in waits:
                    from_any_thread = _from_any_thread(waker, done)
                    log.on_durable(offset, from_any_thread, from_any_thread)


_syncers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopSyncer] = (
    weakref.WeakKeyDictionary()
)


def loop_syncer(loop: asyncio.AbstractEventLoop) -> _LoopSyncer:
    """The loop's fsync rounds (see :class:`_LoopSyncer`)."""
    syncer = _syncers.get(loop)
    if syncer is None:
        syncer = _syncers[loop] = _LoopSyncer(loop)
    return syncer


class DurableFuture(asyncio.Future[None]):
    """The future :func:`durable` returns. Besides done-callbacks (run a loop round
    later, as for any future) it takes one ``direct`` callback, run at once when the
    future resolves: the native server's request runner (``_Answer``) sets it, so an
    answer is written in the round whose fsync made it durable, not in the next one."""

    direct: Callable[[asyncio.Future[None]], None] | None = None


def durable(waits: Waits) -> DurableFuture | None:
    """A future that resolves when every (partition, offset) in ``waits`` is durable;
    ``None`` when they already are."""
    # already durable: a receive of messages sent a while ago waits for nothing (it
    # must not set off an fsync of the lease it wrote; see Broker.receive_begin)
    waits = [(part, off) for part, off in waits if off >= part.log.durable_offset]
    if not waits:
        return None
    loop = asyncio.get_running_loop()
    fut = DurableFuture(loop=loop)
    pending = [len(waits)]

    def done(exc: BaseException | None) -> None:
        if fut.done():
            return
        if exc is not None:
            fut.set_exception(exc)
        else:
            pending[0] -= 1
            if pending[0]:
                return
            fut.set_result(None)
        direct = fut.direct
        if direct is not None:
            fut.direct = None
            direct(fut)

    for part, off in waits:
        log = part.log
        if type(log) is FileLog and log.policy == "always":
            loop_syncer(loop).add(log, off, done)
        else:
            from_any_thread = _from_any_thread(_waker(loop), done)
            log.on_durable(off, from_any_thread, from_any_thread)
    if fut.done():
        return None if fut.exception() is None else fut
    return fut


async def wait_durable(waits: Waits) -> None:
    fut = durable(waits)
    if fut is not None:
        await fut


class AsyncBroker:
    def __init__(self, broker: Broker) -> None:
        self.sync = broker

    async def close(self) -> None:
        await asyncio.to_thread(self.sync.close)

    async def __aenter__(self) -> AsyncBroker:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ queues
    async def create_queue(
        self, name: str, config: dict[str, Any] | None = None, tags: dict[str, str] | None = None
    ) -> QueueInfo:
        return await asyncio.to_thread(self.sync.create_queue, name, config, tags)

    async def ensure_queue(
        self, name: str, config: dict[str, Any] | None = None, tags: dict[str, str] | None = None
    ) -> tuple[QueueInfo, bool]:
        return await asyncio.to_thread(self.sync.ensure_queue, name, config, tags)

    async def get_queue(self, name: str) -> QueueInfo:
        return self.sync.get_queue(name)  # memory only

    async def list_queues(self, prefix: str = "") -> list[str]:
        return self.sync.list_queues(prefix)

    async def set_queue(self, name: str, changes: dict[str, Any]) -> QueueInfo:
        return await asyncio.to_thread(self.sync.set_queue, name, changes)

    async def tag_queue(self, name: str, tags: dict[str, str], remove: Sequence[str] = ()) -> None:
        await asyncio.to_thread(self.sync.tag_queue, name, tags, remove)

    async def delete_queue(self, name: str) -> None:
        await asyncio.to_thread(self.sync.delete_queue, name)

    async def purge_queue(self, name: str) -> None:
        await asyncio.to_thread(self.sync.purge_queue, name)

    # ------------------------------------------------------------------ messages
    async def send(
        self,
        queue: str,
        body: bytes | str,
        *,
        attributes: dict[str, MessageAttribute] | None = None,
        delay_s: int | None = None,
        group_id: str | None = None,
        dedup_id: str | None = None,
        system: dict[str, str] | None = None,
    ) -> SendResult:
        entry = SendEntry(
            body=body,
            attributes=attributes,
            delay_s=delay_s,
            group_id=group_id,
            dedup_id=dedup_id,
            system=system,
        )
        result = (await self.send_batch(queue, [entry]))[0]
        if isinstance(result, errors.ConveyorError):
            raise result
        return result

    async def send_batch(
        self, queue: str, entries: Sequence[BatchEntry]
    ) -> list[SendResult | errors.ConveyorError]:
        start = time.perf_counter()
        observe = self.sync._queue(queue).m.send_duration.observe
        results, waits = self.sync.send_begin(queue, entries)
        await wait_durable(waits)
        observe(time.perf_counter() - start)
        return results

    async def receive(
        self,
        queue: str,
        max_messages: int = 1,
        *,
        visibility_timeout_s: int | None = None,
        wait_s: float | None = None,
        attempt_id: str | None = None,
    ) -> list[Message]:
        broker = self.sync
        q = broker._queue(queue)
        vis_ms, wait = broker.receive_args(q, max_messages, visibility_timeout_s, wait_s)
        deadline = time.monotonic() + wait
        loop = asyncio.get_running_loop()
        while True:
            pick = broker.receive_begin(q, max_messages, vis_ms, attempt_id)
            msgs = await self._finish_receive(q, pick)
            if msgs:
                return msgs
            if pick.moves:
                continue  # everything picked went to the dead-letter queue: look again
            with broker._locked(q):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or broker._closed or broker._polls_ended:
                    return []
                if q.version != pick.version:
                    continue
                park_s = broker._park_time(q, remaining)
                parked = Parked(loop)
                q.parked.append(parked)
            # not asyncio.wait_for: on 3.11 it can swallow a cancellation that races
            # with the wake-up, and the cancelled receiver would take the message
            timer = loop.call_later(park_s, parked.expire)
            try:
                await parked.future
            finally:
                timer.cancel()
                with q.lock:
                    try:
                        q.parked.remove(parked)
                    except ValueError:
                        pass  # wake() took it

    async def _finish_receive(self, q: _Queue, pick: Pick) -> list[Message]:
        await wait_durable(pick.waits)
        for part, offsets in pick.moves:
            await asyncio.to_thread(self.sync._complete_moves, q, part, offsets)
        return self.sync.receive_finish(q, pick)

    async def peek(self, queue: str, max_messages: int = 10) -> list[Message]:
        return self.sync.peek(queue, max_messages)  # memory and page-cache reads only

    async def delete(self, queue: str, receipt_handle: str) -> None:
        result = (await self.delete_batch(queue, [receipt_handle]))[0]
        if result is not None:
            raise result

    async def delete_batch(
        self, queue: str, receipt_handles: Sequence[str]
    ) -> list[errors.ConveyorError | None]:
        results, waits = self.sync.delete_begin(queue, receipt_handles)
        await wait_durable(waits)
        return results

    async def change_visibility(self, queue: str, receipt_handle: str, timeout_s: int) -> None:
        result = (await self.change_visibility_batch(queue, [(receipt_handle, timeout_s)]))[0]
        if result is not None:
            raise result

    async def change_visibility_batch(
        self, queue: str, entries: Sequence[tuple[str, int]]
    ) -> list[errors.ConveyorError | None]:
        results, waits = self.sync.change_visibility_begin(queue, entries)
        await wait_durable(waits)
        return results

    async def redrive(
        self, source: str, destination: str | None = None, max_messages: int | None = None
    ) -> int:
        return await asyncio.to_thread(self.sync.redrive, source, destination, max_messages)


async def open_async(data_dir: str | os.PathLike[str] | None, **options: Any) -> AsyncBroker:
    """Open an embedded broker for asyncio code."""
    broker = await asyncio.to_thread(Broker, data_dir, **options)
    return AsyncBroker(broker)
