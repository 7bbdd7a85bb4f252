"""The workloads of ``bench/compare.py``, the same for every system (1 KiB messages):

1. durable produce, one message per request, waiting for each confirm;
2. durable produce, batched/pipelined (``depth`` tasks, each with ``batch`` messages
   per round: one batch request where the system has batches, else ``batch``
   concurrent requests or one pipeline);
3. consume and ack/delete everything produced by 1 and 2 (``workers`` consumers taking
   up to ``batch`` at a time);
4. end-to-end latency at fixed rates, without coordinated omission: a producer process
   starts send *i* at ``t0 + i/rate`` whether or not earlier sends are done (at most
   ``concurrency`` in flight: a send waiting for a slot is still timed from its
   scheduled time), and a consumer process takes the time a message arrives minus the
   scheduled time written in its body (both processes read the same CLOCK_MONOTONIC);
5. the SQS API through boto3 (Conveyor and moto only).

Around every phase the server's CPU seconds (its whole process tree, from
``/proc/<pid>/stat``) are read, and a sampler thread records the tree's peak memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import multiprocessing as mp
import resource
import struct
import threading
import time
from array import array
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from benchlib import percentile, tree_cpu_s, tree_memory_mb
from peers import BODY_BYTES, make_body


class Sampler:
    """Samples the memory of the server's process trees every ``interval_s``."""

    def __init__(self, pids: list[int], interval_s: float = 0.2) -> None:
        self.pids = pids
        self.interval_s = interval_s
        self.peak = 0.0
        self.peak_all = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def sample(self) -> None:
        mb = tree_memory_mb(self.pids)
        self.peak = max(self.peak, mb)
        self.peak_all = max(self.peak_all, mb)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval_s)

    def reset(self) -> None:
        self.sample()
        self.peak = 0.0
        self.sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


@dataclass
class Phase:
    count: int = 0
    seconds: float = 0.0
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    peak_mb: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rate"] = self.rate
        return d


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure(pids: list[int], sampler: Sampler, fn: Callable[[], int]) -> Phase:
    sampler.reset()
    cpu0, self0 = tree_cpu_s(pids), _self_cpu()
    t0 = time.perf_counter()
    count = fn()
    elapsed = time.perf_counter() - t0
    cpu1, self1 = tree_cpu_s(pids), _self_cpu()
    sampler.sample()
    return Phase(
        count=count,
        seconds=elapsed,
        server_cpu_s=cpu1 - cpu0,
        client_cpu_s=self1 - self0,
        peak_mb=sampler.peak,
    )


# --- workload 4: latency at a fixed rate ----------------------------------------------
_HEAD = struct.Struct("<dI")  # scheduled send time (monotonic s), message index


def _quiet_gc() -> None:
    """Move what the imports made out of the collector's reach: a full collection walks
    every object the client libraries left (all of them are imported here, in the
    forkserver), which took milliseconds and showed as latency spikes of the system
    under test."""
    gc.collect()
    gc.freeze()


def _lat_producer(
    module: str,
    conn: dict[str, Any],
    settings: dict[str, Any],
    queue: str,
    rate: float,
    total: int,
    concurrency: int,
    stop_at_s: float,
    pipe: Any,
) -> None:
    client = importlib.import_module(f"peers.{module}").Client(conn, settings)
    pad = make_body(BODY_BYTES - _HEAD.size)
    _quiet_gc()

    async def main() -> dict[str, Any]:
        sender = await client.open_sender(queue, concurrency)
        slots = asyncio.Semaphore(concurrency)
        ok = failed = 0
        late_max = 0.0
        pipe.send("ready")
        t0 = await asyncio.get_running_loop().run_in_executor(None, pipe.recv)

        async def one(i: int, at: float) -> None:
            nonlocal ok, failed
            async with slots:
                try:
                    await sender.send(_HEAD.pack(at, i) + pad)
                    ok += 1
                except Exception:
                    failed += 1

        # the sends not yet done: waiting on all of them at the end would cost a callback
        # per finished one, and hold up the last sends' completions by milliseconds
        tasks: set[asyncio.Task[None]] = set()
        i = 0
        while i < total:
            now = time.monotonic()
            while i < total and t0 + i / rate <= now:
                at = t0 + i / rate
                late_max = max(late_max, now - at)
                task = asyncio.create_task(one(i, at))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                i += 1
            if i < total:
                await asyncio.sleep(max(0.0, t0 + i / rate - time.monotonic()))
        schedule_end = time.monotonic()
        pending: set[asyncio.Task[None]] = set()
        if tasks:
            _, pending = await asyncio.wait(
                set(tasks), timeout=max(1.0, t0 + stop_at_s - time.monotonic())
            )
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        with contextlib.suppress(Exception):
            await sender.close()
        return {
            "ok": ok,
            "failed": failed + len(pending),
            "late_start_max_s": late_max,
            "sends_done_after_s": time.monotonic() - schedule_end,
        }

    pipe.send(asyncio.run(main()))


def _lat_consumer(
    module: str,
    conn: dict[str, Any],
    settings: dict[str, Any],
    queue: str,
    total: int,
    stop_at_s: float,
    pipe: Any,
) -> None:
    client = importlib.import_module(f"peers.{module}").Client(conn, settings)
    lat = array("d")
    seen = bytearray(total)
    _quiet_gc()

    def on_bodies(bodies: list[bytes]) -> None:
        now = time.monotonic()
        for b in bodies:
            at, i = _HEAD.unpack_from(b)
            if i < total and not seen[i]:
                seen[i] = 1
                lat.append(now - at)

    async def main() -> None:
        pipe.send("ready")
        t0 = await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
        deadline = t0 + stop_at_s
        await client.receive_loop(
            queue, on_bodies, lambda: len(lat) >= total or time.monotonic() > deadline
        )

    asyncio.run(main())
    pipe.send(lat.tobytes())


_ctx: Any = None


def _context() -> Any:
    """A forkserver that has imported the clients once: a latency producer or consumer
    starts in milliseconds, in a process with no threads of ours (unlike fork)."""
    global _ctx
    if _ctx is None:
        _ctx = mp.get_context("forkserver")
        _ctx.set_forkserver_preload(
            ["workloads"]
            + [
                f"peers.{m}"
                for m in ("conveyor_native", "rabbit", "natsjs", "redisstreams", "postgres")
            ]
        )
    return _ctx


def latency(
    module: str,
    conn: dict[str, Any],
    settings: dict[str, Any],
    queue: str,
    rate: float,
    seconds: float,
    concurrency: int,
    drain_s: float,
    start_margin_s: float = 1.0,
) -> dict[str, Any]:
    """Workload 4 at one rate; the queue must exist. Latencies in ms; a message not
    received within ``drain_s`` after the schedule ends counts as infinitely late."""
    ctx = _context()
    total = max(1, int(rate * seconds))
    stop_at = seconds + drain_s
    p_parent, p_child = ctx.Pipe()
    c_parent, c_child = ctx.Pipe()
    consumer = ctx.Process(
        target=_lat_consumer,
        args=(module, conn, settings, queue, total, stop_at, c_child),
        daemon=True,
    )
    producer = ctx.Process(
        target=_lat_producer,
        args=(module, conn, settings, queue, rate, total, concurrency, stop_at, p_child),
        daemon=True,
    )
    consumer.start()
    producer.start()
    try:
        for p, proc in ((c_parent, consumer), (p_parent, producer)):
            if not p.poll(60):
                raise RuntimeError(f"latency {proc.name} did not start")
            assert p.recv() == "ready"
        t0 = time.monotonic() + start_margin_s  # both are up; start on a common clock
        c_parent.send(t0)
        p_parent.send(t0)
        wait = stop_at + 60
        if not p_parent.poll(wait):
            raise RuntimeError("latency producer did not finish")
        sent = p_parent.recv()
        if not c_parent.poll(max(5.0, t0 + wait - time.monotonic())):
            raise RuntimeError("latency consumer did not finish")
        raw = c_parent.recv()
    finally:
        for proc in (producer, consumer):
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
    lat_ms = array("d")
    lat_ms.frombytes(raw)
    values = [v * 1000 for v in lat_ms]
    received = len(values)
    full = values + [float("inf")] * (total - received)
    out: dict[str, Any] = {
        "rate": rate,
        "scheduled": total,
        "received": received,
        **sent,
    }
    for name, p in (("p50", 50), ("p99", 99), ("p999", 99.9)):
        out[name] = percentile(full, p)
    out["max"] = max(full)
    return out


# --- workload 5: the SQS API through boto3 --------------------------------------------
def sqs_workload(
    endpoint: str,
    pids: list[int],
    sampler: Sampler,
    n_one: int,
    n_batch: int,
    threads: int,
    cap_s: float,
) -> dict[str, Any]:
    from peers.sqs import SqsClient

    c = SqsClient(endpoint, threads)
    url = c.create(f"sqs-bench-{int(time.time() * 1000) % 1_000_000}")
    one = measure(pids, sampler, lambda: c.send_one(url, n_one, cap_s))
    batch = measure(pids, sampler, lambda: c.send_batches(url, n_batch, threads, cap_s))
    expected = one.count + batch.count
    consume = measure(pids, sampler, lambda: c.consume(url, expected, threads, cap_s))
    consume.extra["expected"] = expected
    return {"one": one.as_dict(), "batch": batch.as_dict(), "consume": consume.as_dict()}


def run_async(coro_fn: Callable[[], Any]) -> Any:
    return asyncio.run(coro_fn())
