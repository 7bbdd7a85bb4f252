"""The simulator: many seeds must pass, and each fault switch must be caught.

``pytest tests/sim --seed N`` replays seed N in every test here; a failure prints the
seed, the end of its trace and the command that replays it.
"""

from __future__ import annotations

import os
import subprocess
import sys

import msgspec
import pytest

from conveyor.replication import Buggify
from conveyor.sim import SimOptions, SimResult, run

TRACE_TAIL = 60
DATA_LOSS = {"lost-commit", "changed-commit", "ack-mismatch", "core-invariant"}


def report(result: SimResult) -> str:
    return "\n".join([*result.trace[-TRACE_TAIL:], result.describe()])


def test_seeds_hold_every_invariant_and_converge(sim_seeds: list[int]) -> None:
    for seed in sim_seeds:
        result = run(SimOptions(seed=seed))
        assert result.ok, report(result)
        assert result.acked > 0 and result.committed > 0


def test_seeds_with_a_lying_disk(sim_seeds: list[int]) -> None:
    """One node's fsync lies; its unclean restarts exercise rule 7."""
    for seed in sim_seeds[:4]:
        result = run(SimOptions(seed=seed, lazy_disk=True))
        assert result.ok, report(result)


def test_seeds_replicating_into_the_real_partition_state(sim_seeds: list[int]) -> None:
    for seed in sim_seeds[:2]:
        result = run(SimOptions(seed=seed, partition_state=True))
        assert result.ok, report(result)


# Each fault switch, the seeds within which the simulator must find a violation (they
# find one well before; the bound leaves room for changes in the simulator), and what
# the violation may be.
SWITCHES: list[tuple[str, SimOptions, set[str]]] = [
    (
        "commit_on_leader_fsync",
        SimOptions(seed=0, buggify=Buggify(commit_on_leader_fsync=True)),
        {"lost-commit"},
    ),
    ("skip_epoch_check", SimOptions(seed=0, buggify=Buggify(skip_epoch_check=True)), DATA_LOSS),
    (
        "shrink_isr_silently",
        SimOptions(seed=0, buggify=Buggify(shrink_isr_silently=True)),
        {"lost-commit"},
    ),
    ("ignore_clock_drift", SimOptions(seed=0, buggify=Buggify(ignore_clock_drift=True)), {"lease"}),
    (
        "trust_unclean_restart",
        SimOptions(seed=0, lazy_disk=True, buggify=Buggify(trust_unclean_restart=True)),
        DATA_LOSS,
    ),
    ("elect_outside_isr", SimOptions(seed=0, elect_outside_isr=True), DATA_LOSS),
    # without the ISR durability check: the loss itself, after a failover
    (
        "commit_on_leader_fsync/no-isr-check",
        SimOptions(seed=0, isr_check=False, buggify=Buggify(commit_on_leader_fsync=True)),
        DATA_LOSS,
    ),
    (
        "skip_epoch_check/no-isr-check",
        SimOptions(seed=0, isr_check=False, buggify=Buggify(skip_epoch_check=True)),
        DATA_LOSS,
    ),
]
SWITCH_SEEDS_MAX = 60


def _with_seed(options: SimOptions, seed: int) -> SimOptions:
    return msgspec.structs.replace(options, seed=seed)


@pytest.mark.parametrize(("name", "options", "kinds"), SWITCHES, ids=[s[0] for s in SWITCHES])
def test_fault_switch_is_caught(
    name: str, options: SimOptions, kinds: set[str], seed_option: int | None
) -> None:
    seeds = [seed_option] if seed_option is not None else range(SWITCH_SEEDS_MAX)
    for seed in seeds:
        result = run(_with_seed(options, seed))
        if not result.ok:
            assert result.kind in kinds, report(result)
            return
    if seed_option is not None:
        pytest.skip(f"seed {seed_option} finds no violation with {name}")
    pytest.fail(f"{name}: no violation in {SWITCH_SEEDS_MAX} seeds: the checkers do not bite")


def test_a_seed_replays_exactly() -> None:
    first = run(SimOptions(seed=11))
    second = run(SimOptions(seed=11))
    assert first.trace == second.trace
    assert (first.steps, first.sim_ms, first.committed, first.acked, first.stats) == (
        second.steps,
        second.sim_ms,
        second.committed,
        second.acked,
        second.stats,
    )


def test_replay_does_not_depend_on_hash_randomisation() -> None:
    outputs = []
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        proc = subprocess.run(
            [sys.executable, "-m", "conveyor.sim", "--seed", "5", "--trace"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        outputs.append(proc.stdout)
    assert outputs[0] == outputs[1]


def test_a_failure_names_its_seed_and_the_command_that_replays_it() -> None:
    result = run(SimOptions(seed=0, buggify=Buggify(commit_on_leader_fsync=True)))
    assert not result.ok
    text = result.describe()
    assert "seed 0" in text and result.kind in text
    assert ".venv/bin/python -m conveyor.sim --seed 0 --buggify commit_on_leader_fsync" in text
    assert result.trace and "VIOLATION" in result.trace[-1]


def test_the_cli_replays_a_failing_seed_and_exits_nonzero() -> None:
    from conveyor.sim.__main__ import main

    assert main(["--seed", "0", "--buggify", "commit_on_leader_fsync"]) == 1
    assert main(["--seed", "3"]) == 0


@pytest.mark.slow
def test_ten_thousand_seeds() -> None:
    """``pytest -m slow tests/sim``; the same as ``python -m conveyor.sim --seeds 0:10000``."""
    from conveyor.sim.__main__ import main

    jobs = max(1, min(4, os.cpu_count() or 1))
    assert main(["--seeds", "0:10000", "--jobs", str(jobs)]) == 0
