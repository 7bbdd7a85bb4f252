"""``conveyor queue create|list|info|delete|purge``."""

from __future__ import annotations

import argparse
from typing import Any

import msgspec

from conveyor import errors
from conveyor.cli.connect import Api, open_client
from conveyor.cli.exits import Exit, UsageError
from conveyor.cli.output import Output, ms_to_iso
from conveyor.cli.units import (
    format_bytes,
    format_duration,
    non_negative_int,
    positive_int,
    size_bytes,
    whole_seconds,
)
from conveyor.types import QueueInfo

# flag dest -> QueueConfig field (conveyor/queue.py)
CONFIG_FLAGS = {
    "visibility_timeout": "visibility_timeout_s",
    "retention": "retention_s",
    "delay": "delay_s",
    "max_message_size": "max_message_bytes",
    "max_depth_messages": "max_depth_messages",
    "max_depth_bytes": "max_depth_bytes",
    "overflow": "overflow",
    "receive_wait": "receive_wait_s",
    "dedup_scope": "dedup_scope",
    "partitions": "partitions",
}


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    qp = sub.add_parser(
        "queue",
        help="create, list, inspect, delete and purge queues",
        description="Manage queues.",
        parents=[common],
    )
    qsub = qp.add_subparsers(dest="queue_command", metavar="ACTION")
    qsub.required = True

    c = qsub.add_parser(
        "create",
        help="create a queue (no-op if it exists with the same attributes)",
        description="Create a queue. Creating it again with identical attributes is a "
        "no-op; with different ones it fails with QueueAlreadyExists (exit 5). Durations "
        "take s, m, h, d suffixes (default seconds); sizes take KiB, MiB (default bytes).",
        parents=[common],
    )
    c.add_argument("name", help="queue name; FIFO queues end in .fifo")
    c.add_argument(
        "--fifo", action="store_true", help="FIFO queue (implied by a name ending in .fifo)"
    )
    c.add_argument(
        "--visibility-timeout",
        type=whole_seconds,
        metavar="DURATION",
        help="default visibility timeout of received messages (default 30s)",
    )
    c.add_argument(
        "--retention",
        type=whole_seconds,
        metavar="DURATION",
        help="keep messages this long (default 4d)",
    )
    c.add_argument(
        "--delay",
        type=whole_seconds,
        metavar="DURATION",
        help="delivery delay of new messages (default 0)",
    )
    c.add_argument(
        "--max-message-size",
        type=size_bytes,
        metavar="SIZE",
        help="largest message accepted (default 256KiB, at most 1MiB)",
    )
    c.add_argument(
        "--max-depth-messages",
        type=non_negative_int,
        metavar="N",
        help="most messages the queue holds (default 0: unbounded)",
    )
    c.add_argument(
        "--max-depth-bytes",
        type=size_bytes,
        metavar="SIZE",
        help="most bytes the queue holds (default 0: unbounded)",
    )
    c.add_argument(
        "--overflow",
        choices=("reject", "drop_oldest"),
        help="when full: reject sends (QueueFull) or drop the oldest message (default reject)",
    )
    c.add_argument(
        "--receive-wait",
        type=whole_seconds,
        metavar="DURATION",
        help="default long-poll wait of receives (default 0, at most 20s)",
    )
    c.add_argument("--dlq", metavar="QUEUE", help="dead-letter queue (must exist)")
    c.add_argument(
        "--max-receive-count",
        type=positive_int,
        metavar="N",
        help="receives after which a message moves to the --dlq",
    )
    c.add_argument(
        "--content-based-dedup",
        action="store_true",
        help="FIFO: deduplicate by the body's SHA-256 when no dedup id is given",
    )
    c.add_argument(
        "--dedup-scope",
        choices=("queue", "message_group"),
        help="FIFO: deduplicate across the queue or per message group",
    )
    c.add_argument("--partitions", type=positive_int, metavar="N", help="partitions (default 1)")
    c.add_argument(
        "--tag", action="append", default=[], metavar="KEY=VALUE", help="a tag (repeatable)"
    )
    c.set_defaults(func=cmd_create)

    ls = qsub.add_parser(
        "list", help="list queues", description="List queue names.", parents=[common]
    )
    ls.add_argument("--prefix", default="", help="only names starting with this")
    ls.add_argument(
        "-l",
        "--long",
        action="store_true",
        help="with type and message counts (one request per queue)",
    )
    ls.set_defaults(func=cmd_list)

    info = qsub.add_parser(
        "info",
        help="a queue's attributes and message counts",
        description="Show a queue's attributes, tags and current message counts.",
        parents=[common],
    )
    info.add_argument("name")
    info.set_defaults(func=cmd_info)

    d = qsub.add_parser(
        "delete",
        help="delete a queue and its messages",
        description="Delete a queue and every message in it.",
        parents=[common],
    )
    d.add_argument("name")
    d.add_argument(
        "--if-exists", action="store_true", help="succeed (exit 0) if the queue does not exist"
    )
    d.set_defaults(func=cmd_delete)

    p = qsub.add_parser(
        "purge",
        help="delete every message of a queue",
        description="Delete every message sent before now. A queue can be purged once "
        "every 60 s; sooner fails with PurgeQueueInProgress (exit 7).",
        parents=[common],
    )
    p.add_argument("name")
    p.set_defaults(func=cmd_purge)


def _client(args: argparse.Namespace) -> Api:
    return open_client(args.address, args.timeout)


def parse_pairs(items: list[str], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag} must be KEY=VALUE, got {item!r}")
        out[key] = value
    return out


def config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for dest, key in CONFIG_FLAGS.items():
        value = getattr(args, dest)
        if value is not None:
            config[key] = value
    if args.fifo:
        config["fifo"] = True
    if args.content_based_dedup:
        config["content_dedup"] = True
    if (args.dlq is None) != (args.max_receive_count is None):
        raise UsageError("--dlq and --max-receive-count go together")
    if args.dlq is not None:
        config["redrive"] = {
            "dead_letter_queue": args.dlq,
            "max_receive_count": args.max_receive_count,
        }
    return config


def info_json(info: QueueInfo) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(info)
    return out


def print_info(out: Output, info: QueueInfo) -> None:
    cfg = info.config
    rows: dict[str, Any] = {
        "name": info.name,
        "type": "fifo" if cfg.fifo else "standard",
        "uid": info.uid or None,
        "created": ms_to_iso(info.created_ms),
        "modified": ms_to_iso(info.modified_ms),
        "partitions": cfg.partitions,
        "visibility timeout": format_duration(cfg.visibility_timeout_s),
        "retention": format_duration(cfg.retention_s),
        "delivery delay": format_duration(cfg.delay_s),
        "receive wait": format_duration(cfg.receive_wait_s),
        "max message size": format_bytes(cfg.max_message_bytes),
        "max depth": (
            f"{cfg.max_depth_messages or 'unbounded'} messages, "
            f"{format_bytes(cfg.max_depth_bytes) if cfg.max_depth_bytes else 'unbounded'} bytes, "
            f"overflow {cfg.overflow}"
        ),
        "dead-letter queue": (
            f"{cfg.redrive.dead_letter_queue} after {cfg.redrive.max_receive_count} receives"
            if cfg.redrive
            else None
        ),
    }
    if cfg.fifo:
        rows["deduplication"] = (
            f"{'content-based' if cfg.content_dedup else 'by dedup id'}, scope {cfg.dedup_scope}"
        )
    rows = {k: v for k, v in rows.items() if v not in (None, "-") or k == "dead-letter queue"}
    if info.tags:
        rows["tags"] = ", ".join(f"{k}={v}" for k, v in sorted(info.tags.items()))
    s = info.stats
    if s is not None:
        rows["messages"] = (
            f"{s.messages} ({s.visible} visible, {s.inflight} in flight, {s.delayed} delayed)"
        )
        rows["bytes"] = format_bytes(s.bytes)
        rows["oldest message age"] = format_duration(s.oldest_age_s)
    out.fields(rows, title=f"queue {info.name}")


def cmd_create(args: argparse.Namespace, out: Output) -> int:
    config = config_from_args(args)
    tags = parse_pairs(args.tag, "--tag")
    client = _client(args)
    try:
        info = client.create_queue(args.name, config, tags or None)
    finally:
        client.close()
    if out.json_mode:
        out.json(info_json(info))
    else:
        out.text(f"created queue {info.name}")
        print_info(out, info)
    return Exit.OK


def cmd_list(args: argparse.Namespace, out: Output) -> int:
    client = _client(args)
    try:
        names = client.list_queues(args.prefix)
        infos: list[QueueInfo] = []
        if args.long:
            for name in names:
                try:
                    infos.append(client.get_queue(name))
                except errors.QueueDoesNotExist:
                    continue  # deleted meanwhile
    finally:
        client.close()
    if out.json_mode:
        if args.long:
            out.json({"queues": [info_json(i) for i in infos]})
        else:
            out.json({"queues": [{"name": n} for n in names]})
        return Exit.OK
    if not names:
        out.note("no queues" + (f" starting with {args.prefix!r}" if args.prefix else ""))
        return Exit.OK
    if not args.long:
        out.table(["queue"], [[n] for n in names])
        return Exit.OK
    rows = []
    for i in infos:
        s = i.stats
        rows.append(
            [
                i.name,
                "fifo" if i.config.fifo else "standard",
                s.messages if s else None,
                s.visible if s else None,
                s.inflight if s else None,
                s.delayed if s else None,
                format_bytes(s.bytes) if s else None,
                format_duration(s.oldest_age_s) if s else None,
            ]
        )
    out.table(
        ["queue", "type", "messages", "visible", "in flight", "delayed", "bytes", "oldest"],
        rows,
        right=("messages", "visible", "in flight", "delayed", "bytes", "oldest"),
    )
    return Exit.OK


def cmd_info(args: argparse.Namespace, out: Output) -> int:
    client = _client(args)
    try:
        info = client.get_queue(args.name)
    finally:
        client.close()
    if out.json_mode:
        out.json(info_json(info))
    else:
        print_info(out, info)
    return Exit.OK


def cmd_delete(args: argparse.Namespace, out: Output) -> int:
    client = _client(args)
    deleted = True
    try:
        client.delete_queue(args.name)
    except errors.QueueDoesNotExist:
        if not args.if_exists:
            raise
        deleted = False
    finally:
        client.close()
    if out.json_mode:
        out.json({"queue": args.name, "deleted": deleted})
    else:
        out.text(f"deleted queue {args.name}" if deleted else f"no queue {args.name}")
    return Exit.OK


def cmd_purge(args: argparse.Namespace, out: Output) -> int:
    client = _client(args)
    try:
        client.purge_queue(args.name)
    finally:
        client.close()
    if out.json_mode:
        out.json({"queue": args.name, "purged": True})
    else:
        out.text(f"purged queue {args.name}")
    return Exit.OK
