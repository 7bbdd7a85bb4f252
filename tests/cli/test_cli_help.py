"""``--help`` everywhere, usage errors and connection failures: no server needed.

Each case is a real ``python -m conveyor`` process; they run side by side to keep the
suite quick."""

from __future__ import annotations

import json

from cli_harness import run_parallel

from conveyor.testing import free_port

COMMANDS = [
    [],
    ["serve"],
    ["queue"],
    ["queue", "create"],
    ["queue", "list"],
    ["queue", "info"],
    ["queue", "delete"],
    ["queue", "purge"],
    ["send"],
    ["receive"],
    ["peek"],
    ["tail"],
    ["dlq"],
    ["dlq", "redrive"],
    ["storage"],
    ["storage", "inspect"],
    ["bench"],
]

USAGE_ERRORS = [
    [],
    ["nosuchcommand"],
    ["queue"],
    ["receive"],
    ["queue", "create", "q", "--retention", "forever"],
    ["queue", "create", "q", "--dlq", "d"],  # --dlq needs --max-receive-count
    ["--address", "127.0.0.1:notaport", "queue", "list"],
]


def test_help_of_every_command() -> None:
    results = run_parallel([[*c, "--help"] for c in COMMANDS])
    for command, r in zip(COMMANDS, results, strict=True):
        assert r.code == 0, (command, r)
        assert r.out.startswith("usage: conveyor"), (command, r)
        assert r.err == "", (command, r)
    top = results[0].out
    for name in ("serve", "queue", "send", "receive", "peek", "tail", "dlq", "storage", "bench"):
        assert name in top
    assert "exit codes" in top
    serve = results[1].out
    for flag in ("--data-dir", "--host", "--port", "--native-port", "--config"):
        assert flag in serve


def test_usage_errors_exit_2() -> None:
    # Commands that need a server fail on usage before connecting: nothing listens.
    address = f"127.0.0.1:{free_port()}"
    results = run_parallel([*USAGE_ERRORS, ["--version"]], address=address)
    for args, r in zip(USAGE_ERRORS, results[:-1], strict=True):
        assert r.code == 2, (args, r)
        assert "error: Usage:" in r.err, (args, r)
    version = results[-1]
    assert version.code == 0 and version.out.startswith("conveyor "), version


def test_cannot_connect_exits_3() -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    people, machines = run_parallel(
        [
            ["--timeout", "5", "queue", "list"],
            ["queue", "list", "--json", "--address", address],  # global flags after
        ],
        address="127.0.0.1:1",
    )
    assert people.code == 3, people
    assert "error: ConnectFailed:" in people.err
    assert machines.code == 3, machines
    assert machines.out == ""
    err = json.loads(machines.err.strip().splitlines()[-1])
    assert err["error"]["code"] == "ConnectFailed"
    assert err["error"]["retriable"] is True
