"""The ?api= parameter in a real Chromium: the token never goes to another origin, whatever the link says."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest

from tests.web.other_origin import OtherOrigin
from tests.web.web_support import record_now, token_for
from usagemeter_clickhouse import Client

pytest.importorskip("playwright", reason="Playwright for Python is not installed (pip install playwright)")
from playwright.sync_api import Page, expect

expect.set_options(timeout=20_000)

CORPUS = Path(__file__).with_name("hostile_api_values.txt")


def hostile_values(other: OtherOrigin, site: str) -> list[str]:
    """The corpus with its placeholders filled in for this run's two origins."""
    own_host = site.removeprefix("http://")
    values = []
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        values.append(
            line.replace("{other}", other.host).replace("{port}", str(other.port)).replace("{self}", own_host)
        )
    return values


@pytest.fixture
def fresh_page(browser: Any) -> Iterator[Any]:
    """Open a page in a browser context of its own that is closed right after use (many per test)."""
    opened: list[Any] = []

    def open_(url: str) -> tuple[Page, list[str]]:
        for context in opened:
            context.close()
        opened.clear()
        context = browser.new_context()
        opened.append(context)
        page = context.new_page()
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.goto(url)
        return page, requests

    yield open_
    for context in opened:
        context.close()


def _shows_alices_usage(page: Page) -> None:
    expect(page.locator("#usage-app")).to_have_attribute("data-state", "ready")
    expect(page.locator("#greeting")).to_have_text("Hello, alice")
    expect(page.locator('.quota[data-feature="ai_content_generation"] .used')).to_have_text("12 of 50 used")


def test_the_other_origin_records_what_reaches_it(other_origin: OtherOrigin, fresh_page: Any) -> None:
    for address in (f"127.0.0.1:{other_origin.port}", f"[::1]:{other_origin.port}", f"localhost:{other_origin.port}"):
        before = len(other_origin.requests)
        page, _ = fresh_page(f"http://{address}/probe")
        expect(page.locator("body")).to_contain_text("elsewhere")
        assert len(other_origin.requests) > before, address
    assert any(peer == "::1" for peer in other_origin.connections)


def test_api_base_refuses_every_hostile_value(site: str, other_origin: OtherOrigin, open_page: Any) -> None:
    page: Page = open_page(f"{site}/")
    results = page.evaluate(
        """async (values) => {
            const { apiBase } = await import("/static/api.js");
            const root = document.createElement("div");
            return values.map((value) => [value, apiBase(root, new URLSearchParams([["api", value]]))]);
        }""",
        [_decoded(value) for value in hostile_values(other_origin, site)],
    )
    accepted = [value for value, result in results if result != {"base": "", "refused": True}]
    assert not accepted, f"taken as the API base: {accepted}"


def _decoded(query_value: str) -> str:
    # What URLSearchParams reads from the link's query string.
    return unquote_plus(query_value)


def test_hostile_api_links_send_nothing_elsewhere_and_read_this_origin(
    site: str, clickhouse: Client, other_origin: OtherOrigin, fresh_page: Any
) -> None:
    record_now(clickhouse, "alice", {"ai_content_generation": 12})
    token = token_for("alice")
    problems: dict[str, list[str]] = {}
    for value in hostile_values(other_origin, site):
        before = len(other_origin.reached())
        page, requests = fresh_page(f"{site}/?api={value}#token={token}")
        expect(page.locator("#usage-app[data-state]")).to_have_count(1)  # done reading, well or not
        found = [url for url in requests if not url.startswith(f"{site}/")] + other_origin.reached()[before:]
        if page.locator("#usage-app").get_attribute("data-state") != "ready":
            found.append(f"page state {page.locator('#usage-app').get_attribute('data-state')}")
        if page.locator("#greeting").text_content() != "Hello, alice":
            found.append(f"greeting {page.locator('#greeting').text_content()!r}")
        if not page.locator("#api-notice").is_visible():
            found.append("no notice that the value was ignored")
        if found:
            problems[value] = found
    assert not problems, f"hostile ?api= values not refused: {problems}"
    assert other_origin.reached() == []


@pytest.mark.parametrize("value", ["http://{self}", "//{self}/", "/", "HTTP://{self}/"])
def test_api_values_naming_this_origin_are_used_without_a_notice(
    site: str, clickhouse: Client, open_page: Any, value: str
) -> None:
    record_now(clickhouse, "alice", {"ai_content_generation": 12})
    api = value.replace("{self}", site.removeprefix("http://"))
    page: Page = open_page(f"{site}/?api={api}#token={token_for('alice')}")
    _shows_alices_usage(page)
    expect(page.locator("#api-notice")).to_be_hidden()


def test_a_path_on_this_origin_becomes_the_api_base(site: str, open_page: Any) -> None:
    requests: list[str] = []
    page: Page = open_page("about:blank")
    page.on("request", lambda request: requests.append(request.url))
    page.goto(f"{site}/?api=/usage-api/#token={token_for('alice')}")
    # Nothing is served there, so the page reports the error; what matters is where it asked.
    expect(page.locator("#usage-app")).to_have_attribute("data-state", "error")
    expect(page.locator("#api-notice")).to_be_hidden()
    assert f"{site}/usage-api/api/v1/quotas" in requests
