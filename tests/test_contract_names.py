"""The telemetry contract's names, kept twice on purpose, must stay one contract.

The instrumentation depends on nothing of usagemeter's (a host service installs it alone), so it
keeps its own copy of the metric and attribute names that ``usagemeter_clickhouse.tables`` gives
the collector and the API, and the migrations and Grafana dashboards spell them in SQL.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from usagemeter_clickhouse import tables
from usagemeter_instrumentation import _names

ROOT = Path(__file__).resolve().parent.parent
#: What the instrumentation emits → what the readers look for.
PAIRS = [
    (_names.FEATURE_USAGE_METRIC, tables.USAGE_METRIC),
    (_names.USER_ID, tables.USER_ATTRIBUTE),
    (_names.FEATURE_KEY, tables.FEATURE_ATTRIBUTE),
    (_names.FEATURE_USE_SPAN, tables.FEATURE_USE_SPAN),
    (_names.CONVERSION_COUNT_METRIC, tables.CONVERSION_METRIC),
    (_names.CONVERSION_NAME, tables.CONVERSION_ATTRIBUTE),
    (_names.WORKER_HEARTBEAT_METRIC, tables.WORKER_HEARTBEAT_METRIC),
    (_names.WORKER_QUEUE_DEPTH_METRIC, tables.WORKER_QUEUE_DEPTH_METRIC),
    (_names.WORKER_JOBS_METRIC, tables.WORKER_JOBS_METRIC),
    (_names.WORKER_ID, tables.WORKER_ATTRIBUTE),
    (_names.QUEUE_NAME, tables.QUEUE_ATTRIBUTE),
    (_names.MESSAGING_SYSTEM, tables.MESSAGING_SYSTEM_ATTRIBUTE),
    (_names.JOB_STATUS, tables.JOB_STATUS_ATTRIBUTE),
]
#: A quoted contract name in SQL: a metric, span or attribute of the namespaces the contract uses.
QUOTED_NAME = re.compile(r"'((?:feature|user|worker|conversion|job|messaging)\.[a-z_.]+)'")


@pytest.mark.parametrize(("emitted", "read"), PAIRS, ids=[emitted for emitted, _ in PAIRS])
def test_the_readers_look_for_the_name_the_instrumentation_emits(emitted: str, read: str) -> None:
    assert read == emitted


def emitted_names() -> set[str]:
    return {value for name, value in vars(_names).items() if name.isupper() and isinstance(value, str)}


@pytest.mark.parametrize(
    "folder", ["clickhouse/src/usagemeter_clickhouse/migrations", "grafana/provisioning/dashboards"]
)
def test_every_contract_name_spelled_in_sql_is_one_the_instrumentation_emits(folder: str) -> None:
    files = [path for path in (ROOT / folder).rglob("*") if path.suffix in (".sql", ".json")]
    spelled = {(path.name, name) for path in files for name in QUOTED_NAME.findall(path.read_text())}
    assert spelled, f"no contract names found under {folder}"
    assert {(file, name) for file, name in spelled if name not in emitted_names()} == set()
