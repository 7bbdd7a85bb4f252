"""Durations and sizes as people type them: ``90``, ``90s``, ``15m``, ``4h``, ``14d``;
``1024``, ``64KiB``, ``1MiB``, ``1k`` (= 1000). Used as argparse ``type=`` functions, so a
bad value is a usage error naming the flag."""

from __future__ import annotations

import argparse
import re

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$", re.IGNORECASE)
_DURATION_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "k": 1000,
    "m": 1000**2,
    "g": 1000**3,
    "ki": 1024,
    "mi": 1024**2,
    "gi": 1024**3,
}


def duration_s(text: str) -> float:
    """Seconds (float) from ``90``, ``1.5s``, ``250ms``, ``15m``, ``4h``, ``14d``."""
    m = _DURATION_RE.match(text)
    if m is None:
        raise argparse.ArgumentTypeError(
            f"not a duration: {text!r} (use e.g. 30, 30s, 250ms, 15m, 4h, 14d)"
        )
    return float(m.group(1)) * _DURATION_S[(m.group(2) or "s").lower()]


def whole_seconds(text: str) -> int:
    """A duration that must be a whole number of seconds (queue attributes)."""
    seconds = duration_s(text)
    if seconds != int(seconds):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds")
    return int(seconds)


def size_bytes(text: str) -> int:
    """Bytes from ``1024``, ``64KiB``, ``64k`` (= 64000), ``1MiB``, ``1.5MB``."""
    m = _SIZE_RE.match(text)
    if m is None:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 1024, 64KiB, 1MiB)")
    unit = (m.group(2) or "b").lower().rstrip("b") or "b"
    value = float(m.group(1)) * _SIZE_UNITS[unit]
    if value != int(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of bytes")
    return int(value)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def format_duration(seconds: float | None) -> str:
    """``345600`` -> ``4d``; ``90`` -> ``1m30s``; ``0.25`` -> ``250ms``."""
    if seconds is None:
        return "-"
    if seconds < 1 and seconds != 0:
        return f"{seconds * 1000:.0f}ms"
    whole = int(seconds)
    if whole == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    frac = seconds - int(seconds)
    if frac and not parts[1:] and seconds < 60:
        return f"{seconds:.1f}s"
    return "".join(parts)


def format_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    if n < 1024:
        return f"{int(n)} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n /= 1024
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}".replace(".0 ", " ")
    raise AssertionError("unreachable")
