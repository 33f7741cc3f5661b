"""The page's Content-Security-Policy in a real Chromium: the page works under it, and it stops leaks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.web.other_origin import OtherOrigin
from tests.web.web_support import record_now, token_for
from usagemeter_api.web import CONTENT_SECURITY_POLICY
from usagemeter_clickhouse import Client

pytest.importorskip("playwright", reason="Playwright for Python is not installed (pip install playwright)")
from playwright.sync_api import Page, expect

expect.set_options(timeout=20_000)

# Injected by the browser driver before any page script, so it sees every violation the page causes.
_WATCH_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.effectiveDirective} blocked ${event.blockedURI}`);
});
"""


@dataclass
class Watched:
    """A page with what its console said and the policy violations its document reported."""

    page: Page
    console: list[str] = field(default_factory=list)

    def violations(self) -> list[str]:
        """Violation events seen by the document, plus console lines that speak of the policy."""
        events: list[str] = self.page.evaluate("window.__cspViolations")
        return events + [line for line in self.console if "Content Security Policy" in line]


@pytest.fixture
def watched_page(browser: Any) -> Iterator[Any]:
    """Open a URL in a fresh context that records console messages and CSP violation events."""
    contexts: list[Any] = []

    def open_(url: str) -> Watched:
        context = browser.new_context()
        contexts.append(context)
        context.add_init_script(_WATCH_VIOLATIONS)
        page = context.new_page()
        watched = Watched(page)
        page.on("console", lambda message: watched.console.append(f"{message.type}: {message.text}"))
        page.goto(url)
        return watched

    yield open_
    for context in contexts:
        context.close()


def test_page_works_under_its_content_security_policy(site: str, clickhouse: Client, watched_page: Any) -> None:
    record_now(clickhouse, "alice", {"ai_content_generation": 12})
    watched: Watched = watched_page("about:blank")
    response = watched.page.goto(f"{site}/#token={token_for('alice')}")
    assert response is not None
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY

    page = watched.page
    expect(page.locator("#usage-app")).to_have_attribute("data-state", "ready")
    ai = page.locator('.quota[data-feature="ai_content_generation"]')
    expect(ai.locator(".used")).to_have_text("12 of 50 used")
    # The bar width is set through the CSSOM, which the policy allows; a style attribute would not be.
    assert ai.locator(".meter-fill").evaluate("fill => fill.getBoundingClientRect().width") > 0
    expect(ai.locator(".chart-caption")).to_have_text("12 this period")
    expect(page.locator("#card-system [data-field=value]")).to_contain_text("Operational")
    page.get_by_role("button", name="Refresh").click()
    expect(page.locator("#usage-app")).to_have_attribute("data-state", "ready")
    assert watched.violations() == []


def test_content_security_policy_stops_requests_to_other_origins(
    site: str, other_origin: OtherOrigin, watched_page: Any
) -> None:
    watched: Watched = watched_page(f"{site}/")
    expect(watched.page.locator("#usage-app")).to_have_attribute("data-view", "signin")
    outcome = watched.page.evaluate(
        """async (url) => {
            try {
                await fetch(url, { headers: { Authorization: "Bearer stolen" } });
                return "sent";
            } catch (error) {
                return "refused";
            }
        }""",
        f"http://{other_origin.host}/api/v1/quotas",
    )
    assert outcome == "refused"
    assert any(line.startswith("connect-src blocked") for line in watched.violations())
    assert other_origin.reached() == []


def test_another_origin_cannot_frame_the_page(site: str, other_origin: OtherOrigin, watched_page: Any) -> None:
    watched: Watched = watched_page(f"http://{other_origin.host}/probe")
    page = watched.page
    page.evaluate(
        """(url) => new Promise((done) => {
            const frame = document.createElement("iframe");
            frame.addEventListener("load", () => done());
            frame.src = url;
            document.body.append(frame);
        })""",
        f"{site}/",
    )
    framed = [frame for frame in page.frames if frame != page.main_frame]
    assert framed
    assert all(frame.locator("#usage-app").count() == 0 for frame in framed)
    assert any("frame-ancestors" in line for line in watched.console)
