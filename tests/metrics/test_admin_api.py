"""The admin API on a real server: round trips, each answer checked against the served
OpenAPI document, and bad input answered with a clear 4xx that changes nothing."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

QUEUES = "/api/v1/queues"


def make_queue(sqs: Any, name: str, **attributes: str) -> str:
    url: str = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return url


def arn(sqs: Any, url: str) -> str:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    value: str = attrs["Attributes"]["QueueArn"]
    return value


def detail(http: Any, openapi: Any, name: str) -> Any:
    status, body = http.json("GET", f"{QUEUES}/{name}")
    openapi.check("GET", "/api/v1/queues/{name}", status, body)
    assert status == 200
    return body


def test_openapi_document_is_served(http: Any, openapi: Any) -> None:
    doc = openapi.doc
    assert doc["openapi"].startswith("3.1")
    ops = {(m.upper(), p) for p, item in doc["paths"].items() for m in item if m != "parameters"}
    assert ops == {
        ("GET", "/api/v1/queues"),
        ("GET", "/api/v1/queues/{name}"),
        ("GET", "/api/v1/queues/{name}/messages"),
        ("POST", "/api/v1/queues/{name}/messages"),
        ("POST", "/api/v1/queues/{name}/purge"),
        ("POST", "/api/v1/queues/{name}/redrive"),
        ("GET", "/api/v1/queues/{name}/history"),
        ("GET", "/api/v1/history"),
        ("GET", "/api/v1/node"),
        ("GET", "/api/v1/cluster"),
        ("GET", "/api/v1/openapi.json"),
    }


def test_node(http: Any, openapi: Any, server: Any) -> None:
    status, body = http.json("GET", "/api/v1/node")
    openapi.check("GET", "/api/v1/node", status, body)
    assert body["pid"] == server.pid
    assert body["fsync"] == "always"
    assert body["data_dir"] == str(server.data_dir.resolve())
    assert body["http_address"] == f"127.0.0.1:{server.port}"
    assert body["native_address"] == server.native_address


def test_cluster_on_a_single_node_is_404(http: Any, openapi: Any) -> None:
    status, body = http.json("GET", "/api/v1/cluster")
    openapi.check("GET", "/api/v1/cluster", status, body)
    assert status == 404 and body["error"]["code"] == "NotFound"
    assert body["error"]["message"].startswith("not in cluster mode")


def test_cluster_answer_matches_its_schema(openapi: Any) -> None:
    # a single node cannot answer 200 (tests/cluster does, on three nodes): check the
    # wire types against the document with what ClusterNode.status() returns
    from conveyor.server.admin import _cluster_out, _encoder

    status = {
        "node": "n1",
        "controller": "n2",
        "nodes": [
            {
                "id": "n1",
                "http": "h:1",
                "native": "h:2",
                "lease": 7587878945869447946,
                "replicas": 1,
            },
            {"id": "n2", "http": "h:3", "native": "h:4", "lease": None, "replicas": 0},
        ],
        "partitions": [
            {
                "queue": "a",
                "partition": 0,
                "name": "u-p0",
                "replicas": ["n1", "n2", "n3"],
                "leader": "n1",
                "epoch": 2,
                "isr": ["n1", "n2"],
                "local": {"role": "leader", "log_end": 9, "commit": 8, "durable_end": 9},
            },
            {
                "queue": "b",
                "partition": 0,
                "name": "v-p0",
                "replicas": ["n2"],
                "leader": None,
                "epoch": 0,
                "isr": [],
            },
        ],
    }
    body = json.loads(_encoder.encode(_cluster_out(status)))
    openapi.check("GET", "/api/v1/cluster", 200, body)
    assert body["nodes"][0]["lease_hex"] == "694d8fb2ef36c30a"
    assert "local" not in body["partitions"][1]  # the shape ClusterNode.status() has
    for got, want in zip(body["partitions"], status["partitions"], strict=True):
        assert got == want


def test_queue_list_and_detail(http: Any, openapi: Any, sqs: Any) -> None:
    url = make_queue(sqs, "listed", VisibilityTimeout="45")
    sqs.tag_queue(QueueUrl=url, Tags={"team": "ops"})
    sqs.send_message(QueueUrl=url, MessageBody="hello")
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)
    status, body = http.json("GET", QUEUES)
    openapi.check("GET", QUEUES, status, body)
    listed = {q["name"]: q for q in body["queues"]}
    q = listed["listed"]
    assert q["fifo"] is False and q["partitions"] == 1 and q["dead_letter_queue"] is None
    assert q["stats"]["visible"] == 1 and q["stats"]["delayed"] == 1
    assert q["stats"]["messages"] == 2 and q["stats"]["bytes"] == len("hello") + len("later")
    d = detail(http, openapi, "listed")
    assert d["config"]["visibility_timeout_s"] == 45
    assert d["tags"]["team"] == "ops"
    assert d["stats"]["delayed_bytes"] == len("later")
    assert len(d["partitions"]) == 1 and d["partitions"][0]["log_segments"] == 1


def test_send_then_peek_changes_nothing(http: Any, openapi: Any, sqs: Any) -> None:
    make_queue(sqs, "peeked")
    path = f"{QUEUES}/peeked/messages"
    req = {
        "body": "payload",
        "attributes": {
            "kind": {"data_type": "String", "string_value": "order"},
            "blob": {"data_type": "Binary", "binary_value": base64.b64encode(b"\x00\x01").decode()},
        },
    }
    status, sent = http.json("POST", path, req)
    openapi.check("POST", "/api/v1/queues/{name}/messages", status, sent)
    assert status == 200 and sent["duplicate"] is False
    before = detail(http, openapi, "peeked")["stats"]
    for _ in range(2):
        status, body = http.json("GET", path + "?limit=5")
        openapi.check("GET", "/api/v1/queues/{name}/messages", status, body)
        assert status == 200
        [m] = body["messages"]
        assert m["message_id"] == sent["message_id"]
        assert m["body"] == "payload" and m["body_encoding"] == "text"
        assert m["receive_count"] == 0
        assert m["attributes"]["kind"] == {
            "data_type": "String",
            "string_value": "order",
            "binary_value": None,
        }
        assert m["attributes"]["blob"]["binary_value"] == base64.b64encode(b"\x00\x01").decode()
    after = detail(http, openapi, "peeked")["stats"]
    assert {k: v for k, v in after.items() if k != "oldest_age_s"} == {
        k: v for k, v in before.items() if k != "oldest_age_s"
    }
    # and the message is still there to receive, for the first time
    url = sqs.get_queue_url(QueueName="peeked")["QueueUrl"]
    got = sqs.receive_message(QueueUrl=url, AttributeNames=["ApproximateReceiveCount"])
    assert got["Messages"][0]["Attributes"]["ApproximateReceiveCount"] == "1"


def test_fifo_send(http: Any, openapi: Any, sqs: Any) -> None:
    make_queue(sqs, "orders.fifo", FifoQueue="true")
    path = f"{QUEUES}/orders.fifo/messages"
    req = {"body": "a", "group_id": "g1", "dedup_id": "d1"}
    status, first = http.json("POST", path, req)
    openapi.check("POST", "/api/v1/queues/{name}/messages", status, first)
    status, second = http.json("POST", path, req)
    assert status == 200 and second["duplicate"] is True
    assert second["message_id"] == first["message_id"] and first["sequence_number"]
    status, body = http.json("POST", path, {"body": "b"})  # no group id
    openapi.check("POST", "/api/v1/queues/{name}/messages", status, body)
    assert status == 400 and body["error"]["code"] == "MissingParameter"


def test_purge(http: Any, openapi: Any, sqs: Any) -> None:
    url = make_queue(sqs, "purged")
    for i in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")
    status, body = http.json("POST", f"{QUEUES}/purged/purge")
    openapi.check("POST", "/api/v1/queues/{name}/purge", status, body)
    assert status == 200 and body == {"queue": "purged", "purged": True}
    assert detail(http, openapi, "purged")["stats"]["messages"] == 0
    sqs.send_message(QueueUrl=url, MessageBody="after")
    status, body = http.json("POST", f"{QUEUES}/purged/purge")  # within 60 s
    openapi.check("POST", "/api/v1/queues/{name}/purge", status, body)
    assert status == 409 and body["error"]["code"] == "PurgeQueueInProgress"
    assert detail(http, openapi, "purged")["stats"]["messages"] == 1


def test_redrive_dead_letter_queue(http: Any, openapi: Any, sqs: Any) -> None:
    dlq_url = make_queue(sqs, "dead")
    policy = json.dumps({"deadLetterTargetArn": arn(sqs, dlq_url), "maxReceiveCount": 1})
    url = make_queue(sqs, "work", RedrivePolicy=policy)
    for i in range(2):
        sqs.send_message(QueueUrl=url, MessageBody=f"poison{i}")
    for _ in range(2):
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        assert len(got.get("Messages", [])) in (0, 2)
    assert detail(http, openapi, "dead")["stats"]["visible"] == 2
    assert detail(http, openapi, "dead")["dead_letter_sources"] == ["work"]
    assert detail(http, openapi, "work")["stats"]["messages"] == 0
    status, body = http.json("POST", f"{QUEUES}/dead/redrive", {"max_messages": 1})
    openapi.check("POST", "/api/v1/queues/{name}/redrive", status, body)
    assert status == 200 and body == {"queue": "dead", "destination": None, "moved": 1}
    status, body = http.json("POST", f"{QUEUES}/dead/redrive")
    assert status == 200 and body["moved"] == 1
    assert detail(http, openapi, "dead")["stats"]["messages"] == 0
    work = detail(http, openapi, "work")["stats"]
    assert work["visible"] == 2
    # to an explicit destination
    make_queue(sqs, "elsewhere")
    sqs.send_message(QueueUrl=dlq_url, MessageBody="direct")
    status, body = http.json("POST", f"{QUEUES}/dead/redrive", {"destination": "elsewhere"})
    assert status == 200 and body["moved"] == 1
    assert detail(http, openapi, "elsewhere")["stats"]["visible"] == 1


def test_history(http: Any, openapi: Any, sqs: Any) -> None:
    url = make_queue(sqs, "sampled")
    for i in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")
    path = f"{QUEUES}/sampled/history"
    deadline = time.monotonic() + 15  # the node samples every 5 s
    while True:
        status, body = http.json("GET", path)
        openapi.check("GET", "/api/v1/queues/{name}/history", status, body)
        assert status == 200 and body["queue"] == "sampled"
        if body["points"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert body["interval_s"] == 5 and body["points_max"] == 180
    last = body["points"][-1]
    assert (last["messages"], last["visible"], last["bytes"]) == (3, 3, 6)
    status, newer = http.json("GET", f"{path}?since_ms={last['t_ms']}")
    assert status == 200 and all(p["t_ms"] > last["t_ms"] for p in newer["points"])
    status, every = http.json("GET", "/api/v1/history")
    openapi.check("GET", "/api/v1/history", status, every)
    names = [q["queue"] for q in every["queues"]]
    assert "sampled" in names and names == sorted(names)
    status, err = http.json("GET", f"{QUEUES}/missing/history")
    openapi.check("GET", "/api/v1/queues/{name}/history", status, err)
    assert status == 404 and err["error"]["code"] == "QueueDoesNotExist"


BAD_REQUESTS = [
    # (method, path, json body or raw bytes, content type, status, error code)
    ("GET", f"{QUEUES}/missing", None, None, 404, "QueueDoesNotExist"),
    ("GET", f"{QUEUES}/missing/messages", None, None, 404, "QueueDoesNotExist"),
    ("POST", f"{QUEUES}/missing/messages", {"body": "x"}, None, 404, "QueueDoesNotExist"),
    ("POST", f"{QUEUES}/missing/purge", None, None, 404, "QueueDoesNotExist"),
    ("POST", f"{QUEUES}/missing/redrive", None, None, 404, "QueueDoesNotExist"),
    ("GET", f"{QUEUES}/victim/messages?limit=0", None, None, 400, "InvalidParameterValue"),
    ("GET", f"{QUEUES}/victim/messages?limit=101", None, None, 400, "InvalidParameterValue"),
    ("GET", f"{QUEUES}/victim/messages?limit=x", None, None, 400, "InvalidParameterValue"),
    ("POST", f"{QUEUES}/victim/messages", None, None, 400, "MissingParameter"),
    ("POST", f"{QUEUES}/victim/messages", b"{not json", None, 400, "MalformedJson"),
    ("POST", f"{QUEUES}/victim/messages", {}, None, 400, "InvalidParameterValue"),
    ("POST", f"{QUEUES}/victim/messages", {"body": ""}, None, 400, "MissingParameter"),
    ("POST", f"{QUEUES}/victim/messages", {"body": 5}, None, 400, "InvalidParameterValue"),
    (
        "POST",
        f"{QUEUES}/victim/messages",
        {"body": "x", "extra": 1},
        None,
        400,
        "InvalidParameterValue",
    ),
    (
        "POST",
        f"{QUEUES}/victim/messages",
        {"body": "x", "delay_s": 901},
        None,
        400,
        "InvalidParameterValue",
    ),
    (
        "POST",
        f"{QUEUES}/victim/messages",
        {"body": "x", "dedup_id": "d"},
        None,
        400,
        "InvalidParameterValue",
    ),
    (
        "POST",
        f"{QUEUES}/victim/messages",
        {"body": "x", "attributes": {"n": {"data_type": "Number", "string_value": "abc"}}},
        None,
        400,
        "InvalidParameterValue",
    ),
    (
        "POST",
        f"{QUEUES}/victim/messages",
        b"body=x",
        "application/x-www-form-urlencoded",
        415,
        "UnsupportedMediaType",
    ),
    ("POST", f"{QUEUES}/victim/purge", {"all": True}, None, 400, "InvalidParameterValue"),
    (
        "POST",
        f"{QUEUES}/victim/redrive",
        {"destination": "nowhere"},
        None,
        400,
        "InvalidParameterValue",
    ),
    (
        "POST",
        f"{QUEUES}/victim/redrive",
        {"destination": "victim"},
        None,
        400,
        "InvalidParameterValue",
    ),
    ("POST", f"{QUEUES}/victim/redrive", {"max_messages": 0}, None, 400, "InvalidParameterValue"),
    ("GET", f"{QUEUES}/victim/history?since_ms=-1", None, None, 400, "InvalidParameterValue"),
    ("GET", f"{QUEUES}/victim/history?since_ms=x", None, None, 400, "InvalidParameterValue"),
    ("GET", "/api/v1/history?since_ms=1.5", None, None, 400, "InvalidParameterValue"),
    ("POST", f"{QUEUES}/victim/history", None, None, 405, "MethodNotAllowed"),
    ("GET", f"{QUEUES}/victim/purge", None, None, 405, "MethodNotAllowed"),
    ("DELETE", f"{QUEUES}/victim", None, None, 405, "MethodNotAllowed"),
    ("GET", "/api/v1/nothing", None, None, 404, "NotFound"),
    ("GET", "/api/v1/cluster", None, None, 404, "NotFound"),
    ("POST", "/api/v1/cluster", None, None, 405, "MethodNotAllowed"),
    ("GET", "/api/v2/queues", None, None, 404, "NotFound"),
]


@pytest.fixture(scope="module")
def victim(sqs: Any) -> str:
    url = make_queue(sqs, "victim")
    sqs.send_message(QueueUrl=url, MessageBody="keep me")
    return url


@pytest.mark.parametrize(
    ("method", "path", "body", "ctype", "status", "code"),
    BAD_REQUESTS,
    ids=[f"{m} {p.removeprefix(QUEUES)} {c}" for m, p, _, _, _, c in BAD_REQUESTS],
)
def test_bad_input_is_a_clear_4xx_and_changes_nothing(
    http: Any,
    openapi: Any,
    victim: str,
    method: str,
    path: str,
    body: Any,
    ctype: str | None,
    status: int,
    code: str,
) -> None:
    before = detail(http, openapi, "victim")
    kwargs: dict[str, Any] = {}
    if isinstance(body, bytes):
        kwargs["raw"] = body
    elif body is not None:
        kwargs["body"] = body
    if ctype is not None:
        kwargs["content_type"] = ctype
    got_status, headers, data = http.call(method, path, **kwargs)
    answer = json.loads(data)
    assert (got_status, answer["error"]["code"]) == (status, code), answer
    assert answer["error"]["message"]
    assert headers["Content-Type"] == "application/json"
    if status == 405:
        assert headers["Allow"]
    template = _template(path)
    op = openapi.doc["paths"].get(template, {}).get(method.lower())
    if op is not None:
        openapi.check(method, template, got_status, answer)  # documented for this operation
    else:
        openapi.check_schema("Error", answer)
    after = detail(http, openapi, "victim")
    for d in (before, after):
        d["stats"].pop("oldest_age_s")
        for p in d["partitions"]:
            p.pop("oldest_age_s")
    assert after == before


def _template(path: str) -> str:
    path = path.split("?", 1)[0]
    parts = path.removeprefix("/api/v1/").split("/")
    if parts[0] == "queues" and len(parts) >= 2:
        return "/api/v1/queues/{name}" + "".join(f"/{p}" for p in parts[2:])
    return path
