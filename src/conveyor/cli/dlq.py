"""``conveyor dlq redrive``: move messages out of a dead-letter queue."""

from __future__ import annotations

import argparse
from typing import Any

from conveyor.cli.connect import open_client
from conveyor.cli.exits import Exit
from conveyor.cli.output import Output
from conveyor.cli.units import positive_int


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    dp = sub.add_parser(
        "dlq",
        help="dead-letter queues: redrive",
        description="Work with dead-letter queues.",
        parents=[common],
    )
    dsub = dp.add_subparsers(dest="dlq_command", metavar="ACTION")
    dsub.required = True
    r = dsub.add_parser(
        "redrive",
        help="move messages out of a dead-letter queue",
        description="Move the visible messages of SOURCE_DLQ back to the queue each came "
        "from, or all of them to --to QUEUE. Their receive counts start again at 0. "
        "Messages whose source queue no longer exists stay where they are.",
        parents=[common],
    )
    r.add_argument("source", metavar="SOURCE_DLQ", help="the dead-letter queue")
    r.add_argument("--to", metavar="QUEUE", help="move to this queue instead of each source")
    r.add_argument("--max", type=positive_int, metavar="N", help="move at most N messages")
    r.set_defaults(func=cmd_redrive)


def cmd_redrive(args: argparse.Namespace, out: Output) -> int:
    client = open_client(args.address, args.timeout)
    try:
        moved = client.redrive(args.source, args.to, args.max)
    finally:
        client.close()
    if out.json_mode:
        out.json({"source": args.source, "destination": args.to, "moved": moved})
    else:
        where = args.to if args.to else "their source queues"
        out.text(f"moved {moved} message{'s' if moved != 1 else ''} from {args.source} to {where}")
    return Exit.OK
