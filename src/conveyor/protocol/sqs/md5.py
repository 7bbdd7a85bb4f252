"""The MD5 digests SQS returns so that clients can check what it stored.

* ``MD5OfMessageBody`` / ``MD5OfBody``: MD5 of the body's UTF-8 bytes, lower-case hex.
* ``MD5OfMessageAttributes`` and ``MD5OfMessageSystemAttributes``: MD5 over the
  attributes sorted by name (code point order), each encoded as::

      name length (4 bytes, big-endian) | name (UTF-8)
      data type length (4 bytes)        | data type (UTF-8)
      transport type (1 byte)           : 1 String/Number, 2 Binary,
                                          3 string list, 4 binary list
      then for 1 and 2:  value length (4 bytes) | value (UTF-8 or raw bytes)
      for 3 and 4, each element:  length (4 bytes) | element

  The transport type follows the data type's base (``Binary.gif`` is Binary), and a
  value is what was sent (``StringValue`` for String and Number, ``BinaryValue`` for
  Binary). No attributes: no digest (``None``), as SQS omits the field.

Attributes are dicts in the JSON protocol's shape:
``{"name": {"DataType": "String", "StringValue": "x"}}``, binary values as ``bytes``.
The SDKs that check these digests (Java, Go, Ruby, .NET, JavaScript) compute exactly
this; the tests pin it with published vectors.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from typing import Any

_STRING = 1
_BINARY = 2
_STRING_LIST = 3
_BINARY_LIST = 4

_pack_len = struct.Struct(">I").pack


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def md5_of_body(body: str | bytes) -> str:
    return md5_hex(body.encode("utf-8") if isinstance(body, str) else body)


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"attribute value must be str or bytes, not {type(value).__name__}")


def _encode_attribute(out: bytearray, name: str, value: Mapping[str, Any]) -> None:
    data_type = value["DataType"]
    for text in (name, data_type):
        raw = text.encode("utf-8")
        out += _pack_len(len(raw))
        out += raw
    base = data_type.split(".", 1)[0]
    if base == "Binary":
        if value.get("BinaryValue") is not None:
            raw = _as_bytes(value["BinaryValue"])
            out.append(_BINARY)
            out += _pack_len(len(raw))
            out += raw
            return
        if value.get("BinaryListValues"):
            out.append(_BINARY_LIST)
            for item in value["BinaryListValues"]:
                raw = _as_bytes(item)
                out += _pack_len(len(raw))
                out += raw
            return
    if value.get("StringValue") is not None:
        raw = _as_bytes(value["StringValue"])
        out.append(_STRING)
        out += _pack_len(len(raw))
        out += raw
    elif value.get("StringListValues"):
        out.append(_STRING_LIST)
        for item in value["StringListValues"]:
            raw = _as_bytes(item)
            out += _pack_len(len(raw))
            out += raw
    elif value.get("BinaryValue") is not None:
        raw = _as_bytes(value["BinaryValue"])
        out.append(_BINARY)
        out += _pack_len(len(raw))
        out += raw


def attributes_digest_input(attributes: Mapping[str, Mapping[str, Any]]) -> bytes:
    """The bytes whose MD5 is the attributes' digest (exposed for tests and tools)."""
    out = bytearray()
    for name in sorted(attributes):
        _encode_attribute(out, name, attributes[name])
    return bytes(out)


def md5_of_attributes(attributes: Mapping[str, Mapping[str, Any]] | None) -> str | None:
    """``MD5OfMessageAttributes`` (or ``...SystemAttributes``); None when there are none."""
    if not attributes:
        return None
    return md5_hex(attributes_digest_input(attributes))
