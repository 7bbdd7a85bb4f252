"""Consumer helpers: receive, hand out, delete on success, release on failure, and keep
the leases of messages being worked on alive.

::

    with client.consume("orders") as messages:      # sync
        for msg in messages:
            handle(msg)

    async with aclient.consume("orders") as messages:  # asyncio
        async for msg in messages:
            await handle(msg)

    client.consume("orders", handle, limit=100)       # handler form
    await aclient.consume("orders", ahandle, limit=100)

What happens to a message, exactly
==================================

* It is **deleted** when it is known to have been handled: the loop asks for the next
  message (the body finished without raising), the ``with`` block ends without an
  exception, the handler returned, or :meth:`ack` was called. Deletes are batched (one
  ``delete_batch`` before the next receive, or when ``ack_batch`` are waiting, or at
  the latest after ``ack_delay_s``), and their leases are kept alive until then.
* It is **released** (visibility 0: delivered again at once, to anyone) when it is known
  to have failed: the ``with`` block ends with an exception, the handler raised, or
  :meth:`release` was called. Messages received but not yet handed out are released
  when the consumer stops.
* A plain ``for`` loop (no ``with``) that is left by ``break`` or by an exception cannot
  tell the two apart: the message being handled is released, never deleted — a
  redelivery, never a loss. Use ``with`` (or :meth:`ack`) when ``break`` should count
  as success.
* While messages are held (handed out, or waiting to be deleted) a background thread
  (task) extends their visibility: when less than half of ``visibility_timeout_s`` is
  left, to ``visibility_timeout_s`` from then. So a handler may run far longer than the
  visibility timeout without the message being delivered to someone else; if the
  consumer's process dies, the message comes back within ``visibility_timeout_s``.

A consumer stops when :meth:`stop` is called (after the receive in progress, at most
``wait_s``), after ``limit`` messages, or when its loop is left; stopping releases what
it has not handed out and deletes what was acked.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING

from conveyor import errors, limits
from conveyor.types import Message

if TYPE_CHECKING:
    from conveyor.client.aio import AsyncClient
    from conveyor.client.sync import Client

__all__ = ["AsyncConsumer", "Consumer", "Leases"]

log = logging.getLogger("conveyor.client.consumer")

batch_default = 10
wait_s_default = 2.0  # bounds how long stop() takes; an idle consumer polls every wait_s
visibility_timeout_s_default = 30
ack_batch_default = 100
ack_delay_s_default = 0.5
extend_interval_s_min = 0.05  # the extender never wakes more often than this


class Leases:
    """Receipt handles a consumer holds and when each lease ends (monotonic seconds).
    No I/O, no clock: times are passed in. Thread-safe."""

    def __init__(self, visibility_timeout_s: int) -> None:
        assert visibility_timeout_s >= 1
        self.visibility_timeout_s = visibility_timeout_s
        self.margin_s = visibility_timeout_s / 2
        self._ends: dict[str, float] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._ends)

    def add(self, handle: str, received_at: float) -> None:
        with self._lock:
            self._ends[handle] = received_at + self.visibility_timeout_s

    def discard(self, handle: str) -> None:
        with self._lock:
            self._ends.pop(handle, None)

    def due(self, now: float) -> list[str]:
        """Handles whose lease ends within the margin: to extend now."""
        with self._lock:
            return [h for h, end in self._ends.items() if end - now <= self.margin_s]

    def extended(self, handles: list[str], at: float) -> None:
        with self._lock:
            for h in handles:
                if h in self._ends:
                    self._ends[h] = at + self.visibility_timeout_s

    def next_due_s(self, now: float) -> float:
        """Seconds until a lease needs extending (a long time if none is held)."""
        with self._lock:
            if not self._ends:
                return self.margin_s
            return max(extend_interval_s_min, min(self._ends.values()) - self.margin_s - now)


def _check(batch: int, wait_s: float, visibility_timeout_s: int, limit: int | None) -> None:
    if not 1 <= batch <= limits.native_receive_messages_max:
        raise ValueError(f"batch must be from 1 to {limits.native_receive_messages_max}")
    if not 0 <= wait_s <= limits.receive_wait_s_max:
        raise ValueError(f"wait_s must be from 0 to {limits.receive_wait_s_max}")
    if not 1 <= visibility_timeout_s <= limits.visibility_timeout_s_max:
        raise ValueError("visibility_timeout_s must be at least 1 (leases are extended)")
    if limit is not None and limit < 1:
        raise ValueError("limit must be positive")


class _State:
    """What both consumers keep: the prefetched messages, the one handed out, acks to
    flush, counters."""

    def __init__(self, visibility_timeout_s: int, limit: int | None) -> None:
        self.leases = Leases(visibility_timeout_s)
        self.buffer: collections.deque[Message] = collections.deque()
        self.current: Message | None = None
        self.acks: list[str] = []
        self.first_ack_at = 0.0
        self.limit = limit
        self.handed_out = 0
        self.acked = 0  # deleted, or queued to be
        self.released = 0
        self.stopped = False

    def take_current(self) -> Message | None:
        msg, self.current = self.current, None
        return msg

    def ack(self, msg: Message, now: float) -> None:
        if not self.acks:
            self.first_ack_at = now
        self.acks.append(msg.receipt_handle)
        self.acked += 1

    def want_flush(self, now: float, ack_batch: int, ack_delay_s: float) -> bool:
        return bool(self.acks) and (
            not self.buffer or len(self.acks) >= ack_batch or now - self.first_ack_at >= ack_delay_s
        )

    def done(self) -> bool:
        return self.stopped or (self.limit is not None and self.handed_out >= self.limit)

    def want(self, batch: int) -> int:
        if self.limit is None:
            return batch
        return max(1, min(batch, self.limit - self.handed_out))


class _ConsumerBase:
    """What :class:`Consumer` and :class:`AsyncConsumer` share: settings, counters,
    ``stop`` and ``ack``; the twins differ only in how they wait."""

    def __init__(
        self,
        client: Client | AsyncClient,
        queue: str,
        *,
        batch: int = batch_default,
        wait_s: float = wait_s_default,
        visibility_timeout_s: int = visibility_timeout_s_default,
        limit: int | None = None,
        ack_batch: int = ack_batch_default,
        ack_delay_s: float = ack_delay_s_default,
    ) -> None:
        _check(batch, wait_s, visibility_timeout_s, limit)
        self.client = client
        self.queue = queue
        self.batch = batch
        self.wait_s = wait_s
        self.visibility_timeout_s = visibility_timeout_s
        self.ack_batch = max(1, min(ack_batch, limits.native_batch_entries_max))
        self.ack_delay_s = ack_delay_s
        self._s = _State(visibility_timeout_s, limit)
        self._in_with = False
        self._setup()

    def _setup(self) -> None:
        """The twin's own state (how it waits and extends leases)."""

    @property
    def acked(self) -> int:
        return self._s.acked

    @property
    def released(self) -> int:
        return self._s.released

    def stop(self) -> None:
        """Stop after the receive in progress (thread-safe)."""
        self._s.stopped = True

    # -- explicit outcomes
    def ack(self, msg: Message) -> None:
        """``msg`` was handled: delete it (batched)."""
        if self._s.current is msg:
            self._s.current = None
        self._s.ack(msg, time.monotonic())


class Consumer(_ConsumerBase):
    """Consumes ``queue`` through a :class:`~conveyor.client.Client` (see the module
    docstring for what happens to each message). Iterate it once."""

    client: Client

    def _setup(self) -> None:
        self._stop = threading.Event()
        self._extender: threading.Thread | None = None

    def release(self, msg: Message) -> None:
        """``msg`` failed: make it visible again now."""
        if self._s.current is msg:
            self._s.current = None
        self._s.leases.discard(msg.receipt_handle)
        self._s.released += 1
        try:
            self.client.change_visibility(self.queue, msg.receipt_handle, 0)
        except errors.ConveyorError as exc:
            log.warning("could not release %s: %r", msg.message_id, exc)

    # -- iteration
    def __enter__(self) -> Consumer:
        self._in_with = True
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        current = self._s.take_current()
        if current is not None:
            if exc_type is None:
                self.ack(current)
            else:
                self.release(current)
        self._in_with = False
        self.close()

    def __iter__(self) -> Iterator[Message]:
        s = self._s
        self._start_extender()
        try:
            while True:
                current = s.take_current()
                if current is not None:  # asked for the next one: the last one succeeded
                    self.ack(current)
                if s.want_flush(time.monotonic(), self.ack_batch, self.ack_delay_s):
                    self._flush_acks()
                if s.done():
                    return
                if not s.buffer:
                    received_at = time.monotonic()
                    msgs = self.client.receive(
                        self.queue,
                        s.want(self.batch),
                        wait_s=self.wait_s,
                        visibility_timeout_s=self.visibility_timeout_s,
                    )
                    for m in msgs:
                        s.leases.add(m.receipt_handle, received_at)
                    s.buffer.extend(msgs)
                    continue
                s.current = s.buffer.popleft()
                s.handed_out += 1
                yield s.current
        finally:
            if not self._in_with:
                current = s.take_current()
                if current is not None:  # left by break or an exception: not known good
                    self.release(current)
                self.close()

    def run(self, handler: Callable[[Message], object]) -> None:
        """Call ``handler`` for each message until stopped or ``limit``: delete the
        message when it returns, release it when it raises (the error is logged)."""
        self._in_with = True  # outcomes are explicit here
        try:
            for msg in self:
                try:
                    handler(msg)
                except Exception:
                    log.exception("handler failed on message %s; released", msg.message_id)
                    self.release(msg)
                else:
                    self.ack(msg)
        finally:
            self._in_with = False
            self.close()

    def close(self) -> None:
        """Release what was not handed out, delete what was acked, stop extending."""
        s = self._s
        s.stopped = True
        if s.buffer:
            handles = [m.receipt_handle for m in s.buffer]
            s.buffer.clear()
            for h in handles:
                s.leases.discard(h)
            s.released += len(handles)
            with contextlib.suppress(errors.ConveyorError):
                self.client.change_visibility_batch(self.queue, [(h, 0) for h in handles])
        self._flush_acks()
        self._stop.set()
        if self._extender is not None and self._extender is not threading.current_thread():
            self._extender.join()
            self._extender = None

    def _flush_acks(self) -> None:
        acks, self._s.acks = self._s.acks, []
        if not acks:
            return
        try:
            results = self.client.delete_batch(self.queue, acks)
        except errors.ConveyorError as exc:
            log.warning(
                "could not delete %d messages (they will be redelivered): %r", len(acks), exc
            )
            results = []
        for r in results:
            if r is not None:
                log.warning("could not delete a message (it will be redelivered): %r", r)
        for h in acks:
            self._s.leases.discard(h)

    # -- lease extension
    def _start_extender(self) -> None:
        if self._extender is None:
            self._stop.clear()
            self._extender = threading.Thread(
                target=self._extend_loop, name=f"conveyor-lease-{self.queue}", daemon=True
            )
            self._extender.start()

    def _extend_loop(self) -> None:
        leases = self._s.leases
        while not self._stop.wait(leases.next_due_s(time.monotonic())):
            due = leases.due(time.monotonic())
            if not due:
                continue
            at = time.monotonic()
            try:
                results = self.client.change_visibility_batch(
                    self.queue, [(h, leases.visibility_timeout_s) for h in due]
                )
            except errors.ConveyorError as exc:
                log.warning("could not extend %d leases: %r", len(due), exc)
                continue
            ok = [h for h, r in zip(due, results, strict=True) if r is None]
            leases.extended(ok, at)
            for h, r in zip(due, results, strict=True):
                if r is not None:  # deleted meanwhile, or the lease was lost
                    leases.discard(h)


class AsyncConsumer(_ConsumerBase):
    """Consumes ``queue`` through an :class:`~conveyor.client.AsyncClient`; the asyncio
    twin of :class:`Consumer`, with the same rules."""

    client: AsyncClient

    def _setup(self) -> None:
        self._extender: asyncio.Task[None] | None = None

    async def release(self, msg: Message) -> None:
        if self._s.current is msg:
            self._s.current = None
        self._s.leases.discard(msg.receipt_handle)
        self._s.released += 1
        try:
            await self.client.change_visibility(self.queue, msg.receipt_handle, 0)
        except errors.ConveyorError as exc:
            log.warning("could not release %s: %r", msg.message_id, exc)

    async def __aenter__(self) -> AsyncConsumer:
        self._in_with = True
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        current = self._s.take_current()
        if current is not None:
            if exc_type is None:
                self.ack(current)
            else:
                await self.release(current)
        self._in_with = False
        await self.close()

    async def __aiter__(self) -> AsyncIterator[Message]:
        s = self._s
        self._start_extender()
        try:
            while True:
                current = s.take_current()
                if current is not None:
                    self.ack(current)
                if s.want_flush(time.monotonic(), self.ack_batch, self.ack_delay_s):
                    await self._flush_acks()
                if s.done():
                    return
                if not s.buffer:
                    received_at = time.monotonic()
                    msgs = await self.client.receive(
                        self.queue,
                        s.want(self.batch),
                        wait_s=self.wait_s,
                        visibility_timeout_s=self.visibility_timeout_s,
                    )
                    for m in msgs:
                        s.leases.add(m.receipt_handle, received_at)
                    s.buffer.extend(msgs)
                    continue
                s.current = s.buffer.popleft()
                s.handed_out += 1
                yield s.current
        finally:
            if not self._in_with:
                current = s.take_current()
                if current is not None:
                    await self.release(current)
                await self.close()

    async def run(self, handler: Callable[[Message], Awaitable[object]]) -> None:
        """Await ``handler`` for each message until stopped or ``limit``: delete the
        message when it returns, release it when it raises (the error is logged)."""
        self._in_with = True
        try:
            async for msg in self:
                try:
                    await handler(msg)
                except Exception:
                    log.exception("handler failed on message %s; released", msg.message_id)
                    await self.release(msg)
                else:
                    self.ack(msg)
        finally:
            self._in_with = False
            await self.close()

    async def close(self) -> None:
        s = self._s
        s.stopped = True
        if s.buffer:
            handles = [m.receipt_handle for m in s.buffer]
            s.buffer.clear()
            for h in handles:
                s.leases.discard(h)
            s.released += len(handles)
            with contextlib.suppress(errors.ConveyorError):
                await self.client.change_visibility_batch(self.queue, [(h, 0) for h in handles])
        await self._flush_acks()
        task, self._extender = self._extender, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _flush_acks(self) -> None:
        acks, self._s.acks = self._s.acks, []
        if not acks:
            return
        try:
            results = await self.client.delete_batch(self.queue, acks)
        except errors.ConveyorError as exc:
            log.warning(
                "could not delete %d messages (they will be redelivered): %r", len(acks), exc
            )
            results = []
        for r in results:
            if r is not None:
                log.warning("could not delete a message (it will be redelivered): %r", r)
        for h in acks:
            self._s.leases.discard(h)

    def _start_extender(self) -> None:
        if self._extender is None:
            self._extender = asyncio.get_running_loop().create_task(self._extend_loop())

    async def _extend_loop(self) -> None:
        leases = self._s.leases
        while True:
            await asyncio.sleep(leases.next_due_s(time.monotonic()))
            due = leases.due(time.monotonic())
            if not due:
                continue
            at = time.monotonic()
            try:
                results = await self.client.change_visibility_batch(
                    self.queue, [(h, leases.visibility_timeout_s) for h in due]
                )
            except errors.ConveyorError as exc:
                log.warning("could not extend %d leases: %r", len(due), exc)
                continue
            leases.extended([h for h, r in zip(due, results, strict=True) if r is None], at)
            for h, r in zip(due, results, strict=True):
                if r is not None:
                    leases.discard(h)
