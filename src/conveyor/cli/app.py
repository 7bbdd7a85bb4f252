"""The ``conveyor`` command: parser, dispatch, and the one place errors become exit codes.

Each command module has ``register(subcommands, common)`` that adds its parser and sets
``func(args, out) -> int``. Global options (``--address``, ``--timeout``, ``--json``)
are accepted before or after the command name.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import conveyor.cli.bench as bench
import conveyor.cli.cluster as cluster
import conveyor.cli.dlq as dlq
import conveyor.cli.messages as messages
import conveyor.cli.queues as queues
import conveyor.cli.serve as serve
import conveyor.cli.storage as storage
import conveyor.cli.tail as tail
from conveyor import __version__, errors
from conveyor.cli.connect import default_address, default_timeout
from conveyor.cli.exits import CliError, Exit, UsageError, exit_for
from conveyor.cli.output import Output

PROG = "conveyor"

EPILOG = """\
exit codes: 0 ok, 1 error from the server, 2 usage, 3 cannot connect, 4 not found,
5 already exists, 6 timeout, 7 temporary (retriable) error, 130 interrupted.
docs: docs/cli.md"""


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 2 with the usage line, as argparse does, but print
    ``error: Usage: ...`` like every other error of the command."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"error: Usage: {message}\n")
        raise SystemExit(Exit.USAGE)


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The options every command takes. Sub-parsers use SUPPRESS defaults so that a
    value given before the command is not reset by the sub-parser."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    g = parser.add_argument_group("global options")
    g.add_argument(
        "--address",
        metavar="HOST:PORT",
        default=default(default_address()),
        help="server's native protocol address (env CONVEYOR_ADDRESS; default 127.0.0.1:9325)",
    )
    g.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=float,
        default=default(default_timeout()),
        help="seconds to wait for the server to answer a request, beyond any long-poll "
        "wait (env CONVEYOR_TIMEOUT; default 30)",
    )
    g.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print JSON for scripts instead of tables",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Conveyor: a durable message queue. Run a server with `conveyor serve`, "
        "then manage queues and send and receive messages.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"conveyor {__version__}")
    _global_options(parser, suppress=False)
    common = _Parser(add_help=False)
    _global_options(common, suppress=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    serve.register(sub, common)
    queues.register(sub, common)
    messages.register(sub, common)
    tail.register(sub, common)
    dlq.register(sub, common)
    storage.register(sub, common)
    bench.register(sub, common)
    cluster.register(sub, common)
    return parser


def _serve_argv(argv: Sequence[str]) -> list[str] | None:
    """If the command is ``serve``, the arguments after it (the server parses them
    itself, so its flags are defined in one place, ``conveyor.server.app``)."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--address", "--timeout"):
            i += 2
            continue
        if arg.startswith(("--address=", "--timeout=")) or arg == "--json":
            i += 1
            continue
        return list(argv[i + 1 :]) if arg == "serve" else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``conveyor`` command; returns its exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    rest = _serve_argv(args_list)
    if rest is not None:
        return serve.run(rest)
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    out = Output(json_mode=bool(getattr(args, "json", False)))
    try:
        return int(args.func(args, out))
    except UsageError as exc:
        out.error("Usage", str(exc))
        return Exit.USAGE
    except CliError as exc:
        out.error(exc.code, exc.message)
        return exc.exit_code
    except errors.ConveyorError as exc:
        out.error(exc.code, exc.message, exc.retriable)
        return exit_for(exc)
    except TimeoutError as exc:
        out.error("Timeout", f"no answer from {args.address} within {args.timeout:g} s ({exc})")
        return Exit.TIMEOUT
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            return _broken_pipe()
        out.error("ConnectionFailed", f"cannot connect to {args.address}: {exc}")
        return Exit.CONNECT
    except KeyboardInterrupt:
        out.note("interrupted")
        return Exit.INTERRUPTED


def _broken_pipe() -> int:
    """stdout was closed early (``conveyor tail q | head``): not an error."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
    return Exit.OK
