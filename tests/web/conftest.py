"""Fixtures for the usage page: the real app served by uvicorn and a real headless Chromium."""

from __future__ import annotations

import importlib.util
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr

from tests.conftest import free_port
from tests.web.other_origin import OtherOrigin
from tests.web.web_support import SECRET, wait_until
from usagemeter_api import ApiSettings, create_app
from usagemeter_clickhouse import Client, connect

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 812}


def _browser_missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "Playwright for Python is not installed (pip install playwright)"
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        return "Chromium is not installed (apt-get install chromium)"
    return None


# Package scope: Playwright's sync API keeps an event loop running in the main thread while it is
# open, which would break every later test that runs its own loop.
@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """One headless Chromium for the page tests, driven by Playwright."""
    missing = _browser_missing()
    if missing:
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    executable = str(CHROMIUM) if CHROMIUM.exists() else shutil.which("chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:
        """The server runs in a thread; signals stay with pytest."""


@contextmanager
def served(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` (lifespan included) with uvicorn on 127.0.0.1 in a thread; yields the base URL."""
    port = free_port()
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="usage-page-server", daemon=True)
    thread.start()
    wait_until(lambda: server.started, "the server to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def site(chdb_url: str, database: str, clickhouse: Client) -> Iterator[str]:
    """The real API plus the usage page on the test's database, served on 127.0.0.1; yields the base URL."""
    # The tests open the page right after inserting usage, and the live view (loaded at start) counts
    # it within a refresh, not at once: quotas are read from ClickHouse here, the view is tested on its own.
    settings = ApiSettings(jwt_secret=SecretStr(SECRET), quota_live_usage=False)
    with served(create_app(settings, lambda: connect(chdb_url, database))) as url:
        yield url


@pytest.fixture
def other_origin() -> Iterator[OtherOrigin]:
    """A second HTTP server on another loopback port that records every connection and request it gets."""
    origin = OtherOrigin()
    yield origin
    origin.close()


@pytest.fixture
def open_page(browser: Any) -> Iterator[Any]:
    """Open a fresh browser context (own sessionStorage) at a viewport, locale and time zone; closed after the test."""
    contexts: list[Any] = []

    def open_(
        url: str, viewport: dict[str, int] = DESKTOP, locale: str = "en-US", timezone_id: str | None = None
    ) -> Any:
        context = browser.new_context(viewport=viewport, locale=locale, timezone_id=timezone_id)
        contexts.append(context)
        page = context.new_page()
        page.goto(url)
        return page

    yield open_
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go (git-ignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
