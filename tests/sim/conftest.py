"""Seeds for the simulator's tests.

A test that takes a ``sim_seeds`` argument is parametrized over chunks of the default
seed range; with ``--seed N`` (tests/conftest.py) it runs seed N alone.
"""

from __future__ import annotations

import pytest

SEEDS_DEFAULT = range(0, 300)
CHUNK = 25


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sim_seeds" not in metafunc.fixturenames:
        return
    seed = metafunc.config.getoption("--seed")
    if seed is not None:
        chunks = [[int(seed)]]
        ids = [f"seed{seed}"]
    else:
        seeds = list(SEEDS_DEFAULT)
        chunks = [seeds[i : i + CHUNK] for i in range(0, len(seeds), CHUNK)]
        ids = [f"seeds{c[0]}-{c[-1]}" for c in chunks]
    metafunc.parametrize("sim_seeds", chunks, ids=ids)
