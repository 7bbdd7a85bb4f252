"""``conveyor tail``: follow a queue, printing messages as they arrive.

What a user expects of ``tail -f`` is to watch, not to change what is watched, so by
default ``tail`` *watches*: it peeks at the queue every ``--interval`` and prints each
message the first time it appears there. Nothing is received: receive counts,
visibility and the messages' way to their real consumers are untouched. It prints the
messages already in the queue first (``--new`` skips them), and sees at most the oldest
``peek_window_messages`` messages, so behind a larger backlog it warns that new arrivals
are out of sight.

``--delete`` *consumes* instead: it long-polls ``receive`` and deletes each message once
printed (a drain, or a debugging consumer). New messages show within milliseconds.

Receiving and then releasing (visibility 0) is deliberately not offered: a released
message is visible again at once, so tail would receive it again and again, and every
receive counts toward the queue's max receive count, moving messages to the dead-letter
queue for no fault of theirs.

Ctrl-C ends ``tail`` with exit 0. ``--count N`` stops after N messages and ``--idle D``
after D without a new message, for scripts.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from conveyor import limits
from conveyor.cli.connect import Api, open_client
from conveyor.cli.exits import Exit
from conveyor.cli.messages import delete_messages
from conveyor.cli.output import Output, message_json
from conveyor.cli.units import duration_s, positive_int, whole_seconds
from conveyor.types import Message

peek_window_messages = limits.native_receive_messages_max  # messages one peek looks at
interval_s_default = 0.5  # between peeks when watching
receive_batch_messages = 10  # messages per receive when consuming
receive_wait_s = float(limits.receive_wait_s_max)  # long poll of each receive


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    t = sub.add_parser(
        "tail",
        help="follow a queue: print messages as they arrive",
        description=(
            "Follow a queue and print each message as it arrives (with --json: one JSON "
            "line per message). By default tail only watches (it peeks: nothing is "
            "received, counted or hidden) and starts with the messages already there. "
            "With --delete it consumes: receives with long polls and deletes each "
            "message once printed. Ctrl-C stops it (exit 0)."
        ),
        parents=[common],
    )
    t.add_argument("queue")
    t.add_argument(
        "--delete",
        action="store_true",
        help="consume: receive each message, print it, delete it",
    )
    t.add_argument(
        "--new",
        action="store_true",
        help="watching: skip the messages already in the queue when tail starts",
    )
    t.add_argument(
        "--interval",
        type=duration_s,
        default=interval_s_default,
        metavar="DURATION",
        help=f"watching: time between peeks (default {interval_s_default:g}s)",
    )
    t.add_argument(
        "--visibility-timeout",
        type=whole_seconds,
        metavar="DURATION",
        help="--delete: visibility timeout of the received messages (default: the queue's)",
    )
    t.add_argument("--count", type=positive_int, metavar="N", help="stop after printing N messages")
    t.add_argument(
        "--idle",
        type=duration_s,
        metavar="DURATION",
        help="stop when no new message has come for this long",
    )
    t.set_defaults(func=cmd_tail)


class _Follower:
    def __init__(self, client: Api, args: argparse.Namespace, out: Output) -> None:
        self.client = client
        self.args = args
        self.out = out
        self.printed = 0
        self.last_new = time.monotonic()
        self.exit = Exit.OK

    def done(self) -> bool:
        if self.args.count is not None and self.printed >= self.args.count:
            return True
        idle = self.args.idle
        return idle is not None and time.monotonic() - self.last_new >= idle

    def show(self, msgs: list[Message]) -> list[Message]:
        """Print (up to --count) and return what was printed."""
        if self.args.count is not None:
            msgs = msgs[: self.args.count - self.printed]
        for m in msgs:
            if self.out.json_mode:
                self.out.json_line(message_json(m))
            else:
                self.out.message_line(m)
        if msgs:
            self.printed += len(msgs)
            self.last_new = time.monotonic()
        return msgs

    def idle_left(self) -> float | None:
        idle: float | None = self.args.idle
        if idle is None:
            return None
        return max(0.0, idle - (time.monotonic() - self.last_new))

    def watch(self) -> None:
        seen: set[str] | None = None if not self.args.new else self._ids()
        warned = False
        while not self.done():
            msgs = self.client.peek(self.args.queue, peek_window_messages)
            if len(msgs) >= peek_window_messages and not warned:
                self.out.warn(
                    f"{self.args.queue} holds {peek_window_messages} or more messages; tail "
                    "sees only the oldest of them, newer arrivals stay out of sight "
                    "(tail --delete consumes instead)"
                )
                warned = True
            current = {m.message_id for m in msgs}
            fresh = [m for m in msgs if seen is None or m.message_id not in seen]
            fresh.sort(key=lambda m: (m.sent_ms, m.sequence_number or ""))
            self.show(fresh)
            seen = current
            if self.done():
                break
            pause = self.args.interval
            left = self.idle_left()
            time.sleep(pause if left is None else min(pause, left))

    def _ids(self) -> set[str]:
        return {m.message_id for m in self.client.peek(self.args.queue, peek_window_messages)}

    def consume(self) -> None:
        while not self.done():
            want = receive_batch_messages
            if self.args.count is not None:
                want = min(want, self.args.count - self.printed)
            left = self.idle_left()
            wait = receive_wait_s if left is None else min(receive_wait_s, left)
            msgs = self.client.receive(
                self.args.queue,
                want,
                visibility_timeout_s=self.args.visibility_timeout,
                wait_s=wait,
            )
            printed = self.show(msgs)
            code = delete_messages(self.client, self.args.queue, printed, self.out)
            if code != Exit.OK:
                self.exit = Exit(code)


def cmd_tail(args: argparse.Namespace, out: Output) -> int:
    client = open_client(args.address, args.timeout)
    follower = _Follower(client, args, out)
    try:
        if args.delete:
            follower.consume()
        else:
            follower.watch()
    except KeyboardInterrupt:
        pass  # the normal way to stop following
    finally:
        client.close()
    return follower.exit
