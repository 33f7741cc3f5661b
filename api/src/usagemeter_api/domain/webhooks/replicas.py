"""The API replicas alive, from heartbeats in ClickHouse: who detects webhook events and who sends which.

Every replica writes a heartbeat every ``interval_seconds`` (stamped by ClickHouse's clock) and reads the
replicas seen within ``expire_seconds``. Ranked by id, the first detects events; each sends the events whose
id hashes to its rank. When a replica stops, the others' view drops it within ``expire_seconds`` and its
events hash to them: a delivery it had not finished is sent again (at least once). Replicas whose views
differ for a moment may both send an event (once more) or leave it for their next pass (later).
"""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from usagemeter_api.core.clock import epoch_ms
from usagemeter_api.domain.refresh import BackgroundRefresh
from usagemeter_clickhouse import Client, tables

__all__ = ["Membership", "Rank"]

logger = logging.getLogger(__name__)

_HEARTBEAT_SQL = (
    f"INSERT INTO {tables.API_REPLICAS} (ReplicaId, Host, StartedAt, SeenAt)"
    " SELECT {id:String}, {host:String}, fromUnixTimestamp64Milli({started:Int64}, 'UTC'), now64(3, 'UTC')"
)
_ALIVE_SQL = (
    f"SELECT ReplicaId FROM {tables.API_REPLICAS} FINAL"
    " WHERE SeenAt >= now64(3, 'UTC') - toIntervalMillisecond({expire_ms:UInt32}) ORDER BY ReplicaId"
)


class Rank(tuple[int, int]):
    """(this replica's rank, replicas alive); (0, 1) alone."""

    @property
    def leads(self) -> bool:
        """Whether this replica detects events (the first alive)."""
        return self[0] == 0


class Membership:
    """This replica's heartbeat and its rank among the replicas alive, kept in the background."""

    def __init__(
        self, interval_seconds: float = 2.0, expire_seconds: float = 10.0, *, wanted: Callable[[], bool] = lambda: True
    ) -> None:
        self.replica_id = f"{socket.gethostname()[:64]}-{uuid.uuid4().hex[:12]}"
        self._started = datetime.now(UTC)
        self._expire_ms = int(expire_seconds * 1000)
        self._rank: Rank | None = None
        self._wanted = wanted
        self._background = BackgroundRefresh(
            "replica heartbeat", self.beat, interval_seconds, meanwhile="answering from the held rank"
        )

    def start(self, client_factory: Callable[[], Client]) -> None:
        """Beat in the background from now on."""
        self._background.start(client_factory)

    def close(self) -> None:
        """Stop beating (the others drop this replica within ``expire_seconds``)."""
        self._background.close()

    def rank(self) -> Rank | None:
        """This replica's rank as last read; None before the first heartbeat was written and read."""
        return self._rank

    def beat(self, client: Client) -> Rank | None:
        """Write a heartbeat and read the replicas alive; nothing while webhooks are not ``wanted`` (no endpoint)."""
        if not self._wanted():
            self._rank = None
            return None
        parameters = {"id": self.replica_id, "host": socket.gethostname()[:255], "started": epoch_ms(self._started)}
        client.command(_HEARTBEAT_SQL, parameters=parameters)
        alive = [str(row[0]) for row in client.query(_ALIVE_SQL, parameters={"expire_ms": self._expire_ms}).result_rows]
        if self.replica_id not in alive:
            # Its own heartbeat was just written: a replica missing from the read sees a lagging shard.
            alive = sorted([*alive, self.replica_id])
        rank = Rank((alive.index(self.replica_id), len(alive)))
        if rank != self._rank:
            logger.info("webhook sending: replica %s is %d of %d alive", self.replica_id, rank[0] + 1, rank[1])
        self._rank = rank
        return rank
