"""Helpers for the SQS server tests: a server to talk to and clients that talk to it.

:class:`InProcessServer` runs the real HTTP server (``conveyor.server.http``) with the
real :class:`~conveyor.server.sqs_api.SqsApi` over a real broker on a data directory,
in an event loop on a thread, bound to 127.0.0.1 on a free port. It is what the tests
use when ``conveyor.testing.ServerProcess`` (the ``conveyor serve`` subprocess) is not
there, and always for servers with settings the command line cannot give.
"""

from __future__ import annotations

import asyncio
import http.client
import itertools
import json
import os
import sys
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.session
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sqs_protocol"))

from sqs_botocore import query_model_dict

from conveyor.broker.aio import open_async
from conveyor.server.http import start_http
from conveyor.server.settings import Settings
from conveyor.server.sqs_api import SqsApi

REGION = "eu-west-1"
NO_RETRIES = Config(retries={"max_attempts": 1, "mode": "standard"}, read_timeout=40)

_names = itertools.count()


def qname(stem: str, fifo: bool = False) -> str:
    """A queue name no other test uses (tests share one server)."""
    name = f"{stem}-{os.getpid()}-{next(_names)}"
    return f"{name}.fifo" if fifo else name


class InProcessServer:
    def __init__(self, data_dir: Path, **settings: Any) -> None:
        self.data_dir = data_dir
        self.settings = Settings(data_dir=str(data_dir), port=0, **settings)
        self.http_url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self.api: SqsApi | None = None

    def start(self) -> InProcessServer:
        ready: Future[str] = Future()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        self.http_url = ready.result(timeout=30)
        return self

    def _run(self, ready: Future[str]) -> None:
        async def main() -> None:
            try:
                broker = await open_async(self.data_dir, fsync=self.settings.fsync)
                api = SqsApi(broker, self.settings)
                server, connections = await start_http(api.handle, "127.0.0.1", 0)
                port = server.sockets[0].getsockname()[1]
                self._loop = asyncio.get_running_loop()
                self._stop = asyncio.Event()
                self.api = api
            except BaseException as exc:
                ready.set_exception(exc)
                raise
            ready.set_result(f"http://127.0.0.1:{port}")
            await self._stop.wait()
            server.close()
            for conn in list(connections):
                conn.close_when_idle()
            await api.close()
            await broker.close()

        asyncio.run(main())

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=30)

    def __enter__(self) -> InProcessServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def write_query_model(root: Path) -> Path:
    """A botocore data directory whose SQS model speaks the query protocol."""
    target = root / "sqs" / "2012-11-05"
    target.mkdir(parents=True, exist_ok=True)
    (target / "service-2.json").write_text(json.dumps(query_model_dict()))
    return root


def make_client(
    url: str,
    protocol: str = "json",
    query_dir: Path | None = None,
    *,
    access_key: str = "AKIDEXAMPLE",
    secret: str = "secret",
    region: str = REGION,
) -> Any:
    """A real boto3 SQS client on ``url``, speaking ``protocol`` (json or query)."""
    session = botocore.session.get_session()
    if protocol == "query":
        assert query_dir is not None
        session.get_component("data_loader").search_paths.insert(0, str(query_dir))
    client = boto3.Session(botocore_session=session).client(
        "sqs",
        endpoint_url=url,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret,
        config=NO_RETRIES,
    )
    assert client.meta.service_model.protocol == protocol
    return client


class RawResponse:
    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


def raw(
    url: str,
    method: str = "POST",
    path: str = "/",
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
) -> RawResponse:
    """One unsigned HTTP request, as a hand-written client would send it."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        resp = conn.getresponse()
        return RawResponse(resp.status, dict(resp.getheaders()), resp.read())
    finally:
        conn.close()


def json_call(url: str, action: str, params: Any, raw_body: bytes | None = None) -> RawResponse:
    body = raw_body if raw_body is not None else json.dumps(params).encode()
    return raw(
        url,
        body=body,
        headers={
            "X-Amz-Target": f"AmazonSQS.{action}",
            "Content-Type": "application/x-amz-json-1.0",
        },
    )


def query_call(url: str, form: str | bytes, path: str = "/", method: str = "POST") -> RawResponse:
    body = form.encode() if isinstance(form, str) else form
    if method == "GET":
        return raw(url, "GET", f"{path}?{body.decode()}")
    return raw(
        url,
        method,
        path,
        body=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
