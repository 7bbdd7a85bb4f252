"""``conveyor send``, ``conveyor receive`` and ``conveyor peek``."""

from __future__ import annotations

import argparse
import base64
import binascii
import os
import select
import sys
import time
from collections.abc import Iterator
from typing import Any

from conveyor import errors, limits
from conveyor.cli.connect import Api, open_client
from conveyor.cli.exits import Exit, UsageError, exit_for
from conveyor.cli.output import Output, message_json
from conveyor.cli.units import duration_s, positive_int, whole_seconds
from conveyor.types import Message, MessageAttribute, SendEntry, SendResult

send_batch_default = 100  # stdin lines per send_batch request
stdin_linger_s = 0.05  # a partial batch is sent when stdin has been quiet this long
stdin_read_bytes = 64 * 1024


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser(
        "send",
        help="send messages (from arguments, or stdin one per line)",
        description="Send each BODY as a message. With no BODY (or BODY '-'), read stdin "
        "and send each line as a message (empty lines are skipped), in batches. Prints "
        "each message's id (with --json: one JSON line per message).",
        parents=[common],
    )
    s.add_argument("queue")
    s.add_argument("body", nargs="*", help="message bodies; none or '-' reads stdin")
    s.add_argument("--group", metavar="ID", help="message group (required for FIFO queues)")
    s.add_argument(
        "--dedup-id", metavar="ID", help="FIFO deduplication id (only with a single message)"
    )
    s.add_argument(
        "--delay", type=whole_seconds, metavar="DURATION", help="deliver after this delay"
    )
    s.add_argument(
        "--attr",
        action="append",
        default=[],
        metavar="NAME[:TYPE]=VALUE",
        help="message attribute, repeatable; TYPE is String (default), Number or Binary "
        "(VALUE base64), optionally with a .suffix",
    )
    s.add_argument(
        "--batch",
        type=positive_int,
        default=send_batch_default,
        metavar="N",
        help=f"messages per request (default {send_batch_default}, "
        f"at most {limits.native_batch_entries_max})",
    )
    s.set_defaults(func=cmd_send)

    r = sub.add_parser(
        "receive",
        help="receive messages",
        description="Receive up to N messages. They stay in the queue, invisible for the "
        "visibility timeout, unless --delete deletes them once printed. Exit 0 even when "
        "no message came.",
        parents=[common],
    )
    r.add_argument("queue")
    r.add_argument(
        "-n",
        "--max",
        dest="max_messages",
        type=positive_int,
        default=1,
        metavar="N",
        help=f"at most N messages (default 1, at most {limits.native_receive_messages_max})",
    )
    r.add_argument(
        "--wait",
        type=duration_s,
        metavar="DURATION",
        help="long poll: wait up to this long for a message (default: the queue's receive wait)",
    )
    r.add_argument(
        "--visibility-timeout",
        type=whole_seconds,
        metavar="DURATION",
        help="hide the messages this long (default: the queue's)",
    )
    r.add_argument("--delete", action="store_true", help="delete the messages once printed")
    r.set_defaults(func=cmd_receive)

    p = sub.add_parser(
        "peek",
        help="show the oldest messages without receiving them",
        description="Show the oldest live messages (visible, in flight or delayed) without "
        "receiving them: no receipt handle, no change to receive counts or visibility.",
        parents=[common],
    )
    p.add_argument("queue")
    p.add_argument(
        "-n",
        "--max",
        dest="max_messages",
        type=positive_int,
        default=10,
        metavar="N",
        help="at most N messages (default 10)",
    )
    p.set_defaults(func=cmd_peek)


def _client(args: argparse.Namespace) -> Api:
    return open_client(args.address, args.timeout)


# ------------------------------------------------------------------ send
def parse_attributes(items: list[str]) -> dict[str, MessageAttribute] | None:
    if not items:
        return None
    out: dict[str, MessageAttribute] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--attr must be NAME[:TYPE]=VALUE, got {item!r}")
        name, _, dtype = key.partition(":")
        dtype = dtype or "String"
        base = dtype.split(".", 1)[0]
        if base == "Binary":
            try:
                out[name] = MessageAttribute(
                    dtype, binary_value=base64.b64decode(value, validate=True)
                )
            except binascii.Error:
                raise UsageError(
                    f"--attr {name}: Binary values are base64, got {value!r}"
                ) from None
        elif base in ("String", "Number"):
            out[name] = MessageAttribute(dtype, string_value=value)
        else:
            raise UsageError(f"--attr {name}: TYPE must be String, Number or Binary, got {dtype!r}")
    return out


def stdin_batches(
    fd: int, batch_max: int, linger_s: float = stdin_linger_s
) -> Iterator[list[bytes]]:
    """Lines of ``fd`` (without the line end, empty ones skipped) in lists of at most
    ``batch_max``. A partial list is yielded when the input pauses for ``linger_s``, so
    ``producer | conveyor send q`` sends each line promptly rather than waiting for a
    full batch."""
    pending = b""
    batch: list[bytes] = []
    eof = False
    while not eof:
        if batch:
            ready, _, _ = select.select([fd], [], [], linger_s)
            if not ready:
                yield batch
                batch = []
                continue
        chunk = os.read(fd, stdin_read_bytes)
        if not chunk:
            eof = True
            lines = [pending] if pending else []
            pending = b""
        else:
            *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            line = line.removesuffix(b"\r")
            if not line:
                continue
            batch.append(line)
            if len(batch) >= batch_max:
                yield batch
                batch = []
    if batch:
        yield batch


class _Sender:
    """Sends batches, prints a result per message, remembers the worst error."""

    def __init__(self, client: Api, args: argparse.Namespace, out: Output) -> None:
        self.client = client
        self.args = args
        self.out = out
        self.attributes = parse_attributes(args.attr)
        self.sent = 0
        self.failed = 0
        self.exit = Exit.OK
        self.results: list[tuple[int, SendResult]] = []  # kept for the table (arguments)

    def send(self, bodies: list[bytes], first_index: int, *, keep: bool) -> None:
        entries = [
            SendEntry(
                body=body,
                attributes=self.attributes,
                delay_s=self.args.delay,
                group_id=self.args.group,
                dedup_id=self.args.dedup_id,
            )
            for body in bodies
        ]
        results = self.client.send_batch(self.args.queue, entries)
        for i, result in enumerate(results, start=first_index):
            if isinstance(result, errors.ConveyorError):
                self.failed += 1
                if self.exit == Exit.OK:
                    self.exit = exit_for(result)
                self.out.error(result.code, f"message {i + 1}: {result.message}", result.retriable)
                continue
            self.sent += 1
            if self.out.json_mode:
                self.out.json_line(
                    {
                        "index": i,
                        "message_id": result.message_id,
                        "sequence_number": result.sequence_number,
                        "duplicate": result.duplicate,
                    }
                )
            elif keep:
                self.results.append((i, result))


def cmd_send(args: argparse.Namespace, out: Output) -> int:
    if args.batch > limits.native_batch_entries_max:
        raise UsageError(f"--batch must be at most {limits.native_batch_entries_max}")
    from_stdin = not args.body or args.body == ["-"]
    if "-" in args.body and not from_stdin:
        raise UsageError("'-' (stdin) cannot be mixed with message bodies")
    client = _client(args)
    try:
        sender = _Sender(client, args, out)
        if from_stdin:
            if args.dedup_id is not None:
                raise UsageError("--dedup-id names one message; it cannot be used with stdin")
            if sys.stdin.isatty():
                out.note("reading messages from stdin, one per line; end with Ctrl-D")
            index = 0
            for batch in stdin_batches(sys.stdin.fileno(), args.batch):
                sender.send(batch, index, keep=False)
                index += len(batch)
        else:
            if args.dedup_id is not None and len(args.body) > 1:
                raise UsageError("--dedup-id names one message; send one body with it")
            bodies = [os.fsencode(b) for b in args.body]
            for start in range(0, len(bodies), args.batch):
                sender.send(bodies[start : start + args.batch], start, keep=True)
    finally:
        client.close()
    if not out.json_mode:
        if sender.results:
            cols = ["#", "message id"]
            rows: list[list[Any]] = [[i + 1, r.message_id] for i, r in sender.results]
            if any(r.sequence_number for _, r in sender.results):
                cols.append("sequence number")
                for row, (_, r) in zip(rows, sender.results, strict=True):
                    row.append(r.sequence_number)
            if any(r.duplicate for _, r in sender.results):
                cols.append("note")
                for row, (_, r) in zip(rows, sender.results, strict=True):
                    row.append("duplicate" if r.duplicate else "")
            out.table(cols, rows, right=("#",), nowrap=("message id",))
        else:
            out.text(f"sent {sender.sent} message{'s' if sender.sent != 1 else ''} to {args.queue}")
        if sender.failed:
            out.note(f"{sender.failed} message(s) failed")
    return sender.exit


# ------------------------------------------------------------------ receive / peek
def print_messages(out: Output, msgs: list[Message], title: str) -> None:
    if out.json_mode:
        out.json({"messages": [message_json(m) for m in msgs]})
    else:
        out.messages(msgs, title=title)


def delete_messages(client: Api, queue: str, msgs: list[Message], out: Output) -> int:
    """Delete received messages; returns the exit code (an error per failed one)."""
    if not msgs:
        return Exit.OK
    code = Exit.OK
    results = client.delete_batch(queue, [m.receipt_handle for m in msgs])
    for msg, result in zip(msgs, results, strict=True):
        if result is not None:
            out.error(result.code, f"deleting {msg.message_id}: {result.message}", result.retriable)
            code = code or exit_for(result)
    return code


def cmd_receive(args: argparse.Namespace, out: Output) -> int:
    if args.max_messages > limits.native_receive_messages_max:
        raise UsageError(f"-n must be at most {limits.native_receive_messages_max}")
    client = _client(args)
    try:
        started = time.monotonic()
        msgs = client.receive(
            args.queue,
            args.max_messages,
            visibility_timeout_s=args.visibility_timeout,
            wait_s=args.wait,
        )
        print_messages(out, msgs, f"{len(msgs)} message(s) from {args.queue}")
        code = delete_messages(client, args.queue, msgs, out) if args.delete else Exit.OK
        if args.delete and msgs and not out.json_mode and code == Exit.OK:
            out.note(f"deleted {len(msgs)} message(s)")
        if not msgs and args.wait and not out.json_mode:
            out.note(f"waited {time.monotonic() - started:.1f} s")
    finally:
        client.close()
    return code


def cmd_peek(args: argparse.Namespace, out: Output) -> int:
    if args.max_messages > limits.native_receive_messages_max:
        raise UsageError(f"-n must be at most {limits.native_receive_messages_max}")
    client = _client(args)
    try:
        msgs = client.peek(args.queue, args.max_messages)[: args.max_messages]
    finally:
        client.close()
    print_messages(out, msgs, f"oldest {len(msgs)} message(s) of {args.queue}")
    return Exit.OK
