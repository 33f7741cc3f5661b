from __future__ import annotations

from datetime import datetime, timedelta

from tests.api.api_support import MONTH_START, NOW, bearer, distinct_insert, ns, record_usage
from usagemeter_clickhouse import Client, tables

_GAUGE = ["ServiceName", "MetricName", "Attributes", "TimeUnix", "Value"]
_SUM = [*_GAUGE, "AggregationTemporality", "IsMonotonic"]


def gauge(client: Client, metric: str, attributes: dict[str, str], at: datetime, value: float) -> None:
    client.insert(
        tables.METRICS_GAUGE,
        [["worker-svc", metric, attributes, ns(at), value]],
        column_names=_GAUGE,
        settings=distinct_insert(),
    )


def delta(client: Client, metric: str, attributes: dict[str, str], at: datetime, value: float) -> None:
    client.insert(
        tables.METRICS_SUM,
        [["web", metric, attributes, ns(at), value, 1, True]],
        column_names=_SUM,
        settings=distinct_insert(),
    )


def heartbeat(client: Client, worker: str, queue: str, age_seconds: float) -> None:
    beat = NOW - timedelta(seconds=age_seconds)
    attributes = {"worker.id": worker, "messaging.destination.name": queue, "messaging.system": "arq"}
    gauge(client, "worker.heartbeat", attributes, beat, beat.timestamp())


def jobs(client: Client, worker: str, queue: str, status: str, count: int) -> None:
    attributes = {"worker.id": worker, "messaging.destination.name": queue, "job.name": "send", "job.status": status}
    delta(client, "worker.jobs", attributes, NOW - timedelta(minutes=5), count)


def depth(client: Client, queue: str, minutes_ago: int, value: int) -> None:
    attributes = {"messaging.destination.name": queue, "messaging.system": "arq"}
    gauge(client, "worker.queue.depth", attributes, NOW - timedelta(minutes=minutes_ago), value)


def test_worker_status_follows_heartbeats_failures_and_queue_growth(api, clickhouse):
    heartbeat(clickhouse, "w-ok", "emails", 10)
    heartbeat(clickhouse, "w-late", "emails", 200)
    heartbeat(clickhouse, "w-gone", "reports", 4000)
    heartbeat(clickhouse, "w-fail", "billing", 5)
    jobs(clickhouse, "w-ok", "emails", "completed", 90)
    jobs(clickhouse, "w-ok", "emails", "failed", 10)
    jobs(clickhouse, "w-fail", "billing", "failed", 30)
    jobs(clickhouse, "w-fail", "billing", "completed", 70)
    depth(clickhouse, "emails", 14, 5)
    depth(clickhouse, "emails", 1, 505)
    body = api.get("/api/v1/workers", headers=bearer("ops")).json()
    workers = {w["worker_id"]: w for w in body["workers"]}
    assert workers["w-late"]["status"] == "degraded" and workers["w-gone"]["status"] == "down"
    assert workers["w-fail"]["status"] == "degraded" and workers["w-fail"]["failure_rate"] == 0.3
    assert workers["w-ok"]["status"] == "degraded" and "queue grew by 500" in workers["w-ok"]["reasons"][0]
    assert (workers["w-ok"]["jobs_completed"], workers["w-ok"]["throughput_per_minute"]) == (90, 6.67)
    queues = {q["queue"]: q for q in body["queues"]}
    assert (queues["emails"]["depth"], queues["emails"]["depth_change"], queues["emails"]["workers_live"]) == (
        505,
        500,
        2,
    )
    assert queues["reports"]["status"] == "down" and body["status"] == "down"


def test_worker_thresholds_are_configurable(make_api, clickhouse):
    heartbeat(clickhouse, "w-late", "emails", 200)
    relaxed = make_api(worker_degraded_after_seconds=250, worker_down_after_seconds=600)
    body = relaxed.get("/api/v1/workers", headers=bearer("ops")).json()
    assert body["workers"][0]["status"] == "healthy"
    assert body["thresholds"]["degraded_after_seconds"] == 250


def test_health_details_count_healthy_services(api, clickhouse):
    body = api.get("/api/v1/health/details", headers=bearer("ops", admin=True)).json()
    assert body["summary"] == "1/2 services healthy"
    assert body["services"][1]["name"] == "ingest" and body["newest_point_age_seconds"] is None
    record_usage(clickhouse, [("alice", "chat_messages", NOW - timedelta(seconds=30), 1)])
    heartbeat(clickhouse, "w-ok", "emails", 10)
    heartbeat(clickhouse, "w-late", "emails", 200)
    body = api.get("/api/v1/health/details", headers=bearer("ops", admin=True)).json()
    assert (body["summary"], body["status"]) == ("3/4 services healthy", "degraded")
    assert 0 <= body["newest_point_age_seconds"] <= 30
    assert api.get("/api/v1/health/details").status_code == 401


def test_dashboard_metrics_combine_everything(api, clickhouse):
    signup = {"conversion.name": "signup"}
    delta(clickhouse, "conversion.count", signup, MONTH_START - timedelta(days=3), 4)
    delta(clickhouse, "conversion.count", signup, NOW - timedelta(hours=1), 2)
    delta(clickhouse, "conversion.count", {"conversion.name": "lead", "user.id": "alice"}, NOW, 1)
    record_usage(clickhouse, [("alice", "ai_content_generation", NOW - timedelta(hours=2), 42)])
    heartbeat(clickhouse, "w-ok", "emails", 10)
    body = api.get("/api/v1/analytics/dashboard-metrics", headers=bearer("alice")).json()
    assert body["conversions"]["total"] == 7 and body["conversions"]["this_month"] == 3
    assert body["conversions"]["by_name"]["signup"] == {"total": 6, "this_month": 2}
    quota = next(q for q in body["quotas"] if q["feature_key"] == "ai_content_generation")
    assert (quota["used"], quota["near_limit"], body["plan"]["id"]) == (42, True, "free")
    # The same items as the quota listing: units, every limit and the binding one.
    assert body["quotas"] == api.get("/api/v1/quotas", headers=bearer("alice")).json()["quotas"]
    assert (quota["unit"], quota["binding"]["window"], len(quota["limits"])) == ("uses", "month", 1)
    assert body["workers"]["workers"][0]["status"] == "healthy"
    assert body["health"]["summary"] == "3/3 services healthy"
    other = api.get("/api/v1/analytics/dashboard-metrics?user_id=bob", headers=bearer("alice"))
    assert other.status_code == 403


def collector_report(client: Client, instance: str, age_seconds: float, backlog_bytes: float) -> None:
    """A collector's self-reported spool backlog, stored as the collector stores it."""
    client.insert(
        tables.METRICS_GAUGE,
        [
            [
                {"service.name": "usagemeter-collector", "service.instance.id": instance},
                "usagemeter-collector",
                "usagemeter.collector.spool_bytes",
                {},
                ns(NOW - timedelta(seconds=age_seconds)),
                backlog_bytes,
            ]
        ],
        column_names=["ResourceAttributes", *_GAUGE],
        settings=distinct_insert(),
    )


def test_health_details_report_each_collectors_backlog(api, clickhouse):
    record_usage(clickhouse, [("alice", "chat_messages", NOW - timedelta(seconds=30), 1)])
    collector_report(clickhouse, "c-busy", 20, 4096)
    collector_report(clickhouse, "c-busy", 5, 512 * 1024 * 1024)  # the latest report counts
    collector_report(clickhouse, "c-ok", 3, 0)
    collector_report(clickhouse, "c-silent", 300, 0)
    collector_report(clickhouse, "c-gone", 2 * 3600, 0)  # older than an hour: not listed
    body = api.get("/api/v1/health/details", headers=bearer("ops", admin=True)).json()
    statuses = {s["name"]: s["status"] for s in body["services"] if s["name"].startswith("collector")}
    assert statuses == {"collector c-busy": "degraded", "collector c-ok": "healthy", "collector c-silent": "down"}
    assert (body["summary"], body["status"]) == ("3/5 services healthy", "degraded")
    busy = next(s for s in body["services"] if s["name"] == "collector c-busy")
    assert "512.0 MiB" in busy["detail"]
