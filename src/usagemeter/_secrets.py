"""The JWT secret of dev mode: generated once and kept in the data directory."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

SECRET_FILE = "jwt_secret"
_ENV = "USAGEMETER_JWT_SECRET"


class SecretUnavailable(Exception):
    """No JWT secret is configured and none is kept in the data directory."""


def jwt_secret(data_dir: Path, *, create: bool) -> str:
    """``USAGEMETER_JWT_SECRET`` if set, else the data directory's dev secret.

    With ``create`` a missing dev secret is generated (readable by the owner only).
    """
    configured = os.environ.get(_ENV)
    if configured:
        return configured
    path = data_dir / SECRET_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    if not create:
        raise SecretUnavailable(f"{_ENV} is not set and {path} does not exist (run `usagemeter up` first)")
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    return value
