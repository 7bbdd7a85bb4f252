"""The peer benchmark harness (``bench/compare.py``) in smoke mode: tiny counts, one
run, against Conveyor and every peer installed here (``bench/setup-peers`` installs
them; this test installs nothing and skips the peers that are missing, saying why).

The harness runs as two subprocesses in parallel (Conveyor + RabbitMQ, then the rest)
to stay within about a minute on two cores; the figures are not judged, only that
they are sane: messages/s above zero, every message consumed, every latency message
received, and p50 <= p99 <= p99.9.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
COMPARE = REPO / "bench" / "compare.py"

GROUPS = [
    ["conveyor", "rabbitmq-classic", "rabbitmq-quorum"],
    ["nats", "nats-sync", "redis-everysec", "redis-always", "postgres", "moto"],
]
ALL = [name for group in GROUPS for name in group]
SQS = {"conveyor", "moto"}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("compare-smoke")
    procs = []
    started = time.monotonic()
    for i, group in enumerate(GROUPS):
        out = tmp / f"smoke-{i}.json"
        log = (tmp / f"smoke-{i}.log").open("wb")
        cmd = [sys.executable, str(COMPARE), "--smoke", "--systems", ",".join(group)]
        procs.append((subprocess.Popen([*cmd, "--json", str(out)], stdout=log, stderr=log), out))
    merged: dict[str, Any] = {"summary": {}, "runs": {}, "skipped": {}, "logs": ""}
    try:
        for i, (proc, out) in enumerate(procs):
            proc.wait(timeout=max(1.0, 150 - (time.monotonic() - started)))
            merged["logs"] += (tmp / f"smoke-{i}.log").read_text(errors="replace")[-4000:]
            assert out.exists(), f"no results from the harness:\n{merged['logs']}"
            data = json.loads(out.read_text())
            for key in ("summary", "runs", "skipped"):
                merged[key].update(data[key])
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    merged["seconds"] = time.monotonic() - started
    return merged


def positive(x: Any) -> bool:
    return isinstance(x, int | float) and x > 0 and math.isfinite(x)


@pytest.mark.parametrize("system", ALL)
def test_smoke_figures_are_sane(smoke: dict[str, Any], system: str) -> None:
    if system in smoke["skipped"]:
        pytest.skip(f"{system} not installed here: {smoke['skipped'][system]}")
    runs = smoke["runs"].get(system)
    assert runs, f"{system} did not run:\n{smoke['logs']}"
    run = runs[0]
    assert "error" not in run, run.get("error")
    assert positive(run["peak_mb"])

    if system != "moto":
        for w in ("produce_one", "produce_batched", "consume"):
            assert positive(run[w]["rate"]), (w, run[w])
            assert run[w]["server_cpu_s"] >= 0
        assert run["consume"]["count"] >= run["consume"]["extra"]["expected"] > 0
        assert run["consume"]["extra"]["left_in_queue"] == 0
        assert run["latency"], "no latency rows"
        for lat in run["latency"]:
            assert lat["received"] == lat["scheduled"] > 0, lat
            assert lat["failed"] == 0, lat
            assert positive(lat["p50"]) and positive(lat["p999"]), lat
            assert lat["p50"] <= lat["p99"] <= lat["p999"], lat

    if system in SQS:
        sqs = run["sqs"]
        for phase in ("one", "batch", "consume"):
            assert positive(sqs[phase]["rate"]), (phase, sqs[phase])
        assert sqs["consume"]["count"] >= sqs["consume"]["extra"]["expected"] > 0


def test_smoke_report_names_every_row(smoke: dict[str, Any]) -> None:
    ran = [name for name in ALL if name not in smoke["skipped"]]
    assert "conveyor" in ran
    for name in ran:
        assert smoke["summary"][name]["runs"] == 1, smoke["summary"][name]
