"""The ``conveyor`` command line: ``main(argv) -> exit code``. See docs/cli.md."""

from __future__ import annotations

from conveyor.cli.app import build_parser, main
from conveyor.cli.exits import Exit

__all__ = ["Exit", "build_parser", "main"]
