"""usagemeter's OTLP collector.

Receives OTLP metrics and spans over gRPC and HTTP (protobuf and JSON, gzip),
validates ``feature.usage`` points, turns cumulative monotonic sums into deltas,
acknowledges a request once it is fsync'd in an on-disk spool, and drains the
spool into the raw ClickHouse tables with deduplicated, retried inserts. It runs inside the caller's
asyncio loop, next to other servers::

    collector = Collector(lambda: connect(url, database), CollectorSettings())
    await collector.start()
    ...
    await collector.stop()
"""

from __future__ import annotations

from usagemeter_collector._collector import Collector
from usagemeter_collector._receivers.hosted_server import HostedServer
from usagemeter_collector._settings import CollectorSettings
from usagemeter_collector._telemetry import first_line

__all__ = ["Collector", "CollectorSettings", "HostedServer", "first_line"]
