"""Serving the console's files (conveyor.server.console): content types, caching,
redirect, 404 and 405, gzip, security headers; first on the handler, then over HTTP on
a real node."""

from __future__ import annotations

import gzip
import http.client
import re
from pathlib import Path

import pytest

import conveyor
from conveyor.server.console import (
    CACHE_IMMUTABLE,
    CACHE_REVALIDATE,
    CONTENT_TYPES,
    Console,
    load_files,
)
from conveyor.server.http import Request, Response
from conveyor.testing import ServerProcess


def get(console: Console, path: str, **headers: str) -> Response:
    target, _, query = path.partition("?")
    req = Request(method="GET", path=target, query=query, headers=headers, body=b"")
    return console.handle(req)


def header(resp: Response, name: str) -> str | None:
    return next((v for k, v in resp.headers if k.lower() == name.lower()), None)


@pytest.fixture(scope="module")
def console() -> Console:
    return Console()


def test_package_holds_the_console_files() -> None:
    files = load_files()
    assert (
        set(files)
        == set(CONTENT_TYPES)
        == {
            "index.html",
            "console.js",
            "console.css",
            "favicon.svg",
        }
    )
    src = Path(__file__).resolve().parents[2] / "src" / "conveyor" / "console"
    for name, body in files.items():
        assert body, name
        assert (src / name).read_bytes() == body, name


def test_works_offline_nothing_from_other_hosts() -> None:
    for name, body in load_files().items():
        text = body.decode()
        urls = re.findall(r"""(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}[^\s"'`)]*""", text)
        # the SVG namespace is a name, not something fetched
        assert set(urls) <= {"http://www.w3.org/2000/svg"}, (name, urls)
        assert "@import" not in text and "<iframe" not in text, name


def test_index_and_assets(console: Console) -> None:
    resp = get(console, "/console/")
    assert resp.status == 200
    assert resp.content_type == "text/html; charset=utf-8"
    assert header(resp, "Cache-Control") == CACHE_REVALIDATE
    html = resp.body.decode()
    refs = [r for r in re.findall(r'(?:href|src)="([^"#]+)"', html) if not r.startswith("../")]
    assert {r.split("?")[0] for r in refs} == {"favicon.svg", "console.css", "console.js"}
    for ref in refs:  # each file is named with the hash of its content
        name, _, query = ref.partition("?")
        asset = get(console, f"/console/{ref}")
        assert asset.status == 200, ref
        assert asset.content_type == CONTENT_TYPES[name]
        assert query == f"v={console.assets[name].version}"
        assert header(asset, "Cache-Control") == CACHE_IMMUTABLE
        assert header(asset, "ETag") == f'"{console.assets[name].version}"'
    assert get(console, "/console/index.html").body == resp.body
    # without the current hash (an old page, a hand-typed URL): revalidated, not pinned
    for path in ("/console/console.js", "/console/console.css?v=0ld"):
        assert header(get(console, path), "Cache-Control") == CACHE_REVALIDATE
    js = get(console, "/console/console.js")
    assert js.content_type == "text/javascript; charset=utf-8"
    assert get(console, "/console/console.css").content_type == "text/css; charset=utf-8"
    assert get(console, "/console/favicon.svg").content_type == "image/svg+xml"


def test_security_headers(console: Console) -> None:
    for path in ("/console/", "/console/console.js", "/console/missing", "/console"):
        resp = get(console, path)
        csp = header(resp, "Content-Security-Policy") or ""
        assert "default-src 'none'" in csp and "script-src 'self'" in csp, path
        assert "frame-ancestors 'none'" in csp
        assert header(resp, "X-Content-Type-Options") == "nosniff"


def test_conditional_get_is_a_304(console: Console) -> None:
    etag = header(get(console, "/console/"), "ETag")
    assert etag is not None
    for sent in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        resp = get(console, "/console/", **{"if-none-match": sent})
        assert resp.status == 304 and resp.body == b"", sent
        assert header(resp, "ETag") == etag
    assert get(console, "/console/", **{"if-none-match": '"stale"'}).status == 200


def test_gzip_when_accepted(console: Console) -> None:
    plain = get(console, "/console/console.js")
    assert header(plain, "Content-Encoding") is None
    packed = get(console, "/console/console.js", **{"accept-encoding": "gzip, deflate, br"})
    assert header(packed, "Content-Encoding") == "gzip"
    assert header(packed, "Vary") == "Accept-Encoding"
    assert gzip.decompress(packed.body) == plain.body
    assert len(packed.body) < len(plain.body) / 2
    refused = get(console, "/console/console.js", **{"accept-encoding": "gzip;q=0"})
    assert header(refused, "Content-Encoding") is None
    tiny = get(console, "/console/favicon.svg", **{"accept-encoding": "gzip"})
    assert header(tiny, "Content-Encoding") is None  # too small to be worth it


def test_redirect_404_405(console: Console) -> None:
    resp = get(console, "/console")
    assert resp.status == 301 and header(resp, "Location") == "console/"
    assert header(get(console, "/console?x=1"), "Location") == "console/?x=1"
    for path in (
        "/console/missing.js",
        "/console/../pyproject.toml",
        "/console/index.html/",
        "/console/console/",
        "/console/__init__.py",
    ):
        resp = get(console, path)
        assert resp.status == 404, path
        assert resp.content_type.startswith("text/plain")
    post = Request(method="POST", path="/console/", query="", headers={}, body=b"x")
    resp = console.handle(post)
    assert resp.status == 405 and header(resp, "Allow") == "GET"


def fetch(
    server: ServerProcess, method: str, path: str, body: bytes | None = None, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_served_by_a_real_node(server: ServerProcess) -> None:
    status, headers, _ = fetch(server, "GET", "/console")
    assert status == 301 and headers["location"] == "console/"
    status, headers, body = fetch(server, "GET", "/console/")
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert b"<title>Conveyor</title>" in body
    assert b"{{" not in body
    js = re.search(rb'src="(console\.js\?v=[0-9a-f]+)"', body)
    assert js is not None
    status, headers, _ = fetch(server, "GET", f"/console/{js.group(1).decode()}")
    assert status == 200 and headers["cache-control"] == CACHE_IMMUTABLE
    status, _, _ = fetch(server, "GET", "/console/console.js", **{"If-None-Match": headers["etag"]})
    assert status == 304
    status, _, _ = fetch(server, "GET", "/console/nothing-here")
    assert status == 404
    # the page's API: relative to /console/, the admin API of the same node
    status, headers, _ = fetch(server, "GET", "/api/v1/history")
    assert status == 200 and headers["content-type"] == "application/json"


def test_pages_of_other_sites_cannot_change_the_node(server: ServerProcess) -> None:
    """The admin API has no authentication, and the console puts it in a browser: a
    page of another site must not be able to purge a queue through the operator's
    browser (CSRF). Browsers name the page's origin; SDKs and curl send no Origin."""
    with conveyor.Client(server.native_address) as client:
        client.create_queue("guarded")
        client.send("guarded", "keep me")
    own = f"http://127.0.0.1:{server.port}"
    purge = "/api/v1/queues/guarded/purge"
    send = "/api/v1/queues/guarded/messages"
    json_body = {"Content-Type": "application/json"}
    for origin in ("http://evil.example", "null", f"http://127.0.0.1:{server.port + 1}"):
        status, _, body = fetch(server, "POST", purge, Origin=origin)
        assert status == 403 and b"AccessDenied" in body, origin
        status, _, _ = fetch(server, "POST", send, b'{"body": "x"}', Origin=origin, **json_body)
        assert status == 403
    status, _, body = fetch(server, "GET", "/api/v1/queues/guarded", Origin="http://evil.example")
    assert status == 200 and b'"messages":1' in body  # reads are not changes; nothing changed
    # the console's own page, a proxy in front of it, and clients without Origin may
    status, _, _ = fetch(server, "POST", send, b'{"body": "x"}', Origin=own, **json_body)
    assert status == 200
    status, _, _ = fetch(
        server,
        "POST",
        send,
        b'{"body": "y"}',
        Origin="https://queues.example.com",
        **{"X-Forwarded-Host": "queues.example.com", **json_body},
    )
    assert status == 200
    status, _, _ = fetch(server, "POST", purge)
    assert status == 200
