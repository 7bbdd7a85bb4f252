"""``conveyor storage inspect`` on a real server's data directory, offline."""

from __future__ import annotations

from pathlib import Path

from cli_harness import run_cli

from conveyor.client import Client
from conveyor.testing import ServerProcess


def test_inspect_a_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with ServerProcess(data) as server:
        with Client(server.native_address) as client:
            client.create_queue("orders")
            client.create_queue("jobs", {"partitions": 2})
            for i in range(3):
                client.send("orders", f"order-{i}")
            (msg,) = client.receive("orders", 1)
            client.delete("orders", msg.receipt_handle)
        # Read-only: it works while the node runs.
        live = run_cli("storage", "inspect", str(data), "--queue", "orders")
        assert live.code == 0, live
        assert "order-0" in live.out
        # the active segment holds zeros written ahead of its appends (fsync=always)
        assert "PREALLOCATED at" in live.out and "GARBAGE" not in live.out
        live_json = run_cli("--json", "storage", "inspect", str(data), "--queue", "orders")
        assert any(x["kind"] == "preallocated" for x in live_json.json_lines())
        assert server.terminate() == 0

    r = run_cli("storage", "inspect", str(data))  # no server: offline
    assert r.code == 0, r
    assert "=== queue orders, partition 0" in r.out
    assert "=== queue jobs, partition 1" in r.out
    for text in ("Append", "order-2", "Deliver", "Ack", "0 with a bad CRC"):
        assert text in r.out, text

    j = run_cli("--json", "storage", "inspect", str(data), "--queue", "orders")
    assert j.code == 0, j
    lines = j.json_lines()
    records = [x for x in lines if x["kind"] == "record"]
    assert [x["type_name"] for x in records] == ["Append"] * 3 + ["Deliver", "Ack"]
    assert all(x["crc_ok"] and x["queue"] == "orders" and x["partition"] == 0 for x in records)
    assert [x["offset"] for x in records] == [0, 1, 2, 3, 4]

    # A single segment file, and a damaged one: reported, not fatal.
    seg = Path(records[0]["file"])
    one = run_cli("storage", "inspect", str(seg))
    assert one.code == 0 and one.out.startswith("segment ")
    data_bytes = bytearray(seg.read_bytes())
    data_bytes[-3] ^= 0xFF
    broken = tmp_path / seg.name
    broken.write_bytes(bytes(data_bytes))
    bad = run_cli("storage", "inspect", str(broken))
    assert bad.code == 0, bad
    assert "BAD" in bad.out and "1 with a bad CRC" in bad.out

    missing = run_cli("storage", "inspect", str(tmp_path / "nope"))
    assert missing.code == 4 and "NotFound" in missing.err
    assert run_cli("storage", "inspect", str(data), "--queue", "nope").code == 4
