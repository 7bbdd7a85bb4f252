"""From an HTTP request to a typed :class:`SqsRequest`.

Two wire protocols reach the same parameters:

* **AWS JSON 1.0** (current SDKs): ``POST /`` with ``X-Amz-Target: AmazonSQS.<Action>``,
  ``Content-Type: application/x-amz-json-1.0`` and the parameters as a JSON object.
  Blobs are base64 strings.
* **query** (older SDKs and tools): ``Action=<Action>&Version=2012-11-05&...`` form
  encoded in a POST body or in a GET's query string, posted to ``/`` or to the queue's
  URL. Lists and maps are flattened (``AttributeName.1``, ``Attribute.1.Name``,
  ``MessageAttribute.1.Value.StringValue``, ``SendMessageBatchRequestEntry.2.Id``);
  every value is a string and is converted by the shape (integers, booleans, base64
  blobs). The member's own name (``AttributeNames.1``) is accepted as well.

Either way :func:`parse_request` returns parameters in the JSON protocol's shape, the
dict a boto3 user passes (``{"QueueUrl": ..., "Entries": [{"Id": ..., ...}]}``, blobs as
``bytes``), then runs :func:`validate.check_request`. Errors are :class:`SqsError`:

================================  ====================================================
problem                           JSON protocol / query protocol
================================  ====================================================
body or form not decodable        SerializationException / MalformedQueryString
unknown or missing action         UnknownOperationException / InvalidAction, MissingAction
value of the wrong type           SerializationException / InvalidParameterValue
required parameter missing        MissingParameter
queue URL naming no queue         InvalidAddress
================================  ====================================================
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl

import msgspec

from conveyor.protocol.sqs import validate
from conveyor.protocol.sqs.errors import SqsError, missing_parameter
from conveyor.protocol.sqs.model import (
    ACTIONS,
    INT32_MAX,
    INT32_MIN,
    INT64_MAX,
    INT64_MIN,
    TARGET_PREFIX,
    Action,
    Shape,
)
from conveyor.protocol.sqs.sigv4 import Credential, extract
from conveyor.protocol.sqs.urls import DEFAULT_REGION, QueueRef, parse_queue_url

Protocol = Literal["json", "query"]

form_fields_max = 4096  # a full batch with 10 attributes per entry is ~700 fields
list_items_max = 1000  # no SQS list is longer; bounds hostile indices like Entry.99999

_INT_RE = re.compile(r"[+-]?[0-9]{1,20}")
_json_decoder = msgspec.json.Decoder()
_TARGETS = {TARGET_PREFIX + name: action for name, action in ACTIONS.items()}  # X-Amz-Target


@dataclass(slots=True)
class SqsRequest:
    """One decoded, checked SQS request."""

    action: str
    params: dict[str, Any]
    protocol: Protocol
    queue: QueueRef | None = None  # the queue the request is about, for actions that name one
    queue_url: str | None = None
    region: str = DEFAULT_REGION
    access_key: str | None = None
    host: str | None = None
    # Batch entries that failed SQS's own rules, by entry id: report them in ``Failed``
    # and leave them out of what the broker is asked to do.
    entry_errors: dict[str, SqsError] = field(default_factory=dict)


def protocol_of(headers: Mapping[str, str]) -> Protocol:
    """Which protocol to answer in, even when the request itself cannot be parsed."""
    if _header(headers, "x-amz-target") is not None:
        return "json"
    content_type = _header(headers, "content-type") or ""
    return "json" if "amz-json" in content_type else "query"


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        for key, candidate in headers.items():
            if key.lower() == name:
                return candidate
    return value


def parse_request(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    credential: Credential | None = None,
    headers_lowered: bool = False,
) -> SqsRequest:
    """Decode and check an SQS request.

    ``query`` is the raw query string (no ``?``). ``credential`` is what
    :func:`sigv4.verify` returned, if the caller verified; else it is read (not
    checked) from the request. ``headers_lowered``: every header name is in lower case
    already (as :class:`conveyor.server.http.Request` has them), no need to copy.
    """
    lowered = headers if headers_lowered else {k.lower(): v for k, v in headers.items()}
    protocol: Protocol = (
        "json"
        if "x-amz-target" in lowered or "amz-json" in (lowered.get("content-type") or "")
        else "query"
    )  # protocol_of(lowered), inline
    host = lowered.get("host")
    # A query request may be posted to the queue's URL instead of naming it.
    path_url = f"http://{host or 'localhost'}{path}" if path not in ("", "/") else None
    if protocol == "json":
        action, params = _parse_json(lowered, body, path_url)
    else:
        action, params = _parse_query(method, query, body, path_url)
    if credential is None:
        credential = extract(lowered, query)
    queue: QueueRef | None = None
    url: str | None = None
    if action.takes_queue_url:
        url = params["QueueUrl"]
        queue = parse_queue_url(url)
    return SqsRequest(
        action.name,
        params,
        protocol,
        queue,
        url,
        DEFAULT_REGION if credential is None else credential.region,
        None if credential is None else credential.access_key,
        host,
        validate.check_request(action.name, params),
    )


def _join(path: str, name: str | int) -> str:
    return f"{path}.{name}" if path else str(name)


# --- JSON ------------------------------------------------------------------------------


def _serialization(message: str) -> SqsError:
    return SqsError("SerializationException", message)


def _parse_json(
    headers: Mapping[str, str], body: bytes, path_url: str | None
) -> tuple[Action, dict[str, Any]]:
    target = headers.get("x-amz-target", "")
    action = _TARGETS.get(target)
    if action is None:
        raise SqsError("UnknownOperationException", f"Unknown operation {target!r}.")
    data: Any = {}
    if body and not body.isspace():
        try:
            data = _json_decoder.decode(body)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # bad UTF-8 in a string
            raise _serialization(f"Malformed JSON request body: {exc}") from None
        if not isinstance(data, dict):
            raise _serialization("The request body must be a JSON object.")
    if path_url is not None and action.takes_queue_url and data.get("QueueUrl") is None:
        data["QueueUrl"] = path_url
    return action, _from_json_struct(action.input, data, "")


def _from_json(shape: Shape, value: Any, path: str) -> Any:
    kind = shape.kind
    if kind == "string":
        if type(value) is not str:
            raise _serialization(f"Expected a string for {path}.")
        return value
    if kind == "structure":
        return _from_json_struct(shape, value, path)
    if kind in ("integer", "long"):
        if type(value) is not int:
            raise _serialization(f"Expected an integer for {path}.")
        lo, hi = (INT32_MIN, INT32_MAX) if kind == "integer" else (INT64_MIN, INT64_MAX)
        if not lo <= value <= hi:
            raise _serialization(f"The number for {path} is out of range.")
        return value
    if kind == "boolean":
        if type(value) is not bool:
            raise _serialization(f"Expected a boolean for {path}.")
        return value
    if kind == "blob":
        if type(value) is not str:
            raise _serialization(f"Expected a base64 string for {path}.")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise _serialization(f"Invalid base64 for {path}.") from None
    item = shape.item
    assert item is not None
    if kind == "list":
        if type(value) is not list:
            raise _serialization(f"Expected a list for {path}.")
        if len(value) > list_items_max:
            raise _serialization(f"Too many items in {path}.")
        if item.kind == "string":
            for i, v in enumerate(value, 1):
                if type(v) is not str and v is not None:
                    raise _serialization(f"Expected a string for {path}.{i}.")
            return [v for v in value if v is not None]
        return [_from_json(item, v, f"{path}.{i}") for i, v in enumerate(value, 1) if v is not None]
    if type(value) is not dict:
        raise _serialization(f"Expected an object for {path}.")
    return {k: _from_json(item, v, _join(path, k)) for k, v in value.items() if v is not None}


def _from_json_struct(shape: Shape, value: Any, path: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise _serialization(f"Expected an object for {path or 'the request'}.")
    members = shape.members
    out: dict[str, Any] = {}
    for name, v in value.items():
        member = members.get(name)
        if member is None or v is None:
            continue  # unknown members are ignored, as AWS does
        if member.shape.kind == "string":
            if type(v) is not str:
                raise _serialization(f"Expected a string for {_join(path, name)}.")
            out[name] = v
        else:
            out[name] = _from_json(member.shape, v, _join(path, name))
    for name in shape.required:
        if name not in out:
            raise missing_parameter(_join(path, name))
    return out


# --- query -----------------------------------------------------------------------------


def _malformed(message: str) -> SqsError:
    return SqsError("MalformedQueryString", message)


class _Node:
    """A node of the tree the flattened form keys spell (``a.1.b`` -> a / 1 / b)."""

    __slots__ = ("children", "value")

    def __init__(self) -> None:
        self.value: str | None = None
        self.children: dict[str, _Node] = {}


def _form_pairs(text: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(
            text,
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=form_fields_max,
        )
    except UnicodeDecodeError:
        raise _malformed("The query string is not valid UTF-8 once decoded.") from None
    except ValueError:
        raise _malformed(f"Too many parameters: at most {form_fields_max}.") from None


def _parse_query(
    method: str, query: str, body: bytes, path_url: str | None
) -> tuple[Action, dict[str, Any]]:
    pairs = _form_pairs(query) if query else []
    if body and method.upper() != "GET":
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise _malformed("The request body is not valid UTF-8.") from None
        pairs += _form_pairs(text)
    root = _Node()
    for key, value in pairs:
        node = root
        for segment in key.split("."):
            child = node.children.get(segment)
            if child is None:
                child = node.children[segment] = _Node()
            node = child
        node.value = value
    action_node = root.children.get("Action")
    action_name = action_node.value if action_node is not None else None
    if not action_name:
        raise SqsError("MissingAction", "The request must contain the parameter Action.")
    action = ACTIONS.get(action_name)
    if action is None:
        raise SqsError("InvalidAction", f"The action {action_name} is not valid for this endpoint.")
    if path_url is not None and action.takes_queue_url and "QueueUrl" not in root.children:
        root.children["QueueUrl"] = _Node()
        root.children["QueueUrl"].value = path_url
    params = _from_query_struct(action.input, root, "")
    return action, params


def _bad_query_value(path: str, value: str, reason: str) -> SqsError:
    return SqsError(
        "InvalidParameterValue", f"Value {value} for parameter {path} is invalid. Reason: {reason}."
    )


def _from_query_scalar(shape: Shape, value: str, path: str) -> Any:
    kind = shape.kind
    if kind == "string":
        return value
    if kind in ("integer", "long"):
        if not _INT_RE.fullmatch(value):
            raise _bad_query_value(path, value, "must be an integer")
        number = int(value)
        lo, hi = (INT32_MIN, INT32_MAX) if kind == "integer" else (INT64_MIN, INT64_MAX)
        if not lo <= number <= hi:
            raise _bad_query_value(path, value, "out of range")
        return number
    if kind == "boolean":
        lowered = value.lower()
        if lowered not in ("true", "false"):
            raise _bad_query_value(path, value, "must be true or false")
        return lowered == "true"
    assert kind == "blob"
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _bad_query_value(path, value, "must be base64") from None


def _indexed(node: _Node, path: str) -> list[tuple[int, _Node]]:
    items = []
    for key, child in node.children.items():
        if not (key.isascii() and key.isdigit()) or key.startswith("0"):
            continue
        index = int(key)
        if index > list_items_max:
            raise _bad_query_value(f"{path}.{key}", key, f"index above {list_items_max}")
        items.append((index, child))
    items.sort(key=lambda item: item[0])
    return items


def _from_query(shape: Shape, node: _Node, path: str) -> Any:
    kind = shape.kind
    if kind == "structure":
        return _from_query_struct(shape, node, path)
    item = shape.item
    if kind == "list":
        assert item is not None
        # Flattened (``Name.1``); the non-flattened ``Name.member.1`` is accepted too.
        source = node.children.get("member", node)
        out_list = []
        for index, child in _indexed(source, path):
            element = _from_query_value(item, child, f"{path}.{index}")
            if element is not None:
                out_list.append(element)
        return out_list
    if kind == "map":
        assert item is not None
        source = node.children.get("entry", node)
        out_map: dict[str, Any] = {}
        for index, child in _indexed(source, path):
            key_node = child.children.get(shape.key_name) or child.children.get("key")
            value_node = child.children.get(shape.value_name) or child.children.get("value")
            entry_path = f"{path}.{index}"
            if key_node is None or key_node.value is None:
                raise missing_parameter(f"{entry_path}.{shape.key_name}")
            if value_node is None:
                raise missing_parameter(f"{entry_path}.{shape.value_name}")
            value = _from_query_value(item, value_node, f"{entry_path}.{shape.value_name}")
            if value is not None:
                out_map[key_node.value] = value
        return out_map
    if node.value is None:
        return None
    return _from_query_scalar(shape, node.value, path)


def _from_query_value(shape: Shape, node: _Node, path: str) -> Any:
    if shape.kind in ("structure", "list", "map"):
        return _from_query(shape, node, path)
    if node.value is None:
        return None
    return _from_query_scalar(shape, node.value, path)


def _from_query_struct(shape: Shape, node: _Node, path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, member in shape.members.items():
        child = node.children.get(member.wire)
        if child is None and member.wire != name:
            child = node.children.get(name)
        if child is None:
            continue
        value = _from_query(member.shape, child, _join(path, member.wire))
        if value is not None:
            out[name] = value
    for name in shape.required:
        if name not in out:
            raise missing_parameter(_join(path, shape.members[name].wire))
    return out
