"""Crash tests: SIGKILL a process that sends and deletes under load, then check.

After each kill the data directory is reopened and compared with the journal of what the
killed process had been told: every acknowledged send is present or was deleted, every
acknowledged delete stays deleted, no message is stored twice, FIFO order holds.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

import conveyor

WORKER = Path(__file__).with_name("crash_worker.py")


def run_and_kill(data_dir: Path, journal: Path, run: int, rng: random.Random) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), str(data_dir), str(journal), str(run)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # wait until the worker is running, then let it work a random while
        deadline = time.monotonic() + 30
        while f"START {run}" not in (journal.read_text() if journal.exists() else ""):
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "worker did not start"
            time.sleep(0.02)
        time.sleep(rng.uniform(0.2, 1.2))
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if proc.stderr:
            proc.stderr.close()


def check(data_dir: Path, journal: Path) -> dict[str, int]:
    sent: dict[str, set[str]] = defaultdict(set)
    deleted: dict[str, set[str]] = defaultdict(set)
    deleting: dict[str, set[str]] = defaultdict(set)  # delete called, maybe not returned
    fifo_deleted_order: dict[str, list[int]] = defaultdict(list)
    for line in journal.read_text().splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue  # START lines, or a line cut by the kill
        kind, queue, mid = parts
        if kind == "SENT":
            sent[queue].add(mid)
        elif kind == "DELETING":
            deleting[queue].add(mid)
        elif kind == "DEL":
            deleted[queue].add(mid)
            if queue.endswith(".fifo"):
                group, ident = mid.split(":")
                run, n = ident.split("-")
                fifo_deleted_order[group].append(int(run) * 10**9 + int(n))
    for group, seq in fifo_deleted_order.items():
        assert seq == sorted(seq), f"FIFO order broken in group {group}"
    broker = conveyor.open(data_dir, maintenance_interval_s=None)
    try:
        counts = {}
        for queue in ("std", "ord.fifo"):
            live: list[str] = []
            for state, part in zip(
                broker.partition_states(queue), broker._queues[queue].partitions, strict=True
            ):
                for off in state.live_offsets():
                    live.append(part.read_append(off).body.decode())
            assert len(live) == len(set(live)), f"{queue}: a message is stored twice"
            live_set = set(live)
            lost = sent[queue] - live_set - deleted[queue] - deleting[queue]
            assert not lost, f"{queue}: acknowledged sends lost: {sorted(lost)[:5]}"
            resurrected = live_set & deleted[queue]
            assert not resurrected, (
                f"{queue}: deleted messages came back: {sorted(resurrected)[:5]}"
            )
            counts[queue] = len(sent[queue])
        return counts
    finally:
        broker.close()


def crash_rounds(tmp_path: Path, rounds: int, seed: int) -> None:
    rng = random.Random(seed)
    data_dir = tmp_path / "data"
    journal = tmp_path / "journal.txt"
    total = {}
    for run in range(rounds):
        run_and_kill(data_dir, journal, run, rng)
        total = check(data_dir, journal)
    assert total["std"] > 0 and total["ord.fifo"] > 0


def test_sigkill_under_load_loses_nothing_acknowledged(
    tmp_path: Path, seed_option: int | None
) -> None:
    crash_rounds(tmp_path, rounds=4, seed=seed_option if seed_option is not None else 1)


@pytest.mark.slow
def test_sigkill_many_rounds(tmp_path: Path, seed_option: int | None) -> None:
    crash_rounds(tmp_path, rounds=40, seed=seed_option if seed_option is not None else 2)
