"""Signatures made by botocore's signer verify; any change to the request breaks them."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import sqs_botocore as bc
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from sqs_samples import REQUESTS

from conveyor.protocol import sqs
from conveyor.protocol.sqs import sigv4
from conveyor.protocol.sqs.errors import SqsError

KEYS = {"AKIDEXAMPLE": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "123456789012": "other-secret"}
HOST = "localhost:9324"


class Wire:
    """A signed request as the server receives it."""

    def __init__(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> None:
        self.method, self.path, self.query, self.headers, self.body = (
            method,
            path,
            query,
            headers,
            body,
        )

    def verify(self, now_s: float | None = None, keys: dict[str, str] = KEYS) -> sigv4.Credential:
        return sqs.verify(
            self.method,
            self.path,
            self.query,
            self.headers,
            self.body,
            secret_for=keys.get,
            now_s=time.time() if now_s is None else now_s,
        )


def signed(
    protocol: str,
    action: str,
    params: dict[str, Any],
    *,
    key: str = "AKIDEXAMPLE",
    region: str = "eu-west-1",
    presign: bool = False,
    path: str = "/",
) -> Wire:
    request = bc.serialize(protocol, action, params)
    url = f"http://{HOST}{path}"
    aws = AWSRequest(
        method="POST" if not presign else "GET",
        url=url,
        data=request["body"],
        headers=request["headers"],
    )
    if presign:
        # a presigned GET carries the parameters in the query string
        aws.data = b""
        aws.params = dict(parse_qsl(request["body"].decode())) if protocol == "query" else {}
        aws.headers = {}
    aws.context["timestamp"] = ""
    creds = Credentials(key, KEYS.get(key, "unknown-secret"))
    signer = (
        SigV4QueryAuth(creds, "sqs", region, expires=300)
        if presign
        else SigV4Auth(creds, "sqs", region)
    )
    signer.add_auth(aws)
    prepared = aws.prepare()
    parts = urlsplit(prepared.url)
    headers = {k.lower(): v for k, v in prepared.headers.items()}
    headers["host"] = HOST
    body = prepared.body or b""
    if isinstance(body, str):
        body = body.encode()
    return Wire(prepared.method, parts.path, parts.query, headers, body)


@pytest.mark.parametrize("protocol", ["json", "query"])
@pytest.mark.parametrize(
    "action", ["SendMessage", "SendMessageBatch", "ReceiveMessage", "CreateQueue", "ListQueues"]
)
def test_botocore_signatures_verify(protocol: str, action: str) -> None:
    wire = signed(protocol, action, REQUESTS[action])
    cred = wire.verify()
    assert cred == sigv4.Credential("AKIDEXAMPLE", cred.date, "eu-west-1", "sqs")
    req = sqs.parse_request(wire.method, wire.path, wire.query, wire.headers, wire.body)
    assert (req.region, req.access_key) == ("eu-west-1", "AKIDEXAMPLE")
    assert req.params == REQUESTS[action]


def test_signed_to_the_queue_url_path() -> None:
    wire = signed(
        "query",
        "SendMessage",
        {"QueueUrl": "x", "MessageBody": "hi"},
        path="/000000000000/my-queue_1",
    )
    wire.verify()


def test_presigned_url_verifies() -> None:
    wire = signed("query", "ListQueues", {"QueueNamePrefix": "a b/ü"}, presign=True)
    assert "X-Amz-Signature=" in wire.query
    wire.verify()
    req = sqs.parse_request(wire.method, wire.path, wire.query, wire.headers, wire.body)
    assert req.action == "ListQueues" and req.params == {"QueueNamePrefix": "a b/ü"}
    assert req.access_key == "AKIDEXAMPLE"
    with pytest.raises(SqsError) as info:
        wire.verify(now_s=time.time() + 301)
    assert info.value.code == "RequestExpired"
    tampered = Wire(
        wire.method,
        wire.path,
        wire.query.replace("QueueNamePrefix=a", "QueueNamePrefix=b"),
        wire.headers,
        wire.body,
    )
    with pytest.raises(SqsError) as info:
        tampered.verify()
    assert info.value.code == "SignatureDoesNotMatch"


def _code(wire: Wire, **kwargs: Any) -> str:
    with pytest.raises(SqsError) as info:
        wire.verify(**kwargs)
    return info.value.code


@pytest.mark.parametrize("protocol", ["json", "query"])
def test_tampering_is_detected(protocol: str) -> None:
    wire = signed(protocol, "SendMessage", REQUESTS["SendMessage"])
    body = wire.body.replace(b"h", b"H", 1)
    assert (
        _code(Wire(wire.method, wire.path, wire.query, wire.headers, body))
        == "SignatureDoesNotMatch"
    )
    headers = {**wire.headers, "host": "evil:9324"}
    assert (
        _code(Wire(wire.method, wire.path, wire.query, headers, wire.body))
        == "SignatureDoesNotMatch"
    )
    assert (
        _code(Wire(wire.method, "/other", wire.query, wire.headers, wire.body))
        == "SignatureDoesNotMatch"
    )
    assert (
        _code(Wire(wire.method, wire.path, "x=1", wire.headers, wire.body))
        == "SignatureDoesNotMatch"
    )
    assert (
        _code(Wire("PUT", wire.path, wire.query, wire.headers, wire.body))
        == "SignatureDoesNotMatch"
    )
    assert _code(wire, keys={"AKIDEXAMPLE": "wrong"}) == "SignatureDoesNotMatch"
    sig = wire.headers["authorization"]
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    assert (
        _code(
            Wire(
                wire.method,
                wire.path,
                wire.query,
                {**wire.headers, "authorization": flipped},
                wire.body,
            )
        )
        == "SignatureDoesNotMatch"
    )
    # headers nobody signed may change freely
    wire_extra = Wire(
        wire.method, wire.path, wire.query, {**wire.headers, "user-agent": "x"}, wire.body
    )
    wire_extra.verify()


def test_unknown_key_and_missing_signature() -> None:
    wire = signed("json", "ListQueues", {}, key="AKIDUNKNOWN")
    assert _code(wire) == "InvalidClientTokenId"
    unsigned = Wire("POST", "/", "", {"host": HOST, "x-amz-target": "AmazonSQS.ListQueues"}, b"{}")
    assert _code(unsigned) == "MissingAuthenticationToken"


def test_clock_skew() -> None:
    wire = signed("json", "ListQueues", {})
    now = time.time()
    assert _code(wire, now_s=now + 16 * 60) == "RequestExpired"
    assert _code(wire, now_s=now - 16 * 60) == "RequestExpired"
    wire.verify(now_s=now + 14 * 60)


@pytest.mark.parametrize(
    "authorization",
    [
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/sqs/aws4_request, SignedHeaders=host",
        "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1, SignedHeaders=host, Signature=00",
        "AWS AKIDEXAMPLE:signature",
    ],
)
def test_incomplete_signatures(authorization: str) -> None:
    wire = Wire(
        "POST",
        "/",
        "",
        {"host": HOST, "authorization": authorization, "x-amz-date": "20240101T000000Z"},
        b"",
    )
    assert _code(wire, now_s=None) == "IncompleteSignature"


def test_wrong_scope() -> None:
    wire = signed("json", "ListQueues", {})
    auth = wire.headers["authorization"].replace("/sqs/", "/sns/")
    assert (
        _code(
            Wire(
                wire.method,
                wire.path,
                wire.query,
                {**wire.headers, "authorization": auth},
                wire.body,
            )
        )
        == "SignatureDoesNotMatch"
    )
    no_date = {k: v for k, v in wire.headers.items() if k != "x-amz-date"}
    assert (
        _code(Wire(wire.method, wire.path, wire.query, no_date, wire.body)) == "IncompleteSignature"
    )


def test_local_mode_extracts_without_checking() -> None:
    wire = signed("json", "ListQueues", {}, key="123456789012", region="ap-south-1")
    cred = sqs.extract(
        {**wire.headers, "authorization": wire.headers["authorization"][:-4] + "dead"}
    )
    assert cred is not None and (cred.access_key, cred.region) == ("123456789012", "ap-south-1")
    assert sqs.extract({"authorization": "garbage"}) is None
    assert sqs.extract({}) is None


def test_own_signer_matches_botocore() -> None:
    headers = {
        "host": HOST,
        "content-type": "application/x-amz-json-1.0",
        "x-amz-target": "AmazonSQS.ListQueues",
    }
    amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    added = sigv4.sign_headers(
        "POST",
        "/",
        "",
        headers,
        b"{}",
        access_key="AKIDEXAMPLE",
        secret=KEYS["AKIDEXAMPLE"],
        region="us-west-2",
        amz_date=amz_date,
    )
    Wire("POST", "/", "", {**headers, **added}, b"{}").verify()
    aws_headers = {k: v for k, v in headers.items() if k != "host"}
    aws = AWSRequest(
        method="POST",
        url=f"http://{HOST}/",
        data=b"{}",
        headers={**aws_headers, "X-Amz-Date": amz_date},
    )
    aws.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials("AKIDEXAMPLE", KEYS["AKIDEXAMPLE"]), "sqs", "us-west-2")
    canonical = signer.canonical_request(aws)
    assert canonical == sigv4.canonical_request(
        "POST",
        "/",
        "",
        {**headers, "x-amz-date": amz_date},
        b"{}",
        tuple(sorted([*headers, "x-amz-date"])),
    )


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("", "/"),
        ("/", "/"),
        ("/a/./b/../c", "/a/c"),
        ("//a//b/", "/a/b/"),
        ("/a%20b", "/a%2520b"),
        ("/~x", "/~x"),
    ],
)
def test_canonical_path(raw: str, canonical: str) -> None:
    assert sigv4.canonical_path(raw) == canonical
