"""The coordinator on etcd v3: :class:`EtcdCoordinator`.

Every call is the etcd request the table in ``coordinator.py`` names. Keys live under a
prefix (default ``/conveyor/``):

==============================  =========================================================
key                             value
==============================  =========================================================
``<prefix>partitions/<p>``      the :class:`PartitionConfig` as JSON; its ``version`` is
                                the key's ``mod_revision`` (not stored)
``<prefix>nodes/<n>``           ``{"lease", "ttl_ms", "info"}`` as JSON, attached to the
                                node's lease, so the lease's expiry deletes it
``<prefix>controller``          ``{"node", "lease"}`` as JSON, attached to the
                                controller's lease
``<prefix>queues/<q>``          the queue's catalog record (opaque bytes)
==============================  =========================================================

It talks gRPC through the etcd v3 API that ``aetcd`` generates (``aetcd.rpc``: the
protobuf messages and ``grpc.aio`` stubs), on channels it manages itself, one per
endpoint; ``docs/cluster.md`` says why this library and why not its high-level client.

**Threads.** Each coordinator runs a private asyncio loop on one thread
(``conveyor-etcd``); every gRPC call runs there. The synchronous methods (what the
:class:`~conveyor.coordination.coordinator.Coordinator` protocol asks for; the controller
and tools call them) submit a coroutine to that loop and wait for it. :class:`~conveyor.
coordination.aio.AsyncCoordinator` awaits the same coroutines from the server's loop
without tying up a thread. Each watch is a task on the private loop that (re)opens a
``Watch`` stream from the revision after the last one it delivered, and a thread of its
own that calls the callback, so a callback may call the coordinator.

**Endpoints.** Several etcd members may be given; a call goes to the member that
answered last and moves on to the next one when a member is unreachable (gRPC
``UNAVAILABLE``) or, for reads, too slow. When none answers the call raises
:class:`~conveyor.errors.CoordinatorUnavailable`, the one error type of this module.
A write whose answer was lost (timeout) is not retried, as it may have been applied.

**etcd's leases count whole seconds** and have a minimum (1.5 times the election timeout,
2 s with etcd's defaults), so ``grant_lease`` rounds ``ttl_ms`` up and returns what etcd
granted. etcd expires leases in a loop that runs every 500 ms, so a lease lives up to
half a second past its TTL; a restart or a change of etcd leader renews every lease.
Both only make leases last longer than the holder assumes, which is the safe direction
for fencing (DESIGN.md §4, rule 2).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import queue
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Final, TypeVar

import msgspec
from aetcd import rpc
from grpc import aio as grpc_aio

from conveyor.coordination.config import PartitionConfig
from conveyor.coordination.coordinator import (
    CasResult,
    Compacted,
    ControllerChanged,
    Lease,
    NodeDown,
    NodeUp,
    PartitionChanged,
    QueueChanged,
    WatchEvent,
)
from conveyor.errors import CoordinatorUnavailable

__all__ = ["EtcdCoordinator", "EtcdWatch", "parse_endpoints"]

log = logging.getLogger("conveyor.coordination.etcd")

T = TypeVar("T")

timeout_s_default: Final = 5.0  # one gRPC request to one etcd member
watch_retry_s_min: Final = 0.05  # first pause before reopening a broken watch stream
watch_retry_s_max: Final = 1.0

# Reconnect quickly after a member comes back (gRPC's default backoff grows to two
# minutes); ping an idle connection so a vanished member is noticed (etcd refuses pings
# more often than every 5 s, its --grpc-keepalive-min-time).
_CHANNEL_OPTIONS: Final = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1_000),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
)


class _NodeRecord(msgspec.Struct, frozen=True, kw_only=True):
    lease: int
    ttl_ms: int
    info: bytes = b""


class _ControllerRecord(msgspec.Struct, frozen=True, kw_only=True):
    node: str
    lease: int


_node_decoder: Final = msgspec.json.Decoder(_NodeRecord)
_controller_decoder: Final = msgspec.json.Decoder(_ControllerRecord)
_config_decoder: Final = msgspec.json.Decoder(PartitionConfig)


class _LeaseNotFound(Exception):
    """etcd: ``requested lease not found`` (expired or revoked)."""


class _EndpointFailed(Exception):
    """This member could not serve the request; the next one may."""


class _StreamBroken(Exception):
    """A watch stream ended or was canceled by etcd for a reason other than compaction."""


def parse_endpoints(endpoints: Sequence[str] | str) -> list[str]:
    """``host:port`` targets from ``["h:p", "http://h:p"]`` or ``"h:p,h2:p2"``
    (``etcd://h:p,h2:p2``, as ``conveyor serve --cluster`` takes them, too)."""
    if isinstance(endpoints, str):
        endpoints = endpoints.removeprefix("etcd://")
    items = endpoints.split(",") if isinstance(endpoints, str) else list(endpoints)
    out = []
    for item in items:
        item = item.strip()
        if not item:
            continue
        if item.startswith("https://"):
            raise ValueError(f"TLS to etcd is not supported yet: {item}")
        item = item.removeprefix("http://").rstrip("/")
        if ":" not in item:
            item += ":2379"
        out.append(item)
    if not out:
        raise ValueError("at least one etcd endpoint is needed")
    return out


def _prefix_end(prefix: bytes) -> bytes:
    """The end of the key range holding every key that starts with ``prefix``."""
    b = bytearray(prefix)
    while b:
        if b[-1] < 0xFF:
            b[-1] += 1
            return bytes(b)
        b.pop()
    return b"\0"  # every key


class _Endpoint:
    """One etcd member: its channel and stubs, opened on first use (on the loop)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._channel: Any = None
        self.kv: Any = None
        self.lease: Any = None
        self.watch: Any = None
        self.maintenance: Any = None

    def open(self) -> _Endpoint:
        if self._channel is None:
            self._channel = rpc.insecure_channel(self.address, options=list(_CHANNEL_OPTIONS))
            self.kv = rpc.KVStub(self._channel)
            self.lease = rpc.LeaseStub(self._channel)
            self.watch = rpc.WatchStub(self._channel)
            self.maintenance = rpc.MaintenanceStub(self._channel)
        return self

    async def close(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close()


def _code_name(exc: Any) -> str:
    try:
        return str(exc.code().name)
    except Exception:
        return type(exc).__name__


class _Core:
    """The coordinator's calls as coroutines; runs only on the coordinator's own loop."""

    def __init__(self, endpoints: list[str], prefix: str, timeout_s: float) -> None:
        self.endpoints = [_Endpoint(a) for a in endpoints]
        self.current = 0  # the member that answered last
        self.timeout_s = timeout_s
        self.prefix = prefix.encode()
        self.partitions_prefix = self.prefix + b"partitions/"
        self.nodes_prefix = self.prefix + b"nodes/"
        self.queues_prefix = self.prefix + b"queues/"
        self.draining_prefix = self.prefix + b"draining/"
        self.controller_key = self.prefix + b"controller"
        self.leases: dict[int, Lease] = {}  # leases granted through this coordinator

    # --- requests, failover and errors ----------------------------------------------------
    async def attempt(
        self, request: Callable[[_Endpoint], Awaitable[T]], *, idempotent: bool = True
    ) -> T:
        """Run ``request`` on the member that answered last, failing over to the others."""
        failures = []
        n = len(self.endpoints)
        for i in range(n):
            index = (self.current + i) % n
            endpoint = self.endpoints[index].open()
            try:
                result = await request(endpoint)
            except grpc_aio.AioRpcError as exc:
                code = exc.code()
                if code == rpc.StatusCode.UNAVAILABLE or (
                    code == rpc.StatusCode.DEADLINE_EXCEEDED and idempotent
                ):
                    failures.append(f"{endpoint.address}: {code.name} {exc.details()}")
                    continue
                raise self._translate(exc, endpoint) from None
            except (_EndpointFailed, asyncio.InvalidStateError, grpc_aio.BaseError) as exc:
                # a stream that ended before answering, or a call that was over at once
                failures.append(f"{endpoint.address}: {exc!r}")
                continue
            self.current = index
            return result
        raise CoordinatorUnavailable("no etcd endpoint answered: " + "; ".join(failures))

    def _translate(self, exc: Any, endpoint: _Endpoint) -> Exception:
        code = exc.code()
        details = str(exc.details() or "")
        if code == rpc.StatusCode.OUT_OF_RANGE and "compacted" in details:
            return Compacted(details)
        if code == rpc.StatusCode.NOT_FOUND and "lease not found" in details:
            return _LeaseNotFound(details)
        if code == rpc.StatusCode.DEADLINE_EXCEEDED:
            return CoordinatorUnavailable(
                f"etcd {endpoint.address} did not answer within {self.timeout_s} s; "
                "the write may or may not have been applied"
            )
        return CoordinatorUnavailable(f"etcd {endpoint.address}: {code.name}: {details}")

    async def range(self, key: bytes, range_end: bytes | None = None, **fields: Any) -> Any:
        request = rpc.RangeRequest(key=key, **fields)
        if range_end is not None:
            request.range_end = range_end
        return await self.attempt(lambda e: e.kv.Range(request, timeout=self.timeout_s))

    async def txn(self, compare: list[Any], success: list[Any], failure: list[Any]) -> Any:
        request = rpc.TxnRequest(compare=compare, success=success, failure=failure)
        return await self.attempt(
            lambda e: e.kv.Txn(request, timeout=self.timeout_s), idempotent=False
        )

    def _get_op(self, key: bytes) -> Any:
        return rpc.RequestOp(request_range=rpc.RangeRequest(key=key))

    @staticmethod
    def _put_op(key: bytes, value: bytes, lease: int = 0) -> Any:
        return rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=value, lease=lease))

    @staticmethod
    def _compare(key: bytes, target: str, result: str, value: int) -> Any:
        compare = rpc.Compare(
            key=key, target=getattr(rpc.Compare, target), result=getattr(rpc.Compare, result)
        )
        if target == "CREATE":
            compare.create_revision = value
        else:
            compare.mod_revision = value
        return compare

    @staticmethod
    def _txn_range_kvs(response: Any) -> list[Any]:
        for r in response.responses:
            if r.WhichOneof("response") == "response_range":
                return list(r.response_range.kvs)
        return []

    # --- values ----------------------------------------------------------------------------
    def _partition_key(self, partition: str) -> bytes:
        return self.partitions_prefix + partition.encode()

    def _node_key(self, node: str) -> bytes:
        return self.nodes_prefix + node.encode()

    def _queue_key(self, name: str) -> bytes:
        return self.queues_prefix + name.encode()

    @staticmethod
    def _config(kv: Any) -> PartitionConfig:
        return _config_decoder.decode(kv.value).replace(version=int(kv.mod_revision))

    @staticmethod
    def _encode_config(config: PartitionConfig) -> bytes:
        config.check()
        return msgspec.json.encode(config.replace(version=0))

    def _lease_from_kv(self, node: str, kv: Any) -> Lease:
        record = _node_decoder.decode(kv.value)
        return Lease(id=int(kv.lease), node=node, ttl_ms=record.ttl_ms, info=record.info)

    # --- partition configurations ---------------------------------------------------------
    async def revision(self) -> int:
        response = await self.range(self.prefix, count_only=True)
        return int(response.header.revision)

    async def get_partition(self, partition: str) -> PartitionConfig | None:
        response = await self.range(self._partition_key(partition))
        return self._config(response.kvs[0]) if response.kvs else None

    async def list_partitions(self) -> list[PartitionConfig]:
        response = await self.range(self.partitions_prefix, _prefix_end(self.partitions_prefix))
        return [self._config(kv) for kv in response.kvs]

    async def create_partition(self, config: PartitionConfig) -> CasResult:
        key = self._partition_key(config.partition)
        response = await self.txn(
            [self._compare(key, "CREATE", "EQUAL", 0)],
            [self._put_op(key, self._encode_config(config))],
            [self._get_op(key)],
        )
        return self._cas_result(config, response)

    async def cas_partition(self, expected_version: int, config: PartitionConfig) -> CasResult:
        key = self._partition_key(config.partition)
        response = await self.txn(
            [
                self._compare(key, "MOD", "EQUAL", expected_version),
                self._compare(key, "CREATE", "GREATER", 0),  # a missing key's mod is 0
            ],
            [self._put_op(key, self._encode_config(config))],
            [self._get_op(key)],
        )
        return self._cas_result(config, response)

    def _cas_result(self, config: PartitionConfig, response: Any) -> CasResult:
        if response.succeeded:
            return CasResult(ok=True, current=config.replace(version=int(response.header.revision)))
        kvs = self._txn_range_kvs(response)
        return CasResult(ok=False, current=self._config(kvs[0]) if kvs else None)

    # --- node leases --------------------------------------------------------------------------
    async def grant_lease(self, node: str, ttl_ms: int, info: bytes = b"") -> Lease:
        ttl_s = max(1, math.ceil(ttl_ms / 1000))
        granted = await self.attempt(
            lambda e: e.lease.LeaseGrant(rpc.LeaseGrantRequest(TTL=ttl_s), timeout=self.timeout_s),
            idempotent=False,
        )
        if granted.error:
            raise CoordinatorUnavailable(f"etcd refused a lease: {granted.error}")
        lease = Lease(id=int(granted.ID), node=node, ttl_ms=int(granted.TTL) * 1000, info=info)
        record = msgspec.json.encode(_NodeRecord(lease=lease.id, ttl_ms=lease.ttl_ms, info=info))
        request = rpc.PutRequest(key=self._node_key(node), value=record, lease=lease.id)
        try:
            await self.attempt(lambda e: e.kv.Put(request, timeout=self.timeout_s))
        except BaseException:
            try:
                await self.revoke_lease(lease.id)
            except Exception:
                pass  # it expires on its own
            raise
        self.leases[lease.id] = lease
        return lease

    async def _keep_alive_once(self, endpoint: _Endpoint, lease_id: int) -> Any:
        call = endpoint.lease.LeaseKeepAlive(timeout=self.timeout_s)
        try:
            await call.write(rpc.LeaseKeepAliveRequest(ID=lease_id))
            response = await call.read()
        finally:
            call.cancel()
        if response is grpc_aio.EOF:
            raise _EndpointFailed("the keep-alive stream ended without an answer")
        return response

    async def keep_alive(self, lease_id: int) -> Lease | None:
        response = await self.attempt(lambda e: self._keep_alive_once(e, lease_id))
        ttl_ms = int(response.TTL) * 1000
        if ttl_ms <= 0:
            self.leases.pop(lease_id, None)
            return None
        lease = self.leases.get(lease_id)
        if lease is None:
            lease = await self._lookup_lease(lease_id)
            if lease is None:
                return None
            self.leases[lease_id] = lease
        if lease.ttl_ms != ttl_ms:
            lease = msgspec.structs.replace(lease, ttl_ms=ttl_ms)
            self.leases[lease_id] = lease
        return lease

    async def _lookup_lease(self, lease_id: int) -> Lease | None:
        """A lease granted by another client: the node it registers (two round trips)."""
        request = rpc.LeaseTimeToLiveRequest(ID=lease_id, keys=True)
        response = await self.attempt(
            lambda e: e.lease.LeaseTimeToLive(request, timeout=self.timeout_s)
        )
        if int(response.TTL) <= 0:
            return None
        for key in response.keys:
            if bytes(key).startswith(self.nodes_prefix):
                node = bytes(key)[len(self.nodes_prefix) :].decode()
                got = await self.range(bytes(key))
                if got.kvs and int(got.kvs[0].lease) == lease_id:
                    return self._lease_from_kv(node, got.kvs[0])
        return Lease(id=lease_id, node="", ttl_ms=int(response.grantedTTL) * 1000)

    async def revoke_lease(self, lease_id: int) -> None:
        self.leases.pop(lease_id, None)
        request = rpc.LeaseRevokeRequest(ID=lease_id)
        try:
            await self.attempt(lambda e: e.lease.LeaseRevoke(request, timeout=self.timeout_s))
        except _LeaseNotFound:
            pass

    async def live_nodes(self) -> dict[str, Lease]:
        response = await self.range(self.nodes_prefix, _prefix_end(self.nodes_prefix))
        out = {}
        for kv in response.kvs:
            node = bytes(kv.key)[len(self.nodes_prefix) :].decode()
            out[node] = self._lease_from_kv(node, kv)
        return out

    # --- controller election -------------------------------------------------------------------
    async def campaign(self, lease_id: int) -> str | None:
        lease = self.leases.get(lease_id) or await self._lookup_lease(lease_id)
        if lease is None or not lease.node:
            return await self.controller()
        key = self.controller_key
        record = msgspec.json.encode(_ControllerRecord(node=lease.node, lease=lease_id))
        try:
            response = await self.txn(
                [self._compare(key, "CREATE", "EQUAL", 0)],
                [self._put_op(key, record, lease_id)],
                [self._get_op(key)],
            )
        except _LeaseNotFound:
            self.leases.pop(lease_id, None)
            return await self.controller()
        if response.succeeded:
            return lease.node
        kvs = self._txn_range_kvs(response)
        return _controller_decoder.decode(kvs[0].value).node if kvs else None

    async def controller(self) -> str | None:
        response = await self.range(self.controller_key)
        return _controller_decoder.decode(response.kvs[0].value).node if response.kvs else None

    # --- the queue catalog ---------------------------------------------------------------------
    async def put_queue(self, name: str, value: bytes, *, overwrite: bool = False) -> bool:
        key = self._queue_key(name)
        if overwrite:
            request = rpc.PutRequest(key=key, value=value)
            await self.attempt(lambda e: e.kv.Put(request, timeout=self.timeout_s))
            return True
        response = await self.txn(
            [self._compare(key, "CREATE", "EQUAL", 0)], [self._put_op(key, value)], []
        )
        return bool(response.succeeded)

    async def get_queue(self, name: str) -> bytes | None:
        response = await self.range(self._queue_key(name))
        return bytes(response.kvs[0].value) if response.kvs else None

    async def list_queues(self) -> dict[str, bytes]:
        response = await self.range(self.queues_prefix, _prefix_end(self.queues_prefix))
        return {
            bytes(kv.key)[len(self.queues_prefix) :].decode(): bytes(kv.value)
            for kv in response.kvs
        }

    async def delete_queue(self, name: str) -> bool:
        request = rpc.DeleteRangeRequest(key=self._queue_key(name))
        response = await self.attempt(
            lambda e: e.kv.DeleteRange(request, timeout=self.timeout_s), idempotent=False
        )
        return int(response.deleted) > 0

    # --- the cluster's secret -------------------------------------------------------------------
    async def cluster_secret(self, proposal: bytes) -> bytes:
        key = self.prefix + b"secret"
        response = await self.txn(
            [self._compare(key, "CREATE", "EQUAL", 0)],
            [self._put_op(key, proposal)],
            [self._get_op(key)],
        )
        if response.succeeded:
            return proposal
        kvs = self._txn_range_kvs(response)
        return bytes(kvs[0].value)

    # --- drains -------------------------------------------------------------------------------
    async def set_draining(self, node: str, draining: bool) -> None:
        key = self.draining_prefix + node.encode()
        if draining:
            request = rpc.PutRequest(key=key, value=b"1")
            await self.attempt(lambda e: e.kv.Put(request, timeout=self.timeout_s))
        else:
            delete = rpc.DeleteRangeRequest(key=key)
            await self.attempt(lambda e: e.kv.DeleteRange(delete, timeout=self.timeout_s))

    async def draining(self) -> set[str]:
        response = await self.range(self.draining_prefix, _prefix_end(self.draining_prefix))
        return {bytes(kv.key)[len(self.draining_prefix) :].decode() for kv in response.kvs}

    # --- maintenance --------------------------------------------------------------------------
    async def compact(self, revision: int | None) -> int:
        if revision is None:
            revision = await self.revision()
        request = rpc.CompactionRequest(revision=revision, physical=True)
        await self.attempt(lambda e: e.kv.Compact(request, timeout=self.timeout_s))
        return revision

    # --- watches ------------------------------------------------------------------------------
    async def check_history(self, start_revision: int) -> None:
        """Raise :class:`Compacted` if etcd no longer has the revisions after this one.

        A read at revision ``r`` fails with "compacted" exactly when a watch from ``r``
        would (both compare ``r`` with the compaction revision), and with "future
        revision" when ``r`` is past the store's revision (then nothing is compacted).
        """
        try:
            await self.range(self.prefix, revision=max(start_revision, 0) + 1, count_only=True)
        except CoordinatorUnavailable as exc:
            if "future revision" not in str(exc):
                raise

    def _event(self, event: Any) -> WatchEvent | None:
        kv = event.kv
        key = bytes(kv.key)
        revision = int(kv.mod_revision)
        put = event.type == rpc.Event.PUT
        if key.startswith(self.partitions_prefix):
            return PartitionChanged(revision=revision, config=self._config(kv)) if put else None
        if key.startswith(self.nodes_prefix):
            node = key[len(self.nodes_prefix) :].decode()
            if put:
                return NodeUp(revision=revision, lease=self._lease_from_kv(node, kv))
            lease_id = int(event.prev_kv.lease) if event.HasField("prev_kv") else 0
            return NodeDown(revision=revision, node=node, lease_id=lease_id)
        if key == self.controller_key:
            holder = _controller_decoder.decode(kv.value).node if put else None
            return ControllerChanged(revision=revision, node=holder)
        if key.startswith(self.queues_prefix):
            name = key[len(self.queues_prefix) :].decode()
            return QueueChanged(
                revision=revision, name=name, value=bytes(kv.value) if put else None
            )
        return None

    async def run_watch(
        self,
        start_revision: int,
        deliver: Callable[[list[WatchEvent]], None],
        fail: Callable[[Exception], None],
    ) -> None:
        """Stream every event after ``start_revision`` to ``deliver``, reopening the stream
        (on the next member) whenever it breaks, until cancelled or compacted."""
        next_revision = max(start_revision, 0) + 1
        pause = watch_retry_s_min
        attempt = 0
        while True:
            endpoint = self.endpoints[(self.current + attempt) % len(self.endpoints)].open()
            call = endpoint.watch.Watch()
            try:
                create = rpc.WatchCreateRequest(
                    key=self.prefix,
                    range_end=_prefix_end(self.prefix),
                    start_revision=next_revision,
                    prev_kv=True,
                )
                await call.write(rpc.WatchRequest(create_request=create))
                while True:
                    response = await call.read()
                    if response is grpc_aio.EOF:
                        raise _StreamBroken("the watch stream ended")
                    if response.compact_revision:
                        fail(
                            Compacted(
                                f"revision {next_revision} is compacted "
                                f"(etcd keeps history from {response.compact_revision})"
                            )
                        )
                        return
                    if response.canceled:
                        raise _StreamBroken(f"etcd canceled the watch: {response.cancel_reason}")
                    if response.events:
                        events = []
                        for raw in response.events:
                            try:
                                event = self._event(raw)
                            except (msgspec.DecodeError, UnicodeDecodeError, ValueError):
                                log.warning("skipping a malformed value at %r", bytes(raw.kv.key))
                                continue
                            if event is not None:
                                events.append(event)
                        next_revision = int(response.events[-1].kv.mod_revision) + 1
                        if events:
                            deliver(events)
                    pause = watch_retry_s_min
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.info(
                    "etcd watch on %s broke (%s: %s); resuming from revision %d",
                    endpoint.address,
                    _code_name(exc),
                    exc,
                    next_revision,
                )
            finally:
                call.cancel()
            attempt += 1
            await asyncio.sleep(pause)
            pause = min(pause * 2, watch_retry_s_max)

    async def close(self) -> None:
        for endpoint in self.endpoints:
            await endpoint.close()  # ends every call on it
        # let the watches and gRPC's own per-call tasks finish before the loop stops
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)


class EtcdWatch:
    """A running watch: events reach the callback, in order, from this watch's thread."""

    def __init__(
        self,
        owner: EtcdCoordinator,
        start_revision: int,
        callback: Callable[[WatchEvent], None],
        on_error: Callable[[Exception], None] | None,
    ) -> None:
        self._callback = callback
        self._on_error = on_error
        self._queue: queue.SimpleQueue[list[WatchEvent] | Exception | None] = queue.SimpleQueue()
        self._cancelled = threading.Event()
        self._task = owner._submit(
            owner._core.run_watch(start_revision, self._queue.put, self._queue.put)
        )
        self._thread = threading.Thread(
            target=self._dispatch, name="conveyor-etcd-watch", daemon=True
        )
        self._thread.start()

    def cancel(self) -> None:
        """Stop the watch; no event is delivered after this returns (unless called from
        the callback itself, which may still be finishing its own event)."""
        if self._cancelled.is_set():
            return
        self._cancelled.set()
        try:
            self._task.cancel()
        except RuntimeError:
            pass  # the coordinator's loop is closed: the watch is gone with it
        self._queue.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    @property
    def active(self) -> bool:
        return not self._cancelled.is_set() and self._thread.is_alive()

    def _dispatch(self) -> None:
        while True:
            item = self._queue.get()
            if item is None or self._cancelled.is_set():
                return
            if isinstance(item, Exception):
                self._cancelled.set()
                if self._on_error is not None:
                    self._on_error(item)
                else:
                    log.error("etcd watch stopped: %s", item)
                return
            for event in item:
                if self._cancelled.is_set():
                    return
                try:
                    self._callback(event)
                except Exception:
                    log.exception("a coordinator watch callback failed")


class EtcdCoordinator:
    """The :class:`~conveyor.coordination.coordinator.Coordinator` on etcd v3.

    ``endpoints`` are etcd members' client addresses (``"127.0.0.1:2379"``; an
    ``http://`` prefix is accepted). ``timeout_s`` bounds one request to one member.
    Call :meth:`close` (or use ``with``) when done: it stops the watches and the
    coordinator's thread.
    """

    def __init__(
        self,
        endpoints: Sequence[str] | str,
        *,
        prefix: str = "/conveyor/",
        timeout_s: float = timeout_s_default,
    ) -> None:
        if not prefix.endswith("/"):
            prefix += "/"
        self.endpoints = parse_endpoints(endpoints)
        self.prefix = prefix
        self.timeout_s = timeout_s
        self._core = _Core(self.endpoints, prefix, timeout_s)
        self._watches: list[EtcdWatch] = []
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="conveyor-etcd", daemon=True)
        self._thread.start()

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    # --- plumbing ---------------------------------------------------------------------------
    def _submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        if self._closed:
            coro.close()
            raise CoordinatorUnavailable("the etcd coordinator is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def _wait(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a blocking coordinator call on the coordinator's own loop")
        future = self._submit(coro)
        # each request is bounded by timeout_s per member; this only guards against a hang
        deadline = self.timeout_s * (3 * len(self.endpoints) + 1) + 5
        try:
            return future.result(deadline)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise CoordinatorUnavailable(f"etcd did not answer within {deadline} s") from None

    def submit(self, name: str, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        """Start the coordinator call ``name`` on this coordinator's loop (the asyncio
        layer awaits the returned future with :func:`asyncio.wrap_future`)."""
        method = getattr(self._core, name)
        return self._submit(method(*args, **kwargs))

    def close(self) -> None:
        if self._closed:
            return
        for w in list(self._watches):
            w.cancel()
        self._watches.clear()
        future = asyncio.run_coroutine_threadsafe(self._core.close(), self._loop)
        self._closed = True
        try:
            future.result(5)
        except Exception:
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> EtcdCoordinator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- partition configurations -------------------------------------------------------------
    def revision(self) -> int:
        return self._wait(self._core.revision())

    def get_partition(self, partition: str) -> PartitionConfig | None:
        return self._wait(self._core.get_partition(partition))

    def list_partitions(self) -> list[PartitionConfig]:
        return self._wait(self._core.list_partitions())

    def create_partition(self, config: PartitionConfig) -> CasResult:
        config.check()
        return self._wait(self._core.create_partition(config))

    def cas_partition(self, expected_version: int, config: PartitionConfig) -> CasResult:
        config.check()
        return self._wait(self._core.cas_partition(expected_version, config))

    # --- node leases ---------------------------------------------------------------------------
    def grant_lease(self, node: str, ttl_ms: int, info: bytes = b"") -> Lease:
        return self._wait(self._core.grant_lease(node, ttl_ms, info))

    def keep_alive(self, lease_id: int) -> Lease | None:
        return self._wait(self._core.keep_alive(lease_id))

    def revoke_lease(self, lease_id: int) -> None:
        self._wait(self._core.revoke_lease(lease_id))

    def live_nodes(self) -> dict[str, Lease]:
        return self._wait(self._core.live_nodes())

    # --- controller election ------------------------------------------------------------------
    def campaign(self, lease_id: int) -> str | None:
        return self._wait(self._core.campaign(lease_id))

    def controller(self) -> str | None:
        return self._wait(self._core.controller())

    # --- the queue catalog ----------------------------------------------------------------------
    def put_queue(self, name: str, value: bytes, *, overwrite: bool = False) -> bool:
        return self._wait(self._core.put_queue(name, value, overwrite=overwrite))

    def get_queue(self, name: str) -> bytes | None:
        return self._wait(self._core.get_queue(name))

    def list_queues(self) -> dict[str, bytes]:
        return self._wait(self._core.list_queues())

    def delete_queue(self, name: str) -> bool:
        return self._wait(self._core.delete_queue(name))

    # --- the cluster's secret ---------------------------------------------------------------------
    def cluster_secret(self, proposal: bytes) -> bytes:
        return self._wait(self._core.cluster_secret(proposal))

    # --- drains ---------------------------------------------------------------------------------
    def set_draining(self, node: str, draining: bool) -> None:
        self._wait(self._core.set_draining(node, draining))

    def draining(self) -> set[str]:
        return self._wait(self._core.draining())

    # --- watches ------------------------------------------------------------------------------
    def watch(
        self,
        start_revision: int,
        callback: Callable[[WatchEvent], None],
        *,
        on_error: Callable[[Exception], None] | None = None,
    ) -> EtcdWatch:
        self._wait(self._core.check_history(start_revision))
        return self.start_watch(start_revision, callback, on_error=on_error)

    def start_watch(
        self,
        start_revision: int,
        callback: Callable[[WatchEvent], None],
        *,
        on_error: Callable[[Exception], None] | None = None,
    ) -> EtcdWatch:
        """:meth:`watch` without reading first (no I/O here): a compacted
        ``start_revision`` reaches ``on_error`` instead of raising."""
        w = EtcdWatch(self, start_revision, callback, on_error)
        self._watches = [x for x in self._watches if x.active]
        self._watches.append(w)
        return w

    # --- maintenance ----------------------------------------------------------------------------
    def compact(self, revision: int | None = None) -> int:
        """Drop etcd's history before ``revision`` (default: the current one); returns it.

        Watches from an older revision then raise :class:`Compacted`. etcd does this on
        its own with ``--auto-compaction-retention``; tests call it directly.
        """
        return self._wait(self._core.compact(revision))
