"""The lean pass vouches only for requests the full checks keep whole, and counts their points alike."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, Gauge, Metric, NumberDataPoint

from tests.collector.conftest import T0, usage_point, usage_request
from usagemeter_collector._checks.cumulative import CumulativeToDelta
from usagemeter_collector._checks.in_place import screen_metrics
from usagemeter_collector._checks.lean_pass import _checked_point_by_point, valid_usage_points
from usagemeter_collector._checks.rule import PointRules, TimeWindow

_WINDOW = TimeWindow.around_now(30, 300)
_RULES = PointRules(_WINDOW)
_CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
Edit = Callable[[ExportMetricsServiceRequest], None]


def _request(points: int = 3) -> ExportMetricsServiceRequest:
    return usage_request([usage_point(f"user-{n}", float(n), T0 + n) for n in range(points)])


def _points(request: ExportMetricsServiceRequest) -> list[NumberDataPoint]:
    return list(request.resource_metrics[0].scope_metrics[0].metrics[0].sum.data_points)


def _kept_whole(request: ExportMetricsServiceRequest) -> bool:
    """What the full checks decide: True when they keep every point and the request's bytes as they are."""
    body = request.SerializeToString()
    parsed = ExportMetricsServiceRequest.FromString(body)
    screened = screen_metrics(parsed, body, CumulativeToDelta(), _RULES)
    return screened is not None and not screened.decoded.rejected and screened.body == body


def _set_attribute(index: int, key: str, value: AnyValue) -> Edit:
    def edit(request: ExportMetricsServiceRequest) -> None:
        _points(request)[index].attributes.append(KeyValue(key=key, value=value))

    return edit


def _set_point(index: int, **fields: float) -> Edit:
    def edit(request: ExportMetricsServiceRequest) -> None:
        point = _points(request)[index]
        for name, value in fields.items():
            setattr(point, name, value)

    return edit


def _add_exemplar(request: ExportMetricsServiceRequest) -> None:
    _points(request)[1].exemplars.add()


def _nested_resource(request: ExportMetricsServiceRequest) -> None:
    nested = AnyValue(array_value=ArrayValue(values=[AnyValue(string_value="a")]))
    request.resource_metrics[0].resource.attributes.append(KeyValue(key="tags", value=nested))


def _add_gauge(request: ExportMetricsServiceRequest) -> None:
    gauge = Metric(name="temperature", gauge=Gauge(data_points=[NumberDataPoint(time_unix_nano=T0, as_double=1)]))
    request.resource_metrics[0].scope_metrics[0].metrics.append(gauge)


def _cumulative(request: ExportMetricsServiceRequest) -> None:
    request.resource_metrics[0].scope_metrics[0].metrics[0].sum.aggregation_temporality = _CUMULATIVE


def _rename(request: ExportMetricsServiceRequest) -> None:
    request.resource_metrics[0].scope_metrics[0].metrics[0].name = "tokens"


_EDITS: dict[str, Edit] = {
    "nan": _set_point(1, as_double=math.nan),
    "infinite": _set_point(1, as_double=math.inf),
    "negative": _set_point(1, as_double=-0.5),
    "negative int": _set_point(1, as_int=-1),
    "largest value": _set_point(1, as_double=_RULES.max_value),
    "above the largest value": _set_point(1, as_double=math.nextafter(_RULES.max_value, math.inf)),
    "huge value": _set_point(1, as_double=1e308),
    "largest int": _set_point(1, as_int=int(_RULES.max_value)),
    "int above the largest value": _set_point(1, as_int=int(_RULES.max_value) + 1),
    "huge int": _set_point(1, as_int=2**63 - 1),
    "int value": _set_point(1, as_int=7),
    "old": _set_point(1, time_unix_nano=_WINDOW.earliest - 1),
    "future": _set_point(1, time_unix_nano=_WINDOW.latest + 1),
    "future start": _set_point(1, start_time_unix_nano=_WINDOW.latest + 1),
    "no time": _set_point(1, time_unix_nano=0),
    "empty user": _set_attribute(1, "user.id", AnyValue(string_value="")),
    "unset user": _set_attribute(1, "user.id", AnyValue()),
    "int user": _set_attribute(1, "user.id", AnyValue(int_value=0)),
    "bytes feature": _set_attribute(1, "feature.key", AnyValue(bytes_value=b"x")),
    "long user": _set_attribute(1, "user.id", AnyValue(string_value="u" * 200)),
    "user at the id limit": _set_attribute(1, "user.id", AnyValue(string_value="u" * _RULES.max_id_bytes)),
    "user over the id limit": _set_attribute(1, "user.id", AnyValue(string_value="u" * (_RULES.max_id_bytes + 1))),
    "multibyte user over the id limit": _set_attribute(1, "user.id", AnyValue(string_value="ü" * 129)),
    "megabyte user": _set_attribute(1, "user.id", AnyValue(string_value="u" * 1_000_000)),
    "feature over the id limit": _set_attribute(1, "feature.key", AnyValue(string_value="f" * 257)),
    "bytes user over the id limit": _set_attribute(1, "user.id", AnyValue(bytes_value=b"u" * 193)),
    "last user wins": _set_attribute(1, "user.id", AnyValue(string_value="other")),
    "extra attribute": _set_attribute(1, "plan", AnyValue(string_value="pro")),
    "array attribute": _set_attribute(1, "tags", AnyValue(array_value=ArrayValue())),
    "exemplar": _add_exemplar,
    "nested resource attribute": _nested_resource,
    "gauge beside": _add_gauge,
    "cumulative": _cumulative,
    "other metric": _rename,
}


# 3 points are checked one by one; 100 points in bulk, where the edited point has a layout of its own.
@pytest.mark.parametrize("size", [3, 100])
@pytest.mark.parametrize("edit", _EDITS.values(), ids=_EDITS.keys())
def test_the_lean_pass_vouches_only_for_what_the_full_checks_keep_whole(edit: Edit, size: int) -> None:
    request = _request(size)
    edit(request)
    body = request.SerializeToString()
    points = valid_usage_points(body, _RULES)
    assert points == _checked_point_by_point(body, _RULES)
    if points is not None:
        assert _kept_whole(request)
        assert points == len(_points(request))


def test_valid_usage_requests_are_vouched_for_with_their_point_count() -> None:
    request = _request(50)
    request.resource_metrics.append(_request(7).resource_metrics[0])
    assert valid_usage_points(request.SerializeToString(), _RULES) == 57
    assert _kept_whole(request)


@pytest.mark.parametrize("edit", ["nan", "negative", "old", "empty user", "exemplar", "gauge beside", "cumulative"])
def test_requests_needing_a_decision_are_left_to_the_full_checks(edit: str) -> None:
    request = _request()
    _EDITS[edit](request)
    assert valid_usage_points(request.SerializeToString(), _RULES) is None


def test_empty_and_undecodable_bodies_are_left_to_the_full_checks() -> None:
    assert valid_usage_points(b"", _RULES) is None
    assert valid_usage_points(b"\x0a\xff", _RULES) is None


#: Limits below what the lean pass's own encoding checks allow, so its checks of the limits decide.
_TIGHT = PointRules(_WINDOW, max_value=1_000, max_id_bytes=7)


def _replace_attribute(index: int, key: str, text: str) -> Edit:
    def edit(request: ExportMetricsServiceRequest) -> None:
        for kv in _points(request)[index].attributes:
            if kv.key == key:
                kv.value.string_value = text

    return edit


_OVER_TIGHT_LIMITS: dict[str, Edit] = {
    "user one byte too long": _replace_attribute(1, "user.id", "user-123"),
    "feature one byte too long": _replace_attribute(1, "feature.key", "chat-123"),
    "multibyte user too long": _replace_attribute(1, "user.id", "üüüü"),
    "double above the maximum": _set_point(1, as_double=1_000.5),
    "int above the maximum": _set_point(1, as_int=1_001),
}


@pytest.mark.parametrize("size", [3, 100])
@pytest.mark.parametrize("edit", _OVER_TIGHT_LIMITS.values(), ids=_OVER_TIGHT_LIMITS.keys())
def test_the_lean_pass_holds_to_the_configured_value_and_id_limits(edit: Edit, size: int) -> None:
    request = _request(size)
    assert valid_usage_points(request.SerializeToString(), _TIGHT) == size
    edit(request)
    body = request.SerializeToString()
    assert valid_usage_points(body, _TIGHT) is None
    assert _checked_point_by_point(body, _TIGHT) is None
    screened = screen_metrics(ExportMetricsServiceRequest.FromString(body), body, CumulativeToDelta(), _TIGHT)
    assert screened is not None
    assert screened.decoded.rejected == 1
    assert screened.points == size - 1
