"""From a result dict (or an error) to the HTTP response an SQS client expects.

A result dict has the shape boto3 returns for the action, minus ``ResponseMetadata``
(see :mod:`.model` for every action's output and :mod:`.results` for builders): for
SendMessage ``{"MessageId": ..., "MD5OfMessageBody": ...}``, for ReceiveMessage
``{"Messages": [{"MessageId": ..., "Body": ..., "Attributes": {...},
"MessageAttributes": {...}}]}``; ``bytes`` for binary values; actions without output
take ``None`` (or ``{}``). Keys the action's output does not have, and values of the
wrong type, raise ``TypeError``/``KeyError`` — they are bugs in the caller, not input.
A typed result (:class:`.results.TypedResult`, for the hot actions) is encoded in one
call in the JSON protocol; its fields were checked against the output shape once, by
the tests, rather than on every response.

JSON protocol (``application/x-amz-json-1.0``)::

    200  {"QueueUrl": "http://localhost:9324/000000000000/jobs"}
    400  {"__type": "com.amazonaws.sqs#QueueDoesNotExist", "message": "..."}
         x-amzn-query-error: AWS.SimpleQueueService.NonExistentQueue;Sender

query protocol (``text/xml``)::

    <?xml version="1.0"?>
    <CreateQueueResponse xmlns="http://queue.amazonaws.com/doc/2012-11-05/">
      <CreateQueueResult><QueueUrl>...</QueueUrl></CreateQueueResult>
      <ResponseMetadata><RequestId>...</RequestId></ResponseMetadata>
    </CreateQueueResponse>

    <?xml version="1.0"?>
    <ErrorResponse xmlns="http://queue.amazonaws.com/doc/2012-11-05/">
      <Error><Type>Sender</Type><Code>AWS.SimpleQueueService.NonExistentQueue</Code>
        <Message>...</Message><Detail/></Error>
      <RequestId>...</RequestId>
    </ErrorResponse>

(without the whitespace). Every response carries ``x-amzn-RequestId``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from conveyor.protocol.sqs.errors import to_sqs_error
from conveyor.protocol.sqs.model import ACTIONS, XML_NAMESPACE, Shape
from conveyor.protocol.sqs.request import Protocol
from conveyor.protocol.sqs.results import TypedResult, as_dict

JSON_CONTENT_TYPE = "application/x-amz-json-1.0"
XML_CONTENT_TYPE = "text/xml"

_json_encoder = msgspec.json.Encoder()


@dataclass(slots=True)
class SqsResponse:
    status: int
    body: bytes
    content_type: str
    headers: list[tuple[str, str]] = field(default_factory=list)


def render_result(
    action: str,
    protocol: Protocol,
    result: Mapping[str, Any] | TypedResult | None,
    request_id: str,
) -> SqsResponse:
    """The 200 response for ``action``'s result (a dict, or a typed result struct)."""
    spec = ACTIONS[action]
    headers = [("x-amzn-RequestId", request_id)]
    if isinstance(result, TypedResult):
        if result.action != action:
            raise KeyError(f"{action} cannot answer with a {type(result).__name__}")
        if protocol == "json":
            # typed by construction: one encode, no walk over the output shape
            return SqsResponse(200, _json_encoder.encode(result), JSON_CONTENT_TYPE, headers)
        result = as_dict(result)
    if protocol == "json":
        if spec.output is None:
            if result:
                raise KeyError(f"{action} has no result, got {sorted(result)}")
            return SqsResponse(200, b"{}", JSON_CONTENT_TYPE, headers)
        body = _json_encoder.encode(_to_json(spec.output, result or {}, action))
        return SqsResponse(200, body, JSON_CONTENT_TYPE, headers)
    parts = ['<?xml version="1.0"?>', f'<{action}Response xmlns="{XML_NAMESPACE}">']
    if spec.output is not None:
        parts.append(f"<{action}Result>")
        _xml_struct(spec.output, result or {}, parts, action)
        parts.append(f"</{action}Result>")
    elif result:
        raise KeyError(f"{action} has no result, got {sorted(result)}")
    parts.append(
        f"<ResponseMetadata><RequestId>{_escape(request_id)}</RequestId></ResponseMetadata>"
        f"</{action}Response>"
    )
    return SqsResponse(200, "".join(parts).encode("utf-8"), XML_CONTENT_TYPE, headers)


def render_error(protocol: Protocol, error: BaseException, request_id: str) -> SqsResponse:
    """The error response for any exception (unknown ones become InternalError)."""
    err = to_sqs_error(error)
    headers = [("x-amzn-RequestId", request_id)]
    if protocol == "json":
        headers.append(("x-amzn-query-error", f"{err.query_code};{err.fault}"))
        body = _json_encoder.encode({"__type": err.json_type, "message": err.message})
        return SqsResponse(err.status, body, JSON_CONTENT_TYPE, headers)
    text = (
        f'<?xml version="1.0"?><ErrorResponse xmlns="{XML_NAMESPACE}"><Error>'
        f"<Type>{err.fault}</Type><Code>{_escape(err.query_code)}</Code>"
        f"<Message>{_escape(err.message)}</Message><Detail/></Error>"
        f"<RequestId>{_escape(request_id)}</RequestId></ErrorResponse>"
    )
    return SqsResponse(err.status, text.encode("utf-8"), XML_CONTENT_TYPE, headers)


# --- JSON ------------------------------------------------------------------------------
#
# The walkers check every value against the output shape (a wrong key or type is a bug in
# the caller, better caught here than by a client) and drop None. Paths for messages are
# built only when something is wrong. msgspec writes bytes as base64, as the protocol
# wants, so blobs pass through.

_SCALAR_KINDS = frozenset({"string", "integer", "long", "boolean", "blob"})


def _type_error(path: str, expected: str, value: Any) -> TypeError:
    return TypeError(f"{path}: expected {expected}, got {type(value).__name__}")


def _check_scalar(kind: str, value: Any, path: str) -> None:
    if kind == "string":
        ok = type(value) is str
    elif kind == "boolean":
        ok = type(value) is bool
    elif kind in ("integer", "long"):
        ok = type(value) is int
    else:
        ok = isinstance(value, bytes | bytearray | memoryview)
    if not ok:
        raise _type_error(path, kind, value)


def _to_json(shape: Shape, value: Any, path: str) -> Any:
    kind = shape.kind
    if kind == "structure":
        return _to_json_struct(shape, value, path)
    item = shape.item
    if kind == "list":
        assert item is not None
        if item.kind == "structure":
            return [_to_json_struct(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
        if item.kind in _SCALAR_KINDS:
            for i, v in enumerate(value):
                if type(v) is not str or item.kind != "string":
                    _check_scalar(item.kind, v, f"{path}[{i}]")
            return list(value)
        return [_to_json(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if kind == "map":
        assert item is not None
        if item.kind == "string":
            for k, v in value.items():
                if type(v) is not str:
                    raise _type_error(f"{path}.{k}", "string", v)
            return dict(value)
        return {k: _to_json(item, v, f"{path}.{k}") for k, v in value.items()}
    if type(value) is not str or kind != "string":
        _check_scalar(kind, value, path)
    return value


def _to_json_struct(shape: Shape, value: Mapping[str, Any], path: str) -> dict[str, Any]:
    members = shape.members
    out: dict[str, Any] = {}
    for name, v in value.items():
        if v is None:
            continue
        member = members.get(name)
        if member is None:
            raise KeyError(f"{path}: unknown result field {name!r}")
        if type(v) is str and member.shape.kind == "string":
            out[name] = v
        else:
            out[name] = _to_json(member.shape, v, f"{path}.{name}")
    for name in shape.required:
        if name not in out:
            if members[name].shape.kind != "list":
                raise KeyError(f"{path}: result field {name!r} is required")
            out[name] = []
    return out


# --- XML -------------------------------------------------------------------------------

# What needs escaping in element text, and what XML 1.0 cannot carry at all (inputs are
# checked against SQS's character set, but error messages may quote anything).
_XML_SPECIAL_RE = re.compile("[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_XML_INVALID_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _escape(text: str) -> str:
    if _XML_SPECIAL_RE.search(text) is None:
        return text
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _XML_INVALID_RE.sub("\ufffd", text.replace("\r", "&#xD;"))


def _xml_scalar(kind: str, value: Any, path: str) -> str:
    if kind == "string":
        if type(value) is not str:
            raise _type_error(path, kind, value)
        return _escape(value)
    _check_scalar(kind, value, path)
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "blob":
        return base64.b64encode(value).decode("ascii")
    return str(value)


def _xml_value(shape: Shape, value: Any, tag: str, parts: list[str], path: str) -> None:
    """``<tag>value</tag>``; a list or map is flattened: one ``<tag>`` per item."""
    kind = shape.kind
    item = shape.item
    if kind == "list":
        assert item is not None
        for i, element in enumerate(value):
            _xml_value(item, element, tag, parts, f"{path}[{i}]")
    elif kind == "map":
        assert item is not None
        key_name, value_name = shape.key_name, shape.value_name
        for key, element in value.items():
            parts.append(f"<{tag}><{key_name}>{_escape(key)}</{key_name}>")
            _xml_value(item, element, value_name, parts, f"{path}.{key}")
            parts.append(f"</{tag}>")
    elif kind == "structure":
        parts.append(f"<{tag}>")
        _xml_struct(shape, value, parts, path)
        parts.append(f"</{tag}>")
    else:
        parts.append(f"<{tag}>{_xml_scalar(kind, value, path)}</{tag}>")


def _xml_struct(shape: Shape, value: Mapping[str, Any], parts: list[str], path: str) -> None:
    members = shape.members
    for name in value:
        if name not in members:
            raise KeyError(f"{path}: unknown result field {name!r}")
    for name, member in members.items():
        v = value.get(name)
        if v is None:
            if name in shape.required and member.shape.kind != "list":
                raise KeyError(f"{path}: result field {name!r} is required")
            continue
        if type(v) is str and member.shape.kind == "string":
            parts.append(f"<{member.wire}>{_escape(v)}</{member.wire}>")
        else:
            _xml_value(member.shape, v, member.wire, parts, f"{path}.{name}")
