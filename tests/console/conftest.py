"""Fixtures for the web console tests: a real server, and real headless Chromium driven
by Playwright (the Debian ``chromium`` package; Playwright never downloads a browser).

Without Chromium or Playwright the browser tests skip, except under CI (``CI=true``),
where they fail and say what is missing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor.testing import ServerProcess

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"  # screenshots (git-ignored)
VIEWPORT = {"width": 1440, "height": 900}


def _missing(why: str) -> None:
    message = (
        f"{why}. The console tests drive real headless Chromium: install the Debian "
        "package (apt-get install chromium, or ./scripts/install as root) and Playwright "
        "(pip install -e '.[test]'); set CONVEYOR_CHROMIUM to use another binary."
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = os.environ.get("CONVEYOR_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.access(path, os.X_OK):
        _missing(f"no Chromium at {path}")
    return path


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright for Python is not installed")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data: Path = tmp_path_factory.mktemp("console") / "data"
    with ServerProcess(data, fsync="never") as srv:
        yield srv


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_failed] = report.failed
    return report


_failed = pytest.StashKey[bool]()


@pytest.fixture
def page(browser: Any, artifacts: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page at laptop size. A JavaScript error fails the test; a failed test
    leaves a screenshot in test-artifacts/ (failed-<test>.png)."""
    context = browser.new_context(viewport=VIEWPORT, color_scheme="light")
    pg = context.new_page()
    pg.set_default_timeout(10_000)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))

    def on_console(msg: Any) -> None:
        # a 4xx the test asked for is logged by the browser as a failed resource load
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            errors.append(f"console error: {msg.text}")

    pg.on("console", on_console)
    try:
        yield pg
        if request.node.stash.get(_failed, False):
            pg.screenshot(path=str(artifacts / f"failed-{request.node.name}.png"), full_page=True)
    finally:
        context.close()
    assert not errors, errors
