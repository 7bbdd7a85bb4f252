"""What every benchmark here reports beside its numbers: the machine, and a process's
CPU time. Imported by the scripts in this folder (``python bench/x.py`` puts the folder
on the path)."""

from __future__ import annotations

import math
import os
import platform
from pathlib import Path

TICKS_S = os.sysconf("SC_CLK_TCK")


def machine() -> str:
    """OS, kernel, architecture, cores and CPU model, Python version."""
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{platform.system()} {platform.release()} {platform.machine()}, "
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}"
    )


def cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of process ``pid``, all threads (None if unknown)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS_S  # utime, stime


def proc_tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants (from the parent ids in ``/proc/*/stat``)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def tree_cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of the processes ``pids`` and their descendants, counting
    children that already exited and were reaped (cutime/cstime), so a server that forks
    a process per connection (PostgreSQL) is measured whole."""
    total = 0.0
    for root in pids:
        for p in proc_tree(root):
            try:
                f = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])) / TICKS_S
    return total


def tree_memory_mb(pids: list[int]) -> float:
    """Resident memory of the processes ``pids`` and their descendants, in MB: the sum of
    their PSS (proportional set size: RSS with each shared page divided among the
    processes sharing it, so PostgreSQL's shared buffers count once, not once per
    backend). Falls back to VmRSS where smaps_rollup cannot be read."""
    total_kb = 0
    for root in pids:
        for p in proc_tree(root):
            kb = None
            try:
                for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        kb = int(line.split()[1])
                        break
            except OSError:
                pass
            if kb is None:
                try:
                    for line in Path(f"/proc/{p}/status").read_text().splitlines():
                        if line.startswith("VmRSS:"):
                            kb = int(line.split()[1])
                            break
                except OSError:
                    pass
            total_kb += kb or 0
    return total_kb / 1024


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``values`` (not empty)."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(p / 100 * len(s)) - 1))]
