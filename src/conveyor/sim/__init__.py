"""A deterministic simulator for the replication core (DESIGN.md §3, §4).

``run(SimOptions(seed=N))`` simulates one replicated partition from one seed and checks
its invariants after every step; ``python -m conveyor.sim --seed N`` replays a seed,
``--seeds A:B`` runs a range. See ``docs/replication.md``.
"""

from __future__ import annotations

from conveyor.sim.checkers import Checker, Violation
from conveyor.sim.cluster import SimOptions, SimResult, Simulation, run
from conveyor.sim.disk import SimDisk
from conveyor.sim.state import ToyState

__all__ = [
    "Checker",
    "SimDisk",
    "SimOptions",
    "SimResult",
    "Simulation",
    "ToyState",
    "Violation",
    "run",
]
