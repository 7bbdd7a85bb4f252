"""``conveyor cluster status`` and ``conveyor node drain``: look at and shrink a cluster."""

from __future__ import annotations

import argparse
import time
from typing import Any

from conveyor.cli.connect import open_client
from conveyor.cli.exits import Exit
from conveyor.cli.output import Output

drain_poll_s = 1.0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    cp = sub.add_parser(
        "cluster",
        help="cluster mode: nodes, partitions, leaders",
        description="Look at a cluster through any of its nodes.",
        parents=[common],
    )
    csub = cp.add_subparsers(dest="cluster_command", metavar="ACTION")
    csub.required = True
    st = csub.add_parser(
        "status",
        help="nodes, partitions, leaders, ISR and lag",
        description="Every node with its replica count, and every partition with its "
        "replicas, leader, in-sync replicas and, for replicas on the node asked, how far "
        "its log and commit point are.",
        parents=[common],
    )
    st.set_defaults(func=cmd_status)

    np = sub.add_parser(
        "node",
        help="cluster mode: drain a node before it leaves",
        description="Manage the nodes of a cluster.",
        parents=[common],
    )
    nsub = np.add_subparsers(dest="node_command", metavar="ACTION")
    nsub.required = True
    d = nsub.add_parser(
        "drain",
        help="move every replica off a node",
        description="Mark NODE as leaving: the controller moves each of its replicas to "
        "another node (the new copy catches up before the old one is dropped, and a "
        "leader hands its partitions over first). With --wait, return once it holds "
        "none; then it can be stopped with nothing lost.",
        parents=[common],
    )
    d.add_argument("node", metavar="NODE", help="the node's id (--node-id)")
    d.add_argument("--wait", action="store_true", help="wait until the node holds no replica")
    d.add_argument("--cancel", action="store_true", help="stop draining the node")
    d.set_defaults(func=cmd_drain)


def cmd_status(args: argparse.Namespace, out: Output) -> int:
    client = open_client(args.address, args.timeout)
    try:
        status = client.cluster_status()
    finally:
        client.close()
    if out.json_mode:
        out.json(status)
        return Exit.OK
    out.text(f"asked node {status['node']}; controller: {status.get('controller') or '-'}")
    out.table(
        ["node", "native", "http", "replicas"],
        [(n["id"], n["native"], n["http"], n["replicas"]) for n in status["nodes"]],
        title="nodes",
        right=["replicas"],
    )
    rows = []
    for p in status["partitions"]:
        local = p.get("local") or {}
        lag = None
        if local:
            lag = f"{local['role']} log {local['log_end']} commit {local['commit']}"
        rows.append(
            (
                p["queue"],
                p["partition"],
                p["leader"],
                p["epoch"],
                ",".join(p["replicas"]),
                ",".join(p["isr"]),
                lag,
            )
        )
    out.table(
        ["queue", "part", "leader", "epoch", "replicas", "isr", "here"],
        rows,
        title="partitions",
        right=["part", "epoch"],
    )
    return Exit.OK


def cmd_drain(args: argparse.Namespace, out: Output) -> int:
    client = open_client(args.address, args.timeout)
    try:
        held = client.drain_node(args.node, cancel=args.cancel)
        if args.cancel:
            out.text(f"{args.node} is no longer draining ({held} replicas)")
            return Exit.OK
        while args.wait and held:
            out.note(f"{args.node} holds {held} replicas; waiting")
            time.sleep(drain_poll_s)
            held = client.drain_node(args.node)
    finally:
        client.close()
    if out.json_mode:
        out.json({"node": args.node, "replicas": held})
    elif held:
        out.text(f"{args.node} is draining: {held} replicas still to move")
    else:
        out.text(f"{args.node} holds no replicas: it can be stopped")
    return Exit.OK
