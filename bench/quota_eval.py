"""The quota check's own work in process: from the window readings to the JSON answer, against a same-run baseline.

Run: .venv/bin/python bench/quota_eval.py [--checks 20000]
Writes its results section to docs/benchmarks/quota_eval.md.

What is timed is what the check adds on the event loop once its readings are in (usage from the
in-memory view or the cache): the plan feature's layout lookup, every matching limit's figures, the
binding limit, frees-at and the answer's JSON. The baseline is the answer the check gave before
limits had windows and dimensions: its fourteen flat fields built as a pydantic model and
serialised. Both run interleaved in this process, so the ratio holds on a busy machine.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

from _common import publish
from pydantic import BaseModel
from pydantic_core import to_json

from usagemeter_api.api.routes.quotas import _check_answer
from usagemeter_api.domain.periods import limit_window
from usagemeter_api.domain.plans import Plan
from usagemeter_api.domain.quota import Freshness
from usagemeter_api.domain.quota_answers import Readings, evaluate, layout_of, with_frees
from usagemeter_api.schemas.plans import FEATURE_PLAN_EXAMPLE

_PLAN = Plan.model_validate(
    {
        "name": "Bench",
        "limits": {"ai_content_generation": 50},
        "features": {
            "ai_tokens": FEATURE_PLAN_EXAMPLE,
        },
    }
)
_ROUNDS = 5


class _FlatCheck(BaseModel):
    """The check's answer as it was: one limit, flat fields."""

    user_id: str
    plan_id: str
    feature_key: str
    allowed: bool
    enforcement: str
    amount: int
    used: int | float
    limit: int | None
    remaining: int | float | None
    near_limit: bool
    exceeded: bool
    reset_at: datetime
    as_of: datetime
    stale: bool


def _check(feature_key: str, dimension: str | None) -> Callable[[], bytes]:
    now = datetime.now(UTC)
    layout = layout_of(_PLAN, feature_key)
    assert layout is not None
    first = layout.matching(dimension)
    ranges = {read.window: limit_window(read.window, now) for read in first.reads}
    usage = {(read.window, part): 42_000_000 for read in first.reads for part in read.slices}
    readings = Readings(usage, ranges, Freshness.now())

    def run() -> bytes:
        matching = layout.matching(dimension)
        figures = evaluate(layout, matching, readings, (), _PLAN.near_limit_ratio, now)
        figures = with_frees(figures, matching, None, 1_000_000)
        answer = _check_answer("u", "bench", _PLAN, layout, dimension, 1_000_000, figures, readings)
        return to_json(answer)

    return run


def _flat() -> str:
    now = datetime.now(UTC)
    answer = _FlatCheck(
        user_id="u",
        plan_id="bench",
        feature_key="ai_content_generation",
        allowed=True,
        enforcement="hard",
        amount=1,
        used=42,
        limit=50,
        remaining=8,
        near_limit=True,
        exceeded=False,
        reset_at=now,
        as_of=now,
        stale=False,
    )
    return answer.model_dump_json()


def _per_call_us(run: Callable[[], object], checks: int) -> float:
    started = time.perf_counter()
    for _ in range(checks):
        run()
    return (time.perf_counter() - started) / checks * 1e6


def measure(checks: int) -> dict[str, list[float]]:
    """Microseconds per check of each case, ``_ROUNDS`` interleaved rounds."""
    cases = {
        "baseline: the flat single-limit answer": _flat,
        "one month limit (ai_content_generation)": _check("ai_content_generation", None),
        "5h + 7d, no dimension (ai_tokens)": _check("ai_tokens", None),
        "5h + 7d + gpt-4o month (ai_tokens, dimension=gpt-4o)": _check("ai_tokens", "gpt-4o"),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(_ROUNDS):
        for name, run in cases.items():
            times[name].append(_per_call_us(run, checks))
    return times


def report(times: dict[str, list[float]], checks: int) -> str:
    """The results section."""
    baseline = min(next(iter(times.values())))
    rows = "\n".join(
        f"| {name} | {min(values):.1f} | {', '.join(f'{value:.1f}' for value in values)}"
        f" | {min(values) / baseline:.2f}x |"
        for name, values in times.items()
    )
    return (
        f"## Quota check evaluation\n\n`bench/quota_eval.py`, Python {platform.python_version()}, "
        f"{datetime.now(UTC).date()}: {checks:,} checks per case and round, {_ROUNDS} interleaved rounds, in process "
        "(readings given: no I/O).\n\n"
        "| case | best µs per check | rounds | against the baseline |\n|---|---|---|---|\n"
        f"{rows}\n"
    )


def main(argv: list[str]) -> None:
    """Run and publish."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=20_000)
    checks = parser.parse_args(argv).checks
    times = measure(checks)
    section = report(times, checks)
    baseline = min(next(iter(times.values())))
    worst = max(min(values) for values in times.values())
    publish(
        "quota_eval",
        section,
        [
            (
                "quota check evaluation, 3 limits with a dimension value (in process)",
                "-",
                f"{worst:.1f} µs",
                f"flat single-limit answer {baseline:.1f} µs",
                f"{worst / baseline:.2f}x",
            )
        ],
    )
    sys.stdout.write(section)


if __name__ == "__main__":
    main(sys.argv[1:])
