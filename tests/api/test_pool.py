"""The ClickHouse client pool never loses capacity to a request that does not come back."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from usagemeter_api.core.pool import ClickHouseUnavailable, ClientPool
from usagemeter_clickhouse import connect


def test_an_abandoned_borrow_costs_no_capacity(chdb_url, database, clickhouse):
    opened = []

    def factory():
        opened.append(connect(chdb_url, database))
        return opened[-1]

    pool = ClientPool(factory, size=1)
    abandoned = pool.client()
    abandoned.__enter__()  # never exited, like a request cancelled when its client disconnects
    with pool.client() as client:
        assert client.query("SELECT 1").result_rows == [(1,)]
    with pool.client() as client:
        assert client is opened[1]
    assert len(opened) == 2 and pool.idle() == 1
    pool.close()
    with pytest.raises(ClickHouseUnavailable):
        pool.client().__enter__()
    pool.reopen()
    with pool.client() as client:
        assert client.query("SELECT 2").result_rows == [(2,)]


def test_concurrent_borrowers_never_wait_and_extra_clients_are_closed(chdb_url, database, clickhouse):
    pool = ClientPool(lambda: connect(chdb_url, database), size=2)

    def borrow(_: int) -> int:
        with pool.client() as client:
            return int(client.query("SELECT sleep(0.05), 1").result_rows[0][1])

    with ThreadPoolExecutor(max_workers=6) as threads:
        assert list(threads.map(borrow, range(12))) == [1] * 12
    assert 1 <= pool.idle() <= 2
    pool.close()
    assert pool.idle() == 0
