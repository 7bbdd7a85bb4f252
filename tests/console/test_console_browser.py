"""The web console in real headless Chromium against a real server: the overview, a
queue page, a send through the form, purge, and a dead-letter redrive. Screenshots of
the overview and of a queue page are kept in test-artifacts/."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

import conveyor
from conveyor.testing import ServerProcess

LIVE_TIMEOUT_MS = 8_000  # the page polls every 2 s
SAMPLE_TIMEOUT_MS = 15_000  # the node samples its history every 5 s


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[conveyor.Client]:
    c = conveyor.Client(server.native_address)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module", autouse=True)
def queues(client: conveyor.Client) -> None:
    """orders (3 messages) dead-letters into orders-dlq (2 messages), payments.fifo."""
    client.create_queue("orders-dlq")
    client.create_queue(
        "orders",
        {"redrive": {"dead_letter_queue": "orders-dlq", "max_receive_count": 1}},
        tags={"team": "checkout"},
    )
    client.create_queue("payments.fifo", {"content_dedup": True})
    for i in range(2):
        client.send("orders", f"poison {i}")
    for _ in range(2):  # received once, then moved to the dead-letter queue
        client.receive("orders", max_messages=10, visibility_timeout_s=0)
    for i in range(3):
        client.send("orders", json.dumps({"order": i}))
    client.send("payments.fifo", "debit 10", group_id="account-7")


def stats(server: ServerProcess, name: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{server.http_url}/api/v1/queues/{name}", timeout=5) as resp:
        body: dict[str, Any] = json.load(resp)
    return body["stats"]


def chart_points(page: Any, selector: str) -> int:
    value = page.locator(selector).first.get_attribute("data-points")
    return int(value or 0)


def wait_points(page: Any, selector: str, at_least: int) -> None:
    page.wait_for_function(
        "([sel, n]) => Number(document.querySelector(sel)?.dataset.points || 0) >= n",
        arg=[selector, at_least],
        timeout=SAMPLE_TIMEOUT_MS,
    )


def stat(page: Any, key: str) -> Any:
    return page.locator(f'[data-stat="{key}"] .stat-value')


def test_overview_lists_queues_and_updates_live(
    page: Any, server: ServerProcess, client: conveyor.Client, artifacts: Path
) -> None:
    page.goto(f"{server.http_url}/console")  # redirected to /console/
    assert page.url == f"{server.http_url}/console/"
    expect(page.locator("#status")).to_have_attribute("data-state", "live")
    rows = page.locator("table.queues tbody tr")
    expect(rows).to_have_count(3)
    assert rows.evaluate_all("rs => rs.map(r => r.dataset.queue)") == [
        "orders",
        "orders-dlq",
        "payments.fifo",
    ]
    orders = page.locator('tr[data-queue="orders"]')
    depth = orders.locator('td[data-field="messages"] .v')
    expect(depth).to_have_text("3")
    expect(orders.locator(".qsub")).to_have_text("dead letters → orders-dlq")
    dlq = page.locator('tr[data-queue="orders-dlq"]')
    expect(dlq.locator(".badge.dlq")).to_have_text("DLQ")
    expect(dlq.locator('td[data-field="messages"] .v')).to_have_text("2")
    expect(dlq).to_have_class("dlq-full")
    expect(page.locator('tr[data-queue="payments.fifo"] .badge.fifo')).to_be_visible()
    expect(stat(page, "queues")).to_have_text("3")
    expect(stat(page, "dead")).to_have_text("2")

    client.send("orders", "sent while the page is open")
    expect(depth).to_have_text("4", timeout=LIVE_TIMEOUT_MS)  # without a reload

    # the depth sparkline: history points from the node plus the live one
    wait_points(page, 'tr[data-queue="orders"] td[data-field="messages"] path.line', 2)
    page.locator(".filter").fill("fifo")
    expect(rows.locator("visible=true")).to_have_count(1)
    page.locator(".filter").fill("")
    page.locator(".filter").blur()
    page.screenshot(path=str(artifacts / "console-overview.png"))


def test_queue_page_send_through_the_form(
    page: Any, server: ServerProcess, artifacts: Path
) -> None:
    page.goto(f"{server.http_url}/console/")
    page.locator('tr[data-queue="orders"] .qname a').click()
    expect(page).to_have_url(f"{server.http_url}/console/#/queues/orders")
    expect(page.locator("h1 .qtitle")).to_have_text("orders")
    before = stats(server, "orders")["messages"]
    messages = stat(page, "messages")
    expect(messages).to_have_text(str(before))
    expect(page.locator(".kv")).to_contain_text("orders-dlq after 1 receive")
    expect(page.locator(".tag")).to_have_text("teamcheckout")

    body = json.dumps({"order": 42, "source": "console test"})
    page.locator("#send-body").fill(body)
    page.locator("#send-delay").fill("0")
    page.get_by_role("button", name="+ Add").click()
    page.locator("[name=attr-name]").fill("kind")
    page.locator("[name=attr-value]").fill("test")
    page.locator("#send-submit").click()
    expect(page.locator(".form-result.ok")).to_contain_text("Sent")
    expect(messages).to_have_text(str(before + 1))
    assert stats(server, "orders")["messages"] == before + 1

    # the peek table shows it (oldest first: the last row); opening it shows all of it
    row = page.locator("table.peek tr.msg").last
    expect(row).to_contain_text('"order": 42')
    expect(row).to_contain_text("1 attribute")
    row.click()
    detail = page.locator("tr.msg-detail:visible")
    expect(detail.locator(".msg-body")).to_contain_text('"source": "console test"')
    expect(detail).to_contain_text("kind")

    # the charts draw the node's history plus the live point
    wait_points(page, '[data-chart="depth"] path.line[data-series="visible"]', 2)
    assert chart_points(page, '[data-chart="age"] path.line') >= 2
    expect(page.locator('[data-chart="depth"] .legend-value').first).to_have_text(str(before + 1))
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(artifacts / "console-queue.png"), full_page=True)


def test_redrive_a_dead_letter_queue(page: Any, server: ServerProcess) -> None:
    source_before = stats(server, "orders")["messages"]
    assert stats(server, "orders-dlq")["messages"] == 2
    page.goto(f"{server.http_url}/console/#/queues/orders-dlq")
    expect(stat(page, "messages")).to_have_text("2")
    panel = page.locator(".dlq-panel")
    expect(panel).to_contain_text("Dead-letter queue for orders")
    page.locator("#redrive-button").click()
    dialog = page.locator("#dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("2 visible messages")
    expect(dialog.locator("#redrive-destination")).to_have_value("")  # back to the source
    dialog.locator("#dialog-ok").click()
    expect(dialog).to_be_hidden()
    expect(page.locator(".toast")).to_contain_text("Moved 2 messages")
    expect(stat(page, "messages")).to_have_text("0")
    assert stats(server, "orders-dlq")["messages"] == 0

    panel.locator("a", has_text="orders").click()  # over to the source queue
    expect(page.locator("h1 .qtitle")).to_have_text("orders")
    expect(stat(page, "messages")).to_have_text(str(source_before + 2))
    assert stats(server, "orders")["messages"] == source_before + 2


def test_purge_asks_first(page: Any, server: ServerProcess, client: conveyor.Client) -> None:
    client.create_queue("scratch")
    for i in range(5):
        client.send("scratch", f"m{i}")
    page.goto(f"{server.http_url}/console/#/queues/scratch")
    expect(stat(page, "messages")).to_have_text("5")
    dialog = page.locator("#dialog")
    page.locator("#purge-button").click()
    expect(dialog).to_contain_text("Delete 5 messages from scratch")
    dialog.locator("#dialog-cancel").click()  # changes nothing
    expect(dialog).to_be_hidden()
    assert stats(server, "scratch")["messages"] == 5
    page.locator("#purge-button").click()
    dialog.locator("#dialog-ok").click()
    expect(stat(page, "messages")).to_have_text("0")
    assert stats(server, "scratch")["messages"] == 0
    expect(page.locator("table.peek tbody tr")).to_have_count(0)
    expect(page.locator(".peek-note")).to_have_text("The queue is empty.")


def test_unknown_queue(page: Any, server: ServerProcess) -> None:
    page.goto(f"{server.http_url}/console/#/queues/no-such-queue")
    expect(page.locator("main")).to_contain_text("No queue named no-such-queue.")
    page.get_by_role("link", name="All queues", exact=True).click()
    expect(page.locator("table.queues")).to_be_visible()
