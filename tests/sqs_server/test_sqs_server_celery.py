"""kombu's SQS transport and a real Celery worker against the running server."""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqs_server_helpers import REGION, qname

celery = pytest.importorskip("celery")
kombu = pytest.importorskip("kombu")
pytest.importorskip("pycurl")  # kombu's asynchronous SQS client

from celery.contrib.testing.worker import start_worker  # noqa: E402


def transport_options() -> dict[str, Any]:
    return {
        "region": REGION,
        "is_secure": False,
        "wait_time_seconds": 1,
        "polling_interval": 0.1,
    }


def broker_url(server: Any) -> str:
    parts = urlsplit(server.url)
    return f"sqs://AKIDCELERY:celery-secret@{parts.hostname}:{parts.port}"


def test_kombu_simple_queue(server: Any) -> None:
    name = qname("kombu")
    with kombu.Connection(broker_url(server), transport_options=transport_options()) as conn:
        queue = conn.SimpleQueue(name)
        queue.put({"hello": "world", "n": 1})
        message = queue.get(block=True, timeout=10)
        assert message.payload == {"hello": "world", "n": 1}
        message.ack()
        with pytest.raises(queue.Empty):
            queue.get(block=True, timeout=1.5)
        queue.close()


def test_celery_worker_runs_tasks_and_dead_letters_a_poison_task(
    server: Any, sqs_json: Any
) -> None:
    queue_name = qname("celery")
    dlq_url = sqs_json.create_queue(QueueName=f"{queue_name}-dlq")["QueueUrl"]
    dlq_arn = sqs_json.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sqs_json.create_queue(
        QueueName=queue_name,
        Attributes={
            "VisibilityTimeout": "1",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}),
        },
    )

    app = celery.Celery("conveyor-test", broker=broker_url(server))
    app.conf.update(
        broker_transport_options=transport_options(),
        task_default_queue=queue_name,
        task_acks_late=True,
        task_acks_on_failure_or_timeout=False,  # a failed task's message is redelivered
        worker_enable_remote_control=False,
        worker_send_task_events=False,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        result_backend=None,
    )
    results: list[int] = []
    attempts: list[int] = []
    done = threading.Event()

    @app.task(name="conveyor_test.add")
    def add(x: int, y: int) -> int:
        results.append(x + y)
        if len(results) == 3:
            done.set()
        return x + y

    @app.task(name="conveyor_test.poison")
    def poison() -> None:
        attempts.append(1)
        raise RuntimeError("this task always fails")

    with start_worker(
        app, pool="solo", concurrency=1, perform_ping_check=False, loglevel="WARNING"
    ):
        for i in range(3):
            add.delay(i, 10)
        poison.delay()
        assert done.wait(30), f"tasks did not run: {results}"
        assert sorted(results) == [10, 11, 12]
        # the poison task fails, is redelivered, fails again and lands in the DLQ
        deadline = time.monotonic() + 30
        dead: list[dict[str, Any]] = []
        while not dead and time.monotonic() < deadline:
            dead = sqs_json.receive_message(
                QueueUrl=dlq_url, WaitTimeSeconds=1, AttributeNames=["All"]
            ).get("Messages", [])
    assert dead, f"the poison task never reached the dead-letter queue ({len(attempts)} attempts)"
    assert len(attempts) == 2
    envelope = json.loads(base64.b64decode(dead[0]["Body"]))
    assert envelope["headers"]["task"] == "conveyor_test.poison"
    assert dead[0]["Attributes"]["DeadLetterQueueSourceArn"].endswith(f":{queue_name}")
