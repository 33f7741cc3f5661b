"""Which feature uses get a ``feature.use`` span: spans are opt-in, sampled per feature; counts are always exact."""

from __future__ import annotations

import random
from collections.abc import Mapping

from usagemeter_instrumentation._config import SpanSampling


class SpanSampler:
    """Decides per use whether it is traced, from one ratio or ratios per feature key."""

    def __init__(self, sampling: SpanSampling) -> None:
        self._default = 0.0
        self._ratios: dict[str, float] = {}
        if isinstance(sampling, Mapping):
            self._ratios = {str(key): float(ratio) for key, ratio in sampling.items()}
        elif sampling is not None:
            self._default = float(sampling)
        self.enabled = self._default > 0 or any(ratio > 0 for ratio in self._ratios.values())
        self._random = random.random

    def sampled(self, feature_key: str) -> bool:
        """Whether this use of ``feature_key`` gets a span."""
        ratio = self._ratios.get(feature_key, self._default)
        return ratio >= 1.0 or (ratio > 0.0 and self._random() < ratio)
