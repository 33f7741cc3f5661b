"""The ``usagemeter`` command: ``up``, ``collector``, ``api``, ``migrate``, ``token``, ``demo``, ``bench``.

Flags override ``USAGEMETER_*`` variables, which override the defaults. The
command is the product's edge: it turns flags and environment into settings
objects and hands them to the components.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from usagemeter import _memory, _secrets

logger = logging.getLogger("usagemeter")

#: What `up` slices usage by when USAGEMETER_DIMENSION_ATTRIBUTES is unset.
UP_DIMENSION_ATTRIBUTES = ("model",)


class CommandError(Exception):
    """A one-line reason the command cannot go on (exit code 2)."""


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, help="data directory (env USAGEMETER_DATA_DIR, default ./.usagemeter)")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="usagemeter", description="Feature-usage metering on OTel and ClickHouse.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run collector + API on the embedded engine in one process")
    up.add_argument("--demo", action="store_true", help="also run the demo host service's traffic")
    _add_data_dir(up)
    up.add_argument("--grpc-port", type=int, help="OTLP/gRPC port (env USAGEMETER_GRPC_PORT, default 4317)")
    up.add_argument("--http-port", type=int, help="OTLP/HTTP port (env USAGEMETER_HTTP_PORT, default 4318)")
    up.add_argument("--api-port", type=int, help="API port (env USAGEMETER_API_PORT, default 8000)")

    collector = sub.add_parser("collector", help="run the OTLP collector alone")
    _add_data_dir(collector)
    collector.add_argument("--grpc-port", type=int)
    collector.add_argument("--http-port", type=int)

    api = sub.add_parser("api", help="run the REST API alone")
    _add_data_dir(api)
    api.add_argument("--api-port", type=int)

    migrate = sub.add_parser("migrate", help="apply pending schema migrations")
    _add_data_dir(migrate)

    token = sub.add_parser("token", help="mint a JWT for a user")
    _add_data_dir(token)
    token.add_argument("--user", required=True, help="user id (the token's sub)")
    token.add_argument("--admin", action="store_true", help="grant role admin")
    token.add_argument("--ttl", type=int, default=86400, help="lifetime in seconds (default 86400)")

    demo = sub.add_parser("demo", help="run the demo host service, sending OTLP to a collector")
    demo.add_argument("--endpoint", default="http://127.0.0.1:4317", help="OTLP/gRPC endpoint of the collector")
    demo.add_argument("--rate", type=float, default=5.0, help="chat messages per second")
    demo.add_argument("--duration", type=float, help="seconds to run (default: until interrupted)")
    demo.add_argument(
        "--redis-url",
        help="run report jobs on an arq worker over this Redis (env USAGEMETER_DEMO_REDIS_URL; default: in-process)",
    )
    bench = sub.add_parser("bench", help="run a benchmark from the source tree's bench/ folder")
    bench.add_argument("name", help="benchmark name, e.g. ingest, track, api")
    bench.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the benchmark")
    return parser


def _given(args: argparse.Namespace, **names: str) -> dict[str, Any]:
    """Settings keyword arguments for the flags that were actually given."""
    return {field: getattr(args, flag) for field, flag in names.items() if getattr(args, flag, None) is not None}


def _clickhouse_settings(args: argparse.Namespace) -> Any:
    from usagemeter_clickhouse.settings import ClickHouseSettings

    return ClickHouseSettings(**_given(args, data_dir="data_dir"))


def _cmd_up(args: argparse.Namespace) -> int:
    from usagemeter._up import UpOptions, run_up
    from usagemeter_api import ApiSettings
    from usagemeter_collector import CollectorSettings

    clickhouse = _clickhouse_settings(args)
    if "dimension_attributes" not in clickhouse.model_fields_set:
        # The dev pipeline slices usage by model out of the box, as the shipped plans' ai_tokens limits do.
        clickhouse = clickhouse.model_copy(update={"dimension_attributes": UP_DIMENSION_ATTRIBUTES})
    if not clickhouse.embedded:
        logger.info("using the ClickHouse server at %s", clickhouse.resolved_url().split("@")[-1])
    secret = _secrets.jwt_secret(clickhouse.data_dir, create=True)
    options = UpOptions(
        clickhouse=clickhouse,
        collector=CollectorSettings(**_given(args, grpc_port="grpc_port", http_port="http_port", data_dir="data_dir")),
        api=ApiSettings(jwt_secret=SecretStr(secret), **_given(args, api_port="api_port")),
        demo=args.demo,
    )
    asyncio.run(run_up(options, announce=lambda text: print(text, flush=True)))
    return 0


def _cmd_collector(args: argparse.Namespace) -> int:
    from usagemeter._standalone import run_collector
    from usagemeter_collector import CollectorSettings

    settings = CollectorSettings(**_given(args, grpc_port="grpc_port", http_port="http_port", data_dir="data_dir"))
    asyncio.run(run_collector(_clickhouse_settings(args), settings))
    return 0


def _cmd_api(args: argparse.Namespace) -> int:
    from usagemeter._standalone import run_api
    from usagemeter_api import ApiSettings

    settings = ApiSettings(**_given(args, api_port="api_port"))
    asyncio.run(run_api(_clickhouse_settings(args), settings))
    return 0


def _cmd_migrate(args: argparse.Namespace) -> int:
    from usagemeter._serving import prepare_schema

    settings = _clickhouse_settings(args)
    prepare_schema(settings)
    print(f"schema of database {settings.clickhouse_database} is up to date")
    return 0


def _cmd_token(args: argparse.Namespace) -> int:
    from usagemeter_api import ApiSettings
    from usagemeter_api.core.security import mint_token

    settings = _clickhouse_settings(args)
    try:
        secret = _secrets.jwt_secret(settings.data_dir, create=False)
    except _secrets.SecretUnavailable as exc:
        raise CommandError(str(exc)) from exc
    if args.ttl <= 0:
        raise CommandError("--ttl must be a positive number of seconds")
    api = ApiSettings(jwt_secret=SecretStr(secret))
    print(
        mint_token(
            secret, args.user, admin=args.admin, ttl_seconds=args.ttl, audience=api.jwt_audience, issuer=api.jwt_issuer
        )
    )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from usagemeter.demo import DemoSettings, ReportsQueueUnavailable, run_demo

    _present_ingest_token()
    settings = DemoSettings()
    gate = settings.quota_gate()
    redis_url = args.redis_url or settings.redis_url or None
    if redis_url and not args.verbose:
        logging.getLogger("arq").setLevel(logging.WARNING)  # arq logs every job at INFO
    try:
        run_demo(
            args.endpoint,
            rate_per_second=args.rate,
            duration_seconds=args.duration,
            redis_url=redis_url,
            job_failure_rate=settings.job_failure_rate,
            allows=gate.allows if gate is not None else None,
        )
    except KeyboardInterrupt:
        logger.info("demo stopped")
    except ModuleNotFoundError as exc:
        raise CommandError(f"--redis-url needs {exc.name}: pip install 'usagemeter-instrumentation[arq]'") from exc
    except (ReportsQueueUnavailable, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    return 0


def _present_ingest_token() -> None:
    """Let the demo authenticate as any sender would: with the first ingest token, unless OTLP headers are set."""
    from usagemeter_collector import CollectorSettings

    tokens = CollectorSettings().tokens()
    if tokens:
        # The OTel SDK reads this variable; its values are URL-encoded.
        os.environ.setdefault("OTEL_EXPORTER_OTLP_HEADERS", f"authorization=Bearer%20{tokens[0]}")


def _cmd_bench(args: argparse.Namespace) -> int:
    import runpy

    folder = Path(__file__).resolve().parents[2] / "bench"
    script = folder / f"{args.name}.py"
    if not script.is_file():
        known = sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_")) if folder.is_dir() else []
        raise CommandError(f"no benchmark {args.name!r} (known: {', '.join(known) or 'none: needs the source tree'})")
    # As `python bench/NAME.py` would: the script's folder first on the path, for its shared helpers.
    sys.argv = [str(script), *args.args]
    sys.path.insert(0, str(folder))
    runpy.run_path(str(script), run_name="__main__")
    return 0


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "up": _cmd_up,
    "collector": _cmd_collector,
    "api": _cmd_api,
    "migrate": _cmd_migrate,
    "token": _cmd_token,
    "demo": _cmd_demo,
    "bench": _cmd_bench,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``usagemeter`` command; returns the exit code."""
    args = _build_parser().parse_args(argv)
    _memory.configure()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        reason = _one_line_reason(exc, args)
        if reason is None:
            raise
        logger.debug("details of the failure", exc_info=exc)
        print(f"usagemeter {args.command}: {reason}", file=sys.stderr)
        return 2


def _one_line_reason(exc: Exception, args: argparse.Namespace) -> str | None:
    """The reason to show for an expected failure, or None for a bug (shown with its traceback)."""
    from pydantic import ValidationError

    from usagemeter._serving import SchemaNotReady
    from usagemeter_clickhouse import UsagemeterClickHouseError
    from usagemeter_clickhouse.settings import settings_problem

    reason = _clickhouse_reason(exc, args)
    if reason is not None:
        return reason
    if isinstance(exc, ValidationError):
        return f"invalid settings: {settings_problem(exc)}"
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{exc.strerror} ({exc.filename or 'network'})" if exc.filename else str(exc)
    if isinstance(exc, CommandError | UsagemeterClickHouseError | SchemaNotReady):
        return str(exc).splitlines()[0]
    return None


def _clickhouse_reason(exc: Exception, args: argparse.Namespace) -> str | None:
    """The reason for a failure ClickHouse caused (unreachable, or refusing), naming it by host and port."""
    from pydantic import ValidationError

    from usagemeter._failures import Target, clickhouse_reason

    try:
        settings = _clickhouse_settings(args)
    except ValidationError:
        return None
    target = Target.of(settings.resolved_url(), settings.clickhouse_database)
    action = "migrate database" if args.command in ("migrate", "up") else "open database"
    return clickhouse_reason(exc, target, action)
