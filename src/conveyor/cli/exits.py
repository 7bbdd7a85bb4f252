"""Exit codes of the ``conveyor`` command, and which error gives which.

======  ==========================================================================
code    meaning
======  ==========================================================================
0       success (also: ``tail`` stopped with Ctrl-C)
1       the server (or the embedded broker) refused the request; the error code is
        printed, e.g. ``error: InvalidAttributeValue: ...``
2       usage: unknown command or flag, bad flag value (argparse's convention)
3       cannot connect: connection refused, host unknown, handshake failed
4       not found: the queue does not exist, or the path given to ``storage inspect``
5       already exists: ``queue create`` with different attributes
6       timeout: no answer within ``--timeout`` seconds
7       temporary: the server says try again later (a retriable error such as
        ``QueueFull`` or ``Unavailable``)
130     interrupted (Ctrl-C) during a command that is not meant to run forever
======  ==========================================================================
"""

from __future__ import annotations

import enum

from conveyor import errors


class Exit(enum.IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    CONNECT = 3
    NOT_FOUND = 4
    EXISTS = 5
    TIMEOUT = 6
    TEMPORARY = 7
    INTERRUPTED = 130


class UsageError(Exception):
    """A bad argument found after parsing (exit 2)."""


class CliError(Exception):
    """A failure of the command itself, with the exit code and a code name to print."""

    def __init__(self, exit_code: Exit, code: str, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.code = code
        self.message = message


# The client's own errors (conveyor.client.errors), by code, so that this module does
# not import the client.
_CONNECT_CODES = frozenset({"ConnectFailed", "ConnectionLost"})
_TIMEOUT_CODES = frozenset({"Timeout"})


def exit_for(exc: errors.ConveyorError) -> Exit:
    """The exit code for an error of the server or of the client."""
    if exc.code in _CONNECT_CODES:
        return Exit.CONNECT
    if exc.code in _TIMEOUT_CODES:
        return Exit.TIMEOUT
    if isinstance(exc, errors.QueueDoesNotExist):
        return Exit.NOT_FOUND
    if isinstance(exc, errors.QueueAlreadyExists):
        return Exit.EXISTS
    if exc.retriable:
        return Exit.TEMPORARY
    return Exit.ERROR
