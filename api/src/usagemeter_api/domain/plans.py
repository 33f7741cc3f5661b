"""Plans: per-feature limits over a UTC period, and which user is on which plan.

Plans come from a TOML file (the shipped ``plans.toml`` unless configured)
validated with pydantic; a bad file fails at startup naming the bad key.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError
from pydantic_core import PydanticCustomError

from usagemeter_api.errors import PlansError
from usagemeter_api.schemas.admin import Enforcement, PeriodKind

__all__ = [
    "DEFAULT_PLANS_RESOURCE",
    "Enforcement",
    "Limit",
    "PeriodKind",
    "Plan",
    "PlanCatalog",
    "load_plans",
]

DEFAULT_PLANS_RESOURCE = "plans.toml"
UNLIMITED = "unlimited"


def _parse_limit(value: object) -> int | None:
    if value is None or value == UNLIMITED:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PydanticCustomError(
            "limit", 'must be a non-negative integer or "unlimited", got {value}', {"value": value}
        )
    return value


#: A feature's allowance per period; None means unlimited.
Limit = Annotated[int | None, PlainValidator(_parse_limit)]
_Key = Annotated[str, Field(min_length=1)]


class Plan(BaseModel):
    """One plan: its display name, period, near-limit threshold and per-feature limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    period: PeriodKind = "month"
    near_limit_ratio: float = Field(default=0.8, gt=0, le=1)
    enforcement: Enforcement = "hard"
    limits: dict[_Key, Limit] = Field(default_factory=dict)


class PlanCatalog(BaseModel):
    """Every plan, the default one and the user assignments."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_plan: str = "free"
    plans: dict[_Key, Plan] = Field(min_length=1)
    assignments: dict[_Key, _Key] = Field(default_factory=dict)

    def plan_for(self, user_id: str) -> tuple[str, Plan]:
        """The id and plan of ``user_id`` (the default plan when unassigned)."""
        plan_id = self.assignments.get(user_id, self.default_plan)
        return plan_id, self.plans[plan_id]

    def feature_keys(self) -> list[str]:
        """Every feature key any plan meters, in first-seen order."""
        return list(dict.fromkeys(key for plan in self.plans.values() for key in plan.limits))


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
