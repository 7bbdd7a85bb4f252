"""What the CLI prints: rich tables for people, JSON for scripts.

A command builds plain values (dicts, lists, strings, numbers) once; :class:`Output`
prints them either as JSON (one document, or one JSON line per item for streaming
commands) or as a table. Errors always go to stderr, as ``error: Code: message``, or
with ``--json`` as ``{"error": {"code": ..., "message": ..., "retriable": ...}}``.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from conveyor.types import Message, MessageAttribute

body_preview_chars = 80  # message bodies in tables are cut to this many characters
piped_width_columns = 200  # table width when stdout is not a terminal (and no COLUMNS)


def ms_to_iso(ms: int | None) -> str:
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def ms_to_short(ms: int | None) -> str:
    """``2026-01-31 12:00:00`` (UTC), for tables."""
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def attribute_value(attr: MessageAttribute) -> dict[str, str]:
    if attr.binary_value is not None:
        return {
            "type": attr.data_type,
            "binary_base64": base64.b64encode(attr.binary_value).decode(),
        }
    return {"type": attr.data_type, "value": attr.string_value or ""}


def message_json(msg: Message) -> dict[str, Any]:
    """A message as JSON: ``body`` when it is UTF-8 text, else ``body_base64``."""
    out: dict[str, Any] = {"queue": msg.queue, "message_id": msg.message_id}
    try:
        out["body"] = msg.body.decode("utf-8")
    except UnicodeDecodeError:
        out["body_base64"] = base64.b64encode(msg.body).decode()
    out.update(
        receipt_handle=msg.receipt_handle or None,
        attributes={k: attribute_value(v) for k, v in sorted(msg.attributes.items())},
        system=dict(msg.system),
        sent_ms=msg.sent_ms,
        receive_count=msg.receive_count,
        first_receive_ms=msg.first_receive_ms or None,
        group_id=msg.group_id,
        dedup_id=msg.dedup_id,
        sequence_number=msg.sequence_number,
    )
    return out


def body_text(msg: Message, limit: int | None = body_preview_chars) -> str:
    try:
        text = msg.body.decode("utf-8")
    except UnicodeDecodeError:
        return f"<{len(msg.body)} bytes, binary>"
    if limit is not None and len(text) > limit:
        return text[: limit - 1] + "…"
    return text


class Output:
    """Prints for people (rich) or for scripts (``json_mode``)."""

    def __init__(
        self, json_mode: bool, stdout: TextIO | None = None, stderr: TextIO | None = None
    ) -> None:
        self.json_mode = json_mode
        self._stdout = stdout or sys.stdout
        self._stderr = stderr or sys.stderr
        # Piped output is not cut to 80 columns: tables grow to their content.
        width = None
        if not self._stdout.isatty() and not os.environ.get("COLUMNS"):
            width = piped_width_columns
        self.console = Console(file=self._stdout, highlight=False, soft_wrap=False, width=width)
        self.err_console = Console(file=self._stderr, highlight=False, soft_wrap=True)

    # --------------------------------------------------------------- json
    def json(self, value: Any) -> None:
        """One JSON document (pretty for a terminal is not wanted: scripts parse it)."""
        self._stdout.write(json.dumps(value, sort_keys=False) + "\n")
        self._stdout.flush()

    def json_line(self, value: Any) -> None:
        """One JSON line of a stream; flushed so ``| jq`` sees it at once."""
        self._stdout.write(json.dumps(value, separators=(",", ":")) + "\n")
        self._stdout.flush()

    # --------------------------------------------------------------- people
    def text(self, line: str) -> None:
        self.console.print(line, markup=False)

    def note(self, line: str) -> None:
        """A remark for people, on stderr so stdout stays data."""
        self.err_console.print(line, markup=False, style="dim")

    def warn(self, line: str) -> None:
        self.err_console.print(f"warning: {line}", markup=False, style="yellow")

    def table(
        self,
        columns: Sequence[str],
        rows: Iterable[Sequence[Any]],
        title: str | None = None,
        right: Sequence[str] = (),
        nowrap: Sequence[str] = (),
    ) -> None:
        """A table; ``right`` columns are right-aligned, ``nowrap`` ones never folded."""
        t = Table(title=title, title_justify="left", header_style="bold")
        for col in columns:
            t.add_column(
                col,
                justify="right" if col in right else "left",
                overflow="fold",
                no_wrap=col in nowrap,
            )
        for row in rows:
            t.add_row(*("-" if v is None else str(v) for v in row))
        self.console.print(t)

    def fields(self, items: Mapping[str, Any], title: str | None = None) -> None:
        """A two-column table of name / value."""
        t = Table(title=title, title_justify="left", show_header=False, box=None)
        t.add_column(style="bold")
        t.add_column(overflow="fold")
        for k, v in items.items():
            t.add_row(k, "-" if v is None else str(v))
        self.console.print(t)

    # --------------------------------------------------------------- errors
    def error(self, code: str, message: str, retriable: bool = False) -> None:
        if self.json_mode:
            doc = {"error": {"code": code, "message": message, "retriable": retriable}}
            self._stderr.write(json.dumps(doc) + "\n")
            self._stderr.flush()
        else:
            self.err_console.print(f"error: {code}: {message}", markup=False, style="red")

    # --------------------------------------------------------------- messages
    def messages(self, msgs: Sequence[Message], title: str | None = None) -> None:
        """A table of messages (for ``receive`` and ``peek``)."""
        if not msgs:
            self.note("no messages")
            return
        show_group = any(m.group_id for m in msgs)
        show_attrs = any(m.attributes for m in msgs)
        cols = ["message id", "body", "receives", "sent (UTC)"]
        if show_group:
            cols.append("group")
        if show_attrs:
            cols.append("attributes")
        rows = []
        for m in msgs:
            row: list[Any] = [m.message_id, body_text(m), m.receive_count, ms_to_short(m.sent_ms)]
            if show_group:
                row.append(m.group_id)
            if show_attrs:
                row.append(
                    ", ".join(f"{k}={_attr_text(v)}" for k, v in sorted(m.attributes.items()))
                )
            rows.append(row)
        self.table(
            cols,
            rows,
            title=title,
            right=("receives",),
            nowrap=("receives", "sent (UTC)"),
        )

    def message_line(self, msg: Message) -> None:
        """One line per message, for ``tail``: time, id, [group and attributes], body."""
        meta = []
        if msg.group_id:
            meta.append(f"group={msg.group_id}")
        meta.extend(f"{k}={_attr_text(v)}" for k, v in sorted(msg.attributes.items()))
        head = f"{ms_to_iso(msg.sent_ms)} {msg.message_id}"
        if meta:
            head += f" [{', '.join(meta)}]"
        line = Text(head + " ", style="dim")
        line.append(body_text(msg, None))
        self.console.print(line, soft_wrap=True)


def _attr_text(attr: MessageAttribute) -> str:
    if attr.binary_value is not None:
        return f"<{len(attr.binary_value)} bytes>"
    return attr.string_value or ""
