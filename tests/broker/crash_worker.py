"""Load for the crash test: sends and deletes with fsync=always until killed.

Every acknowledged operation is appended to a journal *after* the broker returned, so
the journal never claims more than the broker acknowledged:

    SENT <queue> <id>       the send of message <id> returned
    RECV <queue> <id>       a receive returned message <id>
    DELETING <queue> <id>   the delete of message <id> is about to be called
    DEL <queue> <id>        the delete of message <id> returned

A kill between the delete and its DEL line leaves a message that is gone though the
journal never saw its delete acknowledged; DELETING marks exactly those, so the check
may excuse them and nothing else.

Usage: python crash_worker.py DATA_DIR JOURNAL RUN_ID
"""

from __future__ import annotations

import os
import sys
import threading

import conveyor
from conveyor.types import SendEntry

GROUPS = "abc"


def main() -> None:
    data_dir, journal_path, run = sys.argv[1], sys.argv[2], sys.argv[3]
    fd = os.open(journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def note(line: str) -> None:
        os.write(fd, (line + "\n").encode())

    broker = conveyor.open(
        data_dir, fsync="always", maintenance_interval_s=0.2, segment_bytes_max=256 * 1024
    )
    broker.create_queue("std", {"visibility_timeout_s": 1})
    broker.create_queue("ord.fifo", {"visibility_timeout_s": 1})
    note(f"START {run}")

    def produce(queue: str, batch: bool) -> None:
        n = 0
        while True:
            if queue.endswith(".fifo"):
                mid = f"{run}-{n}"
                group = GROUPS[n % len(GROUPS)]
                broker.send(queue, f"{group}:{mid}", group_id=group, dedup_id=mid)
                note(f"SENT {queue} {group}:{mid}")
                n += 1
            elif batch:
                ids = [f"{run}-b{n + i}" for i in range(5)]
                results = broker.send_batch(queue, [SendEntry(body=i) for i in ids])
                assert not any(isinstance(r, Exception) for r in results)
                for i in ids:
                    note(f"SENT {queue} {i}")
                n += 5
            else:
                mid = f"{run}-{n}"
                broker.send(queue, mid)
                note(f"SENT {queue} {mid}")
                n += 1

    def consume(queue: str) -> None:
        while True:
            for m in broker.receive(queue, 5, wait_s=0.1):
                note(f"RECV {queue} {m.text}")
                note(f"DELETING {queue} {m.text}")
                broker.delete(queue, m.receipt_handle)
                note(f"DEL {queue} {m.text}")

    threads = [
        threading.Thread(target=produce, args=("std", False), daemon=True),
        threading.Thread(target=produce, args=("std", True), daemon=True),
        threading.Thread(target=produce, args=("ord.fifo", False), daemon=True),
        threading.Thread(target=consume, args=("std",), daemon=True),
        threading.Thread(target=consume, args=("ord.fifo",), daemon=True),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
