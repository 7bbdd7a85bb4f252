"""Producer helpers: batch sends by size and time, pipeline the batches, and give each
message a future of its :class:`~conveyor.types.SendResult`.

::

    with client.producer("orders", batch_size=100, linger_s=0.005) as producer:
        futures = [producer.send(f"order {i}") for i in range(10_000)]
    # leaving the block flushed and closed it: every future is resolved
    results = [f.result() for f in futures]

    async with aclient.producer("orders") as producer:
        futures = [producer.send(b"...") for _ in range(10_000)]
    results = [await f for f in futures]

A batch goes out when it holds ``batch_size`` messages or its first message has waited
``linger_s``; up to ``max_inflight_batches`` batches are in flight at once (more sends
wait, which is the backpressure). Each future resolves to the message's SendResult, or
to its error: a per-entry error from the server, or the batch's error (a lost connection
fails the batch's futures with ConnectionLost unless the batch could be retried safely —
the rule of :mod:`conveyor.client.retry`: only FIFO batches whose every entry carries a
``dedup_id``). :meth:`flush` waits until everything sent so far is resolved;
:meth:`close` flushes and stops.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from conveyor import errors, limits
from conveyor.client.errors import ClientClosed
from conveyor.types import MessageAttribute, SendEntry, SendResult

if TYPE_CHECKING:
    from conveyor.client.aio import AsyncClient
    from conveyor.client.sync import Client

__all__ = ["AsyncProducer", "Producer"]

batch_size_default = 100
linger_s_default = 0.005
max_inflight_batches_default = 4
max_inflight_batches_max = 256


def _check(batch_size: int, linger_s: float, max_inflight_batches: int) -> None:
    if not 1 <= batch_size <= limits.native_batch_entries_max:
        raise ValueError(f"batch_size must be from 1 to {limits.native_batch_entries_max}")
    if not 0 <= linger_s <= 60:
        raise ValueError("linger_s must be from 0 to 60")
    if not 1 <= max_inflight_batches <= max_inflight_batches_max:
        raise ValueError(f"max_inflight_batches must be from 1 to {max_inflight_batches_max}")


def _entry(
    body: bytes | str,
    attributes: Mapping[str, MessageAttribute] | None,
    delay_s: int | None,
    group_id: str | None,
    dedup_id: str | None,
) -> SendEntry:
    return SendEntry(
        body=body,
        attributes=dict(attributes) if attributes else None,
        delay_s=delay_s,
        group_id=group_id,
        dedup_id=dedup_id,
    )


class Producer:
    """Batches sends to ``queue`` through a :class:`~conveyor.client.Client`. Thread-safe:
    any thread may :meth:`send`; a background thread forms the batches and a pool of
    ``max_inflight_batches`` threads sends them on the client's shared connection."""

    def __init__(
        self,
        client: Client,
        queue: str,
        *,
        batch_size: int = batch_size_default,
        linger_s: float = linger_s_default,
        max_inflight_batches: int = max_inflight_batches_default,
    ) -> None:
        _check(batch_size, linger_s, max_inflight_batches)
        self.client = client
        self.queue = queue
        self.batch_size = batch_size
        self.linger_s = linger_s
        self._cond = threading.Condition()
        self._entries: list[SendEntry] = []
        self._futures: list[concurrent.futures.Future[SendResult]] = []
        self._first_at = 0.0
        self._flush_now = False
        self._closed = False
        self._unresolved = 0  # futures handed out and not yet resolved
        self._slots = threading.Semaphore(max_inflight_batches)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_inflight_batches, thread_name_prefix=f"conveyor-producer-{queue}"
        )
        self._batcher = threading.Thread(target=self._batch_loop, daemon=True)
        self._batcher.start()

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(
        self,
        body: bytes | str,
        *,
        attributes: Mapping[str, MessageAttribute] | None = None,
        delay_s: int | None = None,
        group_id: str | None = None,
        dedup_id: str | None = None,
    ) -> concurrent.futures.Future[SendResult]:
        """Queue one message; the future resolves once it is durable (or failed)."""
        fut: concurrent.futures.Future[SendResult] = concurrent.futures.Future()
        entry = _entry(body, attributes, delay_s, group_id, dedup_id)
        with self._cond:
            if self._closed:
                raise ClientClosed("the producer is closed")
            while len(self._entries) >= self.batch_size * 4:  # the batcher is behind
                self._cond.wait()
            if not self._entries:
                self._first_at = time.monotonic()
            self._entries.append(entry)
            self._futures.append(fut)
            self._unresolved += 1
            if len(self._entries) >= self.batch_size:
                self._cond.notify_all()
        return fut

    def flush(self) -> None:
        """Send what is queued now and wait until every future handed out is resolved."""
        with self._cond:
            self._flush_now = True
            self._cond.notify_all()
            while self._unresolved:
                self._cond.wait()

    def close(self) -> None:
        """Flush, then stop; further sends raise ClientClosed."""
        self.flush()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._batcher.join()
        self._pool.shutdown(wait=True)

    def _batch_loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._entries and (
                        len(self._entries) >= self.batch_size
                        or self._flush_now
                        or time.monotonic() - self._first_at >= self.linger_s
                    ):
                        break
                    if self._closed and not self._entries:
                        return
                    if not self._entries:
                        self._flush_now = False
                        self._cond.wait()
                    else:
                        self._cond.wait(self._first_at + self.linger_s - time.monotonic())
                entries = self._entries[: self.batch_size]
                futures = self._futures[: self.batch_size]
                del self._entries[: self.batch_size]
                del self._futures[: self.batch_size]
                if self._entries:
                    self._first_at = time.monotonic()
                self._cond.notify_all()
            self._slots.acquire()  # at most max_inflight_batches in flight
            self._pool.submit(self._send_batch, entries, futures)

    def _send_batch(
        self, entries: list[SendEntry], futures: list[concurrent.futures.Future[SendResult]]
    ) -> None:
        try:
            try:
                results = self.client.send_batch(self.queue, entries)
            except Exception as exc:
                for f in futures:
                    f.set_exception(exc)
            else:
                for f, r in zip(futures, results, strict=True):
                    if isinstance(r, errors.ConveyorError):
                        f.set_exception(r)
                    else:
                        f.set_result(r)
        finally:
            self._slots.release()
            with self._cond:
                self._unresolved -= len(futures)
                self._cond.notify_all()


class AsyncProducer:
    """Batches sends to ``queue`` through an :class:`~conveyor.client.AsyncClient`; the
    asyncio twin of :class:`Producer`. Use it from the client's event loop."""

    def __init__(
        self,
        client: AsyncClient,
        queue: str,
        *,
        batch_size: int = batch_size_default,
        linger_s: float = linger_s_default,
        max_inflight_batches: int = max_inflight_batches_default,
    ) -> None:
        _check(batch_size, linger_s, max_inflight_batches)
        self.client = client
        self.queue = queue
        self.batch_size = batch_size
        self.linger_s = linger_s
        self._entries: list[SendEntry] = []
        self._futures: list[asyncio.Future[SendResult]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._slots = asyncio.Semaphore(max_inflight_batches)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def __aenter__(self) -> AsyncProducer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def send(
        self,
        body: bytes | str,
        *,
        attributes: Mapping[str, MessageAttribute] | None = None,
        delay_s: int | None = None,
        group_id: str | None = None,
        dedup_id: str | None = None,
    ) -> asyncio.Future[SendResult]:
        """Queue one message; the future resolves once it is durable (or failed)."""
        if self._closed:
            raise ClientClosed("the producer is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[SendResult] = loop.create_future()
        self._entries.append(_entry(body, attributes, delay_s, group_id, dedup_id))
        self._futures.append(fut)
        if len(self._entries) >= self.batch_size:
            self._dispatch()
        elif self._timer is None:
            self._timer = loop.call_later(self.linger_s, self._dispatch)
        return fut

    def _dispatch(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._entries:
            entries = self._entries[: self.batch_size]
            futures = self._futures[: self.batch_size]
            del self._entries[: self.batch_size]
            del self._futures[: self.batch_size]
            task = asyncio.get_running_loop().create_task(self._send_batch(entries, futures))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send_batch(
        self, entries: list[SendEntry], futures: list[asyncio.Future[SendResult]]
    ) -> None:
        async with self._slots:
            try:
                results = await self.client.send_batch(self.queue, entries)
            except Exception as exc:
                for f in futures:
                    if not f.done():
                        f.set_exception(exc)
                return
        for f, r in zip(futures, results, strict=True):
            if f.done():
                continue
            if isinstance(r, errors.ConveyorError):
                f.set_exception(r)
            else:
                f.set_result(r)

    async def flush(self) -> None:
        """Send what is queued now and wait until every future handed out is resolved."""
        self._dispatch()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Flush, then stop; further sends raise ClientClosed."""
        await self.flush()
        self._closed = True
