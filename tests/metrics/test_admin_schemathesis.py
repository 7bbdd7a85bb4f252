"""The admin API fuzzed against its own OpenAPI document (schemathesis): for every
operation, generated requests — valid ones and ones that break the schema — get answers
that are documented, match their schemas and are never a 5xx; schema-breaking requests
get a 4xx. (Not checked: that every schema-valid request succeeds, since some input is
only judged by the queue: a FIFO queue needs a group id, a size limit is per queue.)"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from conveyor.testing import ServerProcess

examples_per_operation = 25  # per operation and mode
QUEUES = ("a", "b", "c")


def _on_queue(pair: tuple[Any, str | None]) -> Any:
    case, name = pair
    if name is not None:
        case.path_parameters = {**(case.path_parameters or {}), "name": name}
    return case


def test_admin_api_matches_its_openapi_document(
    server: ServerProcess, sqs: Any, http: Any, metric_total: Any
) -> None:
    # a few real queues, so generated names sometimes hit one
    for name in QUEUES:
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="seed")
    schema = schemathesis.openapi.from_url(f"{server.http_url}/api/v1/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {
        "GET /api/v1/queues",
        "GET /api/v1/queues/{name}",
        "GET /api/v1/queues/{name}/messages",
        "POST /api/v1/queues/{name}/messages",
        "POST /api/v1/queues/{name}/purge",
        "POST /api/v1/queues/{name}/redrive",
        "GET /api/v1/node",
    }
    cases = [(op, mode) for op in operations for mode in GenerationMode]
    for op, mode in cases:
        strategy = op.as_strategy(generation_mode=mode)
        if mode is GenerationMode.POSITIVE and "{name}" in op.path:
            # mostly real queues: a random name is a 404 and exercises little else
            strategy = st.tuples(strategy, st.sampled_from([*QUEUES, None])).map(_on_queue)

        @given(case=strategy)
        @settings(
            max_examples=examples_per_operation,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: Any) -> None:
            case.call_and_validate(excluded_checks=[positive_data_acceptance])

        try:
            check()
        except Unsatisfiable:
            # no input of this operation can break its schema (no parameters, no body)
            assert mode is GenerationMode.NEGATIVE, op.label
    # both kinds of input reached the API: answered and refused
    samples = http.scrape()
    answered = metric_total(samples, "conveyor_requests_total", api="admin", code="OK")
    refused = metric_total(samples, "conveyor_requests_total", api="admin") - answered
    assert answered > 20 and refused > 20, (answered, refused)
