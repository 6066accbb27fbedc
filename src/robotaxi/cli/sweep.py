"""`robotaxi sweep`: many `simulate` runs over a grid of settings, fanned out on Ray."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from robotaxi.sweep.execute import Event
    from robotaxi.sweep.target import Answer, Target

# CLI option -> the sweep's setting name; each takes a comma-separated list of values
_AXES = (
    ("city", "city"), ("fleet", "fleet"), ("market_share", "market_share"),
    ("requests_per_hour", "requests_per_hour"), ("policy", "policy"), ("start", "start"),
    ("hours", "hours"), ("ev_per_hour", "ev_per_hour"), ("traffic", "traffic"),
)  # fmt: skip


def register(sub: Any) -> None:
    p = sub.add_parser(
        "sweep",
        help="run simulate over a grid of settings on Ray; find the fleet that meets a target",
        description="Run `robotaxi simulate` for every cell of a grid of settings, one run per "
        "Ray worker process, into a resumable results table (Parquet + JSON); plot the curves "
        "and find the smallest fleet that meets a service target.",
    )
    grid = p.add_argument_group("the grid (each option takes a comma-separated list)")
    grid.add_argument("--config", type=Path, default=None, help="YAML sweep file")
    grid.add_argument("--city", default=None, help="grid, sf-mission, sf, …")
    grid.add_argument("--fleet", default=None, help="fleet sizes, e.g. 20,40,60")
    grid.add_argument("--market-share", default=None, help="shares of SF's TNC trips")
    grid.add_argument("--requests-per-hour", default=None, help="grid-city demand rates")
    grid.add_argument("--policy", default=None, help="dispatch policies: batch,nearest")
    grid.add_argument("--start", default=None, help='start times, e.g. "tue 08:00,tue 17:00"')
    grid.add_argument("--hours", default=None, help="service durations, h")
    grid.add_argument("--ev-per-hour", default=None, help="ambulances per hour")
    grid.add_argument("--traffic", default=None, help="background trips per hour per km²")
    grid.add_argument("--no-background", action="store_true", help="no background traffic")
    grid.add_argument(
        "--set", action="append", default=[], metavar="KEY=V1,V2",
        help="any other simulate setting by its dotted name, e.g. dispatch.batch_interval_s=10,30",
    )  # fmt: skip
    grid.add_argument("--seeds", type=int, default=None, help="seeds 0 … N−1 (default: 0)")
    grid.add_argument("--seed-list", default=None, help="explicit seeds, e.g. 3,7,11")
    p.add_argument("--out", type=Path, required=True, help="results folder (reruns resume)")
    p.add_argument(
        "--workers", type=int, default=None,
        help="CPUs of the local Ray runtime, one cell each (default: this machine's CPUs)",
    )  # fmt: skip
    p.add_argument(
        "--address", default=None,
        help="join an existing Ray cluster (HOST:PORT of `ray start --head`, or auto)",
    )  # fmt: skip
    p.add_argument("--retries", type=int, default=2, help="reruns of a cell whose worker died")
    p.add_argument(
        "--rerun-stale", action="store_true", help="rerun cells finished by another code version"
    )
    p.add_argument(
        "--target", default=None, help='e.g. "wait_p95_s<=300,served_pct>=95": the smallest '
        "fleet meeting it per market share and start time (alone: answer from --out's results)",
    )  # fmt: skip
    p.add_argument(
        "--fleet-search", default=None, metavar="LO:HI",
        help="with --target: bisect the fleet size in [LO, HI] instead of a fixed --fleet list",
    )  # fmt: skip
    p.add_argument(
        "--fleet-step", type=int, default=1, help="--fleet-search's precision, cars (default 1)"
    )
    p.add_argument("--data-dir", type=Path, default=None, help="shared data (../shared/data)")
    p.add_argument("--map-cache", type=Path, default=None, help="network cache (.cache/maps)")
    p.add_argument("--cell-maps", action="store_true", help="draw map.png and day.png per cell")
    p.add_argument("--dry-run", action="store_true", help="print the cells and the estimate only")
    p.set_defaults(handler=run)


def simulate_cell(overrides: dict[str, Any], background: bool, folder: Path) -> dict[str, Any]:
    """One cell, in a Ray worker: exactly what `robotaxi simulate --no-map` does with these
    settings (its output folder's kpis.json, events.sqlite, yields.json), progress into a log."""
    return _simulate_cell(overrides, background, folder, draw=False)


def simulate_cell_with_maps(
    overrides: dict[str, Any], background: bool, folder: Path
) -> dict[str, Any]:
    """`simulate_cell`, also drawing the cell's map.png and day.png (`--cell-maps`)."""
    return _simulate_cell(overrides, background, folder, draw=True)


def _simulate_cell(
    overrides: dict[str, Any], background: bool, folder: Path, *, draw: bool
) -> dict[str, Any]:
    from rich.console import Console

    from robotaxi.cli.simulate import simulate_into
    from robotaxi.config import load_config

    config = load_config(None, overrides)
    (folder / "config.json").write_text(config.model_dump_json(indent=2) + "\n")
    with (folder / "simulate.log").open("w") as log:
        console = Console(file=log, width=100, force_terminal=False)
        return simulate_into(config, folder, console, not background, draw)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from robotaxi.sweep.errors import GridError
    from robotaxi.sweep.execute import Sweep
    from robotaxi.sweep.results import load_rows
    from robotaxi.sweep.spec import build_spec, parse_setting_values, read_sweep_file, split_list
    from robotaxi.sweep.target import answer, parse_target

    console = Console(stderr=True)
    axes: dict[str, list[Any]] = {}
    for option, name in _AXES:
        text = getattr(args, option)
        if text is not None:
            axes[name] = split_list(text, f"--{option.replace('_', '-')}")
    if args.no_background:
        axes["background"] = [False]
    for item in args.set:
        key, eq, values = item.partition("=")
        if not eq or not key.strip():
            raise GridError(
                f"--set {item!r}: write KEY=VALUE[,VALUE…], e.g. dispatch.rebalance=false"
            )
        axes[key.strip()] = parse_setting_values(values, f"--set {key.strip()}")
    seed_list = None
    if args.seed_list is not None:
        seed_list = split_list(args.seed_list, "--seed-list")
    file = read_sweep_file(args.config) if args.config is not None else None
    target_text = args.target if args.target is not None else (file or {}).get("target")
    target = parse_target(target_text) if target_text is not None else None

    has_grid = bool(file) or bool(axes) or args.fleet_search is not None
    if not has_grid:
        if target is None:
            raise GridError(
                "nothing to sweep: give values (e.g. --fleet 20,40 --seeds 2) or --config "
                "FILE, or --target to answer from --out's results"
            )
        rows = list(load_rows(args.out).values())
        if not rows:
            raise GridError(f"no results in {args.out}: run a sweep there first, then --target")
        _report_target(answer(rows, target), target, args.out, console)
        _plot(rows, args.out, target)
        return 0

    spec = build_spec(
        file, axes, seeds=args.seeds, seed_list=seed_list, target=target_text,
        fleet_search=args.fleet_search,
    )  # fmt: skip
    if spec.fleet_search is not None and target is None:
        raise GridError("--fleet-search needs a --target to search for, e.g. 'served_pct>=95'")
    if args.fleet_step < 1:
        raise GridError(f"--fleet-step {args.fleet_step}: give 1 car or more")
    environment = _environment(args)
    workers = args.workers if args.workers is not None else (os.cpu_count() or 1)
    shown = ("fleet", *spec.varying) if spec.fleet_search is not None else spec.varying
    renderer = _Renderer(console, shown)
    sweep = Sweep(
        args.out, simulate_cell_with_maps if args.cell_maps else simulate_cell,
        environment=environment,
        workers=workers, address=args.address, retries=args.retries,
        rerun_stale=args.rerun_stale, on_event=renderer,
    )  # fmt: skip
    if args.dry_run:
        plan = sweep.plan(list(spec.cells))
        renderer(plan)
        for cell in plan.to_run:
            console.print(f"  {cell.cell_id}  {cell.label(spec.varying) or cell.label()}")
        return 0
    try:
        with sweep, renderer:
            if spec.fleet_search is not None and target is not None:
                _search(spec, target, sweep, args.fleet_step)
            else:
                sweep.run(list(spec.cells))
    except KeyboardInterrupt:
        kept = sum(1 for r in sweep.rows.values() if r.get("status") == "ok")
        console.print(
            f"sweep interrupted: {kept} finished cells kept in {args.out}; rerun the same "
            "command to resume"
        )
        raise
    rows = list(sweep.rows.values())
    failed = [r for r in rows if r.get("status") != "ok"]
    png = _plot(rows, args.out, target)
    Console().print(
        f"results in {args.out}/ (results.parquet, results.json, cells/<cell id>/"
        f"{', ' + png.name if png else ''})"
        + (f"; {len(failed)} cells failed (see their error column)" if failed else "")
    )
    if target is not None:
        _report_target(answer(rows, target), target, args.out, console)
    return 1 if failed else 0


def _environment(args: argparse.Namespace) -> dict[str, Any]:
    """Absolute paths for the workers (which may not share the driver's folder)."""
    from robotaxi.config.models import MapConfig

    defaults = MapConfig()
    data_dir = args.data_dir if args.data_dir is not None else defaults.data_dir
    cache = args.map_cache if args.map_cache is not None else defaults.cache_dir
    return {
        "map.data_dir": str(Path(data_dir).resolve()),
        "map.cache_dir": str(Path(cache).resolve()),
    }


def _search(spec: Any, target: Target, sweep: Any, step: int) -> None:
    from robotaxi.sweep.spec import Cell
    from robotaxi.sweep.target import fleet_search

    lo, hi = spec.fleet_search
    bases: dict[str, dict[str, Any]] = {}
    seeds: list[int] = []
    for cell in spec.cells:
        settings = cell.as_dict()
        seed = settings.pop("seed")
        if seed not in seeds:
            seeds.append(seed)
        settings.pop("fleet.size", None)
        bases.setdefault(Cell.of(settings).cell_id, settings)
    fleet_search(list(bases.values()), seeds, lo, hi, target, sweep.run, step)


def _plot(rows: list[dict[str, Any]], out: Path, target: Target | None) -> Path | None:
    from robotaxi.sweep.plots import fleet_curves_png

    ok = [r for r in rows if r.get("status") == "ok"]
    if not ok:
        return None
    cities = sorted({str(r.get("city")) for r in ok})
    return fleet_curves_png(
        ok, out / "fleet_curves.png", f"robotaxi sweep: {', '.join(cities)}", target
    )


def _report_target(answers: list[Answer], target: Target, out: Path, console: Console) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"smallest fleet meeting {target}")
    columns = list(answers[0].group) if answers else []
    for name in [*columns, "smallest fleet", "fleets tried", *(c.kpi for c in target.conditions)]:
        table.add_column(name, justify="right")
    for a in answers:
        fleet = str(a.fleet) if a.status == "met" else (
            f"≤ {a.fleet}" if a.fleet is not None else f"> {max(a.tried)}"
        )  # fmt: skip
        table.add_row(
            *(str(v) for v in a.group.values()), fleet, ",".join(map(str, a.tried)),
            *(str(a.kpis_at_answer.get(c.kpi)) for c in target.conditions),
        )  # fmt: skip
    Console().print(table)
    record = {"target": str(target), "answers": [a.to_json() for a in answers]}
    (out / "target.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [
        f"# smallest fleet meeting {target}", "",
        "| " + " | ".join([*columns, "smallest fleet", "status", "fleets tried"]) + " |",
        "|" + "---|" * (len(columns) + 3),
    ]  # fmt: skip
    for a in answers:
        lines.append(
            "| " + " | ".join([*(str(v) for v in a.group.values()), str(a.fleet), a.status,
                               ",".join(map(str, a.tried))]) + " |"
        )  # fmt: skip
    (out / "target.md").write_text("\n".join(lines) + "\n")
    console.print(f"answer in {out}/target.json and target.md")


class _Renderer:
    """One rich bar over cells with an ETA, and a line per finished cell."""

    def __init__(self, console: Console, varying: tuple[str, ...]) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = console
        self.varying = varying
        self.progress = Progress(
            TextColumn("[bold]sweep[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("cells"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console,
        )  # fmt: skip
        self.task: Any = None

    def __enter__(self) -> _Renderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, event: Event) -> None:
        from robotaxi.sweep.execute import CellFinished, CellRetried, Plan

        if isinstance(event, Plan):
            where = f"on the Ray cluster at {event.address}" if event.address else (
                f"on {event.workers} local worker{'s' if event.workers != 1 else ''}"
            )  # fmt: skip
            estimate = "" if not event.to_run else (
                f"; estimate {_duration(event.estimate_s)} ({event.estimate_basis})"
            )  # fmt: skip
            self.console.print(
                f"sweep: {event.total} cells, {event.done} already finished, "
                f"{len(event.to_run)} to run {where}{estimate}"
            )
            if not event.to_run:
                return
            if self.task is None:
                self.progress.start()
                self.task = self.progress.add_task("cells", total=len(event.to_run))
            else:
                total = (self.progress.tasks[0].total or 0) + len(event.to_run)
                self.progress.update(self.task, total=total)
        elif isinstance(event, CellFinished):
            row = event.row
            label = event.cell.label(self.varying) or event.cell.label()
            if row["status"] == "ok":
                line = (
                    f"[green]✓[/] {row['cell_id']} {label}: served {row.get('served_pct')} %, "
                    f"wait p95 {row.get('wait_p95_s')} s ({row.get('cell_wall_s')} s"
                    f"{', attempt ' + str(row['attempts']) if row['attempts'] > 1 else ''})"
                )
            else:
                line = (
                    f"[red]✗[/] {row['cell_id']} {label}: failed after {row['attempts']} "
                    f"attempts: {row['error']}"
                )
            self.progress.console.print(line)
            if self.task is not None:
                self.progress.advance(self.task)
        elif isinstance(event, CellRetried):
            self.progress.console.print(
                f"[yellow]↻[/] {event.cell.cell_id} {event.cell.label(self.varying)}: attempt "
                f"{event.attempt} failed ({event.error}); retrying"
            )


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds < 90:
        return f"~{seconds:.0f} s"
    if seconds < 5400:
        return f"~{seconds / 60:.0f} min"
    return f"~{seconds / 3600:.1f} h"
