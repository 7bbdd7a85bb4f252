"""Invariants the simulator checks from outside the replicas, after every step.

=====================  ===========================================================
violation              what it means
=====================  ===========================================================
``changed-commit``     a replica committed a record different from the one already
                       committed at that offset (so committed logs are not prefixes
                       of one another)
``lost-commit``        an ISR member (as the coordinator has it) lacks a committed
                       record in its durable log, so electing it would lose the
                       record; or a replica's log after healing lacks it
``ack-mismatch``       a client was told its write is committed at an offset that
                       holds something else (or nothing)
``two-leaders``        two nodes committed as leader in the same epoch
``state-divergence``   two replicas' partition states differ at the same offset
``lease``              a node still led on a lease the coordinator had expired
``core-invariant``     a replica's own assertion failed
``no-convergence``     after healing, the replicas did not agree, or clients made no
                       progress
=====================  ===========================================================
"""

from __future__ import annotations

from conveyor.replication.records import LogRecord


class Violation(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


Key = tuple[int, int, bytes]  # what identifies a record: (ts_ms, type, payload)


def key(record: LogRecord) -> Key:
    return (record.ts_ms, record.type, record.payload)


class Checker:
    """The truth the replicas must agree with: the committed log, as first committed."""

    def __init__(self) -> None:
        self.committed: list[Key] = []
        self.leader_of_epoch: dict[int, str] = {}
        self.digests: dict[int, bytes] = {}
        self.acked = 0
        self._verified: dict[str, int] = {}  # node -> disk prefix known to match `committed`

    # --- on events -------------------------------------------------------------------------
    def on_commit(
        self, node: str, records: list[LogRecord], start: int, leader_epoch: int | None
    ) -> None:
        """``node`` advanced its commit point over ``records`` (from offset ``start``)."""
        for i, record in enumerate(records):
            offset = start + i
            assert record.offset == offset
            k = key(record)
            if offset < len(self.committed):
                if self.committed[offset] != k:
                    raise Violation(
                        "changed-commit",
                        f"{node} committed {k!r} at {offset}, "
                        f"already committed: {self.committed[offset]!r}",
                    )
            elif offset == len(self.committed):
                self.committed.append(k)
            else:
                raise Violation("changed-commit", f"{node} committed {offset} past a gap")
        if leader_epoch is not None and records:
            other = self.leader_of_epoch.setdefault(leader_epoch, node)
            if other != node:
                raise Violation(
                    "two-leaders", f"{other} and {node} both committed in epoch {leader_epoch}"
                )

    def on_digest(self, node: str, commit: int, digest: bytes) -> None:
        other = self.digests.setdefault(commit, digest)
        if other != digest:
            raise Violation("state-divergence", f"{node}'s state differs at commit {commit}")

    def on_ack(self, request: int, offset: int, payload: bytes) -> None:
        self.acked += 1
        if offset >= len(self.committed) or self.committed[offset][2] != payload:
            held = self.committed[offset] if offset < len(self.committed) else None
            raise Violation(
                "ack-mismatch", f"request {request} acked at {offset}, which holds {held!r}"
            )

    # --- after every step --------------------------------------------------------------------
    def check_isr_durable(self, node: str, disk: list[LogRecord], synced: int) -> None:
        """An ISR member's durable log must hold every committed record (rules 3, 5)."""
        target = len(self.committed)
        n = self._verified.get(node, 0)
        if n >= target and n <= synced:
            return
        n = min(n, synced)
        while n < target and n < synced:
            if key(disk[n]) != self.committed[n]:
                break
            n += 1
        self._verified[node] = n
        if n < target:
            what = "lacks" if n >= synced else f"holds {key(disk[n])!r} instead of"
            raise Violation(
                "lost-commit",
                f"ISR member {node} {what} committed record {n} {self.committed[n]!r} "
                f"(durable end {synced}, committed {target})",
            )

    def forget_disk(self, node: str, end: int) -> None:
        """``node``'s disk was cut to ``end`` records (truncation, crash)."""
        if self._verified.get(node, 0) > end:
            self._verified[node] = end

    def check_final(self, node: str, log: list[LogRecord]) -> None:
        if len(log) != len(self.committed):
            raise Violation(
                "lost-commit" if len(log) < len(self.committed) else "no-convergence",
                f"{node} ends with {len(log)} records, {len(self.committed)} committed",
            )
        for offset, record in enumerate(log):
            if key(record) != self.committed[offset]:
                raise Violation("changed-commit", f"{node} ends with another record at {offset}")
