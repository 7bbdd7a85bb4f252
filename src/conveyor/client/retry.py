"""When the clients retry a failed call, and how long they wait between attempts.

The rule
========

A call is attempted again (on the same or a new connection, after a backoff) only when
doing so cannot make the outcome differ from one successful attempt:

1. **The request was never sent** (:class:`~conveyor.client.errors.ConnectFailed`: the
   connection or handshake failed): retried, whatever the operation.
2. **The server refused it with a retriable error that means "nothing was done"** —
   ``QueueFull``, ``Unavailable``, ``PurgeQueueInProgress``, ``QueueDeletedRecently``:
   retried, whatever the operation. (The server must answer ``Unavailable`` only for
   requests it did not carry out; see docs/clients.md.)
3. **The outcome is unknown** — :class:`~conveyor.client.errors.ConnectionLost` (the
   connection broke with the request in flight) or ``InternalError``: retried only if
   the operation is *idempotent*, i.e. carrying it out twice leaves the same state as
   once:

   * reads (``ping``, ``get_queue``, ``list_queues``, ``peek``);
   * ``create_queue`` (again with the same attributes is a no-op), ``set_queue``,
     ``tag_queue``;
   * ``delete`` / ``delete_batch`` (a handle already used is a no-op),
     ``change_visibility`` / ``change_visibility_batch`` (sets a deadline from now);
   * ``receive``: a lost attempt may have leased messages that then stay invisible
     until their visibility timeout ends — a delay, never a loss or a duplicate
     delivery beyond at-least-once;
   * ``send`` / ``send_batch`` **only to a FIFO queue and only when every entry carries
     a** ``dedup_id``: the deduplication window turns a resend into a no-op that
     reports ``duplicate=True`` and the first message's id.

   Not retried, because a second attempt would change the outcome: ``send`` /
   ``send_batch`` without dedup ids (a duplicate message), ``delete_queue`` (a second
   attempt reports QueueDoesNotExist), ``purge_queue`` (PurgeQueueInProgress) and
   ``redrive`` (it would move more messages).
4. **A timeout** (:class:`~conveyor.client.errors.Timeout`) is never retried: the
   timeout is the deadline of the whole call, retries and backoff included.
5. Everything else (bad input, QueueDoesNotExist, AccessDenied, protocol errors) is
   raised at once.

Per-entry errors inside a batch's results are returned, not retried.

Backoff is exponential with full jitter: before attempt ``k`` (k = 1, 2, ...) the client
sleeps a uniform random time in ``[0, min(backoff_s_max, backoff_s_base * 2**(k-1))]``,
and never past the call's deadline.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field

from conveyor import errors
from conveyor.client.errors import ConnectFailed, ConnectionLost

__all__ = ["RetryPolicy", "Safety", "should_retry"]

attempts_max = 100  # a bound on RetryPolicy.attempts


class Safety(enum.Enum):
    """What repeating an operation does (rule 3)."""

    IDEMPOTENT = "idempotent"  # repeating leaves the same state
    UNSAFE = "unsafe"  # repeating may change the outcome


# Retriable errors the server sends only for requests it did not carry out (rule 2).
NOTHING_DONE: frozenset[type[errors.ConveyorError]] = frozenset(
    {
        errors.QueueFull,
        errors.Unavailable,
        errors.PurgeQueueInProgress,
        errors.QueueDeletedRecently,
    }
)


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts a call gets (1 = no retries) and the backoff between them.
    ``rng`` is the randomness for the jitter (pass a seeded one in tests)."""

    attempts: int = 4
    backoff_s_base: float = 0.05
    backoff_s_max: float = 2.0
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def __post_init__(self) -> None:
        if not 1 <= self.attempts <= attempts_max:
            raise ValueError(f"attempts must be from 1 to {attempts_max}")
        if not 0 <= self.backoff_s_base <= self.backoff_s_max:
            raise ValueError("need 0 <= backoff_s_base <= backoff_s_max")

    def backoff_s(self, attempt: int) -> float:
        """The sleep before attempt number ``attempt`` (1 is the first retry)."""
        assert attempt >= 1
        cap = min(self.backoff_s_max, self.backoff_s_base * 2 ** min(attempt - 1, 30))
        return self.rng.uniform(0.0, cap)


NO_RETRIES = RetryPolicy(attempts=1)


def should_retry(exc: BaseException, safety: Safety) -> bool:
    """Whether a call that failed with ``exc`` may be attempted again (the rule above)."""
    if isinstance(exc, ConnectFailed):
        return True
    if not isinstance(exc, errors.ConveyorError) or not exc.retriable:
        return False
    if isinstance(exc, ConnectionLost) or type(exc) is errors.InternalError:
        return safety is Safety.IDEMPOTENT
    return type(exc) in NOTHING_DONE
