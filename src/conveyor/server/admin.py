"""The admin HTTP API under ``/api/v1/`` (JSON), for operators and the web console.

::

    GET  /api/v1/queues                    every queue with its stats
    GET  /api/v1/queues/{name}             one queue: config, tags, stats, partitions
    GET  /api/v1/queues/{name}/messages    peek (?limit=N, 1..100): changes nothing
    POST /api/v1/queues/{name}/messages    send one message
    POST /api/v1/queues/{name}/purge       delete every message
    POST /api/v1/queues/{name}/redrive     move a dead-letter queue's messages back
    GET  /api/v1/queues/{name}/history     the last 15 minutes (?since_ms=T: newer points)
    GET  /api/v1/history                   the same for every queue
    GET  /api/v1/node                      node id, version, uptime, data dir, fsync
    GET  /api/v1/cluster                   cluster mode: nodes, partitions, leaders, ISR
    GET  /api/v1/openapi.json              the OpenAPI 3.1 document of all this

:mod:`conveyor.server.admin_spec` holds the OpenAPI document, written by hand; the tests
check every answer against it. Errors are ``{"error": {"code", "message"}}`` with a 4xx
status for bad input (and then nothing changed) and 5xx for the node's own trouble.
The wire types below are the API: change them and the document together.
"""

from __future__ import annotations

import base64
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec

from conveyor import __version__, errors
from conveyor.broker.aio import AsyncBroker
from conveyor.metrics import Metrics, QueueSample
from conveyor.queue import QueueConfig
from conveyor.server.admin_spec import OPENAPI
from conveyor.server.history import History, HistoryPoint
from conveyor.server.http import Request, Response
from conveyor.server.settings import Settings
from conveyor.types import Message, MessageAttribute

if TYPE_CHECKING:
    from conveyor.cluster.node import ClusterNode

log = logging.getLogger("conveyor.admin")

PREFIX = "/api/v1/"
peek_limit_default = 10
peek_limit_max = 100

_T = TypeVar("_T")


# --------------------------------------------------------------------------- wire types
class ErrorBody(msgspec.Struct):
    code: str
    message: str


class ErrorOut(msgspec.Struct):
    error: ErrorBody


class StatsOut(msgspec.Struct, kw_only=True):
    messages: int
    bytes: int
    visible: int
    inflight: int
    delayed: int
    visible_bytes: int
    inflight_bytes: int
    delayed_bytes: int
    oldest_age_s: float  # 0 when empty
    parked_receives: int


class PartitionOut(msgspec.Struct, kw_only=True):
    index: int
    visible: int
    inflight: int
    delayed: int
    visible_bytes: int
    inflight_bytes: int
    delayed_bytes: int
    oldest_age_s: float
    log_bytes: int
    log_segments: int


class QueueSummaryOut(msgspec.Struct, kw_only=True):
    name: str
    fifo: bool
    partitions: int
    dead_letter_queue: str | None
    stats: StatsOut


class QueueListOut(msgspec.Struct):
    queues: list[QueueSummaryOut]


class QueueDetailOut(msgspec.Struct, kw_only=True):
    name: str
    uid: str
    created_ms: int
    modified_ms: int
    config: QueueConfig
    tags: dict[str, str]
    stats: StatsOut
    partitions: list[PartitionOut]
    dead_letter_sources: list[str]  # queues whose redrive policy points here


class AttributeIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    data_type: str
    string_value: str | None = None
    binary_value: bytes | None = None  # base64 in JSON


class AttributeOut(msgspec.Struct, kw_only=True):
    data_type: str
    string_value: str | None
    binary_value: str | None  # base64


class MessageOut(msgspec.Struct, kw_only=True):
    message_id: str
    body: str
    body_encoding: str  # "text" (UTF-8) or "base64"
    attributes: dict[str, AttributeOut]
    system: dict[str, str]
    sent_ms: int
    receive_count: int
    first_receive_ms: int
    group_id: str | None
    dedup_id: str | None
    sequence_number: str | None


class MessageListOut(msgspec.Struct):
    messages: list[MessageOut]


class SendIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    body: str
    attributes: dict[str, AttributeIn] | None = None
    delay_s: int | None = None
    group_id: str | None = None
    dedup_id: str | None = None


class SendOut(msgspec.Struct, kw_only=True):
    message_id: str
    sequence_number: str | None
    duplicate: bool


class PurgeOut(msgspec.Struct, kw_only=True):
    queue: str
    purged: bool


class RedriveIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    destination: str | None = None
    max_messages: int | None = None


class RedriveOut(msgspec.Struct, kw_only=True):
    queue: str
    destination: str | None
    moved: int


class QueueHistoryOut(msgspec.Struct, kw_only=True):
    queue: str
    interval_s: float
    points_max: int
    points: list[HistoryPoint]  # oldest first


class HistoryOut(msgspec.Struct):
    queues: list[QueueHistoryOut]


class NodeOut(msgspec.Struct, kw_only=True):
    node_id: str
    version: str
    started_ms: int
    uptime_s: float
    data_dir: str
    fsync: str
    http_address: str
    native_address: str
    queues: int
    pid: int


class ClusterNodeOut(msgspec.Struct, kw_only=True):
    id: str
    http: str  # host:port of its HTTP (SQS, admin API, console)
    native: str  # host:port of its native protocol
    lease: int | None  # its coordinator lease
    lease_hex: str | None  # the same in hex, as etcdctl shows it (JSON numbers lose digits)
    replicas: int  # partition replicas it holds


class ClusterReplicaOut(msgspec.Struct, kw_only=True):
    """The answering node's replica of a partition."""

    role: str  # leader, follower, catching-up, fenced
    log_end: int
    commit: int
    durable_end: int


class ClusterPartitionOut(msgspec.Struct, kw_only=True, omit_defaults=True):
    queue: str
    partition: int
    name: str
    replicas: list[str]
    leader: str | None
    epoch: int
    isr: list[str]
    local: ClusterReplicaOut | None = None  # absent: no replica on the answering node


class ClusterOut(msgspec.Struct, kw_only=True):
    node: str  # the answering node
    controller: str | None
    nodes: list[ClusterNodeOut]  # the live ones
    partitions: list[ClusterPartitionOut]


# --------------------------------------------------------------------------- errors
class _HttpError(Exception):
    """An answer that is not a broker error (unknown path, wrong method, bad JSON)."""

    def __init__(self, status: int, code: str, message: str, allow: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.allow = allow


def _status_of(exc: errors.ConveyorError) -> int:
    """The admin API's HTTP status for a broker error (REST, unlike SQS's table)."""
    if isinstance(exc, errors.QueueDoesNotExist):
        return 404
    if isinstance(exc, errors.PurgeQueueInProgress | errors.QueueAlreadyExists):
        return 409
    if isinstance(exc, errors.QueueFull):
        return 429
    if isinstance(exc, errors.InvalidRequest):
        return 400
    if isinstance(exc, errors.AccessDenied | errors.InvalidSecurity):
        return 403
    if isinstance(exc, errors.Unavailable):
        return 503
    return 500


_encoder = msgspec.json.Encoder()


def _json(status: int, value: object, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, _encoder.encode(value), "application/json", headers or [])


def _error(status: int, code: str, message: str, allow: str = "") -> Response:
    headers = [("Allow", allow)] if allow else []
    return _json(status, ErrorOut(ErrorBody(code, message)), headers)


# --------------------------------------------------------------------------- the API
class NodeView(Protocol):
    """What the admin API reads of the node that serves it."""

    settings: Settings
    http_port: int
    native_port: int
    cluster: ClusterNode | None  # None: a single node


Handler = Callable[[Request, list[str]], Awaitable[Response]]


class AdminApi:
    def __init__(
        self,
        broker: AsyncBroker,
        metrics: Metrics,
        node: NodeView,
        history: History | None = None,
    ) -> None:
        self.broker = broker
        self.metrics = metrics
        self.node = node
        self.history = History() if history is None else history  # fed by the node
        self.started_ms = time.time_ns() // 1_000_000
        self._started = time.monotonic()
        self._spec = msgspec.json.encode(OPENAPI)
        # (path pattern with None for the queue name, method) -> (action, handler)
        self._routes: dict[tuple[tuple[str | None, ...], str], tuple[str, Handler]] = {
            (("queues",), "GET"): ("ListQueues", self._list_queues),
            (("queues", None), "GET"): ("GetQueue", self._get_queue),
            (("queues", None, "messages"), "GET"): ("PeekMessages", self._peek),
            (("queues", None, "messages"), "POST"): ("SendMessage", self._send),
            (("queues", None, "purge"), "POST"): ("PurgeQueue", self._purge),
            (("queues", None, "redrive"), "POST"): ("RedriveQueue", self._redrive),
            (("queues", None, "history"), "GET"): ("GetQueueHistory", self._queue_history),
            (("history",), "GET"): ("GetHistory", self._history),
            (("node",), "GET"): ("GetNode", self._node),
            (("cluster",), "GET"): ("GetCluster", self._cluster),
            (("openapi.json",), "GET"): ("GetOpenApi", self._openapi),
        }

    async def handle(self, req: Request) -> Response:
        action = "Unknown"
        try:
            action, handler, args = self._route(req)
            if req.method != "GET":
                _check_same_origin(req)
            resp = await handler(req, args)
            code = "OK"
        except _HttpError as exc:
            resp, code = _error(exc.status, exc.code, exc.message, exc.allow), exc.code
        except errors.ConveyorError as exc:
            resp, code = _error(_status_of(exc), exc.code, exc.message), exc.code
        self.metrics.request("admin", action, code)
        return resp

    def _route(self, req: Request) -> tuple[str, Handler, list[str]]:
        if not req.path.startswith(PREFIX):
            raise _HttpError(
                404, "NotFound", f"no such API: {req.path} (the admin API is {PREFIX})"
            )
        parts = [unquote(p) for p in req.path[len(PREFIX) :].split("/")]
        allowed: list[str] = []
        for (pattern, method), (action, handler) in self._routes.items():
            if len(pattern) != len(parts):
                continue
            if any(
                want is not None and want != got for want, got in zip(pattern, parts, strict=True)
            ):
                continue
            if method == req.method:
                args = [got for want, got in zip(pattern, parts, strict=True) if want is None]
                return action, handler, args
            allowed.append(method)
        if allowed:
            allow = ", ".join(sorted(allowed))
            raise _HttpError(
                405,
                "MethodNotAllowed",
                f"{req.method} is not allowed on {req.path}; use {allow}",
                allow,
            )
        raise _HttpError(404, "NotFound", f"no such resource: {req.path}")

    # ------------------------------------------------------------------ handlers
    async def _list_queues(self, req: Request, args: list[str]) -> Response:
        sync = self.broker.sync
        out: list[QueueSummaryOut] = []
        for sample in sync.queue_samples():
            try:
                info = sync.get_queue(sample.name)
            except errors.QueueDoesNotExist:
                continue  # deleted meanwhile
            cfg = info.config
            out.append(
                QueueSummaryOut(
                    name=info.name,
                    fifo=cfg.fifo,
                    partitions=cfg.partitions,
                    dead_letter_queue=cfg.redrive.dead_letter_queue if cfg.redrive else None,
                    stats=_stats(sample),
                )
            )
        out.sort(key=lambda q: q.name)
        return _json(200, QueueListOut(out))

    async def _get_queue(self, req: Request, args: list[str]) -> Response:
        name = args[0]
        sync = self.broker.sync
        info = sync.get_queue(name)
        samples = sync.queue_samples([name])
        if not samples:
            raise errors.QueueDoesNotExist(f"the queue {name!r} does not exist")
        sample = samples[0]
        sources = []
        for other in sync.list_queues():
            try:
                cfg = sync.get_queue(other).config
            except errors.QueueDoesNotExist:
                continue
            if cfg.redrive is not None and cfg.redrive.dead_letter_queue == name:
                sources.append(other)
        detail = QueueDetailOut(
            name=info.name,
            uid=info.uid,
            created_ms=info.created_ms,
            modified_ms=info.modified_ms,
            config=info.config,
            tags=info.tags,
            stats=_stats(sample),
            partitions=[
                PartitionOut(
                    index=p.index,
                    visible=p.visible,
                    inflight=p.inflight,
                    delayed=p.delayed,
                    visible_bytes=p.visible_bytes,
                    inflight_bytes=p.inflight_bytes,
                    delayed_bytes=p.delayed_bytes,
                    oldest_age_s=p.oldest_age_s,
                    log_bytes=p.log_bytes,
                    log_segments=p.log_segments,
                )
                for p in sample.partitions
            ],
            dead_letter_sources=sources,
        )
        return _json(200, detail)

    async def _peek(self, req: Request, args: list[str]) -> Response:
        limit = peek_limit_default
        values = parse_qs(req.query, keep_blank_values=True).get("limit")
        if values is not None:
            text = values[-1]
            if not text.isdecimal() or not 1 <= int(text) <= peek_limit_max:
                raise errors.InvalidParameterValue(
                    f"limit must be an integer from 1 to {peek_limit_max}, got {text!r}"
                )
            limit = int(text)
        msgs = await self.broker.peek(args[0], limit)
        return _json(200, MessageListOut([_message_out(m) for m in msgs]))

    async def _send(self, req: Request, args: list[str]) -> Response:
        body = _decode(req, SendIn, required=True)
        assert body is not None
        attributes = None
        if body.attributes is not None:
            attributes = {
                k: MessageAttribute(
                    data_type=a.data_type, string_value=a.string_value, binary_value=a.binary_value
                )
                for k, a in body.attributes.items()
            }
        result = await self.broker.send(
            args[0],
            body.body,
            attributes=attributes,
            delay_s=body.delay_s,
            group_id=body.group_id,
            dedup_id=body.dedup_id,
        )
        out = SendOut(
            message_id=result.message_id,
            sequence_number=result.sequence_number,
            duplicate=result.duplicate,
        )
        return _json(200, out)

    async def _purge(self, req: Request, args: list[str]) -> Response:
        if req.body.strip() not in (b"", b"{}"):
            raise errors.InvalidParameterValue("purge takes no body (or an empty object)")
        await self.broker.purge_queue(args[0])
        return _json(200, PurgeOut(queue=args[0], purged=True))

    async def _redrive(self, req: Request, args: list[str]) -> Response:
        body = _decode(req, RedriveIn, required=False) or RedriveIn()
        name = args[0]
        await self.broker.get_queue(name)  # 404 before looking at the body's queue
        if body.destination is not None:
            try:
                await self.broker.get_queue(body.destination)
            except errors.QueueDoesNotExist:
                raise errors.InvalidParameterValue(
                    f"the destination queue {body.destination!r} does not exist"
                ) from None
            if body.destination == name:
                raise errors.InvalidParameterValue("a queue cannot be redriven into itself")
        if body.max_messages is not None and body.max_messages < 1:
            raise errors.InvalidParameterValue("max_messages must be at least 1")
        moved = await self.broker.redrive(name, body.destination, body.max_messages)
        return _json(200, RedriveOut(queue=name, destination=body.destination, moved=moved))

    async def _queue_history(self, req: Request, args: list[str]) -> Response:
        since_ms = _since_ms(req)
        name = args[0]
        await self.broker.get_queue(name)  # 404 for an unknown queue
        return _json(200, self._queue_history_out(name, since_ms))

    async def _history(self, req: Request, args: list[str]) -> Response:
        since_ms = _since_ms(req)
        names = self.history.queues()
        return _json(200, HistoryOut([self._queue_history_out(n, since_ms) for n in names]))

    def _queue_history_out(self, name: str, since_ms: int) -> QueueHistoryOut:
        h = self.history
        return QueueHistoryOut(
            queue=name,
            interval_s=h.interval_s,
            points_max=h.points_max,
            points=h.points(name, since_ms),
        )

    async def _node(self, req: Request, args: list[str]) -> Response:
        s = self.node.settings
        sync = self.broker.sync
        out = NodeOut(
            node_id=sync.node_id,
            version=__version__,
            started_ms=self.started_ms,
            uptime_s=round(time.monotonic() - self._started, 3),
            data_dir=os.path.abspath(s.data_dir),
            fsync=s.fsync,
            http_address=f"{s.host}:{self.node.http_port}",
            native_address=f"{s.host}:{self.node.native_port}",
            queues=len(sync.list_queues()),
            pid=os.getpid(),
        )
        return _json(200, out)

    async def _cluster(self, req: Request, args: list[str]) -> Response:
        cluster = self.node.cluster
        if cluster is None:
            raise _HttpError(
                404,
                "NotFound",
                "not in cluster mode: this node runs alone (start it with "
                "--cluster etcd://HOST:PORT to join a cluster)",
            )
        return _json(200, _cluster_out(cluster.status()))

    async def _openapi(self, req: Request, args: list[str]) -> Response:
        return Response(200, self._spec, "application/json")


def _decode(req: Request, type: type[_T], *, required: bool) -> _T | None:
    if not req.body.strip():
        if required:
            raise errors.MissingParameter("this request needs a JSON body")
        return None
    ctype = req.headers.get("content-type", "application/json").split(";", 1)[0].strip()
    if ctype.lower() != "application/json":
        raise _HttpError(
            415, "UnsupportedMediaType", f"send the body as application/json, not {ctype}"
        )
    try:
        return msgspec.json.decode(req.body, type=type)
    except msgspec.ValidationError as exc:
        raise errors.InvalidParameterValue(f"invalid request body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise _HttpError(400, "MalformedJson", f"the body is not valid JSON: {exc}") from None


def _check_same_origin(req: Request) -> None:
    """Refuse a change asked for by a web page of another site (CSRF): the API has no
    authentication, so without this any page the operator visits could make the
    browser send, say, a purge to 127.0.0.1. Browsers name the page's origin in the
    ``Origin`` header; other clients (SDKs, curl) send none and are not affected."""
    origin = req.headers.get("origin")
    if origin is None:
        return
    hosts = {req.headers.get("host", "")}
    hosts.update(h.strip() for h in req.headers.get("x-forwarded-host", "").split(","))
    hosts.discard("")
    if origin == "null" or urlsplit(origin).netloc.lower() not in {h.lower() for h in hosts}:
        raise errors.AccessDenied(
            f"a page from {origin} may not change this node: the admin API accepts "
            "changes only from its own pages (the console) and from clients that are "
            "not browsers"
        )


def _since_ms(req: Request) -> int:
    """The ``since_ms`` query parameter: only points taken after it (default 0: all)."""
    values = parse_qs(req.query, keep_blank_values=True).get("since_ms")
    if values is None:
        return 0
    text = values[-1]
    if not text.isascii() or not text.isdecimal() or len(text) > 16:
        raise errors.InvalidParameterValue(
            f"since_ms must be a non-negative integer (ms since the epoch), got {text!r}"
        )
    return int(text)


def _stats(sample: QueueSample) -> StatsOut:
    ps = sample.partitions
    visible = sum(p.visible for p in ps)
    inflight = sum(p.inflight for p in ps)
    delayed = sum(p.delayed for p in ps)
    vb = sum(p.visible_bytes for p in ps)
    ib = sum(p.inflight_bytes for p in ps)
    db = sum(p.delayed_bytes for p in ps)
    return StatsOut(
        messages=visible + inflight + delayed,
        bytes=vb + ib + db,
        visible=visible,
        inflight=inflight,
        delayed=delayed,
        visible_bytes=vb,
        inflight_bytes=ib,
        delayed_bytes=db,
        oldest_age_s=max((p.oldest_age_s for p in ps), default=0.0),
        parked_receives=sample.parked_receives,
    )


def _cluster_out(status: dict[str, Any]) -> ClusterOut:
    """The typed answer from ``ClusterNode.status()`` (fields it adds are left out
    until they are added here and to the document)."""
    nodes = [
        ClusterNodeOut(
            id=n["id"],
            http=n["http"],
            native=n["native"],
            lease=n["lease"],
            lease_hex=None if n["lease"] is None else f"{n['lease']:x}",
            replicas=n["replicas"],
        )
        for n in status["nodes"]
    ]
    return ClusterOut(
        node=status["node"],
        controller=status["controller"],
        nodes=nodes,
        partitions=msgspec.convert(status["partitions"], list[ClusterPartitionOut]),
    )


def _message_out(m: Message) -> MessageOut:
    try:
        body, encoding = m.body.decode("utf-8"), "text"
    except UnicodeDecodeError:
        body, encoding = base64.b64encode(m.body).decode("ascii"), "base64"
    return MessageOut(
        message_id=m.message_id,
        body=body,
        body_encoding=encoding,
        attributes={
            k: AttributeOut(
                data_type=a.data_type,
                string_value=a.string_value,
                binary_value=None
                if a.binary_value is None
                else base64.b64encode(a.binary_value).decode("ascii"),
            )
            for k, a in m.attributes.items()
        },
        system=m.system,
        sent_ms=m.sent_ms,
        receive_count=m.receive_count,
        first_receive_ms=m.first_receive_ms,
        group_id=m.group_id,
        dedup_id=m.dedup_id,
        sequence_number=m.sequence_number,
    )
