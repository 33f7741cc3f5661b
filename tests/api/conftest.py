"""Fixtures for the REST API: the app on the test's own migrated database."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from tests.api.api_support import NOW, SECRET
from usagemeter_api import ApiSettings, create_app
from usagemeter_clickhouse import Client, connect, migrate, tables

AppFactory = Callable[..., TestClient]

_TEMPLATE_TABLES_SQL = """
SELECT create_table_query FROM system.tables WHERE database = {database:String}
ORDER BY engine = 'MaterializedView', name
"""


@pytest.fixture(scope="session")
def migrated_template(chdb_url: str) -> Iterator[tuple[str, list[str]]]:
    """A database migrated once per session, and the statements that recreate its tables elsewhere."""
    database = f"t_template_{uuid.uuid4().hex[:12]}"
    client = connect(chdb_url, database, create_database=True)
    migrate(client)
    statements = [row[0] for row in client.query(_TEMPLATE_TABLES_SQL, parameters={"database": database}).result_rows]
    yield database, statements
    client.command(f"DROP DATABASE IF EXISTS `{database}`")
    client.close()


@pytest.fixture
def clickhouse(chdb_url: str, database: str, migrated_template: tuple[str, list[str]]) -> Iterator[Client]:
    """The test's own database with the migrated schema, copied from the session's template.

    Copying the table definitions (materialized views last) is several times faster than
    running the migrations, and each test still sees only its own data.
    """
    template, statements = migrated_template
    client = connect(chdb_url, database, create_database=True)
    for statement in statements:
        client.command(statement.replace(f"{template}.", f"{database}."))
    client.command(f"INSERT INTO {tables.SCHEMA_MIGRATIONS} SELECT * FROM `{template}`.{tables.SCHEMA_MIGRATIONS}")
    yield client
    client.command(f"DROP DATABASE IF EXISTS `{database}`")
    client.close()


@pytest.fixture
def make_api(chdb_url: str, database: str, clickhouse: Client) -> Iterator[AppFactory]:
    """Build a started app on the test database; keyword arguments become ApiSettings fields."""
    started: list[TestClient] = []

    def build(
        *,
        now: datetime = NOW,
        client_factory: Callable[[], Client] | None = None,
        plans_file: Path | None = None,
        **settings: object,
    ) -> TestClient:
        settings.setdefault("jwt_secret", SecretStr(SECRET))
        # Most tests read right after inserting; the live view is tested on its own.
        settings.setdefault("quota_live_usage", False)
        api_settings = ApiSettings(plans_file=plans_file, **settings)  # type: ignore[arg-type]
        app = create_app(api_settings, client_factory or (lambda: connect(chdb_url, database)), clock=lambda: now)
        test_client = TestClient(app, raise_server_exceptions=False)
        test_client.__enter__()
        started.append(test_client)
        return test_client

    yield build
    for test_client in started:
        test_client.__exit__(None, None, None)


@pytest.fixture
def api(make_api: AppFactory) -> TestClient:
    """The app with the shipped plans and the clock at NOW."""
    return make_api()


@pytest.fixture
def plans_file(tmp_path: Path) -> Callable[[str], Path]:
    """Write a plans TOML file and return its path."""

    def write(text: str) -> Path:
        path = tmp_path / "plans.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="module")
def shared_api(chdb_url: str) -> Iterator[TestClient]:
    """One app for a whole module, on a migrated database of its own, for tests that only read."""
    database = f"t_{uuid.uuid4().hex[:12]}"
    client = connect(chdb_url, database, create_database=True)
    migrate(client)
    app = create_app(ApiSettings(jwt_secret=SecretStr(SECRET)), lambda: connect(chdb_url, database), clock=lambda: NOW)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client
    client.command(f"DROP DATABASE IF EXISTS `{database}`")
    client.close()
