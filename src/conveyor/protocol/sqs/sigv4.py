"""AWS Signature Version 4: who signed a request, in which region, and whether it is genuine.

A signed request carries either an ``Authorization`` header::

    AWS4-HMAC-SHA256 Credential=<key>/<yyyymmdd>/<region>/<service>/aws4_request,
        SignedHeaders=<h1;h2;...>, Signature=<hex>

or (a presigned URL) the query parameters ``X-Amz-Algorithm``, ``X-Amz-Credential``,
``X-Amz-Date``, ``X-Amz-Expires``, ``X-Amz-SignedHeaders`` and ``X-Amz-Signature``.

Verification rebuilds what the client signed:

1. the canonical request: method, canonical path (dot segments and doubled slashes
   removed, then percent-encoded again as non-S3 services do), canonical query (every
   pair decoded, encoded with only ``A-Za-z0-9-_.~`` left bare, sorted; without
   ``X-Amz-Signature``), the signed headers as ``name:value`` (values trimmed, inner
   runs of spaces collapsed), the list of signed header names, and the payload's
   SHA-256 (or the ``X-Amz-Content-SHA256`` header's value);
2. the string to sign: ``AWS4-HMAC-SHA256``, the request time, the credential scope and
   the canonical request's SHA-256;
3. the signing key: HMAC-SHA256 chained over ``"AWS4" + secret``, the date, the region,
   the service and ``aws4_request``;

and compares HMAC(signing key, string to sign) with the given signature in constant time.

:func:`extract` reads the credential without checking anything (local mode: any
credentials pass). :func:`verify` checks everything and raises the error AWS answers:
MissingAuthenticationToken, IncompleteSignature, InvalidClientTokenId,
SignatureDoesNotMatch or RequestExpired. The current time is passed in.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import NamedTuple
from urllib.parse import quote, unquote

from conveyor.protocol.sqs.errors import SqsError

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "sqs"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
skew_s_max = 15 * 60  # AWS accepts requests signed up to 15 minutes off its clock
presign_expires_s_max = 7 * 24 * 3600
_signing_keys_cached_max = 256

SecretLookup = Callable[[str], str | None]


class Credential(NamedTuple):
    """The credential scope of a signature."""

    access_key: str
    date: str  # yyyymmdd
    region: str
    service: str


class _Signed(NamedTuple):
    credential: Credential
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str  # yyyymmddThhmmssZ
    expires_s: int | None  # presigned URLs only


def _incomplete(message: str) -> SqsError:
    return SqsError("IncompleteSignature", message)


def _mismatch(message: str | None = None) -> SqsError:
    return SqsError(
        "SignatureDoesNotMatch",
        message
        or "The request signature we calculated does not match the signature you provided. "
        "Check your AWS Secret Access Key and signing method. Consult the service "
        "documentation for details.",
    )


def _query_pairs(query: str) -> list[tuple[str, str]]:
    pairs = []
    for part in query.split("&"):
        if part:
            key, _, value = part.partition("=")
            pairs.append((unquote(key), unquote(value)))
    return pairs


def _parse_credential(text: str) -> Credential:
    parts = text.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not all(parts):
        raise _incomplete(
            f"Credential should be scoped to a valid region, not '{text}'. Credential "
            "should be of the form <key>/<yyyymmdd>/<region>/<service>/aws4_request."
        )
    return Credential(parts[0], parts[1], parts[2], parts[3])


def _amz_date_from_headers(headers: Mapping[str, str]) -> str | None:
    amz = headers.get("x-amz-date")
    if amz:
        return amz
    date = headers.get("date")
    if date:
        try:
            parsed = parsedate_to_datetime(date)
        except (TypeError, ValueError):
            return None
        return parsed.strftime("%Y%m%dT%H%M%SZ")
    return None


def _parse_signed(headers: Mapping[str, str], query: str) -> _Signed | None:
    """The signature's parts, or None if the request is not signed at all."""
    auth = headers.get("authorization")
    if auth is not None:
        algorithm, _, rest = auth.strip().partition(" ")
        if algorithm != ALGORITHM:
            raise _incomplete(f"Unsupported authorization type '{algorithm}'; use {ALGORITHM}.")
        fields: dict[str, str] = {}
        for item in rest.split(","):
            key, sep, value = item.strip().partition("=")
            if sep:
                fields[key] = value
        for required in ("Credential", "SignedHeaders", "Signature"):
            if required not in fields:
                raise _incomplete(
                    f"Authorization header requires '{required}' parameter. Authorization={auth}"
                )
        amz_date = _amz_date_from_headers(headers)
        if amz_date is None:
            raise _incomplete(
                "Authorization header requires existence of either a 'X-Amz-Date' or a "
                "'Date' header."
            )
        return _Signed(
            _parse_credential(fields["Credential"]),
            tuple(fields["SignedHeaders"].split(";")),
            fields["Signature"],
            amz_date,
            None,
        )
    if "X-Amz-Algorithm" not in query and "X-Amz-Signature" not in query:
        return None
    params = dict(_query_pairs(query))
    if params.get("X-Amz-Algorithm") != ALGORITHM:
        raise _incomplete(f"X-Amz-Algorithm must be {ALGORITHM}.")
    for required in ("X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature"):
        if required not in params:
            raise _incomplete(f"AWS query-string parameters must include '{required}'.")
    expires_text = params.get("X-Amz-Expires", str(presign_expires_s_max))
    if not expires_text.isdigit() or int(expires_text) > presign_expires_s_max:
        raise _incomplete("X-Amz-Expires must be a number of seconds up to 604800.")
    return _Signed(
        _parse_credential(params["X-Amz-Credential"]),
        tuple(params["X-Amz-SignedHeaders"].split(";")),
        params["X-Amz-Signature"],
        params["X-Amz-Date"],
        int(expires_text),
    )


_CREDENTIAL_RE = re.compile(r"Credential=([^/,\s]+)/([0-9]{8})/([^/,\s]+)/([^/,\s]+)/aws4_request")


def extract(headers: Mapping[str, str], query: str = "") -> Credential | None:
    """The credential a request names, without checking it; None if there is none."""
    auth = headers.get("authorization")
    if auth is not None:
        if not auth.startswith(ALGORITHM):
            return None
        match = _CREDENTIAL_RE.search(auth)
        return None if match is None else Credential(*match.groups())
    if "X-Amz-Credential" not in query:
        return None
    try:
        signed = _parse_signed(headers, query)
    except SqsError:
        return None
    return None if signed is None else signed.credential


# --- canonical forms -----------------------------------------------------------------


def canonical_path(raw_path: str) -> str:
    """The path as sent, normalized, then encoded once more (non-S3 services)."""
    segments = [s for s in raw_path.split("/") if s and s != "."]
    out: list[str] = []
    for segment in segments:
        if segment == "..":
            if out:
                out.pop()
        else:
            out.append(segment)
    path = "/" + "/".join(out)
    if raw_path.endswith("/") and out:
        path += "/"
    return quote(path, safe="/~")


def canonical_query(query: str, *, drop_signature: bool) -> str:
    encoded = sorted(
        (quote(key, safe="-_.~"), quote(value, safe="-_.~"))
        for key, value in _query_pairs(query)
        if not (drop_signature and key == "X-Amz-Signature")
    )
    return "&".join(f"{key}={value}" for key, value in encoded)


def canonical_headers(headers: Mapping[str, str], names: tuple[str, ...]) -> str:
    lines = []
    for name in names:
        value = headers.get(name, "")
        lines.append(f"{name}:{' '.join(value.split())}\n")
    return "".join(lines)


def canonical_request(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    signed_headers: tuple[str, ...],
    *,
    presigned: bool = False,
) -> str:
    payload_hash = headers.get("x-amz-content-sha256") or hashlib.sha256(body).hexdigest()
    return "\n".join(
        (
            method.upper(),
            canonical_path(path),
            canonical_query(query, drop_signature=presigned),
            canonical_headers(headers, signed_headers),
            ";".join(signed_headers),
            payload_hash,
        )
    )


def string_to_sign(amz_date: str, credential: Credential, canonical: str) -> str:
    scope = f"{credential.date}/{credential.region}/{credential.service}/aws4_request"
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


_key_cache: dict[tuple[str, str, str, str], bytes] = {}


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    cache_key = (secret, date, region, service)
    key = _key_cache.get(cache_key)
    if key is None:
        key = f"AWS4{secret}".encode()
        for part in (date, region, service, "aws4_request"):
            key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
        if len(_key_cache) >= _signing_keys_cached_max:
            _key_cache.clear()
        _key_cache[cache_key] = key
    return key


def _epoch_s(amz_date: str) -> int:
    try:
        return calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
    except ValueError:
        raise _incomplete(f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'.") from None


def _format(epoch_s: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(epoch_s))


def verify(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    secret_for: SecretLookup,
    now_s: float | None,
    service: str = SERVICE,
) -> Credential:
    """Check a request's signature; return its credential or raise AWS's error.

    ``headers`` has lower-case names. ``secret_for(access_key)`` gives the secret key
    or None for an unknown key. ``now_s`` is the current time (seconds since the epoch)
    for the 15-minute window and presigned expiry; None skips the time checks.
    """
    signed = _parse_signed(headers, query)
    if signed is None:
        raise SqsError("MissingAuthenticationToken", "Request is missing Authentication Token")
    cred = signed.credential
    if cred.service != service:
        raise _mismatch(f"Credential should be scoped to correct service: '{service}'.")
    if not signed.amz_date.startswith(cred.date):
        raise _mismatch(
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{cred.date}' != '{signed.amz_date[:8]}', from '{signed.amz_date}'."
        )
    if "host" not in signed.signed_headers:
        raise _mismatch("'Host' must be a signed header.")
    signed_at = _epoch_s(signed.amz_date)
    if now_s is not None:
        if signed.expires_s is not None:
            if now_s > signed_at + signed.expires_s:
                raise SqsError("RequestExpired", "Request has expired.")
        elif signed_at < now_s - skew_s_max:
            raise SqsError(
                "RequestExpired",
                f"Signature expired: {signed.amz_date} is now earlier than "
                f"{_format(now_s - skew_s_max)} ({_format(now_s)} - 15 min.)",
            )
        elif signed_at > now_s + skew_s_max:
            raise SqsError(
                "RequestExpired",
                f"Signature not yet current: {signed.amz_date} is still later than "
                f"{_format(now_s + skew_s_max)} ({_format(now_s)} + 15 min.)",
            )
    secret = secret_for(cred.access_key)
    if secret is None:
        raise SqsError(
            "InvalidClientTokenId", "The security token included in the request is invalid."
        )
    content_sha = headers.get("x-amz-content-sha256")
    if (
        content_sha
        and content_sha != UNSIGNED_PAYLOAD
        and content_sha != hashlib.sha256(body).hexdigest()
    ):
        raise _mismatch(
            "The provided 'x-amz-content-sha256' header does not match what was computed."
        )
    canonical = canonical_request(
        method,
        path,
        query,
        headers,
        body,
        signed.signed_headers,
        presigned=signed.expires_s is not None,
    )
    expected = hmac.new(
        signing_key(secret, cred.date, cred.region, cred.service),
        string_to_sign(signed.amz_date, cred, canonical).encode("utf-8"),
        hashlib.sha256,
    ).hexdigest()
    if not hmac.compare_digest(expected, signed.signature):
        raise _mismatch()
    return cred


def sign_headers(
    method: str,
    url_path: str,
    query: str,
    headers: dict[str, str],
    body: bytes,
    *,
    access_key: str,
    secret: str,
    region: str,
    amz_date: str,
    service: str = SERVICE,
) -> dict[str, str]:
    """Sign a request (for Conveyor's own clients and tests): returns headers to add.

    ``headers`` must have lower-case names and include ``host``.
    """
    all_headers = {**headers, "x-amz-date": amz_date}
    names = tuple(sorted(all_headers))
    cred = Credential(access_key, amz_date[:8], region, service)
    canonical = canonical_request(method, url_path, query, all_headers, body, names)
    signature = hmac.new(
        signing_key(secret, cred.date, region, service),
        string_to_sign(amz_date, cred, canonical).encode("utf-8"),
        hashlib.sha256,
    ).hexdigest()
    return {
        "x-amz-date": amz_date,
        "authorization": (
            f"{ALGORITHM} Credential={access_key}/{cred.date}/{region}/{service}/aws4_request, "
            f"SignedHeaders={';'.join(names)}, Signature={signature}"
        ),
    }
