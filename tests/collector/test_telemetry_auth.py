"""The collector's own Prometheus metrics are guarded by the ingest tokens when they are configured."""

from __future__ import annotations

import httpx


def test_metrics_need_an_ingest_token_when_tokens_are_configured(start_collector):
    collector = start_collector(ingest_tokens="s3cret, other")
    url = f"http://127.0.0.1:{collector.http_port}/metrics"
    refused = httpx.get(url)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert "usagemeter_collector" not in refused.text
    assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    scraped = httpx.get(url, headers={"Authorization": "Bearer other"})
    assert scraped.status_code == 200
    assert "usagemeter_collector_items_accepted" in scraped.text


def test_metrics_are_open_when_no_token_is_configured(collector):
    scraped = httpx.get(f"http://127.0.0.1:{collector.http_port}/metrics")
    assert scraped.status_code == 200
    assert "usagemeter_collector_items_accepted" in scraped.text
