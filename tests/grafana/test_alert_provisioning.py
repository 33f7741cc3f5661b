"""The alerting provisioning files parse, read the provisioned datasource, reuse the API's thresholds and route
every rule to a contact point whose address the Grafana container's environment must give."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.compose_file import (
    ENV_EXAMPLE,
    InterpolationError,
    environment_of,
    interpolate,
    raw_compose,
    read_env_file,
    references,
)
from tests.grafana import alerting
from tests.grafana.conftest import PLUGIN_TYPE, provisioned_datasource
from usagemeter_api import ApiSettings
from usagemeter_collector import CollectorSettings

WEBHOOK_URL = "GRAFANA_ALERT_WEBHOOK_URL"


def _contact_points() -> list[dict[str, Any]]:
    return list(alerting.load("contact-points.yaml")["contactPoints"])


def _routes(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return [policy, *(r for child in policy.get("routes", []) for r in _routes(child))]


def test_every_alerting_file_is_version_1_provisioning():
    files = {path.name for path in alerting.provisioning_files()}
    assert files == {"rules.yaml", "contact-points.yaml", "policies.yaml"}
    assert all(alerting.load(name)["apiVersion"] == 1 for name in files)


def test_every_rule_queries_the_provisioned_datasource_as_a_table():
    uid = provisioned_datasource()["uid"]
    uids = [r["uid"] for r in alerting.rules()]
    assert len(uids) == len(set(uids)) == 4
    for alert_rule in alerting.rules():
        query = next(item for item in alert_rule["data"] if item["datasourceUid"] != alerting.EXPRESSIONS_UID)
        assert query["datasourceUid"] == uid, alert_rule["title"]
        model = alerting.query_model(alert_rule)
        assert model["datasource"] == {"type": PLUGIN_TYPE, "uid": uid}
        # Grafana alerts on a table's rows (numeric data) only when the query is formatted as a table.
        assert (model["format"], model["queryType"], model["editorType"]) == (1, "table", "sql")
        assert {item["refId"] for item in alert_rule["data"]} >= {alert_rule["condition"], model["refId"]}
        assert alert_rule["execErrState"] == "Error", "a rule that cannot query ClickHouse must say so"


def test_no_rule_holds_what_grafana_would_interpolate():
    # Titles, labels and every other interpolated field lose a dollar sign's word to the environment.
    text = (alerting.ALERTING / "rules.yaml").read_text(encoding="utf-8")
    assert "$" not in text


def test_thresholds_are_the_api_and_collector_defaults():
    api, collector = ApiSettings.model_fields, CollectorSettings.model_fields
    stale = api["collector_stale_after_seconds"].default
    unsent = api["collector_unsent_degraded_seconds"].default
    assert unsent == collector["collector_unsent_degraded_seconds"].default
    assert alerting.threshold(alerting.rule("usagemeter-collector-down")) == ("gt", stale)
    assert alerting.threshold(alerting.rule("usagemeter-collector-unsent-data")) == ("gt", unsent)
    for uid in ("usagemeter-collector-inserts-failing", "usagemeter-users-over-limit"):
        assert alerting.threshold(alerting.rule(uid)) == ("gt", 0.0)


def test_every_policy_routes_to_a_provisioned_contact_point():
    names = {point["name"] for point in _contact_points()}
    (policy,) = alerting.load("policies.yaml")["policies"]
    assert all(route["receiver"] in names for route in _routes(policy))
    (quota_route,) = policy["routes"]
    matchers = {(name, op, value) for name, op, value in quota_route["object_matchers"]}
    for alert_rule in alerting.rules():
        labels = alert_rule["labels"]
        matched = all(op == "=" and labels.get(name) == value for name, op, value in matchers)
        assert matched == (labels["usagemeter"] == "quotas"), alert_rule["title"]


def test_the_webhook_address_comes_from_the_environment_compose_requires():
    (point,) = _contact_points()
    (receiver,) = point["receivers"]
    assert receiver["type"] == "webhook"
    assert [name for name, _, _ in references(receiver["settings"]["url"])] == [WEBHOOK_URL]
    grafana_env = environment_of(raw_compose()["services"]["grafana"])
    ((name, op, _),) = references(grafana_env[WEBHOOK_URL])
    assert (name, op) == (WEBHOOK_URL, ":?")
    example = read_env_file(ENV_EXAMPLE)
    assert WEBHOOK_URL in example
    filled = {key: value or f"example-{key.lower()}" for key, value in example.items()}
    interpolate(raw_compose(), filled)
    for missing in ({k: v for k, v in filled.items() if k != WEBHOOK_URL}, {**filled, WEBHOOK_URL: ""}):
        with pytest.raises(InterpolationError, match=WEBHOOK_URL):
            interpolate(raw_compose(), missing)
