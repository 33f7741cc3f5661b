"""The row path and the in-place checks refuse the same points for the same reasons, and the lean pass
vouches for none of them: every limit holds on every path a metrics request can take."""

from __future__ import annotations

import math
import time
from collections import Counter

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, NumberDataPoint

from tests.collector.conftest import T0, usage_point, usage_request
from usagemeter_collector._checks.cumulative import CumulativeToDelta
from usagemeter_collector._checks.in_place import screen_metrics
from usagemeter_collector._checks.lean_pass import valid_usage_points
from usagemeter_collector._checks.row_path import decode_metrics
from usagemeter_collector._checks.rule import PointRules, TimeWindow

_DELTA = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
_CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
_DEFAULT = PointRules(TimeWindow.around_now(30, 300))
_TIGHT = PointRules(_DEFAULT.window, max_value=50, max_id_bytes=5)
_MINUTE_NS = 60 * 10**9


def _with_id(key: str, value: AnyValue) -> NumberDataPoint:
    point = usage_point("valid", 1, T0 + 7)
    for kv in point.attributes:
        if kv.key == key:
            kv.value.CopyFrom(value)
    return point


def _valued(**value: float) -> NumberDataPoint:
    point = usage_point("valid", 0, T0 + 7)
    point.ClearField("as_double")
    for name, number in value.items():
        setattr(point, name, number)
    return point


def _with_exemplar_at(time_ns: int) -> NumberDataPoint:
    point = usage_point("valid", 1, T0 + 7)
    point.exemplars.add(time_unix_nano=time_ns, as_double=1)
    return point


def _ahead(nanoseconds: int, start: bool = False) -> NumberDataPoint:
    now = time.time_ns()
    if start:
        return usage_point("valid", 1, T0 + 7, start_ns=now + nanoseconds)
    return usage_point("valid", 1, now + nanoseconds)


# name → (hostile point, reason under the default rules, reason under the tight ones)
_CASES: dict[str, tuple[NumberDataPoint, str, str]] = {
    "value above the maximum": (_valued(as_double=math.nextafter(1e15, math.inf)), "not exceed 1e+15", "exceed 50"),
    "huge double": (_valued(as_double=1e308), "must not exceed", "must not exceed"),
    "huge int": (_valued(as_int=2**63 - 1), "must not exceed", "must not exceed"),
    "int above the tight maximum": (_valued(as_int=51), "", "must not exceed 50"),
    "negative": (_valued(as_double=-1), "must not be negative", "must not be negative"),
    "user over the limit": (_with_id("user.id", AnyValue(string_value="u" * 257)), "user.id is longer", "user.id"),
    "megabyte user": (_with_id("user.id", AnyValue(string_value="u" * 1_000_000)), "user.id is longer", "user.id"),
    "multibyte user": (_with_id("user.id", AnyValue(string_value="ü" * 129)), "longer than 256 bytes", "longer"),
    "feature over the limit": (
        _with_id("feature.key", AnyValue(string_value="f" * 257)),
        "feature.key is longer than 256 bytes",
        "feature.key is longer than 5 bytes",
    ),
    "bytes user rendered over the limit": (_with_id("user.id", AnyValue(bytes_value=b"u" * 193)), "user.id", "user.id"),
    "int user over the tight limit": (_with_id("user.id", AnyValue(int_value=123456)), "", "user.id is longer"),
    "empty user": (_with_id("user.id", AnyValue(string_value="")), "lacks attribute user.id", "lacks"),
    "ten minutes ahead": (_ahead(10 * _MINUTE_NS), "too far in the future", "too far in the future"),
    "a day ahead": (_ahead(23 * 60 * _MINUTE_NS), "too far in the future", "too far in the future"),
    "start ten minutes ahead": (_ahead(10 * _MINUTE_NS, start=True), "in the future", "in the future"),
    "four minutes ahead": (_ahead(4 * _MINUTE_NS), "", ""),
    "exemplar later than any column holds": (_with_exemplar_at(2**63), "exemplar timestamp out of range", "exemplar"),
    "exemplar at the largest time": (_with_exemplar_at(2**64 - 1), "exemplar timestamp out of range", "exemplar"),
    "exemplar at the latest storable time": (_with_exemplar_at(2**63 - 1), "", ""),
}


def _request(hostile: NumberDataPoint, temporality: int) -> ExportMetricsServiceRequest:
    valid = [usage_point(f"u{n}", 1 + n, T0 + n, start_ns=T0 - 10) for n in range(3)]
    return usage_request([*valid, hostile], temporality=temporality)


def _verdicts(request: ExportMetricsServiceRequest, rules: PointRules) -> tuple[tuple[int, Counter[str]], ...]:
    body = request.SerializeToString()
    rows = decode_metrics(ExportMetricsServiceRequest.FromString(body), CumulativeToDelta(), rules)
    screened = screen_metrics(ExportMetricsServiceRequest.FromString(body), body, CumulativeToDelta(), rules)
    assert screened is not None
    return (rows.rejected, rows.reasons), (screened.decoded.rejected, screened.decoded.reasons)


@pytest.mark.parametrize("temporality", [_DELTA, _CUMULATIVE], ids=["delta", "cumulative"])
@pytest.mark.parametrize("rules", [_DEFAULT, _TIGHT], ids=["default limits", "tight limits"])
@pytest.mark.parametrize("case", _CASES.values(), ids=_CASES.keys())
def test_every_path_refuses_the_same_points_for_the_same_reason(
    case: tuple[NumberDataPoint, str, str], rules: PointRules, temporality: int
) -> None:
    hostile, default_reason, tight_reason = case
    reason = default_reason if rules is _DEFAULT else tight_reason
    request = _request(hostile, temporality)
    rows, screened = _verdicts(request, rules)
    assert rows == screened
    rejected, reasons = rows
    if not reason:
        assert rejected == 0
        return
    assert rejected == 1
    assert reason in next(iter(reasons))
    assert valid_usage_points(request.SerializeToString(), rules) is None


def test_an_id_of_exactly_the_limit_is_kept_on_every_path() -> None:
    exact = _with_id("user.id", AnyValue(string_value="é" * 128))  # 256 bytes
    for temporality in (_DELTA, _CUMULATIVE):
        assert _verdicts(_request(exact, temporality), _DEFAULT) == ((0, Counter()), (0, Counter()))


def test_the_row_path_applies_the_limits_when_attributes_are_nested() -> None:
    # An array attribute sends the request down the row path, which must refuse the same points.
    request = _request(_with_id("user.id", AnyValue(string_value="u" * 300)), _DELTA)
    nested = AnyValue()
    nested.array_value.values.add(string_value="a")
    request.resource_metrics[0].resource.attributes.append(KeyValue(key="tags", value=nested))
    body = request.SerializeToString()
    assert screen_metrics(ExportMetricsServiceRequest.FromString(body), body, CumulativeToDelta(), _DEFAULT) is None
    rows = decode_metrics(ExportMetricsServiceRequest.FromString(body), CumulativeToDelta(), _DEFAULT)
    assert rows.rejected == 1
    assert "user.id is longer than 256 bytes" in rows.error_message()
