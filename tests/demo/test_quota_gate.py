"""The demo host checks each use against the real API's quota first and makes only what is allowed."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from tests.conftest import free_port
from tests.web.conftest import served
from tests.web.web_support import SECRET, record_now
from usagemeter.demo import AI_CONTENT_GENERATION, CHAT_MESSAGES, DOCUMENT_EXPORT, FeatureUse, QuotaGate, admitted
from usagemeter_api import ApiSettings, create_app, mint_token
from usagemeter_clickhouse import Client, connect


@pytest.fixture
def api(chdb_url: str, database: str, clickhouse: Client) -> Iterator[str]:
    """The real API on the test's database; yields its /api/v1 URL."""
    settings = ApiSettings(jwt_secret=SecretStr(SECRET), quota_live_usage=False)
    with served(create_app(settings, lambda: connect(chdb_url, database))) as url:
        yield f"{url}/api/v1"


def test_a_reply_past_the_hard_limit_is_not_made_and_its_tokens_neither(api: str, clickhouse: Client) -> None:
    record_now(clickhouse, "carol", {AI_CONTENT_GENERATION: 50})  # the free plan's whole month
    gate = QuotaGate(api, mint_token(SECRET, "host", admin=True))
    chat = FeatureUse(CHAT_MESSAGES, "carol")
    # The free plan does not meter ai_tokens (the check answers 404): alone, they would go ahead.
    tokens = FeatureUse("ai_tokens", "carol", {"model": "gpt-4o-mini"}, amount=700)
    export = FeatureUse(DOCUMENT_EXPORT, "carol", {"format": "pdf"})

    assert admitted([chat, FeatureUse(AI_CONTENT_GENERATION, "carol"), tokens, export], gate.allows) == [chat, export]
    fresh = [FeatureUse(CHAT_MESSAGES, "ana"), FeatureUse(AI_CONTENT_GENERATION, "ana")]
    assert admitted(fresh, gate.allows) == fresh


def test_the_host_goes_ahead_and_says_so_when_the_check_cannot_answer(
    api: str, caplog: pytest.LogCaptureFixture
) -> None:
    use = FeatureUse(AI_CONTENT_GENERATION, "carol")
    with caplog.at_level(logging.WARNING, logger="usagemeter.demo"):
        assert QuotaGate(api, "not-a-token").allows(use)
        assert QuotaGate(f"http://127.0.0.1:{free_port()}/api/v1", "t").allows(use)
    assert "answered 401; the demo goes ahead unchecked" in caplog.text
    assert "cannot be read" in caplog.text
