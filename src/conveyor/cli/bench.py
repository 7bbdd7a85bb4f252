"""``conveyor bench``: a load generator against a running server.

Producers send ``--messages`` messages (or send for ``--duration``) of ``--size`` bytes,
``--batch`` per request; consumers receive ``--batch`` at a time and delete what they
got. Each worker is a thread with its own connection. Every body starts with its send
time (nanoseconds, 20 ASCII digits), so consumers measure end-to-end latency; the rest
is padding. Without ``--queue`` a fresh queue ``bench-<random>`` is created and deleted
afterwards (``--keep`` keeps it).

The result table (or with ``--json`` one document) gives, per side, messages, seconds,
messages/s, MiB/s, request latency p50/p99/max and, for consumers, end-to-end latency
(send to receive) p50/p99/max.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from conveyor import errors, limits
from conveyor.cli.connect import open_client
from conveyor.cli.exits import Exit, UsageError
from conveyor.cli.output import Output
from conveyor.cli.units import duration_s, positive_int, size_bytes
from conveyor.types import SendEntry

messages_default = 10_000
size_default = 1024
stamp_chars = 20  # the send time at the start of each body, ns, zero-padded digits
receive_wait_s = 1.0  # consumers long-poll this long, so they notice the end quickly
idle_stop_s = 3.0  # consumers give up when nothing came this long after producers ended
full_backoff_s = 0.01  # a producer's pause after QueueFull
progress_refresh_s = 0.1


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    b = sub.add_parser(
        "bench",
        help="load generator: produce and/or consume, then a result table",
        description="Produce and consume messages against a running server and report "
        "throughput and latency. Stops after --messages (default "
        f"{messages_default}) or --duration, whichever comes first. Without --queue a "
        "fresh queue is created and deleted afterwards.",
        parents=[common],
    )
    b.add_argument("--queue", metavar="NAME", help="queue to use (created if missing)")
    b.add_argument(
        "-n",
        "--messages",
        type=positive_int,
        metavar="N",
        help=f"messages (default {messages_default})",
    )
    b.add_argument("--duration", type=duration_s, metavar="DURATION", help="run this long")
    b.add_argument(
        "--size",
        type=size_bytes,
        default=size_default,
        metavar="SIZE",
        help="body size (default 1KiB; at least 21 bytes)",
    )
    b.add_argument(
        "--producers", type=int, default=1, metavar="N", help="producer threads (default 1)"
    )
    b.add_argument(
        "--consumers", type=int, default=1, metavar="N", help="consumer threads (default 1)"
    )
    b.add_argument(
        "--batch",
        type=positive_int,
        default=1,
        metavar="N",
        help="messages per send / receive request (default 1)",
    )
    b.add_argument(
        "--mode",
        choices=("both", "produce", "consume"),
        default="both",
        help="produce and consume at once (default), only produce, or only consume",
    )
    b.add_argument("--fifo", action="store_true", help="use a FIFO queue (new queues only)")
    b.add_argument(
        "--groups",
        type=positive_int,
        default=16,
        metavar="N",
        help="FIFO: message groups (default 16)",
    )
    b.add_argument("--partitions", type=positive_int, metavar="N", help="partitions of a new queue")
    b.add_argument("--keep", action="store_true", help="do not delete a queue bench created")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.set_defaults(func=cmd_bench)


# ------------------------------------------------------------------ measurements
def percentile(sorted_values: list[float], p: float) -> float | None:
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


@dataclass
class Side:
    """What one side (producers or consumers) did."""

    messages: int = 0
    requests: int = 0
    errors: int = 0
    bytes: int = 0
    request_s: list[float] = field(default_factory=list)
    end_to_end_s: list[float] = field(default_factory=list)
    started: float | None = None
    ended: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, n: int, size: int, req_s: float, e2e: list[float] | None = None) -> None:
        with self.lock:
            if self.started is None:
                self.started = time.monotonic() - req_s
            self.messages += n
            self.requests += 1
            self.bytes += size
            self.request_s.append(req_s)
            if e2e:
                self.end_to_end_s.extend(e2e)
            self.ended = time.monotonic()

    def report(self) -> dict[str, Any]:
        secs = (self.ended - self.started) if self.started and self.ended else 0.0
        req = sorted(self.request_s)
        e2e = sorted(self.end_to_end_s)

        def ms(v: float | None) -> float | None:
            return None if v is None else round(v * 1000, 3)

        out: dict[str, Any] = {
            "messages": self.messages,
            "requests": self.requests,
            "errors": self.errors,
            "seconds": round(secs, 3),
            "messages_per_s": round(self.messages / secs, 1) if secs else None,
            "mib_per_s": round(self.bytes / secs / (1 << 20), 3) if secs else None,
            "request_ms": {
                "p50": ms(percentile(req, 50)),
                "p99": ms(percentile(req, 99)),
                "max": ms(req[-1] if req else None),
            },
        }
        if e2e:
            out["end_to_end_ms"] = {
                "p50": ms(percentile(e2e, 50)),
                "p99": ms(percentile(e2e, 99)),
                "max": ms(e2e[-1]),
            }
        return out


class _Run:
    def __init__(self, args: argparse.Namespace, queue: str, total: int | None) -> None:
        self.args = args
        self.queue = queue
        self.total = total
        self.deadline = None if args.duration is None else time.monotonic() + args.duration
        self.stop = threading.Event()
        self.produced = Side()
        self.consumed = Side()
        self.claimed = 0
        self.claim_lock = threading.Lock()
        self.producers_done = threading.Event()
        self.failure: BaseException | None = None
        self.padding: bytes = b"x" * max(0, args.size - stamp_chars)

    def expired(self) -> bool:
        return self.stop.is_set() or (
            self.deadline is not None and time.monotonic() >= self.deadline
        )

    def fail(self, exc: BaseException) -> None:
        with self.claim_lock:
            if self.failure is None:
                self.failure = exc
        self.stop.set()

    def claim(self, want: int) -> int:
        with self.claim_lock:
            if self.total is None:
                return want
            n = min(want, self.total - self.claimed)
            self.claimed += n
            return n

    def body(self) -> bytes:
        return str(time.time_ns()).zfill(stamp_chars).encode() + self.padding

    # -------------------------------------------------------------- workers
    def produce(self, worker: int) -> None:
        client = open_client(self.args.address, self.args.timeout)
        seq = 0
        try:
            while not self.expired():
                n = self.claim(self.args.batch)
                if n <= 0:
                    return
                entries = []
                for _ in range(n):
                    group = None
                    if self.args.fifo:
                        group = f"g{(worker * 7919 + seq) % self.args.groups}"
                    seq += 1
                    entries.append(SendEntry(body=self.body(), group_id=group))
                while entries and not self.stop.is_set():
                    t0 = time.perf_counter()
                    results = client.send_batch(self.queue, entries)
                    dt = time.perf_counter() - t0
                    retry = []
                    ok = 0
                    for entry, result in zip(entries, results, strict=True):
                        if isinstance(result, errors.QueueFull):
                            retry.append(entry)
                        elif isinstance(result, errors.ConveyorError):
                            self.produced.errors += 1
                        else:
                            ok += 1
                    self.produced.add(ok, ok * self.args.size, dt)
                    entries = retry
                    if retry:
                        time.sleep(full_backoff_s)
        except errors.ConveyorError as exc:
            self.fail(exc)
        finally:
            client.close()

    def consume(self) -> None:
        client = open_client(self.args.address, self.args.timeout)
        idle_since: float | None = None
        try:
            while not self.expired():
                if self.total is not None and self.consumed.messages >= self.total:
                    return
                t0 = time.perf_counter()
                msgs = client.receive(self.queue, self.args.batch, wait_s=receive_wait_s)
                dt = time.perf_counter() - t0
                if not msgs:
                    if self.producers_done.is_set() or self.args.mode == "consume":
                        idle_since = idle_since or time.monotonic()
                        if time.monotonic() - idle_since >= idle_stop_s:
                            return
                    continue
                idle_since = None
                now_ns = time.time_ns()
                e2e = []
                for m in msgs:
                    stamp = m.body[:stamp_chars]
                    if stamp.isdigit():
                        e2e.append(max(0, now_ns - int(stamp)) / 1e9)
                results = client.delete_batch(self.queue, [m.receipt_handle for m in msgs])
                self.consumed.errors += sum(r is not None for r in results)
                self.consumed.add(len(msgs), sum(len(m.body) for m in msgs), dt, e2e)
        except errors.ConveyorError as exc:
            self.fail(exc)
        finally:
            client.close()


def _threads(run: _Run) -> tuple[list[threading.Thread], list[threading.Thread]]:
    a = run.args
    producers = []
    consumers = []
    if a.mode in ("both", "produce"):
        producers = [
            threading.Thread(target=run.produce, args=(i,), name=f"bench-producer-{i}", daemon=True)
            for i in range(a.producers)
        ]
    if a.mode in ("both", "consume"):
        consumers = [
            threading.Thread(target=run.consume, name=f"bench-consumer-{i}", daemon=True)
            for i in range(a.consumers)
        ]
    return producers, consumers


def _wait(
    run: _Run,
    producers: list[threading.Thread],
    consumers: list[threading.Thread],
    progress: Progress | None,
) -> None:
    tasks: dict[str, Any] = {}
    if progress is not None:
        total = run.total if run.deadline is None else None
        if producers:
            tasks["p"] = progress.add_task("produce", total=total)
        if consumers:
            tasks["c"] = progress.add_task("consume", total=total)
    while True:
        if producers and all(not t.is_alive() for t in producers):
            run.producers_done.set()
        alive = [t for t in producers + consumers if t.is_alive()]
        if progress is not None:
            if "p" in tasks:
                progress.update(tasks["p"], completed=run.produced.messages)
            if "c" in tasks:
                progress.update(tasks["c"], completed=run.consumed.messages)
        if not alive:
            return
        alive[0].join(progress_refresh_s)


def cmd_bench(args: argparse.Namespace, out: Output) -> int:
    if args.size < stamp_chars + 1:
        raise UsageError(f"--size must be at least {stamp_chars + 1} bytes")
    if args.batch > limits.native_batch_entries_max:
        raise UsageError(f"--batch must be at most {limits.native_batch_entries_max}")
    if args.producers < (args.mode != "consume") or args.consumers < (args.mode != "produce"):
        raise UsageError("need at least one producer and one consumer for this --mode")
    total = (
        args.messages
        if args.messages is not None or args.duration is not None
        else messages_default
    )
    queue = args.queue or f"bench-{secrets.token_hex(4)}" + (".fifo" if args.fifo else "")
    admin = open_client(args.address, args.timeout)
    created = False
    try:
        if args.mode == "consume":
            admin.get_queue(queue)  # must exist: QueueDoesNotExist otherwise
        else:
            try:
                admin.get_queue(queue)
            except errors.QueueDoesNotExist:
                config: dict[str, Any] = {}
                if queue.endswith(".fifo"):
                    config["fifo"] = True
                if args.partitions:
                    config["partitions"] = args.partitions
                    if args.fifo and args.partitions > 1:
                        config["dedup_scope"] = "message_group"
                admin.create_queue(queue, config)
                created = True
        run = _Run(args, queue, total)
        producers, consumers = _threads(run)
        show = not (out.json_mode or args.no_progress) and sys.stderr.isatty()
        progress = (
            Progress(
                TextColumn("{task.description:>8}"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.completed:>10,.0f} msgs"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            if show
            else None
        )
        interrupted = False
        for t in producers + consumers:
            t.start()
        try:
            if progress is not None:
                with progress:
                    _wait(run, producers, consumers, progress)
            else:
                _wait(run, producers, consumers, None)
        except KeyboardInterrupt:
            interrupted = True
            run.stop.set()
            for t in producers + consumers:
                t.join(args.timeout)
        if run.failure is not None:
            raise run.failure
        left = None
        try:
            stats = admin.get_queue(queue).stats
            left = stats.messages if stats is not None else None
        except errors.ConveyorError:
            pass
    finally:
        if created and not args.keep:
            try:
                admin.delete_queue(queue)
            except errors.ConveyorError as exc:
                out.warn(f"could not delete {queue}: {exc}")
        admin.close()
    report = {
        "queue": queue,
        "settings": {
            "mode": args.mode,
            "messages": total,
            "duration_s": args.duration,
            "size_bytes": args.size,
            "batch": args.batch,
            "producers": len(producers),
            "consumers": len(consumers),
            "fifo": queue.endswith(".fifo"),
        },
        "produce": run.produced.report() if producers else None,
        "consume": run.consumed.report() if consumers else None,
        "left_in_queue": left,
        "interrupted": interrupted,
    }
    _print_report(out, report)
    return Exit.INTERRUPTED if interrupted else Exit.OK


def _print_report(out: Output, report: dict[str, Any]) -> None:
    if out.json_mode:
        out.json(report)
        return
    s = report["settings"]
    title = (
        f"bench {report['queue']}: {s['producers']} producer(s), {s['consumers']} consumer(s), "
        f"{s['size_bytes']} B bodies, batch {s['batch']}; latencies in ms"
    )
    rows = []
    for name in ("produce", "consume"):
        r = report[name]
        if r is None:
            continue
        e2e = r.get("end_to_end_ms") or {}
        rows.append(
            [
                name,
                f"{r['messages']:,}",
                f"{r['seconds']:.2f}",
                f"{r['messages_per_s']:,.0f}" if r["messages_per_s"] else None,
                f"{r['mib_per_s']:.2f}" if r["mib_per_s"] else None,
                _ms(r["request_ms"]["p50"]),
                _ms(r["request_ms"]["p99"]),
                _ms(r["request_ms"]["max"]),
                _ms(e2e.get("p50")),
                _ms(e2e.get("p99")),
                r["errors"],
            ]
        )
    cols = [
        "side",
        "messages",
        "seconds",
        "msg/s",
        "MiB/s",
        "req p50",
        "req p99",
        "req max",
        "e2e p50",
        "e2e p99",
        "errors",
    ]
    out.table(cols, rows, title=title, right=tuple(cols[1:]))
    if report["left_in_queue"]:
        out.note(f"{report['left_in_queue']} message(s) left in {report['queue']}")
    if report["interrupted"]:
        out.note("interrupted: partial results")


def _ms(v: float | None) -> str | None:
    return None if v is None else f"{v:.2f}"
