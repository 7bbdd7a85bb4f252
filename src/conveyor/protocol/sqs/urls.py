"""Queue URLs, queue ARNs and accounts.

* A queue URL is ``<scheme>://<host>[:<port>]/<account-id>/<queue-name>``. Any host is
  accepted when parsing (clients keep URLs from other endpoints and from AWS itself);
  only the path names the queue.
* A queue ARN is ``arn:<partition>:sqs:<region>:<account-id>:<queue-name>``.
* The caller's account is the access key when that is a 12-digit number (so one
  server can host several accounts for tests), else the server's configured account.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple
from urllib.parse import quote, unquote

from conveyor.protocol.sqs.errors import SqsError, invalid_parameter

DEFAULT_ACCOUNT = "000000000000"
DEFAULT_REGION = "us-east-1"

_ACCOUNT_RE = re.compile(r"^[0-9A-Za-z_-]{1,64}$")
_ACCESS_KEY_ACCOUNT_RE = re.compile(r"^[0-9]{12}$")
_ARN_RE = re.compile(
    r"^arn:(?P<partition>[a-z0-9-]+):sqs:(?P<region>[a-z0-9-]*):"
    r"(?P<account>[0-9A-Za-z_-]{1,64}):(?P<name>[^:/]+)$"
)


class QueueRef(NamedTuple):
    """A queue as a URL or an ARN names it."""

    account: str
    name: str


class ArnRef(NamedTuple):
    region: str
    account: str
    name: str


def account_for(access_key: str | None, default_account: str = DEFAULT_ACCOUNT) -> str:
    """The caller's account: a 12-digit access key is one; else the default."""
    if access_key and _ACCESS_KEY_ACCOUNT_RE.match(access_key):
        return access_key
    return default_account


def base_url(host: str | None, scheme: str = "http") -> str:
    """The base of queue URLs for a request that came with ``Host: <host>``."""
    return f"{scheme}://{host or 'localhost'}"


def queue_url(base: str, account: str, name: str) -> str:
    return f"{base.rstrip('/')}/{account}/{quote(name, safe='')}"


def queue_arn(region: str, account: str, name: str, partition: str = "aws") -> str:
    return f"arn:{partition}:sqs:{region}:{account}:{name}"


def path_ref(path: str) -> QueueRef | None:
    """The queue a request path names (``/<account>/<name>``), or None."""
    parts = [p for p in path.split("/") if p]
    if len(parts) != 2 or not _ACCOUNT_RE.match(parts[0]):
        return None
    return QueueRef(parts[0], unquote(parts[1]))


def parse_queue_url(url: str) -> QueueRef:
    """The account and queue name in a queue URL; InvalidAddress if it names none."""
    ref = _parse_queue_url_cached(url) if len(url) <= _cached_url_length_max else None
    if ref is None:
        ref = _parse_queue_url(url)
    if ref is None:
        raise SqsError("InvalidAddress", f"The address {url} is not valid for this endpoint.")
    return ref


_cached_url_length_max = 256


@functools.lru_cache(maxsize=4096)
def _parse_queue_url_cached(url: str) -> QueueRef | None:
    return _parse_queue_url(url)


def _parse_queue_url(url: str) -> QueueRef | None:
    scheme_end = url.find("://")
    if scheme_end >= 0:
        slash = url.find("/", scheme_end + 3)
        path = url[slash:] if slash >= 0 else ""
        path = path.split("?", 1)[0].split("#", 1)[0]
    else:
        path = url
    ref = path_ref(path)
    return ref if ref is not None and ref.name else None


def parse_arn(arn: str, parameter: str = "Arn") -> ArnRef:
    """Region, account and queue name of an SQS queue ARN."""
    match = _ARN_RE.match(arn)
    if match is None:
        raise invalid_parameter(f"Value {arn} for parameter {parameter} is not a valid SQS ARN.")
    return ArnRef(match["region"], match["account"], match["name"])
