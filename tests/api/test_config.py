from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.api_support import SECRET
from usagemeter_api import SettingsError, load_settings


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("JWT_SECRET", "JWT_AUDIENCE", "JWT_ISSUER", "API_HOST", "API_PORT", "PLANS_FILE"):
        monkeypatch.delenv(f"USAGEMETER_{name}", raising=False)
    return monkeypatch


def test_settings_come_from_the_environment(clean_env):
    clean_env.setenv("USAGEMETER_JWT_SECRET", SECRET)
    clean_env.setenv("USAGEMETER_API_PORT", "9100")
    clean_env.setenv("USAGEMETER_PLANS_FILE", "/etc/usagemeter/plans.toml")
    settings = load_settings()
    assert settings.jwt_secret.get_secret_value() == SECRET
    assert (settings.api_host, settings.api_port) == ("127.0.0.1", 9100)
    assert settings.plans_file == Path("/etc/usagemeter/plans.toml")
    assert SECRET not in repr(settings)


def test_missing_secret_is_a_clear_startup_error(clean_env):
    with pytest.raises(SettingsError, match="USAGEMETER_JWT_SECRET is required"):
        load_settings()


def test_short_secret_and_bad_port_are_named(clean_env):
    clean_env.setenv("USAGEMETER_JWT_SECRET", "short")
    clean_env.setenv("USAGEMETER_API_PORT", "99999")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "USAGEMETER_JWT_SECRET" in str(caught.value) and "32 bytes" in str(caught.value)
    assert "USAGEMETER_API_PORT" in str(caught.value)
