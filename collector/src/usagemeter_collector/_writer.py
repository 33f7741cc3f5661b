"""Batches rows per table and inserts them from one thread that owns its ClickHouse client.

A request's future resolves only once every row it handed over is committed,
so an acknowledged export is stored.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DataError

from usagemeter_collector import _schema
from usagemeter_collector._decoded import Row
from usagemeter_collector._errors import PayloadError, StorageUnavailable

logger = logging.getLogger(__name__)


@dataclass
class _Pending:
    rows: Mapping[str, list[Row]]
    future: Future[None]
    since: float


class BatchWriter:
    """Inserts when a table's buffer reaches ``max_rows`` or the oldest rows waited ``max_delay`` seconds."""

    def __init__(self, client_factory: Callable[[], Client], max_rows: int, max_delay: float) -> None:
        self._client_factory = client_factory
        self._max_rows = max_rows
        self._max_delay = max_delay
        self._cond = threading.Condition()
        self._pending: list[_Pending] = []
        self._buffered: dict[str, int] = {}
        self._stopping = False
        self._draining = False
        self._thread: threading.Thread | None = None
        self._ready: Future[None] = Future()

    def start(self) -> None:
        """Start the writer thread and wait until its client is open (raises if it cannot be)."""
        self._thread = threading.Thread(target=self._run, name="usagemeter-collector-writer", daemon=True)
        self._thread.start()
        self._ready.result()

    def submit(self, rows: Mapping[str, list[Row]]) -> Future[None]:
        """Queue ``rows`` (table → rows); the future resolves when they are committed."""
        future: Future[None] = Future()
        with self._cond:
            if self._stopping or self._thread is None:
                future.set_exception(StorageUnavailable("collector is not accepting data"))
                return future
            self._pending.append(_Pending(rows, future, time.monotonic()))
            for table, table_rows in rows.items():
                self._buffered[table] = self._buffered.get(table, 0) + len(table_rows)
            self._cond.notify()
        return future

    def drain(self) -> None:
        """Insert queued rows at once from now on, without waiting to fill a batch (used while shutting down)."""
        with self._cond:
            self._draining = True
            self._cond.notify()

    def stop(self) -> None:
        """Insert everything queued, then close the client and end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()

    def _due(self) -> bool:
        if not self._pending:
            return False
        if self._stopping or self._draining or any(count >= self._max_rows for count in self._buffered.values()):
            return True
        return time.monotonic() - self._pending[0].since >= self._max_delay

    def _take(self) -> list[_Pending] | None:
        """Wait for the next batch; None once stopping with nothing left."""
        with self._cond:
            while not self._due():
                if self._stopping:
                    return None
                timeout = None
                if self._pending:
                    timeout = self._max_delay - (time.monotonic() - self._pending[0].since)
                self._cond.wait(timeout)
            batch, self._pending, self._buffered = self._pending, [], {}
            return batch

    def _run(self) -> None:
        try:
            client = self._client_factory()
        except Exception as exc:
            logger.exception("cannot open a ClickHouse client for the collector")
            self._ready.set_exception(exc)
            return
        self._ready.set_result(None)
        try:
            while (batch := self._take()) is not None:
                self._flush(client, batch)
        finally:
            self._fail_pending()
            client.close()

    def _fail_pending(self) -> None:
        with self._cond:
            self._stopping = True
            batch, self._pending = self._pending, []
        for pending in batch:
            _resolve(pending.future, StorageUnavailable("collector writer stopped"))

    def _flush(self, client: Client, batch: list[_Pending]) -> None:
        failed: dict[int, Exception] = {}
        for table in _schema.INSERT_ORDER:
            members = [i for i, p in enumerate(batch) if i not in failed and p.rows.get(table)]
            if not members:
                continue
            try:
                self._insert(client, table, [row for i in members for row in batch[i].rows[table]])
            except Exception as exc:
                logger.error("insert into %s for %d requests failed: %s", table, len(members), exc)
                if len(members) == 1:
                    failed[members[0]] = exc
                else:
                    failed.update(self._insert_one_by_one(client, table, batch, members))
        for i, pending in enumerate(batch):
            _resolve(pending.future, _request_error(failed[i]) if i in failed else None)

    def _insert_one_by_one(
        self, client: Client, table: str, batch: list[_Pending], members: list[int]
    ) -> dict[int, Exception]:
        """Retry a failed batch request by request, so one unstorable request does not fail the others."""
        failed = {}
        for i in members:
            try:
                self._insert(client, table, list(batch[i].rows[table]))
            except Exception as exc:
                failed[i] = exc
        return failed

    def _insert(self, client: Client, table: str, rows: list[Row]) -> None:
        columns = _schema.COLUMNS[table]
        for offset in range(0, len(rows), self._max_rows):
            started = time.perf_counter()
            chunk = rows[offset : offset + self._max_rows]
            client.insert(table, list(zip(*chunk, strict=True)), column_names=columns, column_oriented=True)
            elapsed_ms = 1000 * (time.perf_counter() - started)
            logger.debug("inserted %d rows into %s in %.1f ms", len(chunk), table, elapsed_ms)


def _resolve(future: Future[None], error: Exception | None) -> None:
    # The awaiting request may have been cancelled (its sender hung up); its rows are stored all the same.
    with contextlib.suppress(InvalidStateError):
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


def _request_error(exc: Exception) -> Exception:
    if isinstance(exc, DataError):
        # The rows cannot be serialised (e.g. a timestamp past 2262): retrying would never succeed.
        return PayloadError(400, f"data cannot be stored: {exc}")
    return StorageUnavailable(f"ClickHouse insert failed: {exc}")
