"""The public names of the replication, coordination and sim packages exist and are listed."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize(
    "package", ["conveyor.replication", "conveyor.coordination", "conveyor.sim"]
)
def test_all_lists_exactly_the_public_names(package: str) -> None:
    module = importlib.import_module(package)
    exported = set(module.__all__)
    assert len(exported) == len(module.__all__), "duplicates in __all__"
    for name in exported:
        assert hasattr(module, name), f"{package}.{name} is listed but missing"
    public = {
        n
        for n, v in vars(module).items()
        if not n.startswith("_")
        and not getattr(v, "__name__", "").startswith(package + ".")  # submodules
        and n != "annotations"
    }
    assert public <= exported, f"public but not in __all__: {sorted(public - exported)}"
