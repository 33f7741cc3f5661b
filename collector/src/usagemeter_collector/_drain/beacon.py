"""A collector whose inserts fail says so in ClickHouse directly, past its stuck spool.

Self-telemetry travels through the spool, behind the segment that cannot be inserted, so while
inserts fail it never arrives. When ClickHouse still takes a plain row insert (the usage insert
failed on its format schema, a missing landing table, a refused Protobuf decode), the writer stores
one gauge row ``usagemeter.collector.insert_failing`` every interval: its value is the age of the
oldest unsent data and its ``error`` attribute the insert error, so the API can tell a stuck
collector from a silent one. These rows are status, not acknowledged data: a lost one costs nothing.
"""

from __future__ import annotations

import logging
import socket
import time
from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client

from usagemeter_collector import _schema
from usagemeter_collector._telemetry import SERVICE_NAME, Telemetry, first_line

logger = logging.getLogger(__name__)

INSERT_FAILING = "usagemeter.collector.insert_failing"
ERROR_ATTRIBUTE = "error"
_COLUMNS = ("ResourceAttributes", "ServiceName", "MetricName", "MetricUnit", "Attributes", "TimeUnix", "Value")


class FailureBeacon:
    """Stores a status row at most every ``interval`` seconds while the collector's inserts fail."""

    def __init__(self, telemetry: Telemetry, instance: str, interval: float) -> None:
        self._telemetry = telemetry
        self._instance = instance
        self._interval = interval
        self._last = -interval

    def failing(self, client: Client) -> None:
        """An insert failed: store the status row if the last one is an interval old (never raises)."""
        now = time.monotonic()
        if now - self._last < self._interval:
            return
        self._last = now
        host = socket.gethostname()
        resource = {"service.name": SERVICE_NAME, "service.instance.id": self._instance, "host.name": host}
        error = self._telemetry.insert_last_error
        row = [resource, SERVICE_NAME, INSERT_FAILING, "s", {ERROR_ATTRIBUTE: error}, datetime.now(UTC)]
        row.append(self._telemetry.oldest_unsent_age_seconds)
        try:
            client.insert(_schema.METRICS_GAUGE, [row], column_names=_COLUMNS)
        except Exception as exc:
            # ClickHouse takes nothing at all (down, authentication): the API sees the reports stop instead.
            logger.debug("cannot store the insert-failing status row: %s", first_line(exc))
