"""The bulk check of plain usage points says True only where the per-point check would accept every point."""

from __future__ import annotations

import math

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import NumberDataPoint

from tests.collector.conftest import T0, usage_point
from usagemeter_collector._checks.bulk_points import MIN_POINTS, all_plain_and_valid, plain_layout
from usagemeter_collector._checks.rule import PointRules, TimeWindow

_WINDOW = TimeWindow.around_now(30, 300)
_RULES = PointRules(_WINDOW)


def _encoded(points: list[NumberDataPoint]) -> list[bytes]:
    return [point.SerializeToString() for point in points]


def _points(count: int, user: str = "user-{}", **fields: float) -> list[NumberDataPoint]:
    points = [usage_point(user.format(n), float(n), T0 + n) for n in range(count)]
    for point in points:
        for name, value in fields.items():
            setattr(point, name, value)
    return points


def test_points_with_many_ids_of_a_few_lengths_are_vouched_for_in_bulk() -> None:
    assert all_plain_and_valid(_encoded(_points(500)), _RULES)


def test_int_values_and_long_ids_are_plain() -> None:
    points = _points(100, user="u" * 120 + "-{:03d}", as_int=3)
    assert plain_layout(points[0].SerializeToString(), _RULES.max_id_bytes) is not None
    assert all_plain_and_valid(_encoded(points), _RULES)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("as_double", math.nan),
        ("as_double", math.inf),
        ("as_double", -1.0),
        ("as_int", -1),
        ("as_double", math.nextafter(_RULES.max_value, math.inf)),
        ("as_double", 1e308),
        ("as_int", int(_RULES.max_value) + 1),
        ("as_int", 2**63 - 1),
        ("time_unix_nano", _WINDOW.earliest - 1),
        ("time_unix_nano", _WINDOW.latest + 1),
        ("start_time_unix_nano", _WINDOW.latest + 1),
    ],
)
def test_one_invalid_value_among_many_fails_the_bulk_check(field: str, value: float) -> None:
    points = _points(100)
    setattr(points[57], field, value)
    assert not all_plain_and_valid(_encoded(points), _RULES)


def test_a_value_at_the_edge_of_the_window_passes() -> None:
    points = _points(100)
    points[3].time_unix_nano = _WINDOW.earliest
    points[4].time_unix_nano = _WINDOW.latest
    points[5].as_double = 0.0
    points[6].as_double = _RULES.max_value
    assert all_plain_and_valid(_encoded(points), _RULES)


def _with_attribute(point: NumberDataPoint, key: str, value: AnyValue) -> NumberDataPoint:
    point.attributes.append(KeyValue(key=key, value=value))
    return point


@pytest.mark.parametrize(
    "point",
    [
        _with_attribute(usage_point("user-1", 1, T0), "plan", AnyValue(string_value="pro")),
        _with_attribute(usage_point(None, 1, T0), "user.id", AnyValue(int_value=1)),
        _with_attribute(usage_point(None, 1, T0), "user.id", AnyValue(string_value="")),
        _with_attribute(usage_point(None, 1, T0), "user.id", AnyValue(string_value="u" * 128)),
        _with_attribute(usage_point(None, 1, T0), "feature.key", AnyValue(string_value="x")),
        NumberDataPoint(time_unix_nano=T0, as_double=1),
        NumberDataPoint(start_time_unix_nano=T0, time_unix_nano=T0, flags=1),
    ],
    ids=["extra attribute", "int user", "empty user", "long user", "no user", "no attributes", "no value"],
)
def test_points_that_are_not_plain_have_no_layout(point: NumberDataPoint) -> None:
    assert plain_layout(point.SerializeToString(), _RULES.max_id_bytes) is None


def test_flags_and_exemplars_make_a_point_not_plain() -> None:
    flagged = usage_point("user-1", 1, T0)
    flagged.flags = 1
    with_exemplar = usage_point("user-1", 1, T0)
    with_exemplar.exemplars.add(as_double=1)
    assert plain_layout(flagged.SerializeToString(), _RULES.max_id_bytes) is None
    assert plain_layout(with_exemplar.SerializeToString(), _RULES.max_id_bytes) is None


def test_points_of_one_length_with_another_layout_are_left_to_the_per_point_check() -> None:
    # The same length as its neighbours, but with the attributes in the other order.
    points = _points(100)
    swapped = usage_point(None, 1, T0)
    swapped.attributes.extend([KeyValue(key="user.id", value=AnyValue(string_value="user-50"))])
    swapped.attributes.reverse()
    points[50] = swapped
    assert len(swapped.SerializeToString()) == len(points[51].SerializeToString())
    assert not all_plain_and_valid(_encoded(points), _RULES)


def test_few_points_or_too_many_lengths_are_left_to_the_per_point_check() -> None:
    assert not all_plain_and_valid(_encoded(_points(MIN_POINTS - 1)), _RULES)
    varied = [usage_point("u" * (n % 100 + 1), 1, T0 + n) for n in range(200)]
    assert not all_plain_and_valid(_encoded(varied), _RULES)


def test_ids_over_the_configured_limit_fail_the_bulk_check() -> None:
    # "user-10" … "user-99" are 7 bytes: plain under a limit of 7, not under one of 6.
    points = _encoded(_points(100))
    assert all_plain_and_valid(points, _RULES._replace(max_id_bytes=7))
    assert not all_plain_and_valid(points, _RULES._replace(max_id_bytes=6))
    assert plain_layout(points[50], 6) is None
    assert plain_layout(points[50], 7) is not None


def test_values_over_the_configured_maximum_fail_the_bulk_check() -> None:
    points = _encoded(_points(100))
    assert all_plain_and_valid(points, _RULES._replace(max_value=99))
    assert not all_plain_and_valid(points, _RULES._replace(max_value=98.5))
