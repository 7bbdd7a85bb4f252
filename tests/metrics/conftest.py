"""Fixtures for the metrics and admin API tests: a real server, HTTP helpers, a scraper
that parses ``/metrics``, and a checker that validates answers against the served
OpenAPI document."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conveyor.testing import ServerProcess

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_metrics(text: str) -> Samples:
    """Every sample of a text exposition: (name, labels) -> value."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample with exactly these labels (KeyError names what was there)."""
    key = (name, frozenset(labels.items()))
    if key not in samples:
        have = sorted((dict(lbl) for n, lbl in samples if n == name), key=str)
        raise KeyError(f"{name}{labels} not found; series of {name}: {have}")
    return samples[key]


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum over every series of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, lbl), v in samples.items() if n == name and want <= lbl)


class Http:
    def __init__(self, base: str) -> None:
        self.base = base

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, dict[str, str], bytes]:
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def json(self, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        status, _, data = self.call(method, path, body, **kw)
        return status, json.loads(data)

    def scrape(self) -> Samples:
        status, headers, data = self.call("GET", "/metrics")
        assert status == 200
        assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return parse_metrics(data.decode())


class OpenApi:
    """Check an answer against the served OpenAPI document: the status is documented
    for the operation and the body matches the documented schema."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    def _deref(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            target: Any = self.doc
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        return node

    def check(self, method: str, template: str, status: int, body: Any) -> None:
        op = self.doc["paths"][template][method.lower()]
        responses = op["responses"]
        assert str(status) in responses, f"{method} {template}: {status} is not documented"
        resp = self._deref(responses[str(status)])
        self._validate(resp["content"]["application/json"]["schema"], body)

    def check_schema(self, name: str, body: Any) -> None:
        self._validate({"$ref": f"#/components/schemas/{name}"}, body)

    def _validate(self, schema: dict[str, Any], body: Any) -> None:
        root = {**schema, "components": self.doc["components"]}
        jsonschema.Draft202012Validator(root).validate(body)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data: Path = tmp_path_factory.mktemp("metrics") / "data"
    with ServerProcess(data) as srv:
        yield srv


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Http:
    return Http(server.http_url)


@pytest.fixture(scope="module")
def sqs(server: ServerProcess) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=server.http_url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


@pytest.fixture(scope="module")
def openapi(http: Http) -> OpenApi:
    status, doc = http.json("GET", "/api/v1/openapi.json")
    assert status == 200
    jsonschema.validators.Draft202012Validator.check_schema({"$defs": doc["components"]["schemas"]})
    return OpenApi(doc)


@pytest.fixture
def metric() -> Callable[..., float]:
    return value


@pytest.fixture
def metric_total() -> Callable[..., float]:
    return total


@pytest.fixture
def parse() -> Callable[[str], Samples]:
    return parse_metrics
