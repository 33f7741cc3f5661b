"""The usage page in a real headless Chromium against the real API and embedded ClickHouse."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tests.api.api_support import record_usage
from tests.web.conftest import PHONE, served
from tests.web.web_support import SECRET, expired_token, record_now, record_spread, screenshot, token_for
from usagemeter_api import ApiSettings, create_app, mint_token
from usagemeter_clickhouse import Client, connect, tables

pytest.importorskip("playwright", reason="Playwright for Python is not installed (pip install playwright)")
from playwright.sync_api import Page, expect

expect.set_options(timeout=20_000)


def _signed_in(open_page: Any, url: str, **options: Any) -> Page:
    page: Page = open_page(url, **options)
    expect(page.locator("#usage-app")).to_have_attribute("data-view", "dashboard")
    return page


def _row(page: Page, feature: str) -> Any:
    return page.locator(f'.quota[data-feature="{feature}"]')


def test_token_link_shows_the_callers_usage(site: str, clickhouse: Client, open_page: Any, artifacts: Path) -> None:
    record_now(clickhouse, "alice", {"ai_content_generation": 12, "chat_messages": 30})
    token = token_for("alice")
    page = _signed_in(open_page, f"{site}/#token={token}")

    expect(page.locator("#greeting")).to_have_text("Hello, alice")
    expect(page.locator("#plan-badge")).to_have_text("Free plan")
    ai = _row(page, "ai_content_generation")
    expect(ai.locator(".used")).to_have_text("12 of 50 used")
    expect(ai.locator(".remaining")).to_have_text("38 left")
    expect(ai.locator(".state-text")).to_have_text("Within limit")
    expect(ai.locator('[role="progressbar"]')).to_have_attribute("aria-valuenow", "24")
    expect(_row(page, "chat_messages").locator(".used")).to_have_text("30 of 500 used")
    expect(_row(page, "document_export").locator(".chart-caption")).to_have_text("No usage yet this period.")
    expect(ai.locator(".chart-caption")).to_have_text("12 this period")
    bars = ai.locator(".chart-bar[data-used]").evaluate_all("bars => bars.map(bar => Number(bar.dataset.used))")
    assert sum(bars) == 12
    expect(page.locator("#card-ai [data-field=value]")).to_have_text("24%")
    expect(page.locator("#card-system [data-field=value]")).to_contain_text("Operational")
    expect(page.locator("#upgrade-cta")).to_be_hidden()
    expect(page.locator("#last-updated")).to_contain_text("Last updated")
    # The token moved out of the address bar into this tab's session storage.
    assert "token" not in page.url
    assert page.evaluate("sessionStorage.getItem('usagemeter.token')") == token
    screenshot(page, artifacts, "usage-desktop")


def test_near_and_over_limit_are_said_in_text(site: str, clickhouse: Client, open_page: Any, artifacts: Path) -> None:
    record_spread(clickhouse, "bob", "ai_content_generation", 42)
    record_spread(clickhouse, "bob", "chat_messages", 120)
    record_now(clickhouse, "bob", {"document_export": 11})
    page = _signed_in(open_page, f"{site}/#token={token_for('bob')}")

    ai = _row(page, "ai_content_generation")
    expect(ai).to_have_attribute("data-state", "near")
    expect(ai.locator(".state-text")).to_have_text("Near limit")
    expect(ai.locator(".state-icon")).to_have_text("⚠")
    expect(ai.locator('[role="progressbar"]')).to_have_attribute(
        "aria-valuetext", "42 of 50 used, 84% used, Near limit"
    )
    export = _row(page, "document_export")
    expect(export.locator(".state-text")).to_have_text("Limit exceeded")
    expect(export.locator('[role="progressbar"]')).to_have_attribute("aria-valuenow", "100")
    expect(page.locator("#upgrade-cta")).to_be_visible()
    expect(page.locator("#upgrade-text")).to_contain_text("AI content generation, Document exports")
    expect(page.locator("#card-ai [data-field=detail]")).to_contain_text("Near limit")
    expect(ai.locator(".chart-caption")).to_have_text("42 this period")
    bars = ai.locator(".chart-bar[data-used]").evaluate_all("bars => bars.map(bar => Number(bar.dataset.used))")
    assert sum(bars) == 42
    screenshot(page, artifacts, "usage-near-limit-desktop")

    page.set_viewport_size({"width": PHONE["width"], "height": PHONE["height"]})
    expect(page.locator("#upgrade-cta")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, artifacts, "usage-phone")


def test_each_token_sees_only_its_own_usage(site: str, clickhouse: Client, open_page: Any) -> None:
    record_now(clickhouse, "alice", {"ai_content_generation": 5})
    record_now(clickhouse, "bob", {"ai_content_generation": 33})
    requests: list[str] = []

    # A crafted ?api= pointing elsewhere is ignored: the token only ever goes to this origin.
    page: Page = open_page("about:blank")
    page.on("request", lambda request: requests.append(request.url))
    page.goto(f"{site}/?api=https://elsewhere.invalid#token={token_for('bob')}")
    expect(page.locator("#usage-app")).to_have_attribute("data-view", "dashboard")

    expect(page.locator("#greeting")).to_have_text("Hello, bob")
    expect(page.locator("#api-notice")).to_be_visible()
    expect(_row(page, "ai_content_generation").locator(".used")).to_have_text("33 of 50 used")
    api_calls = [url for url in requests if "/api/v1/" in url]
    assert api_calls and all(url.startswith(site) for url in requests)
    assert not any("user_id" in url for url in api_calls)


@pytest.mark.parametrize("kind", ["forged", "expired"])
def test_refused_token_shows_the_signin_state(site: str, open_page: Any, kind: str) -> None:
    token = (
        mint_token("another-secret-0123456789abcdef-0123456789", "alice")
        if kind == "forged"
        else expired_token("alice")
    )
    page: Page = open_page(f"{site}/#token={token}")

    expect(page.locator("#usage-app")).to_have_attribute("data-view", "signin")
    expect(page.locator("#usage-app")).to_have_attribute("data-auth", "expired")
    expect(page.locator("#signin-reason")).to_have_text(
        "Your session has expired or the access token is not valid. Sign in again."
    )
    expect(page.locator("#dashboard-view")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('usagemeter.token')") is None


def test_pasting_a_token_signs_in(site: str, clickhouse: Client, open_page: Any) -> None:
    record_now(clickhouse, "carol", {"chat_messages": 9})
    page: Page = open_page(f"{site}/")
    expect(page.locator("#usage-app")).to_have_attribute("data-view", "signin")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin-reason")).to_have_text("Paste an access token first.")

    page.get_by_label("Access token").fill(token_for("carol"))
    page.get_by_role("button", name="Sign in").click()
    expect(_row(page, "chat_messages").locator(".used")).to_have_text("9 of 500 used")
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#usage-app")).to_have_attribute("data-view", "signin")


def test_auto_refresh_updates_in_place(site: str, clickhouse: Client, open_page: Any) -> None:
    record_now(clickhouse, "dave", {"ai_content_generation": 3})
    page = _signed_in(open_page, f"{site}/?refresh=1#token={token_for('dave')}")
    ai = _row(page, "ai_content_generation")
    expect(ai.locator(".used")).to_have_text("3 of 50 used")
    ai.evaluate("row => { row.dataset.marker = 'first-render'; }")
    first_update = page.locator("#last-updated").get_attribute("data-at")

    record_now(clickhouse, "dave", {"ai_content_generation": 4})
    expect(ai.locator(".used")).to_have_text("7 of 50 used")
    expect(ai.locator(".chart-caption")).to_have_text("7 this period")
    expect(ai).to_have_attribute("data-marker", "first-render")  # the same element, updated in place
    assert page.locator("#last-updated").get_attribute("data-at") != first_update


def test_spanish_text(site: str, clickhouse: Client, open_page: Any, artifacts: Path) -> None:
    record_now(clickhouse, "eva", {"ai_content_generation": 45})
    page = _signed_in(open_page, f"{site}/?lang=es#token={token_for('eva')}", viewport=PHONE)

    assert page.evaluate("document.documentElement.lang") == "es"
    expect(page.locator("#greeting")).to_have_text("Hola, eva")
    expect(page.locator("#plan-badge")).to_have_text("Plan Free")
    expect(page.locator("#quotas-title")).to_have_text("Cuotas de uso")
    ai = _row(page, "ai_content_generation")
    expect(ai.locator(".quota-name")).to_have_text("Generación de contenido con IA")
    expect(ai.locator(".used")).to_have_text("45 de 50 usados")
    expect(ai.locator(".state-text")).to_have_text("Cerca del límite")
    expect(page.locator("#last-updated")).to_contain_text("Última actualización")
    screenshot(page, artifacts, "usage-phone-es")


def test_browser_language_is_followed(site: str, open_page: Any) -> None:
    page: Page = open_page(f"{site}/", locale="es-ES")
    expect(page.get_by_role("button", name="Iniciar sesión")).to_be_visible()


def test_dashboard_metric_cards_follow_the_server(site: str, clickhouse: Client, open_page: Any) -> None:
    record_now(clickhouse, "frank", {"ai_content_generation": 1})
    token = token_for("frank")
    answer = httpx.get(
        f"{site}/api/v1/analytics/dashboard-metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    page = _signed_in(open_page, f"{site}/#token={token}")

    conversions = page.locator("#card-conversions")
    if answer.status_code == 404:
        expect(conversions).to_have_attribute("data-state", "unavailable")
        expect(conversions.locator("[data-field=value]")).to_have_text("Unavailable")
        expect(page.locator("#card-workers")).to_have_attribute("data-state", "unavailable")
    else:
        assert answer.status_code == 200, answer.text
        expect(conversions).not_to_have_attribute("data-state", "unavailable")
        expect(page.locator("#card-workers")).not_to_have_attribute("data-state", "unavailable")
    expect(_row(page, "ai_content_generation").locator(".used")).to_have_text("1 of 50 used")


def test_metric_cards_read_the_dashboard_metrics_body(site: str, open_page: Any) -> None:
    body = {
        "conversions": {"total": 1250, "this_month": 84, "by_name": {"signup": {"total": 1000, "this_month": 60}}},
        "workers": {
            "status": "degraded",
            "workers": [{"worker_id": "w1", "status": "healthy"}, {"worker_id": "w2", "status": "down"}],
            "queues": [{"queue": "emails", "depth": 7}, {"queue": "exports", "depth": None}],
        },
        "health": {"status": "degraded", "summary": "2/3 services healthy", "healthy": 2, "total": 3},
    }
    page: Page = open_page(f"{site}/")
    page.evaluate(
        """async (body) => {
            const cards = await import("/static/cards.js");
            const { translator } = await import("/static/i18n.js");
            const i18n = translator("en");
            const card = (id) => document.getElementById(id);
            const metricCards = { conversions: card("card-conversions"), workers: card("card-workers") };
            cards.renderMetricCards(metricCards, body, i18n);
            cards.renderSystemCard(card("card-system"), { status: "ok", clickhouse: "ok" }, body, i18n);
        }""",
        body,
    )
    conversions = page.locator("#card-conversions")
    expect(conversions.locator("[data-field=value]")).to_have_text("84")
    expect(conversions.locator("[data-field=detail]")).to_have_text("this month · 1,250 all time")
    workers = page.locator("#card-workers")
    expect(workers.locator("[data-field=value]")).to_have_text("1 of 2 healthy")
    expect(workers.locator("[data-field=detail]")).to_have_text("7 jobs waiting")
    expect(workers).to_have_attribute("data-state", "warn")
    system = page.locator("#card-system")
    expect(system.locator("[data-field=value]")).to_have_text("⚠ Degraded")
    expect(system.locator("[data-field=detail]")).to_have_text("2 of 3 services healthy")


def test_worker_card_is_neutral_not_green_while_no_worker_reports(site: str, open_page: Any) -> None:
    # What /analytics/dashboard-metrics answers before any worker has reported: healthy, with none.
    body = {"conversions": {"total": 0, "this_month": 0}, "workers": {"status": "healthy", "workers": [], "queues": []}}
    page: Page = open_page(f"{site}/")
    border = page.evaluate(
        """async (body) => {
            const cards = await import("/static/cards.js");
            const { translator } = await import("/static/i18n.js");
            const card = (id) => document.getElementById(id);
            const workers = card("card-workers");
            const metricCards = { conversions: card("card-conversions"), workers };
            cards.renderMetricCards(metricCards, body, translator("en"));
            const neutral = getComputedStyle(workers).borderLeftColor;
            const state = workers.dataset.state;
            workers.dataset.state = "ok";
            const ok = getComputedStyle(workers).borderLeftColor;
            workers.dataset.state = state;
            return { neutral, ok };
        }""",
        body,
    )
    workers = page.locator("#card-workers")
    expect(workers).to_have_attribute("data-state", "neutral")
    expect(workers.locator("[data-field=detail]")).to_have_text("No workers reporting")
    assert border["neutral"] != border["ok"], border


_TOKEN_PLANS = """
default_plan = "tokens"

[plans.tokens]
name = "Tokens"

[plans.tokens.features.ai_tokens]
unit = "tokens"
dimension = "model"
limits = [
  { window = "5h", limit = 5000 },
  { window = "7d", limit = 20000 },
  { window = "month", limit = 1000, dimension_value = "gpt-4o" },
]
"""


@pytest.fixture
def token_site(chdb_url: str, database: str, clickhouse: Client, tmp_path: Path) -> Iterator[str]:
    """The API and page on a plan metering tokens over a 5h and a 7d window, with a monthly limit for one model."""
    plans = tmp_path / "plans.toml"
    plans.write_text(_TOKEN_PLANS, encoding="utf-8")
    clickhouse.insert(tables.USAGE_DIMENSIONS, [["model", True, 1]], column_names=["Attribute", "Active", "Version"])
    settings = ApiSettings(jwt_secret=SecretStr(SECRET), quota_live_usage=False, plans_file=plans)
    with served(create_app(settings, lambda: connect(chdb_url, database))) as url:
        yield url


def test_units_windows_and_dimension_items_are_shown_in_english_and_spanish(
    token_site: str, clickhouse: Client, open_page: Any, artifacts: Path
) -> None:
    record_usage(clickhouse, [("gina", "ai_tokens", datetime.now(UTC) - timedelta(seconds=5), 1250)], model="gpt-4o")
    page = _signed_in(open_page, f"{token_site}/#token={token_for('gina')}")
    row = _row(page, "ai_tokens")
    expect(row.locator(".used")).to_have_text("1,250 of 5,000 tokens used")
    expect(row.locator(".remaining")).to_have_text("3,750 tokens left")
    windows = row.locator(".quota-window")
    expect(windows).to_have_count(3)
    expect(windows.nth(0)).to_have_text("Last 5h: 1,250 of 5,000 tokens used")
    expect(windows.nth(1)).to_have_text("Last 7d: 1,250 of 20,000 tokens used")
    expect(windows.nth(2)).to_contain_text("gpt-4o, This month: 1,250 of 1,000 tokens used · frees up")
    expect(windows.nth(2)).to_have_attribute("data-state", "exceeded")
    expect(row.locator(".chart-caption")).to_have_text("1,250 tokens this period")
    screenshot(page, artifacts, "usage-tokens")

    spanish = _signed_in(open_page, f"{token_site}/?lang=es#token={token_for('gina')}", locale="es-ES")
    row = _row(spanish, "ai_tokens")
    expect(row.locator(".used")).to_have_text("1250 de 5000 tokens usados")
    expect(row.locator(".quota-window").nth(0)).to_have_text("Últimas 5h: 1250 de 5000 tokens usados")
    expect(row.locator(".quota-window").nth(2)).to_contain_text(
        "gpt-4o, Este mes: 1250 de 1000 tokens usados · se libera"
    )
