"""The usage page's chart at a fixed clock: the whole period, the limit, the projection, the previous period."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tests.api.api_support import record_usage
from tests.web.conftest import DESKTOP, PHONE, served
from tests.web.web_support import SECRET, screenshot, token_for
from usagemeter_api import ApiSettings, create_app
from usagemeter_clickhouse import Client, connect

pytest.importorskip("playwright", reason="Playwright for Python is not installed (pip install playwright)")
from playwright.sync_api import Page, expect

expect.set_options(timeout=20_000)

# Half of November gone: 2 uses a day over 15 days is 30 of the free plan's 50, heading for 60 by
# November's end, which reaches 50 on November 26. October had 1 use a day.
NOW = datetime(2026, 11, 16, tzinfo=UTC)
USER = "hana"
#: What the table shows for a day still to come (an en dash).
TO_COME = "\u2013"


@pytest.fixture
def clocked_site(chdb_url: str, database: str, clickhouse: Client) -> Iterator[str]:
    """The API and page with the clock stopped at NOW, and USER's usage of November and October recorded."""
    november = [(USER, "ai_content_generation", datetime(2026, 11, day, 12, tzinfo=UTC), 2) for day in range(1, 16)]
    october = [(USER, "ai_content_generation", datetime(2026, 10, day, 12, tzinfo=UTC), 1) for day in range(1, 32)]
    chat = [(USER, "chat_messages", datetime(2026, 11, 3, 9, tzinfo=UTC), 10)]
    record_usage(clickhouse, november + october + chat)
    settings = ApiSettings(jwt_secret=SecretStr(SECRET), quota_live_usage=False)
    with served(create_app(settings, lambda: connect(chdb_url, database), clock=lambda: NOW)) as url:
        yield url


def _chart_page(open_page: Any, url: str, **options: Any) -> tuple[Page, Any]:
    page: Page = open_page(url, **options)
    row = page.locator('.quota[data-feature="ai_content_generation"]')
    expect(row.locator(".quota-chart")).to_have_attribute("data-state", "ready")
    return page, row


def _geometry(row: Any) -> dict[str, Any]:
    """The drawn chart's numbers: gridlines by value, and the limit, projection, total and previous lines."""
    return row.evaluate(
        """row => {
            const svg = row.querySelector("svg.chart");
            const points = (selector) => {
                const line = svg.querySelector(selector);
                return line ? line.getAttribute("points").split(" ").map((pair) => pair.split(",").map(Number)) : null;
            };
            const grid = [...svg.querySelectorAll(".chart-gridline")].map((line) => ({
                value: Number(line.dataset.value), y: Number(line.getAttribute("y1")),
                x1: Number(line.getAttribute("x1")), x2: Number(line.getAttribute("x2")),
            }));
            const limit = svg.querySelector(".chart-limit");
            return {
                days: Number(svg.dataset.days),
                bars: svg.querySelectorAll(".chart-bar").length,
                pastBars: svg.querySelectorAll(".chart-bar[data-used]").length,
                titles: svg.querySelectorAll(".chart-hit > title").length,
                grid,
                limit: limit ? { y: Number(limit.getAttribute("y1")), value: Number(limit.dataset.value) } : null,
                limitLabel: svg.querySelector(".chart-limit-label")?.textContent ?? null,
                projection: points(".chart-projection"),
                cumulative: points(".chart-cumulative"),
                previous: points(".chart-previous"),
            };
        }"""
    )


def _height(chart: dict[str, Any], value: float) -> float:
    """Where ``value`` lies on the chart's labelled cumulative axis, from its own gridlines."""
    zero = next(line for line in chart["grid"] if line["value"] == 0)
    top = max(chart["grid"], key=lambda line: line["value"])
    return zero["y"] - value / top["value"] * (zero["y"] - top["y"])


def test_chart_spans_the_period_with_limit_projection_and_previous_period_at_their_heights(
    clocked_site: str, open_page: Any, artifacts: Path
) -> None:
    page, row = _chart_page(open_page, f"{clocked_site}/#token={token_for(USER)}")
    chart = _geometry(row)

    assert (chart["days"], chart["bars"], chart["titles"]) == (30, 30, 30)  # all of November, future days empty
    assert 15 <= chart["pastBars"] <= 16
    assert chart["limit"] is not None and chart["limit"]["value"] == 50
    assert chart["limit"]["y"] == pytest.approx(_height(chart, 50), abs=0.02)
    assert chart["limitLabel"] == "Limit 50"
    left, right = chart["grid"][0]["x1"], chart["grid"][0]["x2"]
    slot = (right - left) / 30
    start, end = chart["projection"]
    assert start[1] == pytest.approx(_height(chart, 30), abs=0.02)  # from today's total...
    assert start[0] == pytest.approx(left + chart["pastBars"] * slot, abs=0.02)
    assert end == [pytest.approx(right, abs=0.02), pytest.approx(_height(chart, 60), abs=0.02)]  # ...to 60 at the end
    assert chart["cumulative"][-1][1] == pytest.approx(_height(chart, 30), abs=0.02)
    # October's running total, day n against day n: 30 by its 30th day (its 31st falls off November's chart).
    assert len(chart["previous"]) == 31
    assert chart["previous"][-1] == [pytest.approx(right, abs=0.02), pytest.approx(_height(chart, 30), abs=0.02)]
    expect(row.locator(".chart-hit").nth(2).locator("title")).to_have_text("Nov 3: 2 · total 6 · previous period 3")
    expect(row.locator(".legend-previous")).to_be_visible()
    expect(row.locator(".chart-caption")).to_have_text("30 this period · 31 last period")
    screenshot(page, artifacts, "usage-chart-desktop")

    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    box = row.locator("svg.chart").bounding_box()
    assert box is not None and box["x"] > 0 and box["x"] + box["width"] <= PHONE["width"]
    screenshot(page, artifacts, "usage-chart-phone")


def test_table_holds_the_exact_numbers_of_every_day(clocked_site: str, open_page: Any) -> None:
    page, row = _chart_page(open_page, f"{clocked_site}/#token={token_for(USER)}")
    table = row.locator(".chart-table")
    row.get_by_text("Show table").click()
    expect(table.locator("thead th")).to_have_text(["Day", "Used", "Total", "Previous period, total"])
    body = table.locator("tbody tr")
    expect(body).to_have_count(30)
    expect(body.nth(2).locator("th, td")).to_have_text(["Nov 3", "2", "6", "3"])
    expect(body.nth(14).locator("th, td")).to_have_text(["Nov 15", "2", "30", "15"])
    expect(body.nth(19).locator("th, td")).to_have_text(["Nov 20", TO_COME, TO_COME, "20"])
    expect(body.nth(29).locator("th, td")).to_have_text(["Nov 30", TO_COME, TO_COME, "30"])
    assert page.locator("table").count() == 3  # one per feature


def test_upgrade_suggestion_appears_only_where_the_projection_crosses_the_limit_in_english(
    clocked_site: str, open_page: Any
) -> None:
    page, row = _chart_page(open_page, f"{clocked_site}/#token={token_for(USER)}")
    expect(row.locator(".quota-forecast")).to_have_text(
        "At this pace you will reach your limit around Nov 26, before the period ends."
        " Upgrade your plan to keep going without interruption."
    )
    # 10 chat messages by mid-month head for 20 of 500; no usage of exports heads for 0.
    expect(page.locator('.quota[data-feature="chat_messages"] .quota-chart')).to_have_attribute("data-state", "ready")
    expect(page.locator('.quota[data-feature="chat_messages"] .quota-forecast')).to_be_hidden()
    expect(page.locator('.quota[data-feature="document_export"] .quota-forecast')).to_be_hidden()


def test_chart_and_upgrade_suggestion_in_spanish_at_phone_and_desktop_widths(
    clocked_site: str, open_page: Any, artifacts: Path
) -> None:
    url = f"{clocked_site}/?lang=es#token={token_for(USER)}"
    page, row = _chart_page(open_page, url, viewport=PHONE, locale="es-ES")
    expect(row.locator(".quota-forecast")).to_contain_text("A este ritmo alcanzarás tu límite hacia el 26 nov")
    expect(row.locator(".chart-limit-label")).to_have_text("Límite 50")
    expect(row.locator(".chart-unit")).to_have_text("usos")
    expect(row.locator(".legend-previous")).to_have_text("Periodo anterior")
    expect(row.locator("summary")).to_have_text("Mostrar tabla")
    expect(row.locator(".chart-caption")).to_have_text("30 en este periodo · 31 el periodo anterior")
    expect(page.locator('.quota[data-feature="chat_messages"] .quota-forecast')).to_be_hidden()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, artifacts, "usage-chart-phone-es")

    page.set_viewport_size(DESKTOP)
    expect(row.locator(".chart-hit").nth(2).locator("title")).to_have_text("3 nov: 2 · total 6 · periodo anterior 3")
    screenshot(page, artifacts, "usage-chart-desktop-es")


def test_previous_period_is_read_once_per_feature_across_refreshes(clocked_site: str, open_page: Any) -> None:
    requests: list[str] = []
    page: Page = open_page("about:blank")
    page.on("request", lambda request: requests.append(request.url))
    page.goto(f"{clocked_site}/?refresh=1#token={token_for(USER)}")
    expect(page.locator("#usage-app")).to_have_attribute("data-view", "dashboard")
    first = page.locator("#last-updated").get_attribute("data-at")
    expect(page.locator("#last-updated")).not_to_have_attribute("data-at", first or "")
    ranged = [url for url in requests if "from=" in url]
    assert len(ranged) == 3, ranged  # three features, October read once each
    assert all("from=2026-10-01T00%3A00%3A00.000Z&to=2026-11-01T00%3A00%3A00.000Z" in url for url in ranged)
