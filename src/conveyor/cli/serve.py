"""``conveyor serve``: start a node. The flags are the server's own
(``conveyor.server.app.add_serve_arguments``), imported only when this command runs."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from conveyor.cli.exits import Exit

DESCRIPTION = """\
Start a Conveyor node: a complete single-node broker on a local data directory
(default ./conveyor-data). HTTP (SQS API, admin, /metrics, /healthz, /readyz) on
127.0.0.1:9324, the native protocol on 127.0.0.1:9325. Every setting is a flag, an
environment variable (CONVEYOR_<NAME>) and a key of the TOML file given with --config;
flags win over the environment, which wins over the file. SIGTERM or SIGINT stops the
node cleanly (exit 0)."""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    # Listed for `conveyor --help`; `main` hands `serve ...` to `run` before parsing,
    # so the server defines its flags in one place.
    sub.add_parser(
        "serve", help="start a node (conveyor serve --help for its settings)", add_help=False
    )


def run(argv: Sequence[str]) -> int:
    try:
        app = importlib.import_module("conveyor.server.app")
    except ImportError as exc:
        sys.stderr.write(
            f"error: Unavailable: the server is not available in this install: {exc}\n"
        )
        return Exit.ERROR
    parser = argparse.ArgumentParser(
        prog="conveyor serve",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    app.add_serve_arguments(parser)
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else Exit.USAGE)
    try:
        return int(app.run_from_args(args))
    except KeyboardInterrupt:
        return Exit.OK
