"""Usage sliced by allow-listed attributes: a point's dimension rows beside its feature total, through the collector."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.collector.conftest import T0, attrs, post_metrics, usage_point, usage_request, wait_drained
from usagemeter_clickhouse import SchemaOptions, migrate, tables


@pytest.mark.parametrize("protobuf_metrics", [True, False], ids=["decoded by ClickHouse", "row path"])
def test_a_point_lands_in_its_total_and_its_allow_listed_dimension_rows_only(
    start_collector, clickhouse, protobuf_metrics
):
    migrate(clickhouse, SchemaOptions(dimension_attributes=("model",)))
    collector = start_collector(protobuf_metrics=protobuf_metrics)
    sliced = usage_point("alice", 2.5, T0)
    sliced.attributes.extend(attrs(model="gpt-4o", team="research"))
    plain = usage_point("alice", 1, T0)
    whole = usage_point("bob", 0, T0)
    whole.ClearField("as_double")
    whole.as_int = 3
    whole.attributes.extend(attrs(model="mini"))
    unlisted = usage_point("carol", 4, T0)
    unlisted.attributes.extend(attrs(team="support"))
    request = usage_request([sliced, plain, whole, unlisted])
    assert post_metrics(collector.http_port, request).status_code == 200
    wait_drained()
    for table in (tables.USAGE_MINUTE, tables.USAGE_DAY, tables.USAGE_MONTH, tables.USAGE_INGEST):
        rows = clickhouse.query(
            f"SELECT UserId, DimensionKey, DimensionValue, sum(Quantity) FROM {table} GROUP BY 1, 2, 3"
        ).result_rows
        assert {(u, k, v): q for u, k, v, q in rows} == {
            ("alice", "", ""): Decimal("3.5"),
            ("alice", "model", "gpt-4o"): Decimal("2.5"),
            ("bob", "", ""): Decimal(3),
            ("bob", "model", "mini"): Decimal(3),
            ("carol", "", ""): Decimal(4),
        }, table
