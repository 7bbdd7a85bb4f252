"""SQS message move tasks (StartMessageMoveTask and friends) on top of ``broker.redrive``.

A task moves the visible messages of a dead-letter queue back to the queues they came
from (or to a ``DestinationArn``), at most ``MaxNumberOfMessagesPerSecond`` a second. It
runs as an asyncio task that calls the broker's redrive in slices of one second's worth
of messages; each slice is durable when the broker returns (the broker writes a move
intent first, so a crash in the middle of a slice finishes the slice on restart).

The task *records* live in this process only: after a restart ListMessageMoveTasks no
longer lists them and an unfinished task does not resume (its messages already moved
stay moved; the rest stay in the dead-letter queue). One active task per source queue,
as in SQS; the last :data:`tasks_kept_per_queue_max` tasks of each queue are listed.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from conveyor import errors
from conveyor.protocol.sqs.errors import SqsError

log = logging.getLogger("conveyor.sqs")

tasks_kept_per_queue_max = 10
slice_messages_max = 1000  # messages per redrive call when no rate is given

# (source, destination or None, max messages) -> messages moved
Redrive = Callable[[str, str | None, int], Awaitable[int]]


@dataclass(slots=True)
class MoveTask:
    handle: str
    source: str  # broker queue names
    destination: str | None
    source_arn: str
    destination_arn: str | None
    rate_per_s: int | None
    to_move: int
    started_ms: int
    status: str = "RUNNING"  # RUNNING | CANCELLING | CANCELLED | COMPLETED | FAILED
    moved: int = 0
    failure: str | None = None
    runner: asyncio.Task[None] | None = field(default=None, repr=False)

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Status": self.status,
            "SourceArn": self.source_arn,
            "ApproximateNumberOfMessagesMoved": self.moved,
            "ApproximateNumberOfMessagesToMove": self.to_move,
            "StartedTimestamp": self.started_ms,
        }
        if self.status == "RUNNING":
            out["TaskHandle"] = self.handle  # SQS lists the handle of running tasks only
        if self.destination_arn is not None:
            out["DestinationArn"] = self.destination_arn
        if self.rate_per_s is not None:
            out["MaxNumberOfMessagesPerSecond"] = self.rate_per_s
        if self.failure is not None:
            out["FailureReason"] = self.failure
        return out


class MoveTasks:
    """The move tasks of one server."""

    def __init__(self, redrive: Redrive) -> None:
        self._redrive = redrive
        self._by_source: dict[str, list[MoveTask]] = {}  # newest last
        self._by_handle: dict[str, MoveTask] = {}

    def start(
        self,
        *,
        source: str,
        destination: str | None,
        source_arn: str,
        destination_arn: str | None,
        rate_per_s: int | None,
        to_move: int,
    ) -> MoveTask:
        tasks = self._by_source.setdefault(source, [])
        if any(t.status in ("RUNNING", "CANCELLING") for t in tasks):
            raise SqsError(
                "UnsupportedOperation",
                "There is already a message movement task running on the source queue.",
            )
        handle = base64.b64encode(
            msgspec.json.encode({"taskId": str(uuid.uuid4()), "sourceArn": source_arn})
        ).decode("ascii")
        task = MoveTask(
            handle=handle,
            source=source,
            destination=destination,
            source_arn=source_arn,
            destination_arn=destination_arn,
            rate_per_s=rate_per_s,
            to_move=to_move,
            started_ms=time.time_ns() // 1_000_000,
        )
        tasks.append(task)
        self._by_handle[handle] = task
        while len(tasks) > tasks_kept_per_queue_max:
            old = tasks.pop(0)
            self._by_handle.pop(old.handle, None)
        task.runner = asyncio.get_running_loop().create_task(self._run(task))
        return task

    def list(self, source: str, max_results: int) -> list[MoveTask]:
        return list(reversed(self._by_source.get(source, [])))[:max_results]

    def cancel(self, handle: str) -> MoveTask:
        task = self._by_handle.get(handle)
        if task is None:
            raise SqsError("ResourceNotFoundException", "The specified task does not exist.")
        if task.status != "RUNNING":
            raise SqsError(
                "UnsupportedOperation",
                f"Only a RUNNING task can be cancelled; it is {task.status}.",
            )
        task.status = "CANCELLING"
        return task

    def forget_queue(self, source: str) -> None:
        """A deleted queue's tasks stop and are no longer listed."""
        for task in self._by_source.pop(source, []):
            self._by_handle.pop(task.handle, None)
            if task.status == "RUNNING":
                task.status = "CANCELLING"

    async def close(self) -> None:
        runners = [t.runner for t in self._by_handle.values() if t.runner is not None]
        for runner in runners:
            runner.cancel()
        await asyncio.gather(*runners, return_exceptions=True)

    async def _run(self, task: MoveTask) -> None:
        try:
            while task.status == "RUNNING":
                started = time.monotonic()
                want = task.rate_per_s or slice_messages_max
                moved = await self._redrive(task.source, task.destination, want)
                task.moved += moved
                if moved < want:
                    break
                if task.rate_per_s is not None:
                    await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
            task.status = "CANCELLED" if task.status == "CANCELLING" else "COMPLETED"
        except asyncio.CancelledError:
            task.status = "CANCELLED"
            raise
        except errors.ConveyorError as exc:
            task.status = "FAILED"
            task.failure = exc.code
            log.warning(
                "message move task failed", extra={"queue": task.source, "error": exc.message}
            )
        except Exception:
            task.status = "FAILED"
            task.failure = "InternalError"
            log.exception("message move task failed", extra={"queue": task.source})
