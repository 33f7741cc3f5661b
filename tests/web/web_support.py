"""Helpers for the usage page tests: tokens, real usage rows and polling."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt

from tests.api.api_support import SECRET, record_usage
from usagemeter_api import mint_token
from usagemeter_clickhouse import Client

__all__ = ["SECRET", "expired_token", "record_now", "record_spread", "screenshot", "token_for", "wait_until"]

# USAGEMETER_UPDATE_SCREENSHOTS=1 also refreshes the screenshots the docs show.
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def token_for(user_id: str, *, ttl_seconds: int = 3600) -> str:
    """A real token for ``user_id`` signed with the test server's secret."""
    return mint_token(SECRET, user_id, ttl_seconds=ttl_seconds)


def expired_token(user_id: str) -> str:
    """A token for ``user_id`` with the right signature whose ``exp`` has passed."""
    past = datetime.now(UTC) - timedelta(hours=1)
    return jwt.encode({"sub": user_id, "iat": past - timedelta(hours=1), "exp": past}, SECRET, algorithm="HS256")


def record_now(client: Client, user_id: str, counts: dict[str, float]) -> None:
    """Insert delta feature.usage points for ``user_id`` a moment ago, so they count in the current period."""
    at = _moment_ago()
    record_usage(client, [(user_id, feature, at, value) for feature, value in counts.items()])


def record_spread(client: Client, user_id: str, feature: str, total: int) -> None:
    """Insert ``total`` uses of ``feature`` spread unevenly over the days of the current month so far."""
    now = datetime.now(UTC)
    days = [now.replace(day=day, hour=0, minute=0, second=0, microsecond=0) for day in range(1, now.day)]
    days.append(_moment_ago())
    weights = [1 + (index * 7) % 5 for index in range(len(days))]
    shares = [total * weight // sum(weights) for weight in weights]
    shares[-1] += total - sum(shares)
    record_usage(client, [(user_id, feature, at, share) for at, share in zip(days, shares, strict=True) if share])


def _moment_ago() -> datetime:
    # A few seconds back, but never before the month began, so the use counts in the current period.
    now = datetime.now(UTC)
    return max(now - timedelta(seconds=5), now.replace(day=1, hour=0, minute=0, second=0, microsecond=0))


def wait_until(condition: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    """Poll ``condition`` until it is truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def screenshot(page: Any, artifacts: Path, name: str) -> None:
    """Save a full-page screenshot of ``page`` as ``<name>.png`` in ``artifacts`` (and docs/screenshots on request)."""
    path = artifacts / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("USAGEMETER_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(path, DOCS_SCREENSHOTS / path.name)
