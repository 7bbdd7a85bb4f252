"""What every benchmark here reports beside its numbers: the machine, and a process's
CPU time. Imported by the scripts in this folder (``python bench/x.py`` puts the folder
on the path)."""

from __future__ import annotations

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
