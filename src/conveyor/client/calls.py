"""What each client method sends and how its answer becomes a typed result.

Both clients are thin I/O shells around these builders: a method builds a :class:`Call`
(the request frame, whether repeating it is safe, how much a long poll adds to its
deadline, how to turn the response into the value the embedded broker would return),
runs it on a connection, and converts. Nothing here does I/O.

Checked requests
================

msgspec does not check types when it encodes, so the client's codec decodes every frame
it sends the way the server will (``check_sends``, :mod:`conveyor.protocol.native`) and
refuses what the server would reject, before anything is written. That decode costs
about as much as the encode. The builders of the hot calls (send, send_batch, receive,
delete, delete_batch, change_visibility, ping) instead prove the request well-typed with
plain type tests of the values the caller gave (``type(x) is str``, an ``int`` that is
not a ``bool``, ...) and mark the :class:`Call` ``checked``; the codec then skips its
decode. The tests are conservative: a value they do not recognise (a ``str`` subclass,
a ``bytearray`` attribute value) only leaves the call unchecked, so the codec's decode
decides as before. What the server accepts is therefore unchanged, and so is every byte
sent. ``tests/client/test_client_calls.py`` holds each predicate to the decoder.
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
from conveyor.types import (
    BatchEntry,
    Message,
    MessageAttribute,
    QueueInfo,
    QueueStats,
    SendEntry,
    SendResult,
    entry_of,
)

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
    checked: bool = False  # the builder proved the request well-typed (module docstring)


def _expect(cls: type[R]) -> Callable[[n.Response], R]:
    def check(resp: n.Response) -> R:
        if not isinstance(resp, cls):  # the codec already matches ops; a bug if not
            raise errors.InternalError(f"expected {cls.__name__}, got {type(resp).__name__}")
        return resp

    return check


_expect_send = _expect(n.SendResponse)
_expect_send_batch = _expect(n.SendBatchResponse)
_expect_receive = _expect(n.ReceiveResponse)
_expect_peek = _expect(n.PeekResponse)


# --- checked requests (module docstring): True only where the decoder surely accepts --
def _opt_str(v: object) -> bool:
    return v is None or type(v) is str


def _opt_int(v: object) -> bool:
    return v is None or type(v) is int  # not a bool: the decoder refuses those for int


_STR_ONLY: frozenset[type] = frozenset({str})


def _strs(items: Sequence[object]) -> bool:
    """Every item is a ``str`` (an empty sequence too)."""
    return not items or set(map(type, items)) == _STR_ONLY


def _str_map(d: Mapping[Any, object]) -> bool:
    return all(type(k) is str and type(v) is str for k, v in d.items())


def _attrs_checked(attrs: Mapping[Any, n.MessageAttribute]) -> bool:
    return all(
        type(k) is str
        and type(a.data_type) is str
        and _opt_str(a.string_value)
        and (a.binary_value is None or type(a.binary_value) is bytes)
        for k, a in attrs.items()
    )


def entry_checked(e: n.SendEntry) -> bool:
    """Whether the server surely accepts the types of ``e``, as :func:`wire_entry`
    built it (its body is ``bytes`` already)."""
    return (
        type(e.body) is bytes
        and _opt_int(e.delay_s)
        and _opt_str(e.group_id)
        and _opt_str(e.dedup_id)
        and (not e.attributes or _attrs_checked(e.attributes))
        and (not e.system or _str_map(e.system))
    )


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
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body)
    # bytes(5) would be five zero bytes
    raise TypeError(f"a message body is bytes or str, not {type(body).__name__}")


def messages(queue: str, wire: list[n.Message]) -> list[Message]:
    """The received (or peeked) messages as the broker returns them. The decoded
    messages are taken over: their ``system`` dicts are not copied (each decoded message
    has its own)."""
    return [
        Message(
            queue=queue,
            message_id=m.message_id,
            body=m.body,
            receipt_handle=m.receipt_handle,
            attributes=_attributes(m.attributes) if m.attributes else {},
            system=m.system,
            sent_ms=m.sent_ms,
            receive_count=m.receive_count,
            first_receive_ms=m.first_receive_ms,
            group_id=m.group_id,
            dedup_id=m.dedup_id,
            sequence_number=m.sequence_number,
        )
        for m in wire
    ]


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
    return _split(list(entries), [entry_bytes(e) for e in entries], frame_bytes)


def _split(
    entries: list[n.SendEntry], sizes: list[int], frame_bytes: int
) -> list[list[n.SendEntry]]:
    """:func:`split_batch` with each entry's :func:`entry_bytes` given."""
    assert len(entries) == len(sizes)
    budget = frame_bytes - frame_envelope_bytes
    cap = limits.native_batch_entries_max
    if len(entries) <= cap and sum(sizes) <= budget:  # the usual batch: one frame
        return [entries] if entries else []
    out: list[list[n.SendEntry]] = []
    chunk: list[n.SendEntry] = []
    used = 0
    for e, size in zip(entries, sizes, strict=True):
        if chunk and (len(chunk) >= cap or used + size > budget):
            out.append(chunk)
            chunk, used = [], 0
        chunk.append(e)
        used += size
    if chunk:
        out.append(chunk)
    return out


@dataclasses.dataclass(slots=True)
class WireBatch:
    """A ``send_batch``'s entries as sent (:func:`wire_batch`)."""

    entries: list[n.SendEntry]
    sizes: list[int]  # each entry's entry_bytes
    checked: bool  # every entry's types proved (module docstring)


def wire_batch(entries: Sequence[BatchEntry]) -> WireBatch:
    """:func:`wire_entry` and :func:`entry_bytes` of every entry, in one pass. An entry
    with only a body (the usual case) takes a short cut to the same wire entry."""
    wire: list[n.SendEntry] = []
    sizes: list[int] = []
    checked = True
    _Entry, overhead = n.SendEntry, entry_overhead_bytes
    add, add_size = wire.append, sizes.append
    for e in entries:
        if type(e) is not SendEntry:  # the usual case costs one comparison
            e = entry_of(e)
        if (
            not e.attributes
            and e.delay_s is None
            and e.group_id is None
            and e.dedup_id is None
            and not e.system
        ):
            body = e.body
            if type(body) is not bytes:
                body = _body(body)
            add(_Entry(body=body))  # == wire_entry(e), proved well-typed
            add_size(len(body) + overhead)  # == entry_bytes of it
        else:
            w = wire_entry(e)
            add(w)
            add_size(entry_bytes(w))
            checked = checked and entry_checked(w)
    return WireBatch(wire, sizes, checked)


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
    if not any(results):  # every entry succeeded
        return [None] * len(results)
    return [None if r is None else r.to_exception() for r in results]


def _send_results(resp: n.Response) -> list[SendResult | errors.ConveyorError]:
    r = _expect_send_batch(resp)
    return [
        x.to_exception()
        if isinstance(x, n.ErrorInfo)
        else SendResult(
            message_id=x.message_id, sequence_number=x.sequence_number, duplicate=x.duplicate
        )
        for x in r.results
    ]


def send_safety(queue: str, entries: Sequence[n.SendEntry]) -> Safety:
    """Rule 3 of :mod:`conveyor.client.retry`: a resend is harmless only to a FIFO queue
    (its name ends in ``.fifo``) when every entry has a dedup id."""
    if queue.endswith(".fifo") and all(e.dedup_id for e in entries):
        return Safety.IDEMPOTENT
    return Safety.UNSAFE


# --- calls ----------------------------------------------------------------------------
def ping() -> Call[None]:
    return Call(n.PingRequest(id=0), _none, checked=True)


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
    wire_attrs = wire_attributes(attributes)
    wire_system = dict(system) if system else {}
    req = n.SendRequest(
        id=0,
        queue=queue,
        body=_body(body),
        attributes=wire_attrs,
        delay_s=delay_s,
        group_id=group_id,
        dedup_id=dedup_id,
        system=wire_system,
    )
    safety = Safety.IDEMPOTENT if queue.endswith(".fifo") and dedup_id else Safety.UNSAFE
    checked = (
        type(queue) is str
        and _opt_int(delay_s)
        and _opt_str(group_id)
        and _opt_str(dedup_id)
        and (not wire_attrs or _attrs_checked(wire_attrs))
        and (not wire_system or _str_map(wire_system))
    )
    return Call(req, _send_result, safety, checked=checked)


def _send_result(resp: n.Response) -> SendResult:
    r = _expect_send(resp)
    return SendResult(
        message_id=r.message_id, sequence_number=r.sequence_number, duplicate=r.duplicate
    )


def send_batch(
    queue: str, entries: list[n.SendEntry], *, checked: bool = False
) -> Call[list[SendResult | errors.ConveyorError]]:
    """One ``send_batch`` request of ``entries`` (at most a frame's worth). ``checked``:
    the caller proved every entry well-typed (:func:`entry_checked`)."""
    req = n.SendBatchRequest(id=0, queue=queue, entries=entries)
    checked = checked and type(queue) is str and len(entries) <= limits.native_batch_entries_max
    return Call(req, _send_results, send_safety(queue, entries), checked=checked)


def send_batch_calls(
    queue: str, batch: WireBatch, frame_bytes: int
) -> list[Call[list[SendResult | errors.ConveyorError]]]:
    """The requests of a ``send_batch`` (of at least one entry): its entries split into
    parts that fit ``native_batch_entries_max`` and a frame of ``frame_bytes``."""
    assert batch.entries
    parts = _split(batch.entries, batch.sizes, frame_bytes)
    return [send_batch(queue, part, checked=batch.checked) for part in parts]


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
    checked = (
        type(queue) is str
        and type(max_messages) is int
        and 1 <= max_messages <= limits.native_receive_messages_max
        and _opt_int(visibility_timeout_s)
        and (wait_s is None or type(wait_s) is float or type(wait_s) is int)
        and _opt_str(attempt_id)
    )
    return Call(
        req,
        lambda r: messages(queue, _expect_receive(r).messages),
        Safety.IDEMPOTENT,
        wait,
        checked,
    )


def peek(queue: str, max_messages: int) -> Call[list[Message]]:
    req = n.PeekRequest(id=0, queue=queue, max_messages=max_messages)
    return Call(req, lambda r: messages(queue, _expect_peek(r).messages))


def delete(queue: str, receipt_handle: str) -> Call[None]:
    req = n.DeleteRequest(id=0, queue=queue, receipt_handle=receipt_handle)
    return Call(req, _none, checked=type(queue) is str and type(receipt_handle) is str)


def delete_batch(queue: str, handles: list[str]) -> Call[list[errors.ConveyorError | None]]:
    req = n.DeleteBatchRequest(id=0, queue=queue, receipt_handles=handles)
    checked = (
        type(queue) is str
        and type(handles) is list
        and len(handles) <= limits.native_batch_entries_max
        and _strs(handles)
    )
    return Call(req, _batch_errors, checked=checked)


def change_visibility(queue: str, receipt_handle: str, timeout_s: int) -> Call[None]:
    req = n.ChangeVisibilityRequest(
        id=0, queue=queue, receipt_handle=receipt_handle, timeout_s=timeout_s
    )
    checked = type(queue) is str and type(receipt_handle) is str and type(timeout_s) is int
    return Call(req, _none, checked=checked)


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
