"""`robotaxi simulate`: run the robotaxi service on a city and report how well it served riders."""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

# the parser is built on every `robotaxi` call, `--help` included: the simulation, the store
# and rich are imported by the functions that run the command, not here
if TYPE_CHECKING:
    from rich.console import Console

    from robotaxi.config import RunConfig
    from robotaxi.core import RideRequest, TripEvent, VehicleEvent


def register(sub: Any) -> None:
    p = sub.add_parser(
        "simulate",
        help="run the robotaxi service on a city and report KPIs",
        description="Run a robotaxi service in SUMO city traffic and report how it served riders.",
    )
    p.add_argument(
        "--city",
        default=None,
        help="grid (default, no data), sf-mission, sf (whole city), sf-ne, or a file",
    )
    p.add_argument("--fleet", type=int, default=None, help="number of robotaxis (default 20)")
    p.add_argument("--start", default=None, help='day and time, e.g. "tue 08:00" (default)')
    p.add_argument("--hours", type=float, default=None, help="service duration in hours")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 7)")
    p.add_argument("--policy", choices=["batch", "nearest"], default=None, help="dispatch")
    p.add_argument("--market-share", type=float, default=None, help="share of SF TNC trips")
    p.add_argument(
        "--requests-per-hour", type=float, default=None,
        help="made-up riders per hour (grid, or a map outside SF)",
    )  # fmt: skip
    p.add_argument("--ev-per-hour", type=float, default=None, help="ambulances per hour")
    p.add_argument(
        "--traffic", type=float, default=None,
        help="background trips per hour per km² (default 150)",
    )  # fmt: skip
    p.add_argument("--no-background", action="store_true", help="no background traffic")
    p.add_argument(
        "--traffic-model", choices=["micro", "meso"], default=None,
        help="SUMO's microscopic model (default; lanes, signals, kerbside stops) or its "
        "mesoscopic queue model (whole-city days, far faster: robotaxis leave SUMO at the "
        "kerb, no lanes, background cars do not pull over for ambulances)",
    )  # fmt: skip
    p.add_argument("--data-dir", type=Path, default=None, help="shared data (../shared/data)")
    p.add_argument("--config", type=Path, default=None, help="YAML file with settings")
    p.add_argument("--out", type=Path, default=Path("runs/latest"), help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--no-map", action="store_true", help="skip the PNG map")
    p.set_defaults(handler=run)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    from robotaxi.config import load_config

    overrides: dict[str, Any] = {}
    for option, key in (
        ("city", "map.city"), ("data_dir", "map.data_dir"), ("fleet", "fleet.size"),
        ("start", "start"), ("hours", "hours"), ("seed", "seed"), ("policy", "dispatch.policy"),
        ("market_share", "demand.market_share"), ("requests_per_hour", "demand.requests_per_hour"),
        ("ev_per_hour", "world.emergency_per_hour"),
        ("traffic", "world.background_vehicles_per_hour_per_km2"),
        ("traffic_model", "world.traffic_model"),
    ):  # fmt: skip
        value = getattr(args, option)
        if value is not None:
            overrides[key] = value
    return load_config(args.config, overrides)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from robotaxi.core import ConfigError

    config = config_from_args(args)
    out: Path = args.out
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise ConfigError(
            f"output folder {out} exists and is not empty: pick another --out or pass --overwrite"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True)
    # everything is written to a scratch folder beside --out and moved into place at the end,
    # so a failed run leaves nothing half-written and an existing folder untouched
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        kpis = simulate_into(config, scratch, console, args.no_background, not args.no_map)
        if out.exists():
            shutil.rmtree(out)
        scratch.rename(out)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    _print_table(kpis, out)
    return 0


def simulate_into(
    config: RunConfig, folder: Path, console: Console, no_background: bool, draw: bool
) -> dict[str, Any]:
    """One `simulate` run written into `folder` (events.sqlite, kpis.json, yields.json and,
    with `draw`, map.png and day.png), with progress on `console`; returns the KPIs. The one
    way a run is made: `robotaxi simulate` and each cell of `robotaxi sweep` call it."""
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn

    from robotaxi.cli.progress import LoggedProgress
    from robotaxi.fleet.demand import SyntheticDemand
    from robotaxi.metrics.fleet_kpis import fleet_kpis
    from robotaxi.metrics.plots import day_png, service_map_png
    from robotaxi.sim.runner import ServiceSimulation, load_city, make_demand
    from robotaxi.store.store import Store

    with console.status(f"loading {config.map.city} (map, routing graph, demand)…"):
        city = load_city(config)
        demand = make_demand(config, city[0])
    if config.map.city != "grid" and isinstance(demand, SyntheticDemand):
        console.print(
            f"demand: {config.map.city} lies outside San Francisco, the only city with ride "
            f"data (SFCTA): riders are made up, {config.demand.requests_per_hour:g} an hour "
            "around a few busy spots (--requests-per-hour sets the rate)"
        )
    store = Store.open(f"sqlite:///{folder / 'events.sqlite'}", sqlite_synchronous="NORMAL")
    try:
        run_record = store.start_run(json.loads(config.model_dump_json()))

        def sink(
            rides: Sequence[RideRequest],
            events: Sequence[TripEvent],
            vehicle_events: Sequence[VehicleEvent],
        ) -> None:
            # one transaction per flush: rides, their events and the cars' events together
            with store.unit_of_work("recording a simulation flush") as uow:
                uow.record(rides=rides, events=events, registered=False, run_id=run_record.id)
                uow.vehicle_events.append(vehicle_events, run_id=run_record.id)

        with LoggedProgress(
            TextColumn("[bold]simulating[/] {task.description}"),
            BarColumn(),
            TextColumn("{task.completed:>5.0f}/{task.total:.0f} sim s"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
            unit="sim s",
        ) as bar:
            task = bar.add_task(config.map.city, total=config.hours * 3600)

            def progress(done: float, total: float, status: str) -> None:
                bar.update(task, completed=done, description=f"{config.map.city}: {status}")

            sim = ServiceSimulation(
                config, folder / "sumo", event_sink=sink, progress=progress,
                background=not no_background, city=city, demand=demand,
            )  # fmt: skip
            history = sim.run()
        store.end_run(run_record.id)
    finally:
        store.close()
    kpis = fleet_kpis(history)
    (folder / "kpis.json").write_text(json.dumps(kpis, indent=2) + "\n")
    (folder / "yields.json").write_text(
        json.dumps([y.to_json() for y in history.yields], indent=2) + "\n"
    )
    if draw and sim.road_map is not None:
        service_map_png(history, sim.road_map, folder / "map.png")
    if draw and kpis["by_hour"]:
        day_png(kpis["by_hour"], folder / "day.png", f"{config.map.city}, {config.start}")
    shutil.rmtree(folder / "sumo", ignore_errors=True)
    return kpis


def _print_table(kpis: dict[str, Any], out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from robotaxi.metrics.fleet_kpis import KPI_ROWS, format_value

    table = Table(
        title=f"robotaxi service — {kpis['city']}, {kpis['fleet']} cars, {kpis['policy']}"
    )
    table.add_column("KPI")
    table.add_column("value", justify="right")
    for key, label, unit in KPI_ROWS:
        value = format_value(kpis.get(key))
        table.add_row(label, f"{value} {unit}".strip() if value != "–" else value)
    console = Console()
    console.print(table)
    if len(kpis.get("by_hour", [])) > 1:
        hourly = Table(title="by hour (rides counted in the hour they were requested)")
        for name in ("hour", "requests", "served %", "wait p50 s", "wait p95 s"):
            hourly.add_column(name, justify="right")
        for row in kpis["by_hour"]:
            hourly.add_row(
                row["hour"], str(row["requests"]), format_value(row["served_pct"]),
                format_value(row["wait_p50_s"]), format_value(row["wait_p95_s"]),
            )  # fmt: skip
        console.print(hourly)
    console.print(f"results in {out}/ (kpis.json, events.sqlite, yields.json, map.png, day.png)")
