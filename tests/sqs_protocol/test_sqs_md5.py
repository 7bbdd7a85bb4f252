"""Digests against published vectors and against the check SDKs run on responses.

botocore itself does not validate SQS digests (the Java, Go, Ruby, .NET and JavaScript
SDKs do), so the reference here is (a) vectors published with AWS's documentation and
SDK tests and (b) an independent re-statement of the SDKs' check, run on what a real
botocore client receives.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqs_botocore import sdk_check

from conveyor.protocol.sqs.md5 import md5_of_attributes, md5_of_body


def s(value: str, data_type: str = "String") -> dict[str, Any]:
    return {"DataType": data_type, "StringValue": value}


VECTORS: list[tuple[dict[str, Any], str]] = [
    # the SQS Developer Guide's message-attribute example, growing
    ({"SellerName": s("Example Store")}, "cd28f3b68aeee4b2eac9c66f2f694b58"),
    (
        {
            "City": s("Any City"),
            "PostalCode": s("99065"),
            "Region": s("WA"),
            "SellerName": s("Example Store"),
        },
        "66d793da93becb551e41562575418975",
    ),
    (
        {
            "City": s("Any City"),
            "PostalCode": s("99065"),
            "PricePerGallon": s("1.99", "Number"),
            "Region": s("WA"),
            "SellerName": s("Example Store"),
        },
        "10809b55e3d9b22c17220b7dbaf283ef",
    ),
    # the SDK test suites' samples (order of insertion must not matter)
    (
        {
            "test_attribute_name_2": s("test_attribute_value_2"),
            "test_attribute_name_1": s("test_attribute_value_1"),
        },
        "d53f3b558fe951154770f25cb63dbba9",
    ),
    (
        {"test_attribute_name": {"DataType": "Binary", "BinaryValue": b"test_attribute_value"}},
        "23f6bd27ea87aab7dfeadcc9aebee495",
    ),
    ({"timestamp": s("1493147359900", "Number")}, "235c5c510d26fb653d073faed50ae77c"),
    ({"ordinal": s("1", "Number"), "category": s("test")}, "d21ae90c49061e927f57df5f5d72be1f"),
]


@pytest.mark.parametrize(("attributes", "digest"), VECTORS)
def test_published_vectors(attributes: dict[str, Any], digest: str) -> None:
    assert md5_of_attributes(attributes) == digest


def test_body_digest() -> None:
    assert md5_of_body("hello") == "5d41402abc4b2a76b9719d911017c592"
    assert md5_of_body("☃") == hashlib.md5("☃".encode()).hexdigest()
    assert md5_of_body(b"\x00\xff") == hashlib.md5(b"\x00\xff").hexdigest()


def test_no_attributes_no_digest() -> None:
    assert md5_of_attributes({}) is None
    assert md5_of_attributes(None) is None


attribute_values = st.one_of(
    st.builds(
        lambda t, v: {"DataType": t, "StringValue": v},
        st.sampled_from(["String", "Number", "String.x", "Number.int"]),
        st.text(min_size=1, max_size=20),
    ),
    st.builds(
        lambda t, v: {"DataType": t, "BinaryValue": v},
        st.sampled_from(["Binary", "Binary.gif"]),
        st.binary(min_size=1, max_size=20),
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=12), attribute_values, min_size=1, max_size=10))
def test_matches_the_sdk_check(attributes: dict[str, Any]) -> None:
    assert md5_of_attributes(attributes) == sdk_check(attributes)
