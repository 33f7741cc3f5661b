"""The quota check's parameters, and their OpenAPI declaration.

The check route reads them itself (the query validated with this model) rather than declaring each
as a FastAPI parameter: FastAPI works out every declared parameter's kind again on each request, which cost the
hottest route more than the rest of its own work. The errors are FastAPI's own (422, each with its
``["query", name]`` location), and the OpenAPI document declares the same parameters.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["FEATURE_KEY_PARAMETER", "OTHER_USER_DESCRIPTION", "CheckQuery", "query_parameters"]

OTHER_USER_DESCRIPTION = "Another user's id (admins only); the caller by default."
#: The check's path parameter, read from the matched path by the route.
FEATURE_KEY_PARAMETER: dict[str, object] = {
    "name": "feature_key",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "title": "Feature Key"},
    "description": "The metered feature, as the plan names it.",
}


class CheckQuery(BaseModel):
    """``GET /quotas/{feature_key}/check``'s query parameters."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    user_id: str | None = Field(None, min_length=1, max_length=256, description=OTHER_USER_DESCRIPTION)
    amount: Decimal = Field(
        Decimal(1),
        gt=0,
        le=10**12,
        decimal_places=6,
        description="How much the host is about to use, in the feature's unit (at most 6 decimals).",
    )
    dimension: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="The value of the feature's dimension attribute (e.g. a model).",
    )


def query_parameters(model: type[BaseModel]) -> list[dict[str, object]]:
    """OpenAPI parameter objects for ``model``'s fields, as FastAPI writes those of declared query parameters."""
    schema = model.model_json_schema(mode="validation")
    required = set(schema.get("required", ()))
    parameters: list[dict[str, object]] = []
    for name, field in schema["properties"].items():
        if field.get("default", ...) is None:
            del field["default"]
        parameter = {"name": name, "in": "query", "required": name in required, "schema": field}
        parameters.append(parameter | {"description": field["description"]} if "description" in field else parameter)
    return parameters
