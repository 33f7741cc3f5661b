"""Zero-code setup: ``opentelemetry-instrument`` loads these through the ``usagemeter`` entry points.

The configurator starts usagemeter's pipeline (delta temporality, high cardinality limit, one-second
export interval, settings from the ``OTEL_*`` variables) and makes its providers the global ones,
so the host's automatic instrumentation exports through it too. Requires the ``[zero-code]`` extra.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined,unused-ignore]
from opentelemetry.sdk._configuration import _BaseConfigurator

from usagemeter_instrumentation._api import configure

_logger = logging.getLogger("usagemeter_instrumentation")
_TEMPORALITY_VARIABLE = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"


class UsagemeterDistro(BaseDistro):  # type: ignore[misc,unused-ignore]
    """Defaults for exporters the host creates itself: delta temporality, as usagemeter's collector expects."""

    def _configure(self, **kwargs: Any) -> None:
        os.environ.setdefault(_TEMPORALITY_VARIABLE, "delta")


class UsagemeterConfigurator(_BaseConfigurator):
    """Starts usagemeter's pipeline as the process's global OpenTelemetry providers."""

    def _configure(self, **kwargs: Any) -> None:
        try:
            configure(set_global=True)
        except Exception:  # a bad setting must not keep the host from starting
            _logger.exception("usagemeter zero-code configuration failed; the host runs without metering")
