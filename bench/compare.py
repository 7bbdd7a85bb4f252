"""Conveyor against its peers: the same workloads, 1 KiB messages, every system started
here on 127.0.0.1 with its durability setting and driven through its standard Python
client. Set up the peers once with ``bench/setup-peers`` (Debian packages + the
``bench`` extra); then

    .venv/bin/python bench/compare.py --runs 3 --out bench-results.md
    .venv/bin/python bench/compare.py --smoke                 # seconds per system
    .venv/bin/python bench/compare.py --systems conveyor,postgres --runs 1
    .venv/bin/python bench/compare.py --list                  # what is installed

Systems (``--systems``): conveyor, rabbitmq-classic, rabbitmq-quorum, nats, nats-sync,
redis-everysec, redis-always, postgres, moto (SQS API only). Workloads: see
``bench/workloads.py``. Each run starts every system afresh (temporary data directory,
free ports), runs the workloads, and stops it by PID; the tables show the median of
the runs of every figure, and ratios to Conveyor. ``--json`` keeps every run.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import math
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from benchlib import machine
from peers import BY_NAME, SPECS, Spec, install_signal_handlers, stop_all
from workloads import Sampler, latency, measure, sqs_workload

QUEUE = "bench"
TIMES = "\u00d7"  # multiplication sign


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- one system, one run --------------------------------------------------------------
def run_group(
    specs: list[Spec], args: argparse.Namespace, workdir: Path
) -> dict[str, dict[str, Any]]:
    """Start the server of ``specs[0]``, run every spec's workloads on it (several specs
    share a server only in smoke mode), stop it. Returns the results per spec name."""
    mod = specs[0].load()
    server = mod.Server(workdir, specs[0].settings)
    sampler: Sampler | None = None
    results: dict[str, dict[str, Any]] = {}
    try:
        t = time.perf_counter()
        conn = server.start()
        start_s = time.perf_counter() - t
        sampler = Sampler(server.pids).start()
        for spec in specs:
            if len(specs) > 1:
                log(f"  {spec.name} (sharing the server)")
            out = run_workloads(spec, mod, conn, server.pids, sampler, args)
            out["version"] = server.version
            out["start_s"] = start_s
            out["loadavg_1min_after"] = os.getloadavg()[0]
            results[spec.name] = out
    finally:
        if sampler is not None:
            sampler.stop()
        server.stop()
    return results


def run_workloads(
    spec: Spec,
    mod: Any,
    conn: dict[str, Any],
    pids: list[int],
    sampler: Sampler,
    args: argparse.Namespace,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    peaks: list[float] = []
    if not spec.sqs_only:
        client = mod.Client(conn, spec.settings)
        queue = f"{QUEUE}-{spec.name}"
        client.setup(queue)
        cap = args.cap_s
        log(f"    (1) produce one at a time, {args.one_n} messages")
        w1 = measure(pids, sampler, lambda: client.produce_one(queue, args.one_n, cap))
        log(f"        {w1.rate:,.0f} msg/s")
        log(f"    (2) produce {args.depth} x {args.batch} pipelined, {args.batch_n} messages")
        w2 = measure(
            pids,
            sampler,
            lambda: asyncio.run(
                client.produce_pipelined(queue, args.batch_n, args.depth, args.batch, cap)
            ),
        )
        log(f"        {w2.rate:,.0f} msg/s")
        expected = w1.count + w2.count
        log(f"    (3) consume + ack {expected} messages, {args.workers} consumers")
        w3 = measure(
            pids,
            sampler,
            lambda: asyncio.run(client.consume(queue, expected, args.workers, args.batch, cap)),
        )
        w3.extra["expected"] = expected
        w3.extra["left_in_queue"] = asyncio.run(client.depth(queue))
        log(f"        {w3.rate:,.0f} msg/s, {w3.extra['left_in_queue']} left")
        out["produce_one"] = w1.as_dict()
        out["produce_batched"] = w2.as_dict()
        out["consume"] = w3.as_dict()
        peaks += [w1.peak_mb, w2.peak_mb, w3.peak_mb]
        out["latency"] = []
        for rate in args.rates:
            q = f"lat-{spec.name}-{rate}"
            client.setup(q)
            log(f"    (4) latency at {rate:,} msg/s for {args.rate_s:g} s")
            ph = measure(
                pids,
                sampler,
                lambda q=q, rate=rate: _lat(spec, conn, q, rate, args, out),
            )
            lat = out["latency"][-1]
            lat["server_cpu_s"] = ph.server_cpu_s
            lat["peak_mb"] = ph.peak_mb
            peaks.append(ph.peak_mb)
            log(
                f"        p50 {lat['p50']:.2f} p99 {lat['p99']:.2f} p99.9 "
                f"{lat['p999']:.2f} ms, {lat['received']}/{lat['scheduled']} received"
            )
    if spec.sqs_only or spec.has_sqs:
        log(f"    (5) SQS API (boto3): {args.sqs_one_n} + {args.sqs_batch_n} messages")
        out["sqs"] = sqs_workload(
            conn["http"], pids, sampler, args.sqs_one_n, args.sqs_batch_n, 4, args.cap_s
        )
        sq = out["sqs"]
        peaks += [sq[ph]["peak_mb"] for ph in ("one", "batch", "consume")]
        log(
            f"        send {sq['one']['rate']:,.0f}, batch {sq['batch']['rate']:,.0f}, "
            f"consume {sq['consume']['rate']:,.0f} msg/s"
        )
    out["peak_mb"] = max(peaks) if peaks else None
    return out


def groups(specs: list[Spec], shared: bool) -> list[list[Spec]]:
    """One server per spec; with ``shared``, consecutive specs that differ only in
    client-side settings (RabbitMQ's queue type) share one server, to save start-up
    time in smoke mode."""
    out: list[list[Spec]] = []
    for spec in specs:
        if shared and out and spec.shared_server and out[-1][0].shared_server == spec.shared_server:
            out[-1].append(spec)
        else:
            out.append([spec])
    return out


def _lat(spec: Spec, conn: dict[str, Any], q: str, rate: int, args: Any, out: Any) -> int:
    r = latency(
        spec.module,
        conn,
        spec.settings,
        q,
        rate,
        args.rate_s,
        args.concurrency,
        args.drain_s,
        0.3 if args.smoke else 1.0,
    )
    out["latency"].append(r)
    return int(r["received"])


# --- medians and tables ---------------------------------------------------------------
def med(values: list[float | None]) -> float | None:
    vs = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return statistics.median(vs) if vs else None


def get(run: dict[str, Any], *path: Any) -> Any:
    cur: Any = run
    for p in path:
        if isinstance(cur, dict):
            cur = cur.get(p)
        elif isinstance(cur, list) and isinstance(p, int) and p < len(cur):
            cur = cur[p]
        else:
            return None
        if cur is None:
            return None
    return cur


def fnum(v: float | None, digits: int = 0) -> str:
    if v is None:
        return "—"
    if math.isinf(v):
        return "∞"
    return f"{v:,.{digits}f}"


def ratio(v: float | None, base: float | None) -> str:
    if v is None or base is None or base == 0 or math.isinf(v) or math.isinf(base):
        return ""
    r = v / base
    return f" ({r:.2g}{TIMES})" if r < 10 else f" ({r:,.0f}{TIMES})"


def fms(v: float | None) -> str:
    if v is None:
        return "—"
    if math.isinf(v):
        return "lost"
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def summarize(results: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Median of every figure over the runs that succeeded, per system."""
    out: dict[str, dict[str, Any]] = {}
    for name, runs in results.items():
        ok = [r for r in runs if "error" not in r]
        s: dict[str, Any] = {"runs": len(ok), "errors": [r["error"] for r in runs if "error" in r]}
        if ok:
            s["version"] = ok[0].get("version")
            s["peak_mb"] = med([r.get("peak_mb") for r in ok])
            for w in ("produce_one", "produce_batched", "consume"):
                if get(ok[0], w) is None:
                    continue
                s[w] = {
                    "rate": med([get(r, w, "rate") for r in ok]),
                    "runs": [get(r, w, "rate") for r in ok],
                    "cpu_us": med(
                        [
                            get(r, w, "server_cpu_s") / get(r, w, "count") * 1e6
                            if get(r, w, "count")
                            else None
                            for r in ok
                        ]
                    ),
                    "client_cpu_us": med(
                        [
                            get(r, w, "client_cpu_s") / get(r, w, "count") * 1e6
                            if get(r, w, "count")
                            else None
                            for r in ok
                        ]
                    ),
                    "cpu_s": med([get(r, w, "server_cpu_s") for r in ok]),
                    "count": med([get(r, w, "count") for r in ok]),
                }
            if get(ok[0], "consume") is not None:
                s["consume"]["all"] = all(
                    get(r, "consume", "count") >= get(r, "consume", "extra", "expected")
                    and not get(r, "consume", "extra", "left_in_queue")
                    for r in ok
                )
            if get(ok[0], "latency"):
                s["latency"] = []
                for i, first in enumerate(ok[0]["latency"]):
                    s["latency"].append(
                        {
                            "rate": first["rate"],
                            **{
                                k: med([get(r, "latency", i, k) for r in ok])
                                for k in (
                                    "p50",
                                    "p99",
                                    "p999",
                                    "received",
                                    "scheduled",
                                    "server_cpu_s",
                                )
                            },
                            "lost": max(
                                (get(r, "latency", i, "scheduled") or 0)
                                - (get(r, "latency", i, "received") or 0)
                                for r in ok
                            ),
                        }
                    )
            if get(ok[0], "sqs"):
                s["sqs"] = {
                    ph: {
                        "rate": med([get(r, "sqs", ph, "rate") for r in ok]),
                        "cpu_us": med(
                            [
                                get(r, "sqs", ph, "server_cpu_s") / get(r, "sqs", ph, "count") * 1e6
                                if get(r, "sqs", ph, "count")
                                else None
                                for r in ok
                            ]
                        ),
                        "count": med([get(r, "sqs", ph, "count") for r in ok]),
                        "expected": med([get(r, "sqs", ph, "extra", "expected") for r in ok]),
                    }
                    for ph in ("one", "batch", "consume")
                }
        out[name] = s
    return out


def tables(summary: dict[str, dict[str, Any]], specs: list[Spec], args: argparse.Namespace) -> str:
    lines: list[str] = []
    base = summary.get("conveyor", {})
    rows = [s for s in specs if s.name in summary and not s.sqs_only]

    def brate(w: str) -> float | None:
        return get(base, w, "rate")

    lines += [
        f"Throughput, msg/s (median of {args.runs} run(s); in brackets: ratio to Conveyor, "
        "higher is better)",
        "",
        "| system | fsync before ack | (1) produce, one at a time | (2) produce, "
        f"batched/pipelined ({args.depth}{TIMES}{args.batch}) | (3) consume + ack/delete | "
        "all consumed |",
        "|---|---|---:|---:|---:|---|",
    ]
    for spec in rows:
        s = summary[spec.name]
        if not s.get("runs"):
            lines.append(f"| {spec.title} | {spec.fsync} | error | error | error | |")
            continue
        cells = [
            fnum(get(s, w, "rate"))
            + (ratio(get(s, w, "rate"), brate(w)) if spec.name != "conveyor" else "")
            for w in ("produce_one", "produce_batched", "consume")
        ]
        allc = "yes" if get(s, "consume", "all") else "**no**"
        lines.append(f"| {spec.title} | {spec.fsync} | {' | '.join(cells)} | {allc} |")

    lines += [
        "",
        "End-to-end latency at fixed rates, ms: p50 / p99 / p99.9 from the scheduled send "
        "time to receipt (no coordinated omission); in brackets: p99 ratio to Conveyor, "
        "lower is better; lost: not received within "
        f"{args.drain_s:g} s after the {args.rate_s:g} s schedule",
        "",
        "| system | " + " | ".join(f"{r:,} msg/s" for r in args.rates) + " |",
        "|---|" + "---:|" * len(args.rates),
    ]
    for spec in rows:
        s = summary[spec.name]
        cells = []
        for i, _ in enumerate(args.rates):
            lat = get(s, "latency", i)
            if lat is None:
                cells.append("—")
                continue
            cell = f"{fms(lat['p50'])} / {fms(lat['p99'])} / {fms(lat['p999'])}"
            if spec.name != "conveyor":
                cell += ratio(lat["p99"], get(base, "latency", i, "p99"))
            if lat.get("lost"):
                cell += f", {lat['lost']:,.0f} lost"
            cells.append(cell)
        lines.append(f"| {spec.title} | " + " | ".join(cells) + " |")

    lines += [
        "",
        "Server resources: CPU time of the server's processes per message (user + system, "
        "whole process tree) and, after the slash, of the client (the harness process, "
        "which shares the 2 cores), in µs; the server's CPU seconds over (1)-(4); peak "
        "memory of the server (sum of the PSS of its processes, MB)",
        "",
        "| system | CPU µs/msg (1), server / client | (2) | (3) | server CPU s, (1)-(4) | "
        "peak memory MB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for spec in rows:
        s = summary[spec.name]
        total = sum(
            v
            for v in [get(s, w, "cpu_s") for w in ("produce_one", "produce_batched", "consume")]
            + [lat.get("server_cpu_s") for lat in s.get("latency", [])]
            if v is not None
        )
        us = [
            f"{fnum(get(s, w, 'cpu_us'))} / {fnum(get(s, w, 'client_cpu_us'))}"
            for w in ("produce_one", "produce_batched", "consume")
        ]
        lines.append(
            f"| {spec.title} | {' | '.join(us)} | {fnum(total, 1)} | {fnum(s.get('peak_mb'))} |"
        )

    sqs_rows = [s for s in specs if s.name in summary and (s.sqs_only or s.has_sqs)]
    if any(get(summary[s.name], "sqs") for s in sqs_rows):
        lines += [
            "",
            "(5) SQS API through boto3, msg/s (server CPU µs/msg); the boto3 client shares "
            "the 2 cores and costs milliseconds of CPU per call",
            "",
            "| server | fsync before ack | SendMessage, one at a time | SendMessageBatch (10), "
            "4 threads | ReceiveMessage (10) + DeleteMessageBatch, 4 threads | all "
            "consumed | peak memory MB |",
            "|---|---|---:|---:|---:|---|---:|",
        ]
        for spec in sqs_rows:
            s = summary[spec.name]
            q = get(s, "sqs")
            if not q:
                continue
            cells = [
                f"{fnum(q[ph]['rate'])} ({fnum(q[ph]['cpu_us'])} µs)"
                for ph in ("one", "batch", "consume")
            ]
            allc = (
                "yes"
                if q["consume"]["count"] is not None
                and q["consume"]["count"] >= (q["consume"]["expected"] or 0)
                else "**no**"
            )
            title = "Conveyor (SQS API)" if spec.has_sqs else spec.title
            lines.append(
                f"| {title} | {spec.fsync} | {' | '.join(cells)} | {allc} | "
                f"{fnum(s.get('peak_mb'))} |"
            )

    lines += [
        "",
        "What each row is",
        "",
        "| system | server | durability setting: who fsyncs before the ack | "
        "batched/pipelined (2) | consume (3) |",
        "|---|---|---|---|---|",
    ]
    for spec in specs:
        if spec.name not in summary:
            continue
        s = summary[spec.name]
        lines.append(
            f"| {spec.title} | {s.get('version') or '—'} | {spec.durability} | "
            f"{spec.pipelined} | {spec.consume} |"
        )
    errors = [(n, e) for n, s in summary.items() for e in s.get("errors", [])]
    if errors:
        lines += ["", "Errors:", ""]
        lines += [f"* {n}: {e.splitlines()[-1] if e else e}" for n, e in errors]
    return "\n".join(lines) + "\n"


# --- main -----------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--smoke", action="store_true", help="tiny counts, one run, one rate")
    ap.add_argument("--runs", type=int, default=None, help="runs per system (default 3)")
    ap.add_argument("--systems", default=None, help="comma-separated (default: all installed)")
    ap.add_argument("--list", action="store_true", help="show which systems can run, and exit")
    ap.add_argument("--out", type=Path, help="also write the report (markdown) here")
    ap.add_argument("--json", type=Path, help="write every run's figures here")
    ap.add_argument(
        "--from-json", type=Path, help="only render the tables of an earlier --json file"
    )
    ap.add_argument("--one-n", type=int, help="(1) messages (default 2000)")
    ap.add_argument("--batch-n", type=int, help="(2) messages (default 30000)")
    ap.add_argument("--depth", type=int, default=8, help="(2) tasks in flight (default 8)")
    ap.add_argument("--batch", type=int, default=100, help="(2)(3) batch size (default 100)")
    ap.add_argument("--workers", type=int, default=4, help="(3) consumers (default 4)")
    ap.add_argument("--cap-s", type=float, help="time cap of phases 1-3 and 5 (default 30)")
    ap.add_argument("--rates", help="(4) msg/s, comma-separated (default 1000,5000,20000)")
    ap.add_argument("--rate-s", type=float, help="(4) seconds of sending per rate (default 3)")
    ap.add_argument("--drain-s", type=float, help="(4) wait for stragglers (default 15)")
    ap.add_argument("--concurrency", type=int, default=32, help="(4) sends in flight (32)")
    ap.add_argument("--sqs-one-n", type=int, help="(5) SendMessage calls (default 500)")
    ap.add_argument("--sqs-batch-n", type=int, help="(5) messages in batches (default 3000)")
    args = ap.parse_args(argv)
    smoke = args.smoke
    defaults: dict[str, Any] = {
        "runs": 1 if smoke else 3,
        "one_n": 50 if smoke else 2000,
        "batch_n": 400 if smoke else 30000,
        "cap_s": 15.0 if smoke else 30.0,
        "rates": "500" if smoke else "1000,5000,20000",
        "rate_s": 0.5 if smoke else 3.0,
        "drain_s": 5.0 if smoke else 15.0,
        "sqs_one_n": 20 if smoke else 500,
        "sqs_batch_n": 100 if smoke else 3000,
    }
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    args.rates = [int(r) for r in str(args.rates).split(",") if r.strip()]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        return report_from_json(args.from_json, args.out)
    install_signal_handlers()
    wanted = (
        [s.strip() for s in args.systems.split(",") if s.strip()]
        if args.systems
        else [s.name for s in SPECS]
    )
    unknown = [w for w in wanted if w not in BY_NAME]
    if unknown:
        log(f"unknown systems: {', '.join(unknown)} (known: {', '.join(BY_NAME)})")
        return 2
    specs, skipped = [], {}
    wanted.sort(key=[s.name for s in SPECS].index)
    for name in wanted:
        reason = BY_NAME[name].available()
        if reason is None:
            specs.append(BY_NAME[name])
        else:
            skipped[name] = reason
    if args.list:
        for name in wanted:
            print(f"{name:18s} {'ok' if name not in skipped else 'skip: ' + skipped[name]}")
        return 0
    for name, reason in skipped.items():
        log(f"skipping {name}: {reason}")

    results: dict[str, list[dict[str, Any]]] = {s.name: [] for s in specs}
    load_before = os.getloadavg()
    started = time.time()
    root = Path(tempfile.mkdtemp(prefix="conveyor-compare-"))
    os.chmod(root, 0o755)  # servers run as other users (postgres) must reach their dirs
    try:
        for run in range(args.runs):
            for group in groups(specs, shared=args.smoke):
                names = ", ".join(s.name for s in group)
                log(f"run {run + 1}/{args.runs}: {names}")
                workdir = root / f"{group[0].name}-{run}"
                workdir.mkdir()
                os.chmod(workdir, 0o755)
                t_sys = time.perf_counter()
                try:
                    for name, res in run_group(group, args, workdir).items():
                        results[name].append(res)
                    log(f"    done in {time.perf_counter() - t_sys:.1f} s")
                except Exception as e:
                    log(f"    error: {e!r}")
                    err = "".join(traceback.format_exception(e))[-4000:]
                    for s in group:
                        if len(results[s.name]) <= run:
                            results[s.name].append({"error": err})
                finally:
                    shutil.rmtree(workdir, ignore_errors=True)
    finally:
        stop_all()
        shutil.rmtree(root, ignore_errors=True)

    meta = {
        "command": ".venv/bin/python bench/compare.py "
        + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
        "machine": machine(),
        "date": datetime.date.today().isoformat(),
        "elapsed_s": time.time() - started,
        "load_before": list(load_before),
        "load_after": list(os.getloadavg()),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    summary = summarize(results)
    report = render(meta, summary, results, skipped, specs, args)
    print(report)
    if args.out:
        args.out.write_text(report)
    if args.json:
        data = {"meta": meta, "summary": summary, "runs": results, "skipped": skipped}
        args.json.write_text(json.dumps(_finite(data), indent=1))
    return 0 if all(s.get("runs") for s in summary.values()) else 1


def render(
    meta: dict[str, Any],
    summary: dict[str, dict[str, Any]],
    results: dict[str, list[dict[str, Any]]],
    skipped: dict[str, str],
    specs: list[Spec],
    args: argparse.Namespace,
) -> str:
    loads = sorted(
        r["loadavg_1min_after"]
        for runs in results.values()
        for r in runs
        if "loadavg_1min_after" in r
    )

    def la(xs: list[float] | None) -> str:
        return " / ".join(f"{x:.2f}" for x in xs) if xs else "?"

    head = [
        f"Command: `{meta['command'].strip()}`",
        "",
        f"Machine: {meta['machine']}",
        f"Date: {meta['date']}; {args.runs} run(s), {meta['elapsed_s'] / 60:.1f} min in all; "
        f"load average (1/5/15 min) {la(meta.get('load_before'))} before, "
        f"{la(meta.get('load_after'))} after",
    ]
    if loads:
        head.append(
            f"Load average (1 min) after each system's run: {loads[0]:.1f} to {loads[-1]:.1f}, "
            f"median {statistics.median(loads):.1f} (2 cores)"
        )
    head.append(
        f"Messages: {1024} B bodies; (1) {args.one_n:,} messages; (2) {args.batch_n:,} "
        f"messages, {args.depth} tasks {TIMES} {args.batch}; (3) all of them, {args.workers} "
        f"consumers {TIMES} {args.batch}; (4) {args.rate_s:g} s per rate, {args.concurrency} "
        f"sends in flight at most; (5) {args.sqs_one_n:,} + {args.sqs_batch_n:,} messages; "
        f"phases (1)-(3) and (5) capped at {args.cap_s:g} s"
    )
    if skipped:
        head.append("Skipped: " + "; ".join(f"{n} ({r})" for n, r in skipped.items()))
    return "\n".join(head) + "\n\n" + tables(summary, specs, args)


def report_from_json(path: Path, out: Path | None) -> int:
    """Render the tables again from a ``--json`` file (no servers are started)."""
    data = json.loads(path.read_text())
    results = data["runs"]
    for runs in results.values():
        for r in runs:
            for lat in r.get("latency", []):
                for k in ("p50", "p99", "p999", "max"):
                    if lat.get(k) is None:  # stored as null: infinitely late (lost)
                        lat[k] = math.inf
    args = parse_args([])
    for k, v in data["meta"]["args"].items():
        setattr(args, k, v)
    specs = [s for s in SPECS if s.name in results]
    report = render(data["meta"], summarize(results), results, data["skipped"], specs, args)
    print(report)
    if out:
        out.write_text(report)
    return 0


def _finite(x: Any) -> Any:
    if isinstance(x, float) and (math.isinf(x) or math.isnan(x)):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


if __name__ == "__main__":
    raise SystemExit(main())
