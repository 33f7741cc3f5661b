"""ClickHouse server config and Grafana provisioning agree with each other and with the compose file."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.compose_file import ENV_EXAMPLE, REPO, environment_of, raw_compose, read_env_file, references
from usagemeter_clickhouse import SchemaOptions, available_migrations, tables

CLICKHOUSE_CONFIG = REPO / "docker" / "clickhouse"
PROVISIONING = REPO / "grafana" / "provisioning"
CONTAINER_PROVISIONING = "/etc/grafana/provisioning"


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return raw_compose()["services"]


def _users() -> ET.Element:
    return ET.parse(CLICKHOUSE_CONFIG / "users.d" / "usagemeter.xml").getroot()


def _datasource() -> dict[str, Any]:
    config = yaml.safe_load((PROVISIONING / "datasources" / "clickhouse.yaml").read_text(encoding="utf-8"))
    (source,) = config["datasources"]
    return dict(source)


def _from_env(root: ET.Element) -> set[str]:
    return {e.attrib["from_env"] for e in root.iter() if "from_env" in e.attrib}


def test_server_config_sets_what_the_schema_needs():
    config = ET.parse(CLICKHOUSE_CONFIG / "config.d" / "usagemeter.xml").getroot()
    assert config.findtext("format_schema_path", "").startswith("/var/lib/clickhouse/")
    assert config.findtext("backups/allowed_disk") == "backups"


def test_grafana_user_is_read_only_and_limited_to_the_database():
    users = _users()
    grafana = users.find("users/grafana")
    assert grafana is not None
    profile = users.find(f"profiles/{grafana.findtext('profile')}")
    assert profile is not None and int(profile.findtext("readonly", "0")) >= 1
    allowed = grafana.find("allow_databases/database")
    assert allowed is not None and allowed.attrib.get("from_env") == "CLICKHOUSE_DATABASE"
    password = users.find("users/default/password")
    assert password is not None and password.attrib.get("from_env") == "CLICKHOUSE_DEFAULT_PASSWORD"


def test_clickhouse_container_provides_every_value_its_config_reads(services: dict[str, Any]):
    clickhouse = services["clickhouse"]
    env = environment_of(clickhouse)
    assert env["CLICKHOUSE_SKIP_USER_SETUP"] == "1"
    assert _from_env(_users()) <= set(env)
    mounted = {v.split(":")[1] for v in clickhouse["volumes"] if v.startswith("./")}
    for path in CLICKHOUSE_CONFIG.rglob("*.xml"):
        assert f"/etc/clickhouse-server/{path.relative_to(CLICKHOUSE_CONFIG)}" in mounted, path


def test_datasource_is_the_read_only_user_over_http(services: dict[str, Any]):
    source = _datasource()
    data = source["jsonData"]
    assert source["type"] == "grafana-clickhouse-datasource" and source["uid"] == "usagemeter-clickhouse"
    assert data["protocol"] == "http" and data["port"] == 8123
    assert {"host", "username", "defaultDatabase"} <= set(data)
    assert source["secureJsonData"]["password"].startswith("${")
    grafana_env = environment_of(services["grafana"])
    assert grafana_env[data["username"].strip("${}")] == "grafana"
    assert grafana_env[data["host"].strip("${}")] == "clickhouse"


def test_grafana_container_provides_every_provisioning_variable(services: dict[str, Any]):
    env = environment_of(services["grafana"])
    for path in PROVISIONING.rglob("*.yaml"):
        for name, _, _ in references(path.read_text(encoding="utf-8")):
            assert name in env, f"{path.name} reads {name}, which the grafana service does not set"


def test_dashboard_provider_points_at_the_mounted_dashboards(services: dict[str, Any]):
    mounts = dict(v.split(":")[:2] for v in services["grafana"]["volumes"] if v.startswith("./"))
    assert mounts["./grafana/provisioning"] == CONTAINER_PROVISIONING
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "usagemeter.yaml").read_text(encoding="utf-8"))
    for provider in providers["providers"]:
        container_path = provider["options"]["path"]
        local = PROVISIONING / Path(container_path).relative_to(CONTAINER_PROVISIONING)
        assert sorted(local.glob("*.json")), f"provider {provider['name']} finds no dashboards in {local}"
    home = environment_of(services["grafana"])["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (PROVISIONING / Path(home).relative_to(CONTAINER_PROVISIONING)).is_file()


#: The first plugin release that checks for the trace-id lookup table before reading it.
PLUGIN_WITH_LOOKUP_CHECK = (4, 14, 0)


def _plugin_versions(services: dict[str, Any]) -> set[str]:
    """The plugin version compose installs by default and the one .env.example sets."""
    preinstall = environment_of(services["grafana"])["GF_PLUGINS_PREINSTALL_SYNC"]
    defaults = {arg for name, op, arg in references(preinstall) if name == "GRAFANA_CLICKHOUSE_PLUGIN_VERSION"}
    return {v for v in defaults if v} | {read_env_file(ENV_EXAMPLE)["GRAFANA_CLICKHOUSE_PLUGIN_VERSION"]}


def test_traces_open_in_otel_mode_on_the_lookup_table_with_a_plugin_that_reads_it(services: dict[str, Any]):
    traces = _datasource()["jsonData"]["traces"]
    # otelEnabled alone does nothing: the plugin's OTel mode needs a schema version.
    assert traces["otelEnabled"] is True and traces["otelVersion"] == "latest"
    assert traces["defaultTable"] == tables.TRACES
    assert tables.TRACE_ID_TS == tables.TRACES + "_trace_id_ts"
    creates = f"CREATE TABLE IF NOT EXISTS {tables.TRACE_ID_TS} "
    migrations = [
        m for m in available_migrations() if any(s.startswith(creates) for s in m.statements(SchemaOptions()))
    ]
    assert migrations, "no migration creates the lookup table the plugin reads"
    versions = _plugin_versions(services)
    assert len(versions) == 1, versions
    assert tuple(int(part) for part in versions.pop().split(".")) >= PLUGIN_WITH_LOOKUP_CHECK
