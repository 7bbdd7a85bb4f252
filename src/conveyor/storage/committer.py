"""The shared committer: a few worker threads that fsync logs for callers that cannot
block.

Group commit in a :class:`~conveyor.storage.file_log.FileLog` needs no thread of its
own. A thread that calls ``wait_durable`` does the fsync itself when none is running
(the *leader*) and otherwise sleeps until the running one ends; one fsync then covers
every record appended before it started, however many threads wait for them. Only two
kinds of work have no thread to run on, and the committer runs them:

* ``on_durable(offset, callback)`` from an asyncio server, whose event loop must not
  block: the log asks the committer for a sync, and the worker that runs it calls the
  callbacks the sync satisfied;
* the background fsync of ``fsync="interval"``: the log schedules a sync
  ``fsync_interval_ms`` after the first write that is not yet synced.

One committer serves every log of a process (:func:`default_committer`), so a node with
thousands of partitions has at most ``bounds.committer_threads_max`` committer threads,
started only when work arrives and no worker is idle. A log is queued at most once at
a time (the log keeps the flag) and runs one sync at a time, so the workers give
parallelism across logs, never two fsyncs of one log.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from typing import Protocol

from conveyor.storage import bounds

log = logging.getLogger("conveyor.storage")


class Committable(Protocol):
    def run_commit(self, *, timer: bool) -> None:
        """Sync now, for the committer (``timer``: the interval timer fired). Must not
        raise; must not block for long except in fsync."""


class Committer:
    def __init__(
        self, threads_max: int = bounds.committer_threads_max, name: str = "conveyor-commit"
    ) -> None:
        if threads_max < 1:
            raise ValueError("a committer needs at least one thread")
        self._threads_max = threads_max
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        self._ready: deque[Committable] = deque()
        self._timers: list[tuple[float, int, Committable]] = []
        self._seq = itertools.count()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._closed = False
        self._local = threading.local()

    @property
    def threads(self) -> int:
        """Worker threads started so far."""
        with self._cond:
            return len(self._threads)

    def request(self, target: Committable) -> None:
        """Run ``target.run_commit(timer=False)`` on a worker as soon as one is free."""
        with self._cond:
            if self._closed:
                raise RuntimeError("committer closed")
            self._ready.append(target)
            # A worker asking again (a log with callbacks left after a round) runs it
            # itself next, without waking another thread, unless there is more to do.
            if not getattr(self._local, "worker", False) or len(self._ready) > 1:
                self._wake_locked()

    def schedule(self, target: Committable, delay_s: float) -> None:
        """Run ``target.run_commit(timer=True)`` on a worker ``delay_s`` from now."""
        with self._cond:
            if self._closed:
                raise RuntimeError("committer closed")
            due = time.monotonic() + delay_s
            heapq.heappush(self._timers, (due, next(self._seq), target))
            self._wake_locked()

    def close(self, timeout_s: float | None = None) -> None:
        """Run what is queued (not the timers), then stop the workers."""
        with self._cond:
            self._closed = True
            self._timers.clear()
            self._cond.notify_all()
            threads = list(self._threads)
        for t in threads:
            if t is not threading.current_thread():
                t.join(timeout_s)

    def _wake_locked(self) -> None:
        if self._idle == 0 and len(self._threads) < self._threads_max:
            t = threading.Thread(
                target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True
            )
            self._threads.append(t)
            t.start()
        else:
            self._cond.notify()

    def _work(self) -> None:
        self._local.worker = True
        cond = self._cond
        with cond:
            while True:
                if self._ready:
                    target = self._ready.popleft()
                    timer = False
                elif self._closed:
                    return
                elif self._timers and self._timers[0][0] <= time.monotonic():
                    target = heapq.heappop(self._timers)[2]
                    timer = True
                else:
                    wait_s = self._timers[0][0] - time.monotonic() if self._timers else None
                    self._idle += 1
                    cond.wait(wait_s)
                    self._idle -= 1
                    continue
                cond.release()
                try:
                    target.run_commit(timer=timer)
                except Exception:  # a bug in a log must not stop every other log's syncs
                    log.exception("commit failed")
                finally:
                    cond.acquire()


_default: Committer | None = None
_default_lock = threading.Lock()


def default_committer() -> Committer:
    """The process's shared committer, created on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Committer()
        return _default
