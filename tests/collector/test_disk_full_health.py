"""In ``usagemeter up`` the API's health summary says degraded, and why, while the collector's spool cannot write."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.collector.conftest import T0, post_metrics, usage_point, usage_request, wait_for
from tests.collector.small_disk import Filler, small_disk
from tests.e2e.conftest import start_up, stop_up


def _health(api: str) -> dict:
    response = httpx.get(f"{api}/health", timeout=10)
    assert response.status_code == 200
    return dict(response.json())


def test_health_is_degraded_with_the_reason_while_the_spool_cannot_write(data_dir: Path, tmp_path: Path) -> None:
    with small_disk(data_dir / "spool") as spool:
        running = start_up(data_dir, tmp_path / "up.log")
        try:
            healthy = _health(running.api)
            assert healthy["status"] == "ok" and healthy["collector"]["spool_writable"] is True
            filler = Filler(spool / "filler")
            filler.fill()
            request = usage_request([usage_point("alice", 2, T0)])
            assert post_metrics(running.http_port, request).status_code == 503

            degraded = _health(running.api)
            assert degraded["status"] == "degraded"
            assert degraded["clickhouse"] == "ok"
            collector = degraded["collector"]
            assert (collector["spool_writable"], collector["spool_last_error"]) == (False, "ENOSPC")
            assert collector["spool_unwritable_since"] is not None and collector["spool_write_errors"] >= 1
            assert "spool cannot write" in collector["reasons"][0] and "ENOSPC" in collector["reasons"][0]

            filler.remove()
            assert post_metrics(running.http_port, request).status_code == 200
            assert wait_for(lambda: _health(running.api)["status"] == "ok", 30)
            assert _health(running.api)["collector"]["reasons"] == []
        finally:
            assert stop_up(running) == 0, running.output()
