"""The OpenAPI document: complete, with examples that validate against their own models."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from usagemeter_api.schemas import adjustments as adjustment_schemas
from usagemeter_api.schemas import admin as admin_schemas
from usagemeter_api.schemas import analytics as analytics_schemas
from usagemeter_api.schemas import errors
from usagemeter_api.schemas import operations as ops_schemas
from usagemeter_api.schemas import quotas as schemas
from usagemeter_api.schemas import webhooks as webhook_schemas


def _responses(document: dict):
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for code, response in operation["responses"].items():
                yield f"{method.upper()} {path} {code}", response


def test_every_response_is_documented_with_an_example(shared_api):
    document = shared_api.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    missing = []
    for label, response in _responses(document):
        if label.endswith(" 204"):
            assert "content" not in response, label  # no content has no example
            continue
        content = response.get("content", {}).get("application/json", {})
        name = content.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1]
        if "example" not in content and "examples" not in schemas.get(name, {}):
            missing.append(label)
    assert missing == []
    labels = {label for label, _ in _responses(document)}
    for expected in ("GET /api/v1/analytics/usage/{feature_key}/breakdown 200", "GET /api/v1/quotas 503"):
        assert expected in labels


def _models():
    for module in (schemas, admin_schemas, adjustment_schemas, ops_schemas, analytics_schemas, errors, webhook_schemas):
        for name in module.__all__:
            model = getattr(module, name)
            if isinstance(model, type) and issubclass(model, BaseModel):
                yield model


@pytest.mark.parametrize("model", list(_models()), ids=lambda model: model.__name__)
def test_examples_are_valid_instances_of_their_model(model):
    for example in model.model_json_schema().get("examples", []):
        model.model_validate(example)


def test_every_operation_but_liveness_declares_the_bearer_scheme(shared_api):
    document = shared_api.get("/openapi.json").json()
    assert list(document["components"]["securitySchemes"]) == ["HTTPBearer"]
    unsecured = [
        f"{method.upper()} {path}"
        for path, operations in document["paths"].items()
        if path.startswith("/api/v1/") and path != "/api/v1/health"
        for method, operation in operations.items()
        if operation.get("security") != [{"HTTPBearer": []}]
    ]
    assert unsecured == []


def test_grant_correction_and_plan_bodies_carry_examples(shared_api):
    document = shared_api.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    for path, method in (
        ("/api/v1/admin/grants", "post"),
        ("/api/v1/admin/grants/{grant_id}/void", "post"),
        ("/api/v1/admin/corrections", "post"),
        ("/api/v1/admin/plans", "post"),
        ("/api/v1/admin/plans/{plan_id}", "put"),
    ):
        body = document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
        assert schemas[body["$ref"].rsplit("/", 1)[-1]]["examples"], f"{method.upper()} {path}"
    labels = {label for label, _ in _responses(document)}
    for expected in (
        "POST /api/v1/admin/grants 201",
        "GET /api/v1/admin/grants 200",
        "POST /api/v1/admin/grants/{grant_id}/void 409",
        "POST /api/v1/admin/grants/{grant_id}/void 404",
        "POST /api/v1/admin/corrections 201",
        "GET /api/v1/admin/corrections 200",
        "POST /api/v1/admin/plans 422",
    ):
        assert expected in labels
    assert document["paths"]["/api/v1/admin/grants"]["post"]["parameters"][0]["name"] == "Idempotency-Key"


def test_the_check_declares_its_parameters_and_refuses_bad_ones_as_fastapi_does(shared_api):
    # The check reads its parameters itself (for speed): the document and the errors must not show it.
    document = shared_api.get("/openapi.json").json()
    operation = document["paths"]["/api/v1/quotas/{feature_key}/check"]["get"]
    declared = {(parameter["name"], parameter["in"]) for parameter in operation["parameters"]}
    assert declared == {("feature_key", "path"), ("user_id", "query"), ("amount", "query"), ("dimension", "query")}
    amount = next(parameter for parameter in operation["parameters"] if parameter["name"] == "amount")
    assert amount["required"] is False and amount["schema"]["default"] == "1" and "6 decimals" in amount["description"]
    refused = shared_api.get("/api/v1/quotas/chat_messages/check", params={"amount": "0", "dimension": ""})
    assert refused.status_code == 422
    errors = {tuple(error["loc"]): error["type"] for error in refused.json()["detail"]}
    assert errors == {("query", "amount"): "greater_than", ("query", "dimension"): "string_too_short"}
