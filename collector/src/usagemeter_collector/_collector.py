"""The collector: OTLP/gRPC and OTLP/HTTP receivers and the batch writer, in the caller's event loop."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Mapping
from typing import Any

import grpc
import uvicorn
from clickhouse_connect.driver.client import Client
from starlette.applications import Starlette

from usagemeter_collector._checks.cumulative import CumulativeToDelta
from usagemeter_collector._checks.rule import PointRules, TimeWindow
from usagemeter_collector._drain.beacon import FailureBeacon
from usagemeter_collector._drain.landing import format_schema
from usagemeter_collector._drain.writer import SpoolWriter
from usagemeter_collector._health import CollectorStatus, health_answer
from usagemeter_collector._ingest import Ingest
from usagemeter_collector._receivers.auth import TokenCheck
from usagemeter_collector._receivers.grpc_receiver import add_otlp_services
from usagemeter_collector._receivers.hosted_server import HostedServer
from usagemeter_collector._receivers.http_receiver import HttpOptions, build_http_app
from usagemeter_collector._self_report import SelfReporter, instance_id
from usagemeter_collector._settings import CollectorSettings
from usagemeter_collector._spool.spool import Spool, SpoolLimits
from usagemeter_collector._spool.state import StateLimits
from usagemeter_collector._telemetry import Telemetry

logger = logging.getLogger(__name__)

#: How long stop() lets requests in flight finish before cutting them off.
SHUTDOWN_GRACE_SECONDS = 10.0
#: What a refused sender is told to wait before retrying.
RETRY_AFTER_SECONDS = 1


class Collector:
    """Receives OTLP metrics and spans, spools them durably and inserts them into ClickHouse.

    ``client_factory`` is called on the writer thread (again after each failure while ClickHouse is
    unreachable), which then owns the client.
    The spool directory (``settings.resolved_spool_dir()``) belongs to one collector at a time.
    ``http_server_options`` are extra ``uvicorn.Config`` arguments for the OTLP/HTTP server (its protocol, limits).
    ``clickhouse_server`` says the factory opens a ClickHouse server rather than the embedded engine, which
    decides how the default format schema is named.
    """

    def __init__(
        self,
        client_factory: Callable[[], Client],
        settings: CollectorSettings,
        *,
        http_server_options: Mapping[str, Any] | None = None,
        clickhouse_server: bool = False,
    ) -> None:
        self._settings = settings
        self._http_server_options = dict(http_server_options or {})
        self.telemetry = Telemetry()
        self.converter = CumulativeToDelta(settings.cumulative_max_series, self.telemetry)
        limits = SpoolLimits(
            max_bytes=settings.spool_max_bytes,
            segment_bytes=settings.spool_segment_bytes,
            seal_after_seconds=settings.batch_max_delay_seconds,
            dedup_window_seconds=settings.dedup_window_seconds,
            state=StateLimits(settings.cumulative_series_ttl_seconds, settings.dedup_max_hashes),
        )
        self.spool = Spool(settings.resolved_spool_dir(), limits, self.telemetry)
        backoff = (settings.retry_initial_seconds, settings.retry_max_seconds)
        self._writer = SpoolWriter(
            client_factory,
            self.spool,
            self.telemetry,
            settings.batch_max_rows,
            backoff,
            format_schema(settings.clickhouse_format_schema or None, server=clickhouse_server),
            settings.spool_segment_bytes,
        )
        self._ingest = Ingest(self.spool, self.converter, self.telemetry, self._rules, settings.protobuf_metrics)
        self._reporter: SelfReporter | None = None
        self._tokens = TokenCheck(settings.tokens())
        http_options = HttpOptions(self._tokens, settings.max_request_bytes, RETRY_AFTER_SECONDS)
        self._http_app = build_http_app(self._ingest, self.telemetry, http_options, self.health)
        self._grpc_server: grpc.aio.Server | None = None
        self._http_server: HostedServer | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._grpc_port: int | None = None
        self._http_port: int | None = None

    @property
    def http_app(self) -> Starlette:
        """The OTLP/HTTP ASGI app."""
        return self._http_app

    @property
    def grpc_port(self) -> int:
        """The port the OTLP/gRPC receiver is bound to."""
        if self._grpc_port is None:
            raise RuntimeError("collector is not started")
        return self._grpc_port

    @property
    def http_port(self) -> int:
        """The port the OTLP/HTTP receiver is bound to."""
        if self._http_port is None:
            raise RuntimeError("collector is not started")
        return self._http_port

    @property
    def instance_id(self) -> str | None:
        """The ``service.instance.id`` of the collector's own telemetry, kept in its spool directory across
        restarts (None when it reports none, or before start)."""
        return self._reporter.instance if self._reporter is not None else None

    def status(self) -> CollectorStatus:
        """Whether the spool can write and inserts work, how old the unsent data is, and what was lost to damage
        or moved aside since the start."""
        return self.telemetry.status(self._settings.collector_unsent_degraded_seconds)

    def health(self, detailed: bool = False) -> dict[str, Any]:
        """What GET /health answers: ``ok`` or ``degraded`` with reason codes and the figures they rest on;
        ``detailed`` adds the reasons' sentences and the error texts (for a caller with an ingest token)."""
        return health_answer(self.status(), self.instance_id, detailed)

    @property
    def drained(self) -> bool:
        """Whether every acknowledged item is committed to ClickHouse (the spool is empty)."""
        return self.spool.empty

    def _rules(self) -> PointRules:
        settings = self._settings
        window = TimeWindow.around_now(settings.raw_retention_days, settings.max_future_seconds)
        return PointRules(window, settings.max_point_value, settings.max_id_bytes)

    async def start(self) -> None:
        """Recover the spool, start the writer (it connects to ClickHouse itself, retrying while ClickHouse is
        unreachable, so exports are spooled meanwhile), then start both receivers."""
        await asyncio.to_thread(self.spool.open)
        self.converter.restore(self.spool.state.series)
        self._report_as(await asyncio.to_thread(instance_id, self.spool.directory))
        self._writer.start()
        try:
            await self._start_grpc()
            await self._start_http()
            if self._reporter is not None:
                self._reporter.start()
        except BaseException:
            await self.stop()
            raise
        logger.info(
            "collector listening on %s: OTLP/gRPC port %d, OTLP/HTTP port %d",
            self._settings.host,
            self._grpc_port,
            self._http_port,
        )

    async def stop(self) -> None:
        """Stop accepting, answer the requests in flight, insert what the spool holds (for a while), close."""
        waits = []
        if self._http_server is not None and self._http_task is not None:
            self._http_server.should_exit = True
            waits.append(self._http_task)
        if self._grpc_server is not None:
            waits.append(asyncio.ensure_future(self._grpc_server.stop(SHUTDOWN_GRACE_SECONDS)))
        for outcome in await asyncio.gather(*waits, return_exceptions=True):
            if isinstance(outcome, BaseException):
                logger.error("receiver did not stop cleanly: %r", outcome)
        self._http_server = self._http_task = self._grpc_server = None
        if self._reporter is not None:
            await self._reporter.stop()
        await asyncio.to_thread(self.spool.close)
        await asyncio.to_thread(self._writer.stop, self._settings.drain_timeout_seconds)
        left = self.spool.segments
        if left:
            logger.warning("collector stopped with %d spool segments not yet inserted; the next start sends them", left)
        else:
            logger.info("collector stopped, its spool empty")

    def _report_as(self, instance: str) -> None:
        """Report the collector's own telemetry, and failing inserts, as ``instance`` (unless switched off)."""
        interval = self._settings.self_telemetry_interval_seconds
        if interval > 0:
            self._reporter = SelfReporter(self.telemetry, self.spool, self._ingest, interval, instance)
            self._writer.beacon = FailureBeacon(self.telemetry, instance, interval)

    async def _start_grpc(self) -> None:
        options = [
            ("grpc.max_receive_message_length", self._settings.max_request_bytes),
            # Both the soft and the hard bound, so larger metadata is always refused, never sometimes.
            ("grpc.max_metadata_size", self._settings.max_header_bytes),
            ("grpc.absolute_max_metadata_size", self._settings.max_header_bytes),
            # Without this a second server could share the port silently.
            ("grpc.so_reuseport", 0),
        ]
        server = grpc.aio.server(options=options)
        add_otlp_services(server, self._ingest, self._tokens, RETRY_AFTER_SECONDS)
        host = self._settings.host
        address = f"[{host}]:{self._settings.grpc_port}" if ":" in host else f"{host}:{self._settings.grpc_port}"
        self._grpc_port = server.add_insecure_port(address)
        self._grpc_server = server
        await server.start()

    async def _start_http(self) -> None:
        sock = _bind(self._settings.host, self._settings.http_port)
        self._http_port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._http_app,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=int(SHUTDOWN_GRACE_SECONDS),
            **self._http_server_options,
        )
        self._http_server = server = HostedServer(config)
        self._http_task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if self._http_task.done():
                self._http_task.result()
                raise RuntimeError("OTLP/HTTP server exited during startup")
            await asyncio.sleep(0.01)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock
