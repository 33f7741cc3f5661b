"""Expand a dashboard query the way Grafana and the ClickHouse plugin do before it runs.

Order, as in the plugin: ``$__conditionalAll`` (front end), then dashboard variables
(Grafana's template service, multi-value values single-quoted and comma-joined), then the
time macros (the plugin's backend). Anything left unexpanded is an error here, because
in Grafana it would reach ClickHouse as invalid SQL.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

#: Grafana's value of a variable whose "All" option is selected.
ALL = "$__all"

#: Macros the plugin expands in its backend (pkg/macros/macros.go).
SUPPORTED_MACROS = frozenset(
    {
        "timeFilter",
        "timeFilter_ms",
        "fromTime",
        "toTime",
        "fromTime_ms",
        "toTime_ms",
        "timeInterval",
        "timeInterval_ms",
        "interval_s",
        "dateFilter",
    }
)
#: Handled by the plugin's front end before variables are replaced.
FRONTEND_MACROS = frozenset({"conditionalAll"})

_CONDITIONAL_ALL = "$__conditionalAll("
_VARIABLE_IN_ARG = re.compile(r"(?<=\$\{)\w+(?=\})|(?<=\$)\w+")
_TEMPLATE_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")
_MACRO = re.compile(r"\$__(\w+)")


class ExpansionError(ValueError):
    """The query would not expand to runnable SQL in Grafana."""


@dataclass(frozen=True)
class QueryContext:
    """What Grafana knows when it sends a panel's query."""

    time_from: datetime
    time_to: datetime
    interval_seconds: int
    #: Variable name -> selected values, or [ALL].
    selection: Mapping[str, Sequence[str]] = field(default_factory=dict)
    #: Variable name -> every value its query offered (what "All" stands for).
    options: Mapping[str, Sequence[str]] = field(default_factory=dict)


def variables_in(sql: str) -> set[str]:
    """Dashboard variable names referenced in ``sql`` (built-ins ``$__…`` excluded)."""
    names = {m[1] or m[2] for m in _TEMPLATE_VARIABLE.finditer(sql)}
    return {n for n in names if not n.startswith("__")}


def macros_in(sql: str) -> set[str]:
    """Names of the ``$__`` macros used in ``sql``."""
    return set(_MACRO.findall(sql))


def expand(sql: str, ctx: QueryContext) -> str:
    """The SQL the plugin would send to ClickHouse for ``sql`` in ``ctx``."""
    sql = apply_conditional_all(sql, ctx.selection)
    sql = replace_variables(sql, ctx)
    return expand_macros(sql, ctx)


def _is_all(values: Sequence[str]) -> bool:
    return len(values) == 0 or list(values) == [ALL] or list(values) == [""]


def _macro_args(text: str, open_paren: int) -> tuple[list[str], int]:
    """Arguments of the call whose ``(`` is at ``open_paren``, and the index after its ``)``.

    Like the plugin, this counts brackets and splits on top-level commas.
    """
    depth, start, args = 0, open_paren + 1, []
    for index in range(open_paren, len(text)):
        char = text[index]
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                args.append(text[start:index])
                return args, index + 1
        elif char == "," and depth == 1:
            args.append(text[start:index])
            start = index + 1
    raise ExpansionError(f"unbalanced parentheses after position {open_paren}: {text[open_paren:][:60]!r}")


def apply_conditional_all(sql: str, selection: Mapping[str, Sequence[str]]) -> str:
    """``$__conditionalAll(cond, $var)`` -> ``cond``, or ``1=1`` when All is selected."""
    index = sql.rfind(_CONDITIONAL_ALL)
    while index != -1:
        args, end = _macro_args(sql, index + len(_CONDITIONAL_ALL) - 1)
        if len(args) != 2:
            raise ExpansionError(f"$__conditionalAll takes 2 arguments, got {len(args)}: {sql[index:end]!r}")
        found = _VARIABLE_IN_ARG.search(args[1].strip())
        if found is None:
            raise ExpansionError(f"$__conditionalAll without a variable: {sql[index:end]!r}")
        if found[0] not in selection:
            raise ExpansionError(f"$__conditionalAll names undefined variable ${found[0]}")
        phrase = "1=1" if _is_all(selection[found[0]]) else args[0]
        sql = sql[:index] + phrase + sql[end:]
        index = sql.rfind(_CONDITIONAL_ALL)
    return sql


def _quoted(values: Sequence[str]) -> str:
    return "'" + "','".join(values) + "'"


def replace_variables(sql: str, ctx: QueryContext) -> str:
    """Replace ``$var`` and ``${var}`` with the selected values, single-quoted."""

    def value(match: re.Match[str]) -> str:
        name = match[1] or match[2]
        if name.startswith("__"):
            return match[0]
        if name not in ctx.selection:
            raise ExpansionError(f"undefined variable ${name}")
        chosen = ctx.selection[name]
        return _quoted(ctx.options.get(name, []) if _is_all(chosen) else chosen)

    return _TEMPLATE_VARIABLE.sub(value, sql)


def expand_macros(sql: str, ctx: QueryContext) -> str:
    """Expand the plugin's backend time macros."""
    handlers = _macro_handlers(ctx)
    out, pos = [], 0
    for match in _MACRO.finditer(sql):
        if match.start() < pos:
            continue
        name = match[1]
        if name not in handlers:
            raise ExpansionError(f"macro $__{name} is not expanded by the ClickHouse plugin")
        out.append(sql[pos : match.start()])
        end = match.end()
        args: list[str] = []
        if end < len(sql) and sql[end] == "(":
            args, end = _macro_args(sql, end)
        out.append(handlers[name]([a.strip() for a in args]))
        pos = end
    out.append(sql[pos:])
    return "".join(out)


def _one_arg(name: str, render: Callable[[str], str]) -> Callable[[list[str]], str]:
    def handler(args: list[str]) -> str:
        if len(args) != 1:
            raise ExpansionError(f"$__{name} expects 1 argument, got {len(args)}")
        return render(args[0])

    return handler


def _macro_handlers(ctx: QueryContext) -> dict[str, Callable[[list[str]], str]]:
    start, end = int(ctx.time_from.timestamp()), int(ctx.time_to.timestamp())
    start_ms, end_ms = int(ctx.time_from.timestamp() * 1000), int(ctx.time_to.timestamp() * 1000)
    seconds = max(ctx.interval_seconds, 1)
    day_from, day_to = ctx.time_from.strftime("%Y-%m-%d"), ctx.time_to.strftime("%Y-%m-%d")
    return {
        "timeFilter": _one_arg("timeFilter", lambda c: f"{c} >= toDateTime({start}) AND {c} <= toDateTime({end})"),
        "timeFilter_ms": _one_arg(
            "timeFilter_ms",
            lambda c: f"{c} >= fromUnixTimestamp64Milli({start_ms}) AND {c} <= fromUnixTimestamp64Milli({end_ms})",
        ),
        "dateFilter": _one_arg("dateFilter", lambda c: f"{c} >= toDate('{day_from}') AND {c} <= toDate('{day_to}')"),
        "fromTime": lambda _: f"toDateTime({start})",
        "toTime": lambda _: f"toDateTime({end})",
        "fromTime_ms": lambda _: f"fromUnixTimestamp64Milli({start_ms})",
        "toTime_ms": lambda _: f"fromUnixTimestamp64Milli({end_ms})",
        "timeInterval": _one_arg(
            "timeInterval", lambda c: f"toStartOfInterval(toDateTime({c}), INTERVAL {seconds} second)"
        ),
        "timeInterval_ms": _one_arg(
            "timeInterval_ms",
            lambda c: f"toStartOfInterval(toDateTime64({c}, 3), INTERVAL {seconds * 1000} millisecond)",
        ),
        "interval_s": lambda _: str(seconds),
    }
