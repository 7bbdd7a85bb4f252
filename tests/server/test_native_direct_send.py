"""The native server answers a send without coroutines (``NativeHandler.send_now``):
the same answers, errors and metrics as any other request, and nothing answered to a
connection that went away while its send waited for the fsync."""

from __future__ import annotations

import asyncio
import errno
import os
import stat
from pathlib import Path
from typing import Any

import pytest

import conveyor
from conveyor import errors
from conveyor.broker.aio import AsyncBroker
from conveyor.protocol import native as n
from conveyor.server.native import NativeHandler, NativeProtocol


class _Transport(asyncio.Transport):
    """What the protocol writes, kept; a loopback peer name."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 5555) if name == "peername" else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class _Peer:
    """A client codec on one side of a protocol under test."""

    def __init__(self, broker: AsyncBroker, counted: list[tuple[str, str]]) -> None:
        handler = NativeHandler(broker, lambda op, code: counted.append((op, code)))
        self.proto = NativeProtocol(
            handler, set(), node_id="n1", max_frame_bytes=n.frame_bytes_default
        )
        self.transport = _Transport()
        self.proto.connection_made(self.transport)
        self.codec = n.NativeConnection("client")
        self.proto.data_received(self.codec.send(self.codec.hello(client="test")))
        self._events = self.answers()
        assert [type(e) for e in self._events] == [n.Welcome]

    def request(self, *reqs: n.Request) -> None:
        self.proto.data_received(b"".join(self.codec.send(r) for r in reqs))

    def answers(self) -> list[Any]:
        for data in self.transport.written:
            self.codec.receive_data(data)
        self.transport.written.clear()
        out = []
        while (event := self.codec.next_event()) is not n.NEED_DATA:
            out.append(event)
        return out

    async def wait_answers(self, count: int) -> dict[int, Any]:
        got: dict[int, Any] = {}
        for _ in range(200):
            got.update((e.id, e) for e in self.answers())
            if len(got) >= count:
                return got
            await asyncio.sleep(0.01)
        raise AssertionError(f"{len(got)} answers of {count}")


def _fail_syncs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every fsync or fdatasync of a regular file (a log segment) fails with EIO."""
    for name in ("fsync", "fdatasync"):
        real = getattr(os, name)

        def sync(fd: int, real: Any = real) -> None:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(errno.EIO, "injected I/O error")
            real(fd)

        monkeypatch.setattr(os, name, sync)


def test_sends_are_answered_once_durable_with_errors_and_counts(tmp_path: Path) -> None:
    counted: list[tuple[str, str]] = []

    async def main() -> None:
        async with await conveyor.open_async(tmp_path, fsync="always") as broker:
            await broker.create_queue("jobs")
            peer = _Peer(broker, counted)
            attrs = {"kind": n.MessageAttribute(data_type="String", string_value="thumb")}
            peer.request(
                n.SendRequest(id=1, queue="jobs", body=b"plain"),
                n.SendRequest(id=2, queue="jobs", body=b"typed", attributes=attrs, delay_s=0),
                n.SendRequest(id=3, queue="missing", body=b"lost"),
                n.SendRequest(id=4, queue="jobs.fifo", body=b"x", group_id="g"),
            )
            got = await peer.wait_answers(4)
            assert isinstance(got[1], n.SendResponse) and isinstance(got[2], n.SendResponse)
            assert got[1].message_id != got[2].message_id
            assert isinstance(got[3], n.ErrorResponse) and got[3].code == "QueueDoesNotExist"
            assert isinstance(got[4], n.ErrorResponse) and got[4].code == "QueueDoesNotExist"
            assert sorted(counted) == sorted(
                [
                    ("send", "OK"),
                    ("send", "OK"),
                    ("send", "QueueDoesNotExist"),
                    ("send", "QueueDoesNotExist"),
                ]
            )
            assert not peer.proto._pending
            # the durations of the successful sends are in the queue's histogram
            counts, _ = broker.sync._queue("jobs").m.send_duration.snapshot()
            assert sum(counts) == 2

    asyncio.run(main())
    with conveyor.open(tmp_path) as broker:
        msgs = broker.receive("jobs", 10)
        assert sorted(m.body for m in msgs) == [b"plain", b"typed"]
        typed = next(m for m in msgs if m.body == b"typed")
        assert typed.attributes["kind"].string_value == "thumb"


def test_a_fifo_send_and_its_duplicate_through_the_direct_path(tmp_path: Path) -> None:
    async def main() -> None:
        async with await conveyor.open_async(tmp_path, fsync="always") as broker:
            await broker.create_queue("jobs.fifo")
            peer = _Peer(broker, [])
            peer.request(
                n.SendRequest(id=1, queue="jobs.fifo", body=b"a", group_id="g", dedup_id="d"),
                n.SendRequest(id=2, queue="jobs.fifo", body=b"a", group_id="g", dedup_id="d"),
                n.SendRequest(id=3, queue="jobs.fifo", body=b"a"),  # no group id
            )
            got = await peer.wait_answers(3)
            assert not got[1].duplicate and got[2].duplicate
            assert got[1].message_id == got[2].message_id and got[1].sequence_number
            assert isinstance(got[3], n.ErrorResponse) and got[3].code == "MissingParameter"

    asyncio.run(main())


def test_a_send_whose_connection_goes_away_is_not_answered(tmp_path: Path) -> None:
    async def main() -> None:
        async with await conveyor.open_async(tmp_path, fsync="always") as broker:
            await broker.create_queue("jobs")
            peer = _Peer(broker, [])
            # something else waits in the loop: the fsync runs a round later, to cover
            # what that appends too
            asyncio.get_running_loop().call_soon(lambda: None)
            peer.request(n.SendRequest(id=1, queue="jobs", body=b"in flight"))
            assert len(peer.proto._pending) == 1
            peer.proto.connection_lost(None)
            assert not peer.proto._pending
            await asyncio.sleep(0.05)
            assert peer.answers() == []
            # the message was appended and is made durable all the same (at least once:
            # the client, with no answer, may send it again)
            assert broker.sync.get_queue("jobs").stats.messages == 1  # type: ignore[union-attr]

    asyncio.run(main())


def test_a_send_the_log_cannot_make_durable_is_answered_with_its_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counted: list[tuple[str, str]] = []

    async def main() -> None:
        broker = await conveyor.open_async(tmp_path, fsync="always")
        await broker.create_queue("jobs")
        peer = _Peer(broker, counted)
        _fail_syncs(monkeypatch)
        peer.request(n.SendRequest(id=1, queue="jobs", body=b"doomed"))
        got = await peer.wait_answers(1)
        assert isinstance(got[1], n.ErrorResponse) and got[1].code == "InternalError"
        assert counted == [("send", "InternalError")]
        monkeypatch.undo()
        # the log stays failed: later sends are refused at once, never acknowledged
        peer.request(n.SendRequest(id=2, queue="jobs", body=b"after"))
        got = await peer.wait_answers(1)
        assert isinstance(got[2], n.ErrorResponse) and got[2].code == "InternalError"
        with pytest.raises(errors.ConveyorError):  # its last checkpoint cannot be written
            await broker.close()

    asyncio.run(main())


def test_a_lone_send_is_fsynced_and_answered_before_the_loop_goes_on(tmp_path: Path) -> None:
    """With nothing else to run in the loop, nobody could share the fsync: it runs at
    the end of the read that brought the request, not a loop round later."""

    async def main() -> None:
        async with await conveyor.open_async(tmp_path, fsync="always") as broker:
            await broker.create_queue("jobs")
            peer = _Peer(broker, [])
            await asyncio.sleep(0)
            synced = broker.sync._queue("jobs").partitions[0].log.durable_offset
            peer.request(n.SendRequest(id=1, queue="jobs", body=b"alone"))
            [answer] = peer.answers()  # no await: answered within data_received
            assert isinstance(answer, n.SendResponse)
            assert broker.sync._queue("jobs").partitions[0].log.durable_offset > synced

    asyncio.run(main())
