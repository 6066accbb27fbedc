"""`robotaxi serve`: the live city behind an HTTP API, the rider app, the in-car screen and ops."""

from __future__ import annotations

import argparse
import gc
import logging
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

# the parser is built on every `robotaxi` call, `--help` included: the service (FastAPI,
# SUMO, the store) is imported by the functions that run the command, not here
if TYPE_CHECKING:
    from robotaxi.service.settings import ServiceSettings


def register(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="run the live robotaxi service: API, rider app, in-car screen, operations",
        description="Run the city simulation live and let riders hail its cars over HTTP.",
    )
    p.add_argument(
        "--city", default="grid", help="grid (default, no data), sf-mission, sf (whole city), sf-ne"
    )
    p.add_argument("--fleet", type=int, default=30, help="number of robotaxis (default 30)")
    p.add_argument(
        "--autonomous", type=int, default=0,
        help="fleet cars driven by the autonomy stack in closed loop with SUMO (default 0)",
    )  # fmt: skip
    p.add_argument(
        "--no-hearing", action="store_true",
        help="autonomous cars without roof microphones and siren detector (cameras only)",
    )  # fmt: skip
    p.add_argument(
        "--no-city-blocks", action="store_true",
        help="city blocks do not hide things from autonomous cars' cameras",
    )  # fmt: skip
    p.add_argument("--speed", type=float, default=4.0, help="sim seconds per wall second")
    p.add_argument("--hours", type=float, default=24.0, help="service window of sim time, h")
    p.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    p.add_argument(
        "--data-dir", type=Path, default=Path("runs/serve"),
        help="the service's files: SQLite database, SUMO work files (runs/serve)",
    )  # fmt: skip
    p.add_argument(
        "--database-url", default=None,
        help="SQLAlchemy URL, e.g. postgresql+psycopg://u@host/db (default: SQLite in --data-dir)",
    )  # fmt: skip
    p.add_argument(
        "--operator-token", default=None,
        help="token of the operations view (default: a random one, printed at start-up)",
    )  # fmt: skip
    p.add_argument("--map-data-dir", type=Path, default=Path("../shared/data"), help="SF data")
    p.add_argument("--riders-per-hour", type=float, default=6.0, help="synthetic riders (0: none)")
    p.add_argument("--ev-per-hour", type=float, default=3.0, help="ambulances per hour")
    p.add_argument("--no-background", action="store_true", help="no background traffic")
    p.add_argument(
        "--signups-per-minute", type=int, default=10,
        help="rider sign-ups allowed per client address per minute (default 10)",
    )  # fmt: skip
    p.add_argument(
        "--tariff", default=None, metavar="KEY=VALUE,…",
        help="fares, integer cents: e.g. base_cents=415,per_mile_cents=300,per_minute_cents=65,"
        "minimum_cents=500,cancel_fee_cents=500,cancel_free_wait_s=120,currency=USD "
        "(default: San Francisco's taxi meter rate)",
    )  # fmt: skip
    p.add_argument(
        "--fare-slow-factor", type=float, default=1.5,
        help="a quote's fare range goes up to this many times the planned ride time (1.5)",
    )  # fmt: skip
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(handler=run)


def settings_from_args(args: argparse.Namespace) -> ServiceSettings:
    from pydantic import ValidationError

    from robotaxi.core import ConfigError
    from robotaxi.service.settings import ServiceSettings, serve_run_config

    token = args.operator_token if args.operator_token else secrets.token_urlsafe(24)
    tariff = {} if args.tariff is None else {"tariff": _tariff_option(args.tariff)}
    # the simulated city: the same RunConfig as `robotaxi simulate`, from these options
    city_options = {
        "city": "map.city", "fleet": "fleet.size", "hours": "hours", "seed": "seed",
        "map_data_dir": "map.data_dir", "ev_per_hour": "world.emergency_per_hour",
    }  # fmt: skip
    try:
        run_config = serve_run_config(
            **{dotted: getattr(args, option) for option, dotted in city_options.items()}
        )
    except ConfigError as exc:
        message = str(exc)
        for option, dotted in city_options.items():
            flag = option.replace("_", "-")
            message = message.replace(f"invalid setting {dotted}:", f"invalid option --{flag}:")
        raise ConfigError(message) from None
    try:
        return ServiceSettings(
            run=run_config,
            autonomous=args.autonomous,
            autonomy_hearing=not args.no_hearing,
            autonomy_city_blocks=not args.no_city_blocks,
            speed=args.speed,
            host=args.host,
            port=args.port,
            data_dir=args.data_dir,
            database_url=args.database_url,
            operator_token=token,
            riders_per_hour=args.riders_per_hour,
            signups_per_window=args.signups_per_minute,
            background_traffic=not args.no_background,
            fare_slow_factor=args.fare_slow_factor,
            **tariff,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        if not where:  # a check across options names them in its message
            message = str(first["msg"]).removeprefix("Value error, ")
            raise ConfigError(f"invalid options: {message}") from None
        raise ConfigError(f"invalid option --{where.replace('_', '-')}: {first['msg']}") from None


def _tariff_option(text: str) -> dict[str, str]:
    """`--tariff` "key=value,…" as settings; the values are checked by the tariff itself."""
    from dataclasses import fields

    from robotaxi.core import ConfigError
    from robotaxi.fleet.fares import Tariff

    known = [f.name for f in fields(Tariff)]
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or key.strip() not in known:
            raise ConfigError(
                f"invalid option --tariff: {part!r} is not KEY=VALUE with KEY one of "
                f"{', '.join(known)}"
            )
        out[key.strip()] = value.strip()
    return out


def quiet_collector() -> None:
    """Keep the garbage collector's stop-the-world passes short while serving.

    Everything loaded at start-up (map, routing graph, SUMO, the app) lives as long as the
    process: frozen, the collector never scans it again. Under load, connection and stream
    objects reach the oldest generation quickly and full passes over them stopped every
    thread for 0.1-0.3 s (measured with 500 riders); they now run rarely (after a thousand
    middle-generation passes instead of ten). Young cyclic garbage is still collected often.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 1000)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from robotaxi.service.app import create_app, describe
    from robotaxi.service.runtime import ServiceRuntime

    settings = settings_from_args(args)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    runtime = ServiceRuntime.open(settings)
    try:
        info = describe(runtime)
        url = f"http://{settings.host}:{settings.port}"
        print(
            f"robotaxi serve: {info['city']} city, {info['fleet']} cars "
            f"({settings.autonomous} autonomous), {settings.speed}× real time, "
            f"database {info['database']}",
            flush=True,
        )
        if info["recovered_rides"]:
            print(
                f"robotaxi serve: closed {info['recovered_rides']} rides left open by the "
                "previous run (reason recorded on each)",
                flush=True,
            )
        if args.operator_token is None:
            print(f"robotaxi serve: operator token {runtime.operator_token}", flush=True)
        print(
            f"robotaxi serve: rider app {url}/  operations {url}/ops  API docs {url}/docs",
            flush=True,
        )
        app = create_app(settings, runtime=runtime)
        quiet_collector()
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level=args.log_level,
            timeout_graceful_shutdown=3,
            # C parser and libuv loop: under 500 riders the pure-Python pair (h11, asyncio)
            # had 3-5× the status p99 (benchmarks/bench_service_load.py)
            http="httptools",
            loop="uvloop",
        )
    finally:
        runtime.close()
    return 0
