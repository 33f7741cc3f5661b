"""Property-based fuzzing of every documented operation: no input may cause a server error."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.schemas import APIOperation, BaseSchema

from tests.api.api_support import NOW, SECRET, bearer, record_spans, record_usage
from usagemeter_api import ApiSettings, create_app
from usagemeter_clickhouse import connect, migrate


@pytest.fixture(scope="module")
def fuzzed_schema(chdb_url: str) -> Iterator[BaseSchema]:
    """The app's own OpenAPI document, served by the app on a database with some usage and spans."""
    database = f"t_{uuid.uuid4().hex[:12]}"
    client = connect(chdb_url, database, create_database=True)
    migrate(client)
    record_usage(client, [("alice", "chat_messages", NOW - timedelta(hours=hours), 1) for hours in range(30)])
    record_spans(client, [(NOW, {"user.id": "alice", "feature.key": "ai_content_generation", "model": "m"})])
    app = create_app(ApiSettings(jwt_secret=SecretStr(SECRET)), lambda: connect(chdb_url, database), clock=lambda: NOW)
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    client.command(f"DROP DATABASE IF EXISTS `{database}`")
    client.close()


_TOKENS = (bearer("root", admin=True), bearer("alice"))


def _fuzz(operation: APIOperation, mode: GenerationMode, statuses: list[int]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case: schemathesis.Case) -> None:
        for headers in _TOKENS:
            statuses.append(case.call_and_validate(headers=headers, checks=[not_a_server_error]).status_code)

    try:
        run()
    except Unsatisfiable:
        # An operation without parameters or body has no invalid input to send.
        assert mode is GenerationMode.NEGATIVE, operation.label


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_causes_a_server_error(fuzzed_schema: BaseSchema, mode: GenerationMode) -> None:
    operations = [result.ok() for result in fuzzed_schema.get_all_operations()]
    assert len(operations) >= 15
    statuses: list[int] = []
    for operation in operations:
        _fuzz(operation, mode, statuses)
    # The tokens are real: the fuzzer reaches the handlers, not only the auth check.
    assert any(200 <= code < 300 for code in statuses) and any(code == 422 for code in statuses)
