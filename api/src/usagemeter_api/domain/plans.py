"""Plans: what each plan meters of each feature (unit, dimension, limits over windows), and who is on which plan.

Plans come from a TOML file (the shipped ``plans.toml`` unless configured)
validated with pydantic; a bad file fails at startup naming the bad key.
"""

from __future__ import annotations

import tomllib
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from usagemeter_api.errors import PlansError
from usagemeter_api.quantity import from_micros
from usagemeter_api.schemas.admin import Enforcement
from usagemeter_api.schemas.plans import FeaturePlan, LimitRule, PeriodKind, shorthand

__all__ = [
    "DEFAULT_PLANS_RESOURCE",
    "Enforcement",
    "FeaturePlan",
    "LimitRule",
    "PeriodKind",
    "Plan",
    "PlanCatalog",
    "load_plans",
]

DEFAULT_PLANS_RESOURCE = "plans.toml"

_Key = Annotated[str, Field(min_length=1)]


class Plan(BaseModel):
    """One plan: its display name, near-limit threshold, enforcement and what it meters of each feature.

    ``features`` is the canonical form. ``limits`` is the shorthand of plain use counts per
    ``period`` (feature key -> number, or ``"unlimited"``/``None``); it is read into ``features``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    period: PeriodKind = "month"
    near_limit_ratio: float = Field(default=0.8, gt=0, le=1)
    enforcement: Enforcement = "hard"
    features: dict[_Key, FeaturePlan] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _read_shorthand(cls, data: object) -> object:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        period = data.get("period", "month")
        features = dict(data.get("features") or {})
        for key, value in features.items():
            if not isinstance(value, dict | FeaturePlan):
                # Rows written before features had units and windows: key -> uses per period.
                features[key] = shorthand(value, period)
        for key, limit in (data.pop("limits", None) or {}).items():
            if key in features:
                raise PydanticCustomError("feature", "{key} is given both in limits and in features", {"key": key})
            try:
                features[key] = shorthand(limit, period)
            except PydanticCustomError as exc:
                # A before-validator's error is located at the plan: name the key it is about.
                raise PydanticCustomError(
                    exc.type, "limits.{key}: {reason}", {"key": key, "reason": exc.message()}
                ) from None
        data["features"] = features
        return data

    def shorthand_limits(self) -> dict[str, int | float | None]:
        """The features whose only limit is plain uses per ``period``, as the shorthand writes them."""
        plain: dict[str, int | float | None] = {}
        for key, feature in self.features.items():
            if feature.unit != "uses" or feature.dimension is not None or len(feature.limits) > 1:
                continue
            if not feature.limits:
                plain[key] = None
            elif feature.limits[0].window.label == self.period:
                plain[key] = from_micros(feature.limits[0].limit_micros)
        return plain

    def feature(self, feature_key: str) -> FeaturePlan | None:
        """What the plan meters of ``feature_key``; None when it does not meter it."""
        return self.features.get(feature_key)


class PlanCatalog(BaseModel):
    """Every plan, the default one and the user assignments."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_plan: str = "free"
    plans: dict[_Key, Plan] = Field(min_length=1)
    assignments: dict[_Key, _Key] = Field(default_factory=dict)
    #: When each user was last assigned a plan (through the API): the anchor of their billing cycle.
    assigned_at: dict[_Key, datetime] = Field(default_factory=dict)

    def plan_for(self, user_id: str) -> tuple[str, Plan]:
        """The id and plan of ``user_id`` (the default plan when unassigned)."""
        plan_id = self.assignments.get(user_id, self.default_plan)
        return plan_id, self.plans[plan_id]

    def feature_keys(self) -> list[str]:
        """Every feature key any plan meters, in first-seen order."""
        return list(dict.fromkeys(key for plan in self.plans.values() for key in plan.features))


def load_plans(path: Path | None = None) -> PlanCatalog:
    """Read and validate a plans file; ``None`` reads the shipped defaults."""
    source = str(path) if path is not None else f"usagemeter_api/{DEFAULT_PLANS_RESOURCE}"
    try:
        text = path.read_text(encoding="utf-8") if path else _default_text()
        catalog = PlanCatalog.model_validate(tomllib.loads(text))
    except OSError as exc:
        raise PlansError(f"cannot read plans file {source}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PlansError(f"plans file {source} is not valid TOML: {exc}") from exc
    except ValidationError as exc:
        raise PlansError(f"plans file {source} is invalid: {_describe(exc)}") from exc
    _check_references(catalog, source)
    return catalog


def _default_text() -> str:
    return resources.files("usagemeter_api").joinpath(DEFAULT_PLANS_RESOURCE).read_text(encoding="utf-8")


def _describe(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(part) for part in err['loc'])}: {err['msg']}" for err in exc.errors())


def _check_references(catalog: PlanCatalog, source: str) -> None:
    known = ", ".join(catalog.plans)
    if catalog.default_plan not in catalog.plans:
        raise PlansError(f"plans file {source}: default_plan {catalog.default_plan!r} is not a plan ({known})")
    for user_id, plan_id in catalog.assignments.items():
        if plan_id not in catalog.plans:
            raise PlansError(f"plans file {source}: assignments.{user_id} names unknown plan {plan_id!r} ({known})")
