"""What both servers' protocols share: answers gathered per loop round, written at once."""

from __future__ import annotations

import asyncio


def write_gathered(transport: asyncio.Transport | None, out: list[bytes]) -> None:
    """Write the answers gathered in ``out`` with one ``transport.write`` (unless the
    connection is closing) and empty it."""
    if not out:
        return
    if transport is not None and not transport.is_closing():
        transport.write(out[0] if len(out) == 1 else b"".join(out))
    out.clear()
