"""``conveyor serve``: one node — the broker, the HTTP port and the native port.

:class:`Node` opens the broker on the data directory and listens on two ports:

* HTTP (default 127.0.0.1:9324): ``/healthz`` (the process is up), ``/readyz`` (it takes
  requests: the broker is open and both listeners are up; 503 while starting or
  stopping), and the Amazon SQS API for every other path.
* native protocol (default 127.0.0.1:9325): :mod:`conveyor.server.native`.

SIGTERM and SIGINT stop it gracefully: readiness goes to 503, the listeners stop
accepting, waiting long polls answer (empty), requests in flight finish (up to
``shutdown_grace_s``), the broker checkpoints and flushes, and the process exits 0. A
second signal stops at once (still closing the broker). The log is one structured line
per start, stop, queue change and error (JSON by default), never one per message.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

from conveyor import __version__
from conveyor.broker.aio import AsyncBroker
from conveyor.broker.broker import Broker
from conveyor.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from conveyor.metrics import Metrics
from conveyor.server.admin import AdminApi
from conveyor.server.busy_poll import loop_factory
from conveyor.server.console import Console
from conveyor.server.history import CountSource, HistorySampler
from conveyor.server.http import HttpProtocol, Request, Response, start_http
from conveyor.server.native import NativeProtocol, start_native
from conveyor.server.settings import FIELDS, Settings, load_settings
from conveyor.server.sqs_api import SqsApi

if TYPE_CHECKING:
    from conveyor.cluster.node import ClusterNode

log = logging.getLogger("conveyor.server")

_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(
            f"{k}={v}"
            for k, v in vars(record).items()
            if k not in _RECORD_FIELDS and not k.startswith("_")
        )
        line = f"{self.formatTime(record)} {record.levelname:<7} {record.name}: "
        line += record.getMessage() + (f" {extra}" if extra else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    root = logging.getLogger("conveyor")
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    root.propagate = False


class Node:
    """A running single node. ``await start()``, then ``await stop()``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.broker: AsyncBroker | None = None
        self.ready = False
        self._http: asyncio.Server | None = None
        self._native: asyncio.Server | None = None
        self._http_conns: set[HttpProtocol] = set()
        self._native_conns: set[NativeProtocol] = set()
        self._sqs: SqsApi | None = None
        self.http_port = settings.port
        self.native_port = settings.native_port
        self.metrics = Metrics()  # this node's own registry: /metrics
        self._admin: AdminApi | None = None
        self.console = Console()  # the web console's files, /console/
        self.sampler: HistorySampler | None = None  # the console's 15 minutes of history
        self.cluster: ClusterNode | None = None  # cluster mode (--cluster)

    async def start(self) -> None:
        s = self.settings
        if s.cluster:
            from conveyor.cluster.serve import cluster_node

            self.cluster = await asyncio.to_thread(cluster_node, s)
        factory = secret = None
        if self.cluster is not None:
            factory = self.cluster.partition_factory
            secret = await asyncio.to_thread(self.cluster.receipt_secret)
        sync = await asyncio.to_thread(
            Broker,
            s.data_dir,
            fsync=s.fsync,
            metrics=self.metrics,
            partition_factory=factory,
            receipt_secret=secret,
        )
        self.broker = AsyncBroker(sync)
        if self.cluster is not None:
            from conveyor.cluster.routing import RoutedBroker

            # the SQS and admin APIs run each call where its queue is led
            self.broker = RoutedBroker(self.broker, self.cluster)
        self.metrics.set_connections(
            lambda: {"http": len(self._http_conns), "native": len(self._native_conns)}
        )
        self.sampler = HistorySampler(sync, CountSource(self.metrics.queue_metrics))
        self.sampler.start()
        self._admin = AdminApi(self.broker, self.metrics, self, self.sampler.history)
        self._sqs = SqsApi(
            self.broker,
            s,
            on_request=lambda action, code: self.metrics.request("sqs", action, code),
        )
        self._http, self._http_conns = await start_http(self.handle_http, s.host, s.port)
        on_native = lambda op, code: self.metrics.request("native", op, code)  # noqa: E731
        handler = None
        if self.cluster is not None:
            from conveyor.cluster.routing import ClusterNativeHandler

            handler = ClusterNativeHandler(self.broker, self.cluster, on_native)
        self._native, self._native_conns = await start_native(
            self.broker,
            s.host,
            s.native_port,
            node_id=sync.node_id,
            max_frame_bytes=s.native_max_frame_bytes,
            on_request=on_native,
            handler=handler,
        )
        self.http_port = self._http.sockets[0].getsockname()[1]
        self.native_port = self._native.sockets[0].getsockname()[1]
        if self.cluster is not None:
            await self.cluster.start(sync, self.http_port, self.native_port)
        self.ready = True
        log.info(
            "conveyor started",
            extra={
                "version": __version__,
                "node_id": sync.node_id,
                "data_dir": os.path.abspath(s.data_dir),
                "http": f"{s.host}:{self.http_port}",
                "native": f"{s.host}:{self.native_port}",
                "fsync": s.fsync,
                "queues": len(sync.list_queues()),
                "pid": os.getpid(),
            },
        )

    async def handle_http(self, req: Request) -> Response:
        if req.path == "/healthz":
            return Response(200, b'{"status":"ok"}')
        if req.path == "/readyz":
            if self.ready:
                return Response(200, b'{"status":"ready"}')
            return Response(503, b'{"status":"not ready"}')
        if req.path == "/metrics":
            return Response(200, self.metrics.render(), METRICS_CONTENT_TYPE)
        if req.path == "/console" or req.path.startswith("/console/"):
            return self.console.handle(req)
        if req.path.startswith("/api/") and self._admin is not None:
            return await self._admin.handle(req)
        if self._sqs is not None:
            resp: Response = await self._sqs.handle(req)
            return resp
        return Response(404, b'{"error":"not found"}')

    async def stop(self) -> None:
        """Stop accepting, finish what is in flight, flush and close the broker."""
        self.ready = False
        started = time.monotonic()
        log.info("conveyor stopping", extra={"pid": os.getpid()})
        for server in (self._http, self._native):
            if server is not None:
                server.close()
        if self.broker is not None:
            self.broker.sync.end_long_polls()
        for conn in list(self._native_conns):
            conn.stop_reading()
        for hconn in list(self._http_conns):
            hconn.close_when_idle()
        drains = [c.drain() for c in list(self._native_conns)]
        if drains:
            try:
                await asyncio.wait_for(
                    asyncio.gather(*drains, return_exceptions=True),
                    self.settings.shutdown_grace_s,
                )
            except TimeoutError:
                log.warning("requests still in flight at the end of the grace period")
        for conn in list(self._native_conns):
            conn.abort()
        if self.sampler is not None:
            await self.sampler.stop()
        if self._sqs is not None:
            await self._sqs.close()  # stops move tasks
        if self.cluster is not None:
            await self.cluster.stop()
        if self.broker is not None:
            await self.broker.close()
            if self.cluster is not None:
                from conveyor.cluster.node import mark_clean_stop

                mark_clean_stop(self.cluster.data_dir)
        log.info(
            "conveyor stopped",
            extra={"pid": os.getpid(), "took_s": round(time.monotonic() - started, 3)},
        )


async def serve(settings: Settings) -> int:
    """Run a node until SIGTERM or SIGINT; return the exit code."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = 0

    def on_signal(signum: int) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            log.info("signal received", extra={"signal": signal.Signals(signum).name})
            stop.set()
        else:
            log.warning("second signal: stopping now")
            for task in asyncio.all_tasks(loop):
                if task is not main_task:
                    task.cancel()

    main_task = asyncio.current_task()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    node = Node(settings)
    try:
        await node.start()
    except OSError as exc:
        log.error("cannot start", extra={"error": str(exc)})
        if node.broker is not None:
            await node.broker.close()
        return 1
    # What is loaded by now (modules, settings, the recovered queues) lives as long as the
    # process: keep it out of the cyclic collector's scans, so that a full collection
    # costs in proportion to what requests left since, not to the whole heap (a full
    # collection of the unfrozen heap took tens of ms, a pause every request then in
    # flight waited out).
    gc.collect()
    gc.freeze()
    await stop.wait()
    await node.stop()
    return 0


# --------------------------------------------------------------------------- command line
def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Every setting as a flag (``data_dir`` is ``--data-dir``), plus ``--config``."""
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=os.environ.get("CONVEYOR_CONFIG"),
        help="a TOML file of settings (env CONVEYOR_CONFIG); flags and CONVEYOR_* "
        "environment variables override it",
    )
    defaults = Settings()
    for name, annotation in FIELDS.items():
        default = getattr(defaults, name)
        flag = "--" + name.replace("_", "-")
        kind = type(default) if isinstance(default, int | float) else str
        parser.add_argument(
            flag,
            dest=name,
            type=kind,
            default=None,
            metavar=name.upper(),
            help=f"{_HELP.get(name, '')} (default {default!r}; env CONVEYOR_{name.upper()})",
        )
        del annotation


_HELP = {
    "data_dir": "where queues are stored",
    "host": "address to listen on (both ports)",
    "port": "HTTP port: SQS API, health checks",
    "native_port": "native protocol port",
    "fsync": "always (default: fsync before every answer, group-committed), interval, never",
    "log_level": "debug, info, warning, error",
    "log_format": "json or text",
    "account_id": "SQS account id for requests whose access key names none",
    "region": "SQS region for unsigned requests",
    "shutdown_grace_s": "seconds to finish in-flight requests on SIGTERM",
    "native_max_frame_bytes": "largest native-protocol frame accepted",
    "sqs_access_keys": "KEY:SECRET,... pairs; when set, SQS requests must be SigV4-signed "
    "with one of them",
    "cluster": "etcd://HOST:PORT[,HOST:PORT...]: join the cluster those etcd members "
    "coordinate (empty: a single node)",
    "node_id": "this node's name in the cluster, unique in it (required with --cluster)",
    "advertise": "the host other nodes and clients reach this node at (default: --host)",
    "replication_factor": "replicas of each partition of a new queue (cluster mode)",
    "min_insync": "in-sync replicas a write needs before it is acknowledged (cluster mode)",
    "lease_ttl_ms": "the node's coordinator lease: how soon a dead node's partitions move",
    "replace_after_s": "how long a node may be gone before its replicas are rebuilt elsewhere",
    "busy_poll_us": "microseconds the idle event loop polls for I/O before it sleeps: "
    "answers sooner one at a time, for CPU spent spinning (0: off)",
}


def run_from_args(args: argparse.Namespace) -> int:
    flags = {name: getattr(args, name, None) for name in FIELDS}
    try:
        settings = load_settings(args.config, flags)
    except (ValueError, OSError) as exc:
        print(f"conveyor serve: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings)
    with (
        contextlib.suppress(KeyboardInterrupt),
        asyncio.Runner(loop_factory=lambda: loop_factory(settings.busy_poll_us)) as runner,
    ):
        return runner.run(serve(settings))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="conveyor serve", description="Run a Conveyor node on a local data directory."
    )
    add_serve_arguments(parser)
    return run_from_args(parser.parse_args(argv))
