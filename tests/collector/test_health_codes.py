"""GET /health answers reason codes to anyone, and ClickHouse's error text only to a caller with an ingest token."""

from __future__ import annotations

import errno
import time
from collections.abc import Callable

import httpx
import pytest
from pydantic import SecretStr

from tests.collector.conftest import T0, DrainedClient, LoopThread, post_metrics, usage_point, usage_request, wait_for
from tests.conftest import free_port
from usagemeter_api.domain.collector_probes import CollectorProbes
from usagemeter_api.schemas.operations import CollectorHealth
from usagemeter_clickhouse import connect
from usagemeter_collector import Collector
from usagemeter_collector._drain.landing import LANDING_TABLES
from usagemeter_collector._health import error_code

LANDING_SUM = LANDING_TABLES["sum"]
TOKEN = "health-test-ingest-token"


def _health(collector: Collector, token: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.get(f"http://127.0.0.1:{collector.http_port}/health", headers=headers, timeout=5)


def _send(collector: Collector) -> None:
    request = usage_request([usage_point("ana", 4, T0)]).SerializeToString()
    headers = {"Content-Type": "application/x-protobuf", "authorization": f"Bearer {TOKEN}"}
    response = httpx.post(f"http://127.0.0.1:{collector.http_port}/v1/metrics", content=request, headers=headers)
    assert response.status_code == 200, response.text


def test_a_reader_without_a_token_gets_reason_codes_and_never_the_insert_error_text(
    start_collector: Callable[..., Collector], clickhouse: DrainedClient, database: str
) -> None:
    client = clickhouse.undrained
    collector = start_collector(ingest_tokens=TOKEN, collector_unsent_degraded_seconds=0.5)
    client.command(f"DETACH TABLE {LANDING_SUM}")
    try:
        _send(collector)
        both = ["inserts_failing", "unsent_data_old"]
        assert wait_for(lambda: [finding.code for finding in collector.status().findings] == both, 30)
        public = _health(collector)
        assert public.status_code == 200
        body = public.json()
        assert body["status"] == "degraded" and body["insert_failing"] is True and body["detailed"] is False
        by_code = {code["code"]: code for code in body["codes"]}
        assert by_code["inserts_failing"]["error"] == body["insert_error_code"] == "UNKNOWN_TABLE", body
        assert by_code["unsent_data_old"]["age_seconds"] > 0.5
        assert "insert_last_error" not in body and "reasons" not in body
        error = collector.telemetry.insert_last_error
        assert LANDING_SUM in error and "Code: " in error  # the text holds what must stay private
        # The all-in-one process's unauthenticated API health shows the same codes, never the text.
        shown = CollectorHealth.model_validate(collector.status()).model_dump_json()
        assert "UNKNOWN_TABLE" in shown
        for private in (LANDING_SUM, database, "DB::Exception", "Code: "):
            assert private not in public.text, public.text
            assert private not in shown, shown

        detailed = _health(collector, TOKEN).json()
        assert detailed["detailed"] is True and LANDING_SUM in detailed["insert_last_error"]
        assert detailed["reasons"][0].startswith("inserts into ClickHouse failing since")
        assert [code["code"] for code in detailed["codes"]] == list(by_code)
        refused = _health(collector, "not-a-token")
        assert refused.status_code == 401 and LANDING_SUM not in refused.text
    finally:
        client.command(f"ATTACH TABLE {LANDING_SUM}")
    assert wait_for(lambda: _health(collector).json()["status"] == "ok", 30), _health(collector).json()


def test_an_error_code_names_the_kind_of_error_and_none_of_its_text(clickhouse: DrainedClient) -> None:
    with pytest.raises(Exception) as unknown:
        clickhouse.undrained.query("SELECT * FROM a_table_whose_name_is_private")
    assert error_code(unknown.value) == "UNKNOWN_TABLE"
    with pytest.raises(Exception) as refused:
        connect(f"http://user:secret@127.0.0.1:{free_port()}", "private_database")
    assert error_code(refused.value) == "ECONNREFUSED"
    # Capitals quoted inside the message are not taken for ClickHouse's name of the error, which ends it.
    message = "Code: 60. DB::Exception: Table (PRIVATE_DB) is gone. (UNKNOWN_TABLE) (version 26.9.1.1 (official))"
    assert error_code(message) == "UNKNOWN_TABLE"
    refusal = (
        "Code: 516. DB::Exception: ops: Authentication failed. (AUTHENTICATION_FAILED) (for url http://10.0.0.5:8123)"
    )
    assert error_code(refusal) == "AUTHENTICATION_FAILED"
    assert error_code("Code: 999. DB::Exception: something (PRIVATE_DB) new") == "CLICKHOUSE_ERROR_999"
    assert error_code(OSError(errno.ENOSPC, "No space left on device")) == "ENOSPC"
    assert error_code(RuntimeError("the private details")) == "RuntimeError"


def test_oldest_unsent_data_counts_acknowledged_records_in_the_segment_still_being_filled(
    start_collector: Callable[..., Collector],
) -> None:
    # A segment this slow to seal holds the request, acknowledged and not yet inserted, for the whole test.
    collector = start_collector(batch_max_delay_seconds=600)
    before = time.time()
    assert post_metrics(collector.http_port, usage_request([usage_point("ana", 4, T0)])).status_code == 200
    assert not collector.drained
    assert before <= collector.telemetry.oldest_unsent_since_seconds <= time.time()
    assert "\nusagemeter_collector_oldest_unsent_since_seconds 0" not in collector.telemetry.render()


def test_the_api_names_a_silent_url_by_the_instance_it_last_answered_and_remembers_only_configured_urls(
    start_collector: Callable[..., Collector], loop_thread: LoopThread
) -> None:
    collector = start_collector(ingest_tokens=TOKEN, self_telemetry_interval_seconds=60)
    url, never = f"http://127.0.0.1:{collector.http_port}", f"http://127.0.0.1:{free_port()}"
    probes = CollectorProbes(timeout=5)
    (answered, silent) = probes.probe([url, never], SecretStr(TOKEN))
    assert answered.instance == collector.instance_id is not None and answered.unreachable is None
    assert silent.instance is None and silent.unreachable is not None
    (refused,) = CollectorProbes(timeout=5).probe([url], SecretStr("not-a-token"))
    assert refused.unreachable == "the collector does not accept USAGEMETER_COLLECTOR_TOKEN (HTTP 401)"

    loop_thread.run(collector.stop())
    (stopped, still_silent) = probes.probe([url, never])
    assert stopped.unreachable is not None and stopped.instance == collector.instance_id
    assert still_silent.instance is None
    probes.probe([never])  # the collector's URL left the configuration: it is forgotten
    (forgotten,) = probes.probe([url])
    assert forgotten.unreachable is not None and forgotten.instance is None
