"""docker-compose.yml is a valid Compose file whose services fit together and fit the code."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.deploy.compose_file import (
    ENV_EXAMPLE,
    REPO,
    InterpolationError,
    environment_of,
    interpolate,
    raw_compose,
    read_env_file,
    references,
)
from tests.deploy.source_settings import environment_variables

SCHEMA = Path(__file__).with_name("compose-spec.json")
USAGEMETER_SERVICES = ("migrate", "collector", "api", "demo")
SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|KEY")
VERSION_TAG = re.compile(r"^\d+(\.\d+)+([-.][A-Za-z0-9.-]+)?$")
SETTINGS_SOURCES = ("clickhouse/src", "collector/src", "api/src", "src")


def _example_env() -> dict[str, str]:
    """.env.example with its empty secrets filled, as an operator's .env would be."""
    env = read_env_file(ENV_EXAMPLE)
    return {k: (v or f"example-{k.lower()}-0123456789abcdef0123456789") for k, v in env.items()}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return interpolate(raw_compose(), _example_env())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def test_validates_against_the_compose_specification(compose: dict[str, Any]):
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    compose_without_anchors = {k: v for k, v in compose.items() if not k.startswith("x-")}
    jsonschema.validate(compose_without_anchors, schema, cls=jsonschema.Draft7Validator)


def test_the_stack_has_its_services(services: dict[str, Any]):
    assert {"clickhouse", "migrate", "collector", "api", "grafana", "redis", "demo"} <= set(services)
    assert services["demo"]["profiles"] == ["demo"]


REQUIRED_SECRETS = [
    "USAGEMETER_JWT_SECRET",
    "CLICKHOUSE_DEFAULT_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
    "USAGEMETER_INGEST_TOKENS",
]


@pytest.mark.parametrize("secret", REQUIRED_SECRETS)
def test_a_missing_secret_is_an_error(secret: str):
    env = _example_env()
    del env[secret]
    with pytest.raises(InterpolationError, match=secret):
        interpolate(raw_compose(), env)
    with pytest.raises(InterpolationError, match=secret):
        interpolate(raw_compose(), {**env, secret: ""})


def test_env_example_documents_every_variable_and_holds_no_secret():
    example = read_env_file(ENV_EXAMPLE)
    used = {name for name, _, _ in references((REPO / "docker-compose.yml").read_text(encoding="utf-8"))}
    assert used <= set(example), f"not in .env.example: {sorted(used - set(example))}"
    secrets = {k: v for k, v in example.items() if SECRET_NAME.search(k)}
    assert secrets and all(v == "" for v in secrets.values()), secrets


def _image_tag(image: str) -> str:
    name, _, tag = image.rpartition(":")
    assert name and "/" not in tag, f"image {image!r} has no tag"
    return tag


def test_every_image_is_pinned_to_a_version(services: dict[str, Any]):
    for name, service in services.items():
        tag = _image_tag(service["image"])
        assert tag != "latest" and VERSION_TAG.match(tag), f"{name}: {service['image']}"
    defaults = [(n, arg) for n, op, arg in references(json.dumps(raw_compose())) if op == ":-" and "VERSION" in n]
    assert defaults and all(VERSION_TAG.match(arg or "") for _, arg in defaults), defaults


def test_grafana_plugin_is_pinned(services: dict[str, Any]):
    env = environment_of(services["grafana"])
    plugins = [
        env[k] for k in ("GF_PLUGINS_PREINSTALL_SYNC", "GF_PLUGINS_PREINSTALL", "GF_INSTALL_PLUGINS") if k in env
    ]
    assert plugins
    entries = [e.strip() for value in plugins for e in value.split(",")]
    assert "grafana-clickhouse-datasource" in {e.split("@")[0] for e in entries}
    for entry in entries:
        version = entry.partition("@")[2]
        assert VERSION_TAG.match(version.split("@")[0]), entry


def test_services_restart_have_memory_limits_and_health_checks(services: dict[str, Any]):
    for name, service in services.items():
        assert service["deploy"]["resources"]["limits"]["memory"], name
        assert "restart" in service, name
        assert "healthcheck" in service, name
    assert services["migrate"]["restart"] == "no"
    long_running = [n for n in services if n != "migrate"]
    assert all(services[n]["restart"] in ("unless-stopped", "always") for n in long_running)


def test_dependencies_wait_for_health_and_migration(services: dict[str, Any]):
    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            condition = spec["condition"]
            if condition == "service_healthy":
                assert not services[dependency]["healthcheck"].get("disable"), f"{dependency} has no health check"
            else:
                assert condition == "service_completed_successfully" and dependency == "migrate", (name, dependency)
    for name in ("collector", "api", "grafana"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["depends_on"]["clickhouse"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["clickhouse"]["condition"] == "service_healthy"


def test_only_settings_the_code_reads(services: dict[str, Any]):
    known = environment_variables(REPO / p for p in SETTINGS_SOURCES)
    assert "USAGEMETER_CLICKHOUSE_URL" in known and "USAGEMETER_JWT_SECRET" in known
    for name, service in services.items():
        for variable in environment_of(service):
            if variable.startswith("USAGEMETER_"):
                assert variable in known, f"{name} sets {variable}, which no settings class reads"


def test_services_reach_clickhouse_and_the_collector(services: dict[str, Any]):
    for name in ("migrate", "collector", "api"):
        env = environment_of(services[name])
        assert env["USAGEMETER_CLICKHOUSE_URL"].startswith("http://default:example-")
        assert env["USAGEMETER_CLICKHOUSE_URL"].endswith("@clickhouse:8123")
    assert environment_of(services["collector"])["USAGEMETER_HOST"] == "0.0.0.0"
    assert environment_of(services["api"])["USAGEMETER_API_HOST"] == "0.0.0.0"
    published = {p.rsplit(":", 1)[-1] for p in services["collector"]["ports"]}
    assert published == {"4317", "4318"}
    assert services["demo"]["command"] == ["demo", "--endpoint", "http://collector:4317"]


def test_the_published_collector_requires_ingest_tokens_and_the_demo_presents_them(services: dict[str, Any]):
    collector, demo = environment_of(services["collector"]), environment_of(services["demo"])
    assert collector["USAGEMETER_INGEST_TOKENS"] == "example-usagemeter_ingest_tokens-0123456789abcdef0123456789"
    assert demo["USAGEMETER_INGEST_TOKENS"] == collector["USAGEMETER_INGEST_TOKENS"]
    for name in ("api", "migrate"):  # only the services that speak to the collector hold its tokens
        assert "USAGEMETER_INGEST_TOKENS" not in environment_of(services[name])


@pytest.mark.parametrize("service", USAGEMETER_SERVICES)
def test_commands_are_usagemeter_subcommands(services: dict[str, Any], service: str):
    command = services[service]["command"]
    result = subprocess.run(
        [sys.executable, "-m", "usagemeter", command[0], "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    for flag in (arg for arg in command[1:] if arg.startswith("--")):
        assert flag in result.stdout, f"usagemeter {command[0]} has no {flag}"


def test_bind_mounts_exist(services: dict[str, Any]):
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (REPO / source).exists(), f"{name} mounts missing {source}"
