"""A server with access keys configured verifies SigV4 and refuses what AWS refuses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from sqs_server_helpers import InProcessServer, json_call, make_client, qname, query_call

KEYS = {"AKIDCONVEYOR": "s3cret", "111122223333": "alice-secret"}


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    with InProcessServer(tmp_path_factory.mktemp("sqs-secured"), sqs_access_keys=KEYS) as server:
        yield server


def code(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    resp = exc.value.response
    return resp["Error"]["Code"], resp["ResponseMetadata"]["HTTPStatusCode"]


@pytest.mark.parametrize("protocol", ["json", "query"])
def test_good_signatures_pass(secured: InProcessServer, query_dir: Path, protocol: str) -> None:
    sqs = make_client(
        secured.http_url, protocol, query_dir, access_key="AKIDCONVEYOR", secret="s3cret"
    )
    url = sqs.create_queue(QueueName=qname("signed"))["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="signed body ☃")
    assert sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"] == "signed body ☃"
    alice = make_client(
        secured.http_url, protocol, query_dir, access_key="111122223333", secret="alice-secret"
    )
    alice_url = alice.create_queue(QueueName=qname("alice"))["QueueUrl"]
    assert "/111122223333/" in alice_url


@pytest.mark.parametrize("protocol", ["json", "query"])
def test_bad_signatures_are_refused(
    secured: InProcessServer, query_dir: Path, protocol: str
) -> None:
    wrong = make_client(
        secured.http_url, protocol, query_dir, access_key="AKIDCONVEYOR", secret="nope"
    )
    with pytest.raises(ClientError) as exc:
        wrong.create_queue(QueueName=qname("forged"))
    assert code(exc) == ("SignatureDoesNotMatch", 403)
    unknown = make_client(secured.http_url, protocol, query_dir, access_key="AKIDWHO", secret="x")
    with pytest.raises(ClientError) as exc:
        unknown.list_queues()
    assert code(exc) == ("InvalidClientTokenId", 403)
    # a 12-digit key is an account only when it is a configured key
    stranger = make_client(
        secured.http_url, protocol, query_dir, access_key="999988887777", secret="x"
    )
    with pytest.raises(ClientError) as exc:
        stranger.list_queues()
    assert code(exc) == ("InvalidClientTokenId", 403)
    good = make_client(
        secured.http_url, protocol, query_dir, access_key="AKIDCONVEYOR", secret="s3cret"
    )
    assert all("forged" not in u for u in good.list_queues().get("QueueUrls", []))


def test_unsigned_requests_are_refused(secured: InProcessServer) -> None:
    resp = json_call(secured.http_url, "ListQueues", {})
    assert resp.status == 403
    assert resp.json()["__type"].endswith("#MissingAuthenticationToken")
    resp = query_call(secured.http_url, "Action=ListQueues")
    assert resp.status == 403
    assert "<Code>MissingAuthenticationToken</Code>" in resp.text
