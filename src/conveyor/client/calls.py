"""What each client method sends and how its answer becomes a typed result.

Both clients are thin I/O shells around these builders: a method builds a :class:`Call`
(the request frame, whether repeating it is safe, how much a long poll adds to its
deadline, how to turn the response into the value the embedded broker would return),
runs it on a connection, and converts. Nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

import msgspec

from conveyor import errors, limits
from conveyor.client.retry import RetryPolicy, Safety
from conveyor.protocol import native as n
from conveyor.queue import QueueConfig
from conveyor.types import Message, MessageAttribute, QueueInfo, QueueStats, SendEntry, SendResult

T = TypeVar("T")
R = TypeVar("R", bound=n.Response)

default_port = 9325
default_host = "127.0.0.1"
# Bytes of a frame's budget kept free for the envelope around a batch's entries.
frame_envelope_bytes = 64 * limits.KiB
# Per-entry overhead in a send_batch frame beyond body and attributes (field names,
# lengths), an over-estimate.
entry_overhead_bytes = 64
# A long poll whose wait the client does not know (wait_s=None: the queue's setting)
# gets the largest the server allows added to its deadline.
unknown_wait_s = float(limits.receive_wait_s_max)

assert frame_envelope_bytes < n.frame_bytes_min


def parse_address(address: str | None, host: str | None, port: int | None) -> tuple[str, int]:
    """``"host:port"``, ``"host"``, ``"[::1]:9325"`` or ``host=``/``port=``."""
    h, p = default_host, default_port
    if address:
        if address.startswith("["):
            end = address.index("]")
            h, rest = address[1:end], address[end + 1 :]
            if rest:
                p = int(rest.removeprefix(":"))
        elif address.count(":") == 1:
            h, ps = address.split(":")
            p = int(ps)
        else:
            h = address
    if host is not None:
        h = host
    if port is not None:
        p = port
    if not 0 < p < 65536:
        raise ValueError(f"port must be from 1 to 65535, got {p}")
    return h, p


@dataclasses.dataclass(slots=True)
class Call(Generic[T]):
    """One request to run, with what the client needs to run it."""

    request: n.Request
    convert: Callable[[n.Response], T]
    safety: Safety = Safety.IDEMPOTENT
    wait_s: float = 0.0  # a long poll's wait, added to the request timeout


def _expect(cls: type[R]) -> Callable[[n.Response], R]:
    def check(resp: n.Response) -> R:
        if not isinstance(resp, cls):  # the codec already matches ops; a bug if not
            raise errors.InternalError(f"expected {cls.__name__}, got {type(resp).__name__}")
        return resp

    return check


def _none(resp: n.Response) -> None:
    return None


# --- conversions ----------------------------------------------------------------------
def wire_attributes(
    attributes: Mapping[str, MessageAttribute] | None,
) -> dict[str, n.MessageAttribute]:
    if not attributes:
        return {}
    return {
        k: n.MessageAttribute(
            data_type=a.data_type, string_value=a.string_value, binary_value=a.binary_value
        )
        for k, a in attributes.items()
    }


def _attributes(wire: dict[str, n.MessageAttribute]) -> dict[str, MessageAttribute]:
    return {
        k: MessageAttribute(a.data_type, a.string_value, a.binary_value) for k, a in wire.items()
    }


def _body(body: bytes | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def message(queue: str, m: n.Message) -> Message:
    return Message(
        queue=queue,
        message_id=m.message_id,
        body=m.body,
        receipt_handle=m.receipt_handle,
        attributes=_attributes(m.attributes) if m.attributes else {},
        system=dict(m.system),
        sent_ms=m.sent_ms,
        receive_count=m.receive_count,
        first_receive_ms=m.first_receive_ms,
        group_id=m.group_id,
        dedup_id=m.dedup_id,
        sequence_number=m.sequence_number,
    )


def send_result(r: n.SendResult | n.SendResponse) -> SendResult:
    return SendResult(
        message_id=r.message_id, sequence_number=r.sequence_number, duplicate=r.duplicate
    )


def wire_entry(e: SendEntry) -> n.SendEntry:
    return n.SendEntry(
        body=_body(e.body),
        attributes=wire_attributes(e.attributes),
        delay_s=e.delay_s,
        group_id=e.group_id,
        dedup_id=e.dedup_id,
        system=dict(e.system) if e.system else {},
    )


def entry_bytes(e: n.SendEntry) -> int:
    """An over-estimate of an entry's encoded size."""
    size = len(e.body) + entry_overhead_bytes
    for k, a in e.attributes.items():
        size += len(k) + len(a.data_type) + entry_overhead_bytes
        size += len(a.string_value or "") * 4 + len(a.binary_value or b"")
    for k, v in e.system.items():
        size += len(k) + len(v) * 4 + entry_overhead_bytes
    size += len(e.group_id or "") * 4 + len(e.dedup_id or "") * 4
    return size


def split_batch(entries: Sequence[n.SendEntry], frame_bytes: int) -> list[list[n.SendEntry]]:
    """Split a batch into chunks of at most ``native_batch_entries_max`` entries that fit
    a frame of ``frame_bytes`` (a single entry too big for a frame is left alone: the
    codec refuses it with FrameTooLarge)."""
    budget = frame_bytes - frame_envelope_bytes
    out: list[list[n.SendEntry]] = []
    chunk: list[n.SendEntry] = []
    used = 0
    for e in entries:
        size = entry_bytes(e)
        if chunk and (len(chunk) >= limits.native_batch_entries_max or used + size > budget):
            out.append(chunk)
            chunk, used = [], 0
        chunk.append(e)
        used += size
    if chunk:
        out.append(chunk)
    return out


def chunks(items: Sequence[T], size: int = limits.native_batch_entries_max) -> list[list[T]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)] or [[]]


def queue_info(resp: n.Response) -> QueueInfo:
    r = _expect(n.GetQueueResponse)(resp)
    return QueueInfo(
        name=r.name,
        uid=r.uid,
        config=msgspec.convert(r.config, QueueConfig),
        created_ms=r.created_ms,
        modified_ms=r.modified_ms,
        tags=dict(r.tags),
        stats=msgspec.convert(r.stats, QueueStats) if r.stats else None,
    )


def without_stats(info: QueueInfo) -> QueueInfo:
    return msgspec.structs.replace(info, stats=None)


def _batch_errors(resp: n.Response) -> list[errors.ConveyorError | None]:
    results: list[n.ErrorInfo | None] = resp.results  # type: ignore[attr-defined]
    return [None if r is None else r.to_exception() for r in results]


def _send_results(resp: n.Response) -> list[SendResult | errors.ConveyorError]:
    r = _expect(n.SendBatchResponse)(resp)
    return [x.to_exception() if isinstance(x, n.ErrorInfo) else send_result(x) for x in r.results]


def send_safety(queue: str, entries: Sequence[n.SendEntry]) -> Safety:
    """Rule 3 of :mod:`conveyor.client.retry`: a resend is harmless only to a FIFO queue
    (its name ends in ``.fifo``) when every entry has a dedup id."""
    if queue.endswith(".fifo") and all(e.dedup_id for e in entries):
        return Safety.IDEMPOTENT
    return Safety.UNSAFE


# --- calls ----------------------------------------------------------------------------
def ping() -> Call[None]:
    return Call(n.PingRequest(id=0), _none)


def cluster_status() -> Call[dict[str, Any]]:
    return Call(n.ClusterStatusRequest(id=0), lambda r: _expect(n.ClusterStatusResponse)(r).status)


def drain_node(node: str, cancel: bool) -> Call[int]:
    req = n.DrainNodeRequest(id=0, node=node, cancel=cancel)
    return Call(req, lambda r: _expect(n.DrainNodeResponse)(r).replicas)


def create_queue(
    name: str, config: Mapping[str, Any] | None, tags: Mapping[str, str] | None
) -> Call[bool]:
    req = n.CreateQueueRequest(id=0, name=name, config=dict(config or {}), tags=dict(tags or {}))
    return Call(req, lambda r: _expect(n.CreateQueueResponse)(r).created)


def get_queue(name: str) -> Call[QueueInfo]:
    return Call(n.GetQueueRequest(id=0, name=name), queue_info)


def list_queues_page(prefix: str, after: str | None) -> Call[n.ListQueuesResponse]:
    return Call(
        n.ListQueuesRequest(id=0, prefix=prefix, after=after), _expect(n.ListQueuesResponse)
    )


def set_queue(name: str, changes: Mapping[str, Any]) -> Call[None]:
    return Call(n.SetQueueRequest(id=0, name=name, config=dict(changes)), _none)


def tag_queue(name: str, tags: Mapping[str, str], remove: Sequence[str]) -> Call[None]:
    return Call(n.TagQueueRequest(id=0, name=name, tags=dict(tags), remove=list(remove)), _none)


def delete_queue(name: str) -> Call[None]:
    return Call(n.DeleteQueueRequest(id=0, name=name), _none, Safety.UNSAFE)


def purge_queue(name: str) -> Call[None]:
    return Call(n.PurgeQueueRequest(id=0, name=name), _none, Safety.UNSAFE)


def send(
    queue: str,
    body: bytes | str,
    *,
    attributes: Mapping[str, MessageAttribute] | None,
    delay_s: int | None,
    group_id: str | None,
    dedup_id: str | None,
    system: Mapping[str, str] | None,
) -> Call[SendResult]:
    req = n.SendRequest(
        id=0,
        queue=queue,
        body=_body(body),
        attributes=wire_attributes(attributes),
        delay_s=delay_s,
        group_id=group_id,
        dedup_id=dedup_id,
        system=dict(system) if system else {},
    )
    safety = Safety.IDEMPOTENT if queue.endswith(".fifo") and dedup_id else Safety.UNSAFE
    return Call(req, lambda r: send_result(_expect(n.SendResponse)(r)), safety)


def send_batch(
    queue: str, entries: list[n.SendEntry]
) -> Call[list[SendResult | errors.ConveyorError]]:
    req = n.SendBatchRequest(id=0, queue=queue, entries=entries)
    return Call(req, _send_results, send_safety(queue, entries))


def receive(
    queue: str,
    max_messages: int,
    visibility_timeout_s: int | None,
    wait_s: float | None,
    attempt_id: str | None,
) -> Call[list[Message]]:
    req = n.ReceiveRequest(
        id=0,
        queue=queue,
        max_messages=max_messages,
        visibility_timeout_s=visibility_timeout_s,
        wait_s=wait_s,
        attempt_id=attempt_id,
    )
    wait = unknown_wait_s if wait_s is None else max(0.0, float(wait_s))
    return Call(
        req,
        lambda r: [message(queue, m) for m in _expect(n.ReceiveResponse)(r).messages],
        Safety.IDEMPOTENT,
        wait,
    )


def peek(queue: str, max_messages: int) -> Call[list[Message]]:
    req = n.PeekRequest(id=0, queue=queue, max_messages=max_messages)
    return Call(req, lambda r: [message(queue, m) for m in _expect(n.PeekResponse)(r).messages])


def delete(queue: str, receipt_handle: str) -> Call[None]:
    return Call(n.DeleteRequest(id=0, queue=queue, receipt_handle=receipt_handle), _none)


def delete_batch(queue: str, handles: list[str]) -> Call[list[errors.ConveyorError | None]]:
    req = n.DeleteBatchRequest(id=0, queue=queue, receipt_handles=handles)
    return Call(req, _batch_errors)


def change_visibility(queue: str, receipt_handle: str, timeout_s: int) -> Call[None]:
    req = n.ChangeVisibilityRequest(
        id=0, queue=queue, receipt_handle=receipt_handle, timeout_s=timeout_s
    )
    return Call(req, _none)


def change_visibility_batch(
    queue: str, entries: Sequence[tuple[str, int]]
) -> Call[list[errors.ConveyorError | None]]:
    req = n.ChangeVisibilityBatchRequest(
        id=0,
        queue=queue,
        entries=[n.VisibilityEntry(receipt_handle=h, timeout_s=t) for h, t in entries],
    )
    return Call(req, _batch_errors)


def redrive(source: str, destination: str | None, max_messages: int | None) -> Call[int]:
    req = n.RedriveRequest(id=0, source=source, destination=destination, max_messages=max_messages)
    return Call(req, lambda r: _expect(n.RedriveResponse)(r).moved, Safety.UNSAFE)


client_name_default = "conveyor-py/0.1"
timeout_s_default = 30.0
connect_timeout_s_default = 5.0


class ClientOptions:
    """Where a client connects and how patiently: what ``Client`` and ``AsyncClient``
    take alike (their I/O differs, their settings do not)."""

    def __init__(
        self,
        address: str | None = None,
        *,
        host: str | None = None,
        port: int | None = None,
        timeout_s: float = timeout_s_default,
        connect_timeout_s: float = connect_timeout_s_default,
        retry: RetryPolicy | None = None,
        token: str | None = None,
        client_name: str = client_name_default,
        max_frame_bytes: int = n.frame_bytes_default,
    ) -> None:
        if timeout_s <= 0 or connect_timeout_s <= 0:
            raise ValueError("timeouts must be positive")
        self.host, self.port = parse_address(address, host, port)
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.retry = retry or RetryPolicy()
        self._token = token
        self._client_name = client_name
        self._max_frame_bytes = max_frame_bytes
        self._closed = False
        self.connections_made = 0  # how many connections this client has opened
        self._setup()

    def _setup(self) -> None:
        """The client's own connection state."""
