"""An export the receiver stored but whose answer was lost is resent unchanged and counted once."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest

import usagemeter_instrumentation as usagemeter
from tests.instrumentation.lossy_proxy import AnswerDroppingProxy
from tests.instrumentation.receivers import GrpcReceiver, HttpReceiver, Recorder, wait_until
from tests.instrumentation.test_process import run_python
from usagemeter_instrumentation import _api

LONG_INTERVAL = 600_000
#: Short enough that a lost answer fails the export quickly; answers are delayed well beyond it.
EXPORT_TIMEOUT_MILLIS = 500
ANSWER_DELAY_SECONDS = 1.5
PROTOCOLS = ["grpc", "http/protobuf"]

Usage = Counter[tuple[str, str]]


class Lossy:
    """A receiver reached either directly (it loses answers itself) or through a proxy that drops them."""

    def __init__(self, receiver: GrpcReceiver | HttpReceiver, fault: str, proxy: AnswerDroppingProxy | None) -> None:
        self.recorder: Recorder = receiver.recorder
        self.recorder.answer_delay_seconds = ANSWER_DELAY_SECONDS
        self.endpoint = proxy.endpoint if proxy is not None else receiver.endpoint
        self._fault = fault
        self._proxy = proxy
        # The OTel HTTP client sends a request once more at once, on a new connection, after a connection error.
        self._sends_per_export = 2 if isinstance(receiver, HttpReceiver) else 1

    def lose_answers(self, count: int = 1) -> None:
        """The answers to the next ``count`` metric exports are lost (their requests are stored)."""
        if self._proxy is not None:
            self._proxy.drop_answers(count * self._sends_per_export)
        else:
            self.recorder.lose_answers(*[self._fault] * count)  # type: ignore[list-item]


@pytest.fixture
def lossy(request: pytest.FixtureRequest, protocol: str, fault: str) -> Iterator[Lossy]:
    receiver = request.getfixturevalue("grpc_receiver" if protocol == "grpc" else "http_receiver")
    proxy = AnswerDroppingProxy(receiver.port, http2=protocol == "grpc") if fault == "drop" else None
    if proxy is not None:
        proxy.start()
    yield Lossy(receiver, fault, proxy)
    if proxy is not None:
        proxy.stop()


def _use(expected: Usage, users: int, times: int, feature: str = "chat_messages") -> None:
    for index in range(users):
        for _ in range(times):
            usagemeter.track_feature_use(feature, f"user-{index}")
        expected[(f"user-{index}", feature)] += times


def _assert_resends_come_first(recorder: Recorder) -> None:
    """Every repeated body arrives right after the attempt it repeats, before anything newer."""
    digests = recorder.digests
    for index, digest in enumerate(digests):
        if digest in digests[:index]:
            assert digests[index - 1] == digest, f"request {index} repeats an older one after newer ones"


@pytest.mark.parametrize("fault", ["withhold", "delay", "drop"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_export_whose_answer_is_lost_is_stored_once(protocol: str, fault: str, lossy: Lossy) -> None:
    usagemeter.configure(
        "host",
        lossy.endpoint,
        protocol=protocol,
        export_interval_millis=LONG_INTERVAL,
        export_timeout_millis=EXPORT_TIMEOUT_MILLIS,
    )
    expected: Usage = Counter()
    rounds = 4
    for round_ in range(rounds):
        _use(expected, users=20, times=round_ + 1)
        # In one round the answer to the resend is lost as well.
        lossy.lose_answers(2 if round_ == 1 else 1)
        assert usagemeter.force_flush(5_000) is False
        _use(expected, users=25, times=round_ + 2, feature="document_export")  # newer counts meanwhile
        assert wait_until(lambda: usagemeter.force_flush(5_000))

    assert lossy.recorder.usage_totals() == expected
    assert lossy.recorder.duplicates >= rounds + 1
    _assert_resends_come_first(lossy.recorder)


@pytest.mark.parametrize("fault", ["withhold"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_compressed_export_is_resent_with_the_same_decompressed_body(
    protocol: str, fault: str, lossy: Lossy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    usagemeter.configure(
        "host", lossy.endpoint, protocol=protocol, export_interval_millis=LONG_INTERVAL, export_timeout_millis=500
    )
    expected: Usage = Counter()
    _use(expected, users=30, times=2)
    lossy.lose_answers()
    assert usagemeter.force_flush(5_000) is False

    assert usagemeter.force_flush(5_000)
    assert lossy.recorder.usage_totals() == expected
    assert lossy.recorder.digests == lossy.recorder.lost_answers * 2
    if protocol == "http/protobuf":
        assert lossy.recorder.headers[0].get("content-encoding") == "gzip"


@pytest.mark.parametrize("fault", ["withhold"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_lost_answer_is_resent_while_the_process_is_idle(protocol: str, fault: str, lossy: Lossy) -> None:
    usagemeter.configure(
        "host", lossy.endpoint, protocol=protocol, export_interval_millis=100, export_timeout_millis=500
    )
    lossy.lose_answers()
    expected: Usage = Counter()
    _use(expected, users=3, times=4)

    assert wait_until(lambda: lossy.recorder.duplicates == 1)
    assert lossy.recorder.usage_totals() == expected
    assert lossy.recorder.lost_answers == lossy.recorder.digests[:1]


@pytest.mark.parametrize("fault", ["delay"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_shutdown_resends_an_export_whose_answer_was_lost(protocol: str, fault: str, lossy: Lossy) -> None:
    usagemeter.configure(
        "host", lossy.endpoint, protocol=protocol, export_interval_millis=LONG_INTERVAL, export_timeout_millis=500
    )
    expected: Usage = Counter()
    _use(expected, users=5, times=2)
    lossy.lose_answers()

    usagemeter.shutdown()

    assert lossy.recorder.usage_totals() == expected
    assert lossy.recorder.duplicates == 1


_EXITING = """
import sys
import usagemeter_instrumentation as usagemeter

usagemeter.configure("exiting-host", sys.argv[1], export_interval_millis=600_000, export_timeout_millis=500)
for _ in range(7):
    usagemeter.track_feature_use("document_export", "dave")
"""


def test_the_exit_flush_resends_an_export_whose_answer_was_lost(grpc_receiver: GrpcReceiver) -> None:
    grpc_receiver.recorder.lose_answers("withhold")
    result = run_python(_EXITING, grpc_receiver.endpoint)

    assert result.returncode == 0, result.stderr
    assert grpc_receiver.recorder.usage_totals() == {("dave", "document_export"): 7}
    assert grpc_receiver.recorder.duplicates == 1


def _dropped(recorder: Recorder) -> dict[str, int]:
    totals = recorder.metric_totals("usagemeter.instrumentation.dropped")
    return {dict(key)["metric.name"]: amount for key, amount in totals.items()}


def test_a_failed_export_whose_series_do_not_fit_the_pending_bound_is_dropped_and_counted(
    grpc_receiver: GrpcReceiver,
) -> None:
    recorder = grpc_receiver.recorder
    recorder.hold.clear()
    recorder.reject_metrics = 1
    usagemeter.configure("host", grpc_receiver.endpoint, export_interval_millis=LONG_INTERVAL, max_pending_series=5)
    for index in range(5):
        usagemeter.track_feature_use("chat_messages", f"early-{index}")
    flusher = threading.Thread(target=usagemeter.force_flush, args=(10_000,))
    flusher.start()
    assert recorder.arrived.wait(10)
    # While that export is held (to be refused), five newer series fill the bound it would need.
    late: Usage = Counter()
    _use(late, users=5, times=3)
    recorder.hold.set()
    flusher.join()

    usagemeter.shutdown()
    assert recorder.rejected == 1
    assert recorder.usage_totals() == late
    assert _dropped(recorder) == {"feature.usage": 5}


def test_a_failed_export_not_delivered_within_the_dedup_window_is_given_up_and_counted(
    grpc_receiver: GrpcReceiver,
) -> None:
    recorder = grpc_receiver.recorder
    recorder.reject_metrics = 1_000
    usagemeter.configure(
        "host",
        grpc_receiver.endpoint,
        export_interval_millis=LONG_INTERVAL,
        export_timeout_millis=500,
        dedup_window_seconds=1.5,
    )
    for _ in range(3):
        usagemeter.track_feature_use("chat_messages", "alice")
    assert usagemeter.force_flush(5_000) is False
    # A resend from now on could reach the receiver after it forgot the first attempt.
    time.sleep(1.2)
    recorder.reject_metrics = 0
    usagemeter.track_feature_use("chat_messages", "bob")

    assert usagemeter.force_flush(5_000)
    assert recorder.usage_totals() == {("bob", "chat_messages"): 1}
    assert _dropped(recorder) == {"feature.usage": 3}


def test_drop_counts_are_reported_once_through_failed_exports(grpc_receiver: GrpcReceiver) -> None:
    recorder = grpc_receiver.recorder
    recorder.reject_metrics = 1_000
    usagemeter.configure("host", grpc_receiver.endpoint, export_interval_millis=50, max_pending_series=2)
    for index in range(4):
        usagemeter.track_feature_use("chat_messages", f"user-{index}")  # the last two are dropped
    pipeline = _api._pipeline
    assert pipeline is not None
    assert wait_until(lambda: pipeline.exporter.pending() > 0)
    usagemeter.track_feature_use("chat_messages", "user-4")  # dropped: the failed export holds the bound
    # Later collections, sent after the refused resends, give their drop counts back to be sent again.
    refused = recorder.rejected
    assert wait_until(lambda: recorder.rejected >= refused + 3)
    recorder.reject_metrics = 0

    assert wait_until(lambda: _dropped(recorder) == {"feature.usage": 3})
    usagemeter.shutdown()
    assert recorder.usage_totals() == {("user-0", "chat_messages"): 1, ("user-1", "chat_messages"): 1}
    assert _dropped(recorder) == {"feature.usage": 3}
