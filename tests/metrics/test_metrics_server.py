"""``/metrics`` of a real server process, driven through the SQS API."""

from __future__ import annotations

from typing import Any

from conveyor.testing import ServerProcess


def test_scrape_after_known_operations(
    server: ServerProcess, http: Any, sqs: Any, metric: Any, metric_total: Any
) -> None:
    url = sqs.create_queue(QueueName="scraped")["QueueUrl"]
    for body in ("one", "two", "three"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2)["Messages"]
    assert len(got) == 2
    sqs.delete_message(QueueUrl=url, ReceiptHandle=got[0]["ReceiptHandle"])

    s = http.scrape()
    q = {"queue": "scraped", "partition": "0"}
    qg = {**q, "group": "default"}
    assert metric(s, "conveyor_messages_sent_total", **q) == 3
    assert metric(s, "conveyor_messages_received_total", **qg) == 2
    assert metric(s, "conveyor_messages_deleted_total", **qg) == 1
    assert metric(s, "conveyor_messages_redelivered_total", **qg) == 0
    assert metric(s, "conveyor_messages_dead_lettered_total", **qg) == 0
    assert metric(s, "conveyor_messages_overflow_rejected_total", **q) == 0
    assert metric(s, "conveyor_queue_messages", **qg, state="visible") == 1
    assert metric(s, "conveyor_queue_messages", **qg, state="inflight") == 1
    assert metric(s, "conveyor_queue_messages", **qg, state="delayed") == 0
    sizes = {m["Body"] for m in got}
    inflight_body = ({"one", "two", "three"} & sizes) - {got[0]["Body"]}
    visible_body = {"one", "two", "three"} - sizes
    assert metric(s, "conveyor_queue_message_bytes", **qg, state="inflight") == len(
        inflight_body.pop()
    )
    assert metric(s, "conveyor_queue_message_bytes", **qg, state="visible") == len(
        visible_body.pop()
    )
    assert metric(s, "conveyor_send_duration_seconds_count", queue="scraped") == 3
    r2d = {"queue": "scraped", "group": "default"}
    assert metric(s, "conveyor_receive_to_delete_seconds_count", **r2d) == 1
    assert metric(s, "conveyor_queue_oldest_message_age_seconds", **qg) >= 0
    assert metric(s, "conveyor_queue_parked_receives", queue="scraped") == 0
    # fsync=always: at least one fsync per durable write
    assert metric(s, "conveyor_fsync_duration_seconds_count") >= 4
    assert metric(s, "conveyor_log_segments", **q) == 1
    assert metric(s, "conveyor_log_bytes", **q) > 0
    assert metric(s, "conveyor_connections", api="native") == 0
    assert metric(s, "conveyor_connections", api="http") >= 1
    assert metric_total(s, "conveyor_node_start_time_seconds") > 0


def test_admin_requests_are_counted(http: Any, metric: Any) -> None:
    before = http.scrape()
    http.call("GET", "/api/v1/queues")
    http.call("GET", "/api/v1/queues/no-such-queue")
    after = http.scrape()

    def delta(**labels: str) -> float:
        key = {"api": "admin", **labels}
        try:
            old = metric(before, "conveyor_requests_total", **key)
        except KeyError:
            old = 0
        return float(metric(after, "conveyor_requests_total", **key)) - old

    assert delta(action="ListQueues", code="OK") == 1
    assert delta(action="GetQueue", code="QueueDoesNotExist") == 1


def test_sqs_and_native_requests_are_counted(
    server: ServerProcess, http: Any, sqs: Any, metric: Any
) -> None:
    import conveyor

    before = http.scrape()
    url = sqs.create_queue(QueueName="counted")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    try:
        sqs.get_queue_url(QueueName="no-such-queue")
    except Exception:
        pass
    with conveyor.Client(server.native_address) as client:
        client.send("counted", "y")
        try:
            client.send("no-such-queue", "z")
        except conveyor.errors.QueueDoesNotExist:
            pass
    after = http.scrape()

    def delta(api: str, action: str, code: str) -> float:
        key = {"api": api, "action": action, "code": code}
        try:
            old = metric(before, "conveyor_requests_total", **key)
        except KeyError:
            old = 0
        return float(metric(after, "conveyor_requests_total", **key)) - old

    assert delta("sqs", "SendMessage", "OK") == 1
    assert delta("sqs", "GetQueueUrl", "QueueDoesNotExist") == 1
    assert delta("native", "send", "OK") == 1
    assert delta("native", "send", "QueueDoesNotExist") == 1
