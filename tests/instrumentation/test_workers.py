"""WorkerTelemetry reports the contract's worker.* metrics to a real OTLP receiver."""

from __future__ import annotations

import logging
import time
from collections import Counter

import pytest

import usagemeter_instrumentation as usagemeter
from tests.instrumentation.receivers import GrpcReceiver
from usagemeter_instrumentation import WorkerTelemetry

LONG_INTERVAL = 600_000


@pytest.fixture
def receiver(grpc_receiver: GrpcReceiver) -> GrpcReceiver:
    usagemeter.configure("worker-host", grpc_receiver.endpoint, export_interval_millis=LONG_INTERVAL)
    return grpc_receiver


def flush() -> None:
    assert usagemeter.force_flush(10_000)


def job_totals(receiver: GrpcReceiver) -> Counter[tuple[str, str, str, str]]:
    totals: Counter[tuple[str, str, str, str]] = Counter()
    for items, value in receiver.recorder.metric_totals("worker.jobs").items():
        found = dict(items)
        assert set(found) == {"worker.id", "messaging.destination.name", "job.name", "job.status"}
        key = (found["worker.id"], found["messaging.destination.name"], found["job.name"], found["job.status"])
        totals[key] += value
    return totals


def test_heartbeat_is_reported_at_every_collection_while_the_worker_lives(receiver: GrpcReceiver) -> None:
    telemetry = WorkerTelemetry("reports", worker_id="worker-1", system="redis")
    before = int(time.time())
    with telemetry:
        for _ in range(3):
            flush()
    after = int(time.time())
    flush()  # stopped: no more heartbeats

    beats = receiver.recorder.gauge_points("worker.heartbeat")
    assert len(beats) == 3
    assert all(before <= beat.value <= after for beat in beats)
    assert [beat.value for beat in beats] == sorted(beat.value for beat in beats)
    assert {beat.unit for beat in beats} == {"s"}
    expected = {"worker.id": "worker-1", "messaging.destination.name": "reports", "messaging.system": "redis"}
    assert all(beat.attributes == expected for beat in beats)


def test_without_auto_heartbeat_the_last_explicit_heartbeat_is_reported(
    receiver: GrpcReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    telemetry = WorkerTelemetry("reports", worker_id="stuck", auto_heartbeat=False)
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.5)
    telemetry.start()
    monkeypatch.undo()
    flush()
    flush()
    telemetry.heartbeat()
    flush()
    telemetry.stop()

    values = [beat.value for beat in receiver.recorder.gauge_points("worker.heartbeat")]
    assert values[:2] == [1_700_000_000, 1_700_000_000]
    assert values[2] >= int(time.time()) - 60


def test_queue_depth_comes_from_the_callback_or_the_last_value_set(receiver: GrpcReceiver) -> None:
    depths = iter([7, 3])
    polled = WorkerTelemetry("emails", worker_id="a", system="redis", queue_depth=lambda: next(depths))
    twin = WorkerTelemetry("emails", worker_id="b", system="redis", queue_depth=lambda: 3)
    pushed = WorkerTelemetry("reports", worker_id="c", system="python")
    with polled, twin, pushed:
        flush()  # reports: unknown yet
        pushed.set_queue_depth(12)
        flush()

    points = receiver.recorder.gauge_points("worker.queue.depth")
    assert {point.unit for point in points} == {"{job}"}
    emails = [p.value for p in points if p.attributes["messaging.destination.name"] == "emails"]
    reports = [p for p in points if p.attributes["messaging.destination.name"] == "reports"]
    assert len(emails) == 2  # one series per queue, however many workers serve it
    assert [p.value for p in reports] == [12]
    assert reports[0].attributes == {"messaging.destination.name": "reports", "messaging.system": "python"}


def test_finished_jobs_are_counted_and_timed_per_name_and_status(receiver: GrpcReceiver) -> None:
    telemetry = WorkerTelemetry("reports", worker_id="w")
    for index in range(5):
        with telemetry.job("build_report"):
            time.sleep(0.001)
        if index % 2 == 0:
            with pytest.raises(ValueError), telemetry.job("build_report"):
                raise ValueError("bad input")
    telemetry.job_finished("send_email", "completed", 2.5)
    telemetry.job_finished("send_email", "failed", 0.25)
    flush()

    assert job_totals(receiver) == {
        ("w", "reports", "build_report", "completed"): 5,
        ("w", "reports", "build_report", "failed"): 3,
        ("w", "reports", "send_email", "completed"): 1,
        ("w", "reports", "send_email", "failed"): 1,
    }
    durations = {
        (p.attributes["job.name"], p.attributes["job.status"]): p
        for p in receiver.recorder.histogram_points("worker.job.duration")
    }
    assert {p.unit for p in durations.values()} == {"s"}
    assert durations[("build_report", "completed")].count == 5
    assert durations[("build_report", "completed")].sum >= 0.005
    assert durations[("build_report", "failed")].count == 3
    assert (durations[("send_email", "completed")].count, durations[("send_email", "completed")].sum) == (1, 2.5)
    assert durations[("send_email", "failed")].max == 0.25


def test_job_counts_and_durations_survive_a_failed_export(receiver: GrpcReceiver) -> None:
    telemetry = WorkerTelemetry("reports", worker_id="w")
    telemetry.job_finished("build_report", "completed", 0.1)
    receiver.recorder.reject_metrics = 1
    usagemeter.force_flush(10_000)  # refused once: resent unchanged, before the next collection
    telemetry.job_finished("build_report", "completed", 0.1)
    flush()

    assert receiver.recorder.rejected == 1
    assert job_totals(receiver) == {("w", "reports", "build_report", "completed"): 2}
    durations = receiver.recorder.histogram_points("worker.job.duration")
    assert [point.count for point in durations] == [1, 1]


def test_bad_input_and_failing_depth_sources_are_harmless(
    receiver: GrpcReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_depth() -> int:
        raise ConnectionError("redis is down")

    telemetry = WorkerTelemetry("reports", worker_id="w", queue_depth=broken_depth)
    with caplog.at_level(logging.WARNING, "usagemeter_instrumentation"), telemetry:
        telemetry.job_finished("build_report", "exploded", 1.0)
        telemetry.job_finished("build_report", "exploded", 1.0)
        telemetry.job_finished("build_report", "completed", 1.0)
        flush()
        flush()

    assert job_totals(receiver) == {("w", "reports", "build_report", "completed"): 1}
    assert len(receiver.recorder.gauge_points("worker.heartbeat")) == 2
    assert receiver.recorder.gauge_points("worker.queue.depth") == []
    messages = [record.getMessage() for record in caplog.records]
    assert messages.count("usagemeter ignored a job without name or with status 'exploded'") == 1
    assert messages.count("usagemeter could not observe a worker") == 1
