"""The provisioned alert rules, and their evaluation as Grafana does it: the query, then the threshold."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from tests.grafana.conftest import PROVISIONING
from tests.grafana.grafana_sql import QueryContext, expand
from usagemeter_clickhouse import Client

ALERTING = PROVISIONING / "alerting"
EXPRESSIONS_UID = "__expr__"
_NUMERIC = ("Int", "UInt", "Float", "Decimal")
_LABEL_TYPES = ("String", "LowCardinality(String)")


def load(name: str) -> dict[str, Any]:
    """One alerting provisioning file as YAML."""
    return dict(yaml.safe_load((ALERTING / name).read_text(encoding="utf-8")))


def rules() -> list[dict[str, Any]]:
    """Every provisioned rule, in file order."""
    return [rule for group in load("rules.yaml")["groups"] for rule in group["rules"]]


def rule(uid: str) -> dict[str, Any]:
    return next(r for r in rules() if r["uid"] == uid)


def query_model(alert_rule: dict[str, Any]) -> dict[str, Any]:
    """The datasource query of a rule (its one item that is not an expression)."""
    (query,) = [item for item in alert_rule["data"] if item["datasourceUid"] != EXPRESSIONS_UID]
    return dict(query["model"])


def threshold(alert_rule: dict[str, Any]) -> tuple[str, float]:
    """The evaluator type and bound of the rule's condition."""
    condition = next(item for item in alert_rule["data"] if item["refId"] == alert_rule["condition"])
    model = condition["model"]
    assert model["type"] == "threshold" and model["expression"] == query_model(alert_rule)["refId"]
    (evaluator,) = [c["evaluator"] for c in model["conditions"]]
    (bound,) = evaluator["params"]
    return str(evaluator["type"]), float(bound)


@dataclass(frozen=True)
class Instance:
    """One alert instance of an evaluation: its labels, its value and whether the threshold fires on it."""

    labels: dict[str, str]
    value: float
    firing: bool


def _numeric(type_name: str) -> bool:
    return type_name.startswith(_NUMERIC)


def evaluate(client: Client, alert_rule: dict[str, Any]) -> list[Instance]:
    """Run the rule's query and judge each row, after checking the rows are numeric data Grafana can alert on.

    Numeric data: exactly one numeric column, the others strings (the labels), one row per label set.
    """
    now = datetime.now(UTC)
    ctx = QueryContext(now - timedelta(minutes=10), now, 60)
    result = client.query(expand(query_model(alert_rule)["rawSql"], ctx))
    if not result.result_rows:  # no columns come back either: Grafana's "no data"
        return []
    types = [t.name for t in result.column_types]
    numeric = [i for i, name in enumerate(types) if _numeric(name)]
    assert len(numeric) == 1, f"{alert_rule['title']}: one numeric column wanted, got {types}"
    labels = [i for i in range(len(types)) if i not in numeric]
    assert all(types[i] in _LABEL_TYPES for i in labels), f"{alert_rule['title']}: labels must be strings: {types}"
    kind, bound = threshold(alert_rule)
    instances = []
    for row in result.result_rows:
        value = float(row[numeric[0]])
        firing = value > bound if kind == "gt" else value < bound if kind == "lt" else None
        assert firing is not None, f"evaluator {kind} is not judged here"
        instances.append(Instance({result.column_names[i]: str(row[i]) for i in labels}, value, firing))
    label_sets = [tuple(sorted(i.labels.items())) for i in instances]
    assert len(set(label_sets)) == len(label_sets), f"{alert_rule['title']}: repeated label sets {label_sets}"
    return instances


def firing(client: Client, alert_rule: dict[str, Any], label: str) -> dict[str, float]:
    """``label`` -> value of every firing instance."""
    return {i.labels[label]: i.value for i in evaluate(client, alert_rule) if i.firing}


def provisioning_files() -> list[Path]:
    return sorted(ALERTING.glob("*.yaml"))
