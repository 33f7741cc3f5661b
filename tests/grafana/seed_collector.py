"""The collector's own telemetry (service usagemeter-collector), for the Pipeline health dashboard.

Two collector instances report once a minute, 30 s off the minute, as the collector stores them:
delta sums, spool gauges and an insert latency histogram, with the instance in the resource.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tests.grafana.rows import DELTA, ns
from usagemeter_clickhouse import Client, tables

SERVICE = "usagemeter-collector"
REPORTS = 90
#: Seconds before now of each report, newest first.
AGES = tuple(30 + 60 * k for k in range(REPORTS))
BOUNDS = (0.01, 0.05, 0.1, 0.5)


@dataclass(frozen=True)
class Instance:
    instance_id: str
    accepted_per_report: int
    #: Report indexes (0 = newest) that reject two items.
    rejecting: frozenset[int]
    #: Report indexes that count one insert retry.
    retrying: frozenset[int]
    #: Spool bytes of the newest report; every older report had an empty spool.
    backlog_bytes: int


INSTANCES = (
    Instance("collector-a:101:0a0a0a0a", 100, frozenset(range(0, REPORTS, 10)), frozenset(), 4096),
    Instance("collector-b:202:0b0b0b0b", 50, frozenset({3}), frozenset({1, 2, 40}), 1024),
)
#: Per report: four inserts, 0.2 s in all, the slowest 0.09 s.
INSERTS, INSERT_SECONDS, SLOWEST = 4, 0.2, 0.09
BUCKETS = (1, 2, 1, 0, 0)


def rejected(instance: Instance) -> int:
    return 2 * len(instance.rejecting)


def accepted(instance: Instance) -> int:
    return instance.accepted_per_report * REPORTS


def _resource(instance: Instance) -> dict[str, str]:
    return {"service.name": SERVICE, "service.instance.id": instance.instance_id, "host.name": "collector-host"}


def _sum_rows(instance: Instance, index: int, at: int) -> list[list[Any]]:
    figures: list[tuple[str, Mapping[str, str], float]] = [
        ("usagemeter.collector.items", {"outcome": "accepted"}, instance.accepted_per_report),
        ("usagemeter.collector.items", {"outcome": "rejected"}, 2 * (index in instance.rejecting)),
        ("usagemeter.collector.requests", {"outcome": "received"}, 10),
        ("usagemeter.collector.insert_retries", {}, int(index in instance.retrying)),
        ("usagemeter.collector.inserts", {}, INSERTS),
    ]
    start = at - 60_000_000_000
    return [[_resource(instance), SERVICE, name, dict(a), start, at, v, DELTA, True] for name, a, v in figures]


def _gauge_rows(instance: Instance, index: int, at: int) -> list[list[Any]]:
    backlog = instance.backlog_bytes if index == 0 else 0
    return [
        [_resource(instance), SERVICE, "usagemeter.collector.spool_bytes", "By", at, at, float(backlog)],
        [_resource(instance), SERVICE, "usagemeter.collector.spool_segments", "{segment}", at, at, float(backlog > 0)],
    ]


def _histogram_row(instance: Instance, at: int) -> list[Any]:
    name = "usagemeter.collector.insert_duration"
    start = at - 60_000_000_000
    counts = (INSERTS, INSERT_SECONDS, list(BUCKETS), list(BOUNDS), 0.005, SLOWEST, DELTA)
    return [_resource(instance), SERVICE, name, "s", start, at, *counts]


def insert(client: Client, now: datetime) -> None:
    """Every report of both instances into the sum, gauge and histogram tables."""
    sums, gauges, histograms = [], [], []
    for instance in INSTANCES:
        for index, age in enumerate(AGES):
            at = ns(now - timedelta(seconds=age))
            sums += _sum_rows(instance, index, at)
            gauges += _gauge_rows(instance, index, at)
            histograms.append(_histogram_row(instance, at))
    metric = ["ResourceAttributes", "ServiceName", "MetricName"]
    sum_columns = [*metric, "Attributes", "StartTimeUnix", "TimeUnix", "Value", "AggregationTemporality", "IsMonotonic"]
    client.insert(tables.METRICS_SUM, sums, column_names=sum_columns)
    gauge_columns = [*metric, "MetricUnit", "StartTimeUnix", "TimeUnix", "Value"]
    client.insert(tables.METRICS_GAUGE, gauges, column_names=gauge_columns)
    histogram_columns = [*metric, "MetricUnit", "StartTimeUnix", "TimeUnix", "Count", "Sum", "BucketCounts"]
    histogram_columns += ["ExplicitBounds", "Min", "Max", "AggregationTemporality"]
    client.insert(tables.METRICS_HISTOGRAM, histograms, column_names=histogram_columns)
