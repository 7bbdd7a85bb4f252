"""The Grafana dashboard (deploy/grafana/conveyor.json) against a live ``/metrics``
scrape, so it cannot drift from the metrics: every metric its PromQL names is exported,
with the labels and label values it filters and groups by, and every exported metric is
on the dashboard. Also its shape: unique ids, no overlapping panels, variables used."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import conveyor
from conveyor.testing import ServerProcess

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "conveyor.json"
TARGET_LABELS = {"instance", "job"}  # added by Prometheus to every series it scrapes
METRIC = re.compile(r"\bconveyor_[a-z0-9_]+\b")
SELECTOR = re.compile(r"\b(conveyor_[a-z0-9_]+)\s*\{([^}]*)\}")
MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_created")

# (metric, labels) -> label values, from one scrape
Scrape = dict[str, dict[str, set[str]]]


def load() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row holds its panels


def expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel query and templating query."""
    out = []
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            out.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            out.append((f"variable {var['name']}", query))
    return out


def family(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


@pytest.fixture(scope="module")
def scrape(server: ServerProcess) -> Scrape:
    """Every sample name of a node that has queues and has done some work, with the
    values of each label."""
    with conveyor.Client(server.native_address) as client:
        client.create_queue("dashboard")
        client.send("dashboard", "one")
        for m in client.receive("dashboard", max_messages=1):
            client.delete("dashboard", m.receipt_handle)
    with urllib.request.urlopen(f"{server.http_url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: Scrape = {}
    for fam in text_string_to_metric_families(text):
        for sample in fam.samples:
            labels = out.setdefault(sample.name, {})
            for key, value in sample.labels.items():
                labels.setdefault(key, set()).add(value)
    return out


def test_dashboard_is_well_formed() -> None:
    d = load()
    assert d["uid"] == "conveyor" and d["title"] == "Conveyor"
    names = {v["name"]: v for v in d["templating"]["list"]}
    assert names["datasource"]["type"] == "datasource"
    assert names["datasource"]["query"] == "prometheus"
    assert {"instance", "queue"} <= set(names)
    ids = [p["id"] for p in panels(d)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: dict[tuple[int, int], str] = {}
    for p in panels(d):
        g = p["gridPos"]
        assert g["x"] >= 0 and g["w"] >= 1 and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p.get("description"), f"panel {p['title']!r} has no description"
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(refs) == len(set(refs)), p["title"]
    types = {p["type"] for p in panels(d)}
    assert {"row", "stat", "timeseries"} <= types
    titles = {p["title"] for p in panels(d)}
    for wanted in (
        "Depth",
        "In flight",
        "Age of the oldest message",
        "Send latency",
        "Receive to delete",
        "fsync latency",
        "Requests by action /s",
        "Errors by code /s",
    ):
        assert wanted in titles, wanted


def test_queries_use_the_variables_and_are_balanced(scrape: Scrape) -> None:
    for where, expr in expressions(load()):
        for open_, close in ("()", "{}", "[]"):
            assert expr.count(open_) == expr.count(close), (where, expr)
        assert expr.count('"') % 2 == 0, (where, expr)
        if where.startswith("variable"):
            continue
        for name, matchers in SELECTOR.findall(expr):
            labels = dict((k, v) for k, _, v in MATCHER.findall(matchers))
            assert labels.get("instance") == "$instance", (where, expr)
            if "queue" in scrape.get(name, {}):
                # a per-queue metric follows the queue picker
                assert labels.get("queue") == "$queue", (where, expr)


def test_every_metric_used_is_exported_with_those_labels(scrape: Scrape) -> None:
    exported = set(scrape)
    for where, expr in expressions(load()):
        used = set(METRIC.findall(expr))
        assert used, f"{where}: no conveyor metric in {expr!r}"
        missing = used - exported
        assert not missing, f"{where}: {sorted(missing)} not in /metrics ({expr})"
        for name, matchers in SELECTOR.findall(expr):
            parsed = MATCHER.findall(matchers)
            assert len(parsed) == len([m for m in matchers.split(",") if m.strip()]), (
                f"{where}: cannot read the matchers {matchers!r}"
            )
            for label, op, value in parsed:
                if label in TARGET_LABELS:
                    continue
                assert label in scrape[name], f"{where}: {name} has no label {label!r}"
                if op in ("=", "!=") and "$" not in value:
                    values = scrape[name][label]
                    assert value in values, f"{where}: {name}{{{label}}} is never {value!r}"
        have = TARGET_LABELS.union(*(scrape[m].keys() for m in used))
        for group in GROUPING.findall(expr):
            for label in (x.strip() for x in group.split(",") if x.strip()):
                assert label in have, f"{where}: no metric in {expr!r} has label {label!r}"


def test_every_exported_metric_is_on_the_dashboard(scrape: Scrape) -> None:
    used = {family(m) for _, expr in expressions(load()) for m in METRIC.findall(expr)}
    exported = {family(name) for name in scrape if name.startswith("conveyor_")}
    missing = exported - used
    assert not missing, (
        f"{sorted(missing)} are exported but on no panel of {DASHBOARD.name}: add them "
        "(deploy/grafana/conveyor.json) so the dashboard shows every metric"
    )
