"""Running the real ``conveyor`` command as a subprocess (``python -m conveyor``), for
the CLI tests. A module of its own, not conftest: every test directory has a conftest,
and ``from conftest import ...`` would take whichever was imported first."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

cli_timeout_s = 60.0


class Result:
    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def json(self) -> Any:
        return json.loads(self.out)

    def json_lines(self) -> list[Any]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]

    def __repr__(self) -> str:
        return f"Result(code={self.code}, out={self.out[-2000:]!r}, err={self.err[-2000:]!r})"


def cli_env(address: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("CONVEYOR_TIMEOUT", None)
    env["COLUMNS"] = "200"
    if address is not None:
        env["CONVEYOR_ADDRESS"] = address
    return env


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "conveyor", *args]


def run_cli(*args: str, address: str | None = None, input: str | None = None) -> Result:
    proc = subprocess.run(
        cli_command(*args),
        input=input,
        capture_output=True,
        text=True,
        env=cli_env(address),
        timeout=cli_timeout_s,
        check=False,
    )
    return Result(proc)


def run_parallel(commands: list[list[str]], address: str | None = None) -> list[Result]:
    """Run several ``conveyor`` commands at once (each is a Python start-up)."""
    procs = [
        subprocess.Popen(
            cli_command(*args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(address),
        )
        for args in commands
    ]
    results = []
    for args, proc in zip(commands, procs, strict=True):
        try:
            out, err = proc.communicate(timeout=cli_timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        results.append(Result(subprocess.CompletedProcess(args, proc.returncode, out, err)))
    return results


Cli = Callable[..., Result]
