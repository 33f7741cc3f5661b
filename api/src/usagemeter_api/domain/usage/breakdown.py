"""Usage metadata from ``feature.use`` spans, grouped by one span attribute.

Spans may be sampled, so these figures describe usage but never enforce it.
"""

from __future__ import annotations

from dataclasses import dataclass

from usagemeter_api.core.clock import naive_utc
from usagemeter_api.domain.periods import Window
from usagemeter_clickhouse import Client, tables

__all__ = ["SpanGroup", "span_breakdown"]

_BREAKDOWN_SQL = f"""
SELECT SpanAttributes[{{by:String}}] AS Value, count() AS Spans,
    sum(toFloat64OrZero(SpanAttributes['{tables.PROMPT_TOKENS_ATTRIBUTE}'])) AS PromptTokens,
    sum(toFloat64OrZero(SpanAttributes['{tables.COMPLETION_TOKENS_ATTRIBUTE}'])) AS CompletionTokens
FROM {tables.TRACES}
WHERE SpanName = {{span:String}}
  AND SpanAttributes['{tables.USER_ATTRIBUTE}'] = {{user:String}}
  AND SpanAttributes['{tables.FEATURE_ATTRIBUTE}'] = {{feature:String}}
  AND Timestamp >= {{start:DateTime64(9, 'UTC')}} AND Timestamp < {{end:DateTime64(9, 'UTC')}}
GROUP BY Value
ORDER BY Spans DESC, Value
LIMIT {{limit:UInt32}}
"""


@dataclass(frozen=True)
class SpanGroup:
    """Spans sharing one attribute value ('' when they lack the attribute)."""

    value: str
    spans: int
    prompt_tokens: float
    completion_tokens: float


def span_breakdown(
    client: Client, user_id: str, feature_key: str, by: str, window: Window, limit: int
) -> list[SpanGroup]:
    """Up to ``limit`` groups of the user's ``feature.use`` spans of ``feature_key`` in ``window``, most spans first."""
    parameters: dict[str, object] = {
        "by": by,
        "span": tables.FEATURE_USE_SPAN,
        "user": user_id,
        "feature": feature_key,
        "start": naive_utc(window.start),
        "end": naive_utc(window.end),
        "limit": limit,
    }
    rows = client.query(_BREAKDOWN_SQL, parameters=parameters).result_rows
    return [SpanGroup(str(value), int(count), float(prompt), float(done)) for value, count, prompt, done in rows]
