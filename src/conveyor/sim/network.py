"""The simulated network: delay, loss, duplication, reordering and partitions.

Every message gets its own random delay, so messages overtake each other (reordering).
A link can be cut (a partition); a message is lost if its link is cut when it is sent
or when it would arrive. Links are undirected pairs of endpoint names (nodes, the
coordinator ``"coord"``, the client ``"client"``); overlapping partitions nest (a link is
cut while at least one partition cuts it).
"""

from __future__ import annotations

import random


class NetworkParams:
    __slots__ = ("delay_ms_max", "delay_ms_min", "drop", "duplicate", "slow", "slow_ms_max")

    def __init__(self, rng: random.Random) -> None:
        self.drop = rng.choice([0.0, 0.001, 0.01, 0.05, 0.15])
        self.duplicate = rng.choice([0.0, 0.01, 0.05])
        self.delay_ms_min = rng.randint(0, 3)
        self.delay_ms_max = rng.choice([5, 20, 60, 150])
        self.slow = rng.choice([0.0, 0.01, 0.05])  # some messages take much longer
        self.slow_ms_max = rng.choice([200, 800, 2_000])

    def heal(self) -> None:
        self.drop = 0.0
        self.duplicate = 0.0
        self.slow = 0.0
        self.delay_ms_max = min(self.delay_ms_max, 20)


def link(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


class Network:
    def __init__(self, rng: random.Random, params: NetworkParams) -> None:
        self.rng = rng
        self.params = params
        self._cuts: dict[tuple[str, str], int] = {}
        self.sent = 0
        self.dropped = 0
        self.duplicated = 0

    def is_cut(self, a: str, b: str) -> bool:
        return self._cuts.get(link(a, b), 0) > 0

    def cut(self, pairs: list[tuple[str, str]]) -> None:
        for a, b in pairs:
            key = link(a, b)
            self._cuts[key] = self._cuts.get(key, 0) + 1

    def restore(self, pairs: list[tuple[str, str]]) -> None:
        for a, b in pairs:
            key = link(a, b)
            left = self._cuts.get(key, 0) - 1
            if left > 0:
                self._cuts[key] = left
            else:
                self._cuts.pop(key, None)

    def heal(self) -> None:
        self._cuts.clear()
        self.params.heal()

    def delays(self, a: str, b: str) -> list[int]:
        """The delays of the copies of one message from ``a`` to ``b`` (none: lost)."""
        self.sent += 1
        p = self.params
        if self.is_cut(a, b) or self.rng.random() < p.drop:
            self.dropped += 1
            return []
        copies = 1
        if self.rng.random() < p.duplicate:
            copies = 2
            self.duplicated += 1
        out = []
        for _ in range(copies):
            if self.rng.random() < p.slow:
                out.append(self.rng.randint(p.delay_ms_max, p.slow_ms_max))
            else:
                out.append(self.rng.randint(p.delay_ms_min, p.delay_ms_max))
        return out
