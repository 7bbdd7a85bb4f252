"""Shared pytest options.

``--seed N`` replays one seed in every seeded test (simulations, fuzzers); without it
each seeded test runs its own fixed range of seeds.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--seed",
        action="store",
        type=int,
        default=None,
        help="replay exactly this seed in seeded tests (simulator, fuzzers)",
    )


@pytest.fixture
def seed_option(request: pytest.FixtureRequest) -> int | None:
    value = request.config.getoption("--seed")
    return None if value is None else int(value)
