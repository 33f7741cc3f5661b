"""The usage page says how fresh the figures are while its API's ClickHouse server is away."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tests.clickhouse_server import ClickHouseServer
from tests.conftest import ServerFactory
from tests.web.conftest import PHONE, served
from tests.web.web_support import SECRET, record_now, screenshot, token_for
from usagemeter_api import ApiSettings, create_app
from usagemeter_clickhouse import connect, migrate

pytest.importorskip("playwright", reason="Playwright for Python is not installed (pip install playwright)")
from playwright.sync_api import Locator, Page, expect

#: Long enough for the stale answers the test reads first on a busy machine, short enough to wait out.
_MAX_STALENESS_SECONDS = 15
_TIMEOUT_MS = 60_000
_AI = "ai_content_generation"


@pytest.fixture
def outage(server_factory: ServerFactory, database: str) -> Iterator[tuple[ClickHouseServer, str]]:
    """A ClickHouse server of the test's own (which it stops) with usage for ana, and the API and page served on it."""
    server = server_factory.server()
    client = connect(server.url(), database, create_database=True)
    migrate(client)
    record_now(client, "ana", {_AI: 12})
    client.close()
    settings = ApiSettings(jwt_secret=SecretStr(SECRET), quota_max_staleness_seconds=_MAX_STALENESS_SECONDS)
    with served(create_app(settings, lambda: connect(server.url(), database))) as url:
        yield server, url


def _open(open_page: Any, url: str, **options: Any) -> Page:
    page: Page = open_page(f"{url}/{options.pop('query', '?refresh=1')}#token={token_for('ana')}", **options)
    expect(page.locator("#usage-app")).to_have_attribute("data-view", "dashboard", timeout=_TIMEOUT_MS)
    return page


def _used(page: Page) -> Locator:
    return page.locator(f'.quota[data-feature="{_AI}"] .used')


def _minute_of(notice: Locator, clock: str) -> str:
    """The notice's as_of in UTC as ``clock`` (a strftime format) writes it."""
    as_of = notice.get_attribute("data-as-of")
    assert as_of is not None
    return datetime.fromisoformat(as_of).strftime(clock)


def test_stale_figures_show_a_calm_notice_with_their_time_then_the_unavailable_state_then_clear(
    outage: tuple[ClickHouseServer, str], open_page: Any, artifacts: Path
) -> None:
    server, url = outage
    page = _open(open_page, url, timezone_id="UTC")
    app, notice, banner = page.locator("#usage-app"), page.locator("#freshness-notice"), page.locator("#status-banner")
    expect(_used(page)).to_have_text("12 of 50 used", timeout=_TIMEOUT_MS)
    expect(app).to_have_attribute("data-freshness", "fresh")
    expect(notice).to_be_hidden()

    server.stop()
    expect(app).to_have_attribute("data-freshness", "stale", timeout=_TIMEOUT_MS)
    expect(notice).to_be_visible()
    expect(notice).to_have_text(
        f"Usage as of {_minute_of(notice, '%I:%M %p')}. Live figures are temporarily unavailable;"
        " this page updates by itself when they are back."
    )
    expect(notice).to_have_class("banner banner-info")  # informational, not the error banner's colours
    expect(banner).to_be_hidden()
    expect(_used(page)).to_have_text("12 of 50 used")
    screenshot(page, artifacts, "usage-stale-desktop")
    # A page opened during the outage shows the notice from its first answer, in its own language.
    spanish = _open(open_page, url, query="?refresh=1&lang=es", viewport=PHONE, timezone_id="UTC")
    spanish_notice = spanish.locator("#freshness-notice")
    expect(spanish_notice).to_have_text(
        f"Uso a las {_minute_of(spanish_notice, '%H:%M')}. Las cifras en vivo no están disponibles por el momento;"
        " esta página se actualizará sola cuando vuelvan."
    )
    expect(_used(spanish)).to_have_text("12 de 50 usados")

    # Past the bound the API refuses (503): the page shows its unavailable state, keeping the last figures.
    expect(app).to_have_attribute("data-state", "error", timeout=_MAX_STALENESS_SECONDS * 1000 + _TIMEOUT_MS)
    expect(banner).to_contain_text("Could not reach the usage service")
    expect(banner).to_contain_text("USAGEMETER_QUOTA_MAX_STALENESS_SECONDS")
    expect(notice).to_be_hidden()
    expect(_used(page)).to_have_text("12 of 50 used")

    server.start()
    expect(app).to_have_attribute("data-state", "ready", timeout=_TIMEOUT_MS)
    expect(app).to_have_attribute("data-freshness", "fresh", timeout=_TIMEOUT_MS)
    expect(banner).to_be_hidden()
    expect(notice).to_be_hidden()
    assert notice.get_attribute("data-as-of") is None
