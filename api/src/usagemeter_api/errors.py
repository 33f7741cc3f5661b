"""The API's exceptions: one tree, mapped to HTTP answers at the edge (:mod:`usagemeter_api.api.handlers`).

::

    UsagemeterApiError
    ├── ConfigurationError                the process cannot start as configured
    │   ├── SettingsError                 USAGEMETER_* variables
    │   └── PlansError                    the plans file
    ├── AuthError                         a bearer token is missing, malformed, forged or expired (401)
    ├── Unavailable                       what the answer needs is away for now (503, Retry-After)
    │   ├── ClickHouseUnavailable         no ClickHouse client could be had
    │   ├── AuthUnavailable               the signing keys cannot be fetched from the JWKS URL
    │   └── UsageUnavailable              the usage held through an outage is older than the staleness bound
    ├── UnknownPlan (LookupError)         no plan has the given id (404)
    ├── PlanConflict (ValueError)         the change would leave the plans inconsistent (409)
    └── InvalidRange (ValueError)         an analytics range is malformed, reversed or too long (422)

ClickHouse's own query errors (``clickhouse_connect``'s) are not wrapped: the edge maps them to 503 too.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "AuthUnavailable",
    "ClickHouseUnavailable",
    "ConfigurationError",
    "InvalidRange",
    "PlanConflict",
    "PlansError",
    "SettingsError",
    "Unavailable",
    "UnknownPlan",
    "UsageUnavailable",
    "UsagemeterApiError",
]


class UsagemeterApiError(Exception):
    """The root of every error the API raises itself."""


class ConfigurationError(UsagemeterApiError):
    """The process cannot start as configured."""


class SettingsError(ConfigurationError):
    """The environment does not describe a usable API configuration."""


class PlansError(ConfigurationError):
    """The plans file cannot be read or does not describe a valid set of plans."""


class AuthError(UsagemeterApiError):
    """A bearer token is missing, malformed, forged or expired."""


class Unavailable(UsagemeterApiError):
    """What the answer needs cannot be had right now; the request may be retried."""


class ClickHouseUnavailable(Unavailable):
    """No ClickHouse client could be had: the pool is closed or the server cannot be reached."""


class AuthUnavailable(Unavailable):
    """The keys to check a token with cannot be fetched from the JWKS URL."""


class UsageUnavailable(Unavailable):
    """The usage figures held through a ClickHouse outage are older than the staleness bound allows."""


class UnknownPlan(LookupError, UsagemeterApiError):
    """No plan has the given id."""


class PlanConflict(ValueError, UsagemeterApiError):
    """The change would leave the plans inconsistent (duplicate id, no default plan)."""


class InvalidRange(ValueError, UsagemeterApiError):
    """An analytics range is malformed, reversed or too long."""
