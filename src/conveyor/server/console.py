"""The web console's files, served by the node under ``/console/``.

The console is a static page (:mod:`conveyor.console`: ``index.html``, ``console.js``,
``console.css``, ``favicon.svg``, hand-written, no build step, no CDN) that reads and
operates the node through the admin API (``/api/v1/``); see ``docs/console.md``. This
module only serves those files:

* ``GET /console`` redirects (301) to ``console/``, relative, so it also works behind a
  proxy that mounts the node under a prefix; ``GET /console/`` is ``index.html``;
* the files are read once, when the node starts, and kept in memory with their gzip
  encoding; an unknown name is a 404 and any method but ``GET`` a 405;
* caching: ``index.html`` is ``no-cache`` (revalidated with its ``ETag``) and names the
  other files with ``?v=<hash of their content>``; a file asked for with its current
  hash is cached for a year (``immutable``), otherwise it is revalidated too. A new
  version of Conveyor thus reaches every browser on its next load, and nothing is
  downloaded twice;
* every answer carries a Content-Security-Policy that allows only this origin (no
  inline scripts, no other hosts) and forbids framing, so the purge button cannot be
  clicked through another site.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from urllib.parse import parse_qs

from conveyor.server.http import Request, Response

PREFIX = "/console"

# file name -> content type; only these are served
CONTENT_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
INDEX = "index.html"
hash_chars = 12  # of the sha256 hex digest: the ETag and the ?v= of each file
gzip_bytes_min = 1024  # smaller files are sent as they are

CACHE_REVALIDATE = "no-cache"
CACHE_IMMUTABLE = "public, max-age=31536000, immutable"
SECURITY_HEADERS = [
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
]


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    gzipped: bytes | None  # None when not worth it
    content_type: str
    version: str  # hash of the content

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


def _version(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:hash_chars]


def load_files() -> dict[str, bytes]:
    """The console's files from the installed package."""
    root = resources.files("conveyor.console")
    return {name: root.joinpath(name).read_bytes() for name in CONTENT_TYPES}


class Console:
    """Answers ``/console`` and ``/console/...`` from files held in memory."""

    def __init__(self, files: Mapping[str, bytes] | None = None) -> None:
        files = load_files() if files is None else files
        assert set(files) == set(CONTENT_TYPES), sorted(files)
        versions = {name: _version(body) for name, body in files.items() if name != INDEX}
        index = files[INDEX]
        for name, version in versions.items():
            # index.html names each file as "NAME?v={{NAME}}"; fill in its hash
            index = index.replace(b"{{%s}}" % name.encode(), version.encode())
        assert b"{{" not in index, "index.html names a file the console does not serve"
        self.assets = {
            name: _asset(index if name == INDEX else body, CONTENT_TYPES[name])
            for name, body in files.items()
        }

    def handle(self, req: Request) -> Response:
        if req.path == PREFIX:
            target = "console/" + (f"?{req.query}" if req.query else "")
            return _plain(301, b"moved to /console/\n", [("Location", target)])
        assert req.path.startswith(PREFIX + "/"), req.path
        name = req.path[len(PREFIX) + 1 :] or INDEX
        asset = self.assets.get(name)
        if asset is None:
            return _plain(404, f"no such console file: {req.path}\n".encode())
        if req.method != "GET":
            return _plain(405, b"the console is read with GET\n", [("Allow", "GET")])
        wanted = parse_qs(req.query).get("v", [""])[-1]
        cache = CACHE_IMMUTABLE if name != INDEX and wanted == asset.version else CACHE_REVALIDATE
        headers = [
            ("ETag", asset.etag),
            ("Cache-Control", cache),
            ("Vary", "Accept-Encoding"),
            *SECURITY_HEADERS,
        ]
        if _etag_matches(req.headers.get("if-none-match", ""), asset.etag):
            return Response(304, b"", "", headers)
        body = asset.body
        if asset.gzipped is not None and _accepts_gzip(req.headers.get("accept-encoding", "")):
            body = asset.gzipped
            headers.append(("Content-Encoding", "gzip"))
        return Response(200, body, asset.content_type, headers)


def _asset(body: bytes, content_type: str) -> Asset:
    gz = gzip.compress(body, mtime=0) if len(body) >= gzip_bytes_min else None
    if gz is not None and len(gz) >= len(body):
        gz = None
    return Asset(body=body, gzipped=gz, content_type=content_type, version=_version(body))


def _plain(status: int, body: bytes, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(
        status, body, "text/plain; charset=utf-8", [*(headers or []), *SECURITY_HEADERS]
    )


def _etag_matches(header: str, etag: str) -> bool:
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return etag in tags or "*" in tags


def _accepts_gzip(header: str) -> bool:
    for part in header.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() != "gzip":
            continue
        q = params.strip().removeprefix("q=").strip()
        return not q or _float(q) > 0
    return False


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0
