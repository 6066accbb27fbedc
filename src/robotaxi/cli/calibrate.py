"""`robotaxi calibrate`: find the background demand scale at which the city's arterials drive
as much below free flow as INRIX measured, per period (AM, MD, PM)."""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

# the parser is built on every `robotaxi` call: heavy imports live in the functions below
if TYPE_CHECKING:
    from robotaxi.sim.calibrate import CalibrationOutcome, CalibrationSettings

FREE_FLOW_MIN_SAMPLED_S = 10.0  # vehicle-seconds on an edge for its free-flow speed to count


def register(sub: Any) -> None:
    p = sub.add_parser(
        "calibrate",
        help="fit the background traffic to measured speeds (INRIX) and report the table",
        description="Search the Plan Bay Area background demand scale at which simulated "
        "speed / free-flow ratios on arterials match INRIX's per period (AM, MD, PM); write "
        "calibration.json, calibration.png and, with --write-settings, the city's settings.",
    )
    p.add_argument("--city", default="sf", help="city with INRIX speeds (sf)")
    p.add_argument("--out", type=Path, default=Path("runs/calibration"), help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument(
        "--traffic-model", choices=["micro", "meso"], default="meso",
        help="SUMO's mesoscopic queue model (default: ~14x faster on the whole city) or micro",
    )  # fmt: skip
    p.add_argument("--periods", default="AM,MD,PM", help="periods to fit, e.g. AM,PM")
    p.add_argument(
        "--warmup-min", type=float, default=180.0, help="warm-up before each window (min)"
    )
    p.add_argument("--window-min", type=float, default=60.0, help="measured minutes per period")
    p.add_argument("--scale", type=float, default=None, help="evaluate this scale only (no search)")
    p.add_argument("--start-scale", type=float, default=0.5, help="first candidate scale")
    p.add_argument("--min-scale", type=float, default=0.05, help="lowest scale searched")
    p.add_argument(
        "--max-scale", type=float, default=1.2,
        help="highest scale searched; trips are routed once at this scale and thinned",
    )  # fmt: skip
    p.add_argument("--free-flow-scale", type=float, default=0.03, help="scale of the free run")
    p.add_argument(
        "--reference", choices=["ea", "ffs"], default="ea",
        help="what INRIX's ratio is taken relative to: ea (default) divides it by INRIX's "
        "03:00-06:00 ratio, like the simulation's free flow measured in a near-empty run; "
        "ffs uses INRIX's free-flow speed as is",
    )  # fmt: skip
    p.add_argument("--max-runs", type=int, default=5, help="candidate scales at most")
    p.add_argument(
        "--max-teleport-share", type=float, default=0.005,
        help="candidates with more teleports per inserted vehicle count as too much traffic",
    )  # fmt: skip
    p.add_argument(
        "--budget-min", type=float, default=None,
        help="no new candidate starts after this many minutes (the running one finishes)",
    )  # fmt: skip
    p.add_argument(
        "--day-runs", type=int, default=3,
        help="whole-day background runs that lower the scale until the day's teleports stay "
        "within the bound (0: the windows only)",
    )  # fmt: skip
    p.add_argument(
        "--known-good-scale", type=float, default=None,
        help="a scale whose whole day held before: a failing day run halves the way to it "
        "and the last run checks it (default: the city's last calibration, if its day held; "
        "0: none)",
    )  # fmt: skip
    p.add_argument(
        "--day-hours", type=float, default=24.0,
        help="how much of the day, from midnight, those runs cover",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=7, help="random seed of demand and SUMO")
    p.add_argument("--data-dir", type=Path, default=None, help="shared data (../shared/data)")
    p.add_argument("--cache-dir", type=Path, default=None, help="built networks (.cache/maps)")
    p.add_argument(
        "--write-settings", action="store_true",
        help="store the chosen scale and the table in the city's tracked settings file, "
        "which `simulate` merges under your settings",
    )  # fmt: skip
    p.add_argument("--keep-runs", action="store_true", help="keep SUMO's outputs in --out/runs")
    p.set_defaults(handler=run)


def settings_from_args(args: argparse.Namespace) -> CalibrationSettings:
    from robotaxi.sim.calibrate import CalibrationError, CalibrationSettings

    periods = tuple(p.strip().upper() for p in args.periods.split(",") if p.strip())
    if len(set(periods)) != len(periods):
        raise CalibrationError(f"--periods {args.periods!r} names a period twice")
    settings = CalibrationSettings(
        periods=periods,
        warmup_s=args.warmup_min * 60.0,
        window_s=args.window_min * 60.0,
        traffic_model=args.traffic_model,
        min_scale=args.min_scale,
        max_scale=args.max_scale,
        start_scale=args.start_scale,
        free_flow_scale=args.free_flow_scale,
        max_runs=args.max_runs,
        max_teleport_share=args.max_teleport_share,
        seed=args.seed,
        fixed_scale=args.scale,
        budget_s=None if args.budget_min is None else args.budget_min * 60.0,
        day_runs=args.day_runs,
        day_s=args.day_hours * 3600.0,
        known_good_scale=(
            _known_good_scale(args.city, args.traffic_model)
            if args.known_good_scale is None
            else args.known_good_scale or None
        ),
    )
    settings.check()
    return settings


def _known_good_scale(city: str, traffic_model: str) -> float | None:
    """The scale of the city's last calibration for this model, if its whole day held."""
    from robotaxi.config import city_settings

    entry = city_settings(city, traffic_model) or {}
    calibration = entry.get("calibration") or {}
    if (
        calibration.get("traffic_model") == traffic_model
        and calibration.get("teleport_bound_met") is True
        and calibration.get("day_teleport_share") is not None
        and isinstance(calibration.get("scale"), int | float)
    ):
        return float(calibration["scale"])
    return None


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from robotaxi.config import MapConfig
    from robotaxi.core import ConfigError
    from robotaxi.metrics.calibration import INRIX_2016, INRIX_SUBDIR, PERIODS
    from robotaxi.sim.calibrate import CalibrationError, check_city

    check_city(args.city)
    settings = settings_from_args(args)
    unknown = [p for p in settings.periods if p not in ("AM", "MD", "PM")]
    if unknown:
        raise CalibrationError(f"unknown period(s) {', '.join(unknown)}: use AM, MD or PM")
    for p in settings.periods:  # fail before any run, not after an hour of them
        from robotaxi.sim.calibrate import measured_window

        measured_window(p, PERIODS[p], settings.window_s, settings.warmup_s)
    data_dir: Path = args.data_dir or MapConfig().data_dir
    inrix_file = data_dir / INRIX_SUBDIR / INRIX_2016
    if not inrix_file.is_file():
        raise CalibrationError(
            f"{inrix_file} not found (INRIX speeds to calibrate against): "
            "point --data-dir at the shared data folder"
        )
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file: give a folder")
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise ConfigError(
            f"output folder {out} exists and is not empty: pick another --out or pass --overwrite"
        )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the parent of --out {out}: {exc.strerror}") from None
    console = Console(stderr=True)
    # written to a scratch folder beside --out and moved into place at the end: a failed or
    # interrupted calibration leaves nothing half-written and an existing folder untouched
    try:
        scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    except OSError as exc:
        raise ConfigError(f"cannot write beside --out {out}: {exc.strerror}") from None
    try:
        report = _calibrate(args, settings, data_dir, inrix_file, scratch, console)
        if out.exists():
            shutil.rmtree(out)
        scratch.rename(out)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    if args.write_settings:
        from robotaxi.config import write_city_settings

        path = write_city_settings(
            args.city,
            settings.traffic_model,
            # the city's traffic is the calibrated Plan Bay Area demand unless told otherwise
            {"world": {"background_demand": "planbayarea", "background_scale": report["scale"]}},
            settings_record(report),
        )
        console.print(f"wrote background_scale {report['scale']} for {args.city} to {path}")
    _print_table(report, out)
    return 0


def settings_record(report: dict[str, Any]) -> dict[str, Any]:
    """What the city's settings file keeps of a calibration: the table and how it was found."""
    keys = (
        "traffic_model", "scale", "teleport_share", "day_teleport_share", "teleport_bound_met",
        "max_teleport_share",
        "reference", "arterial_sim_over_target", "arterial_sim_over_inrix", "windows", "seed",
        "sumo_version", "date", "table",
    )  # fmt: skip
    return {k: report[k] for k in keys}


def _calibrate(
    args: argparse.Namespace,
    settings: CalibrationSettings,
    data_dir: Path,
    inrix_file: Path,
    folder: Path,
    console: Any,
) -> dict[str, Any]:
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn

    from robotaxi.cli.progress import LoggedProgress
    from robotaxi.config import MapConfig
    from robotaxi.map import RoutingGraph, build_network, load_map
    from robotaxi.map.build import sumo_version
    from robotaxi.metrics import calibration as cal
    from robotaxi.sim.calibrate import calibrate_background

    started = time.perf_counter()
    with console.status(f"building {args.city} and reading INRIX…"):
        built = build_network(
            args.city,
            data_dir,
            args.cache_dir or MapConfig().cache_dir,
            traffic_model=settings.traffic_model,
        )
        allowed = frozenset(RoutingGraph(load_map(built)).index)
        edges = cal.read_net_edges(built.net_file)
        inrix = cal.inrix_targets(cal.read_inrix(inrix_file), (*settings.periods, cal.EMPTY_PERIOD))
    empty = cal.empty_ratios(inrix) if args.reference == "ea" else None
    scorer = _Scorer(edges, {k: v for k, v in inrix.items() if k[1] != cal.EMPTY_PERIOD}, empty)
    with LoggedProgress(
        TextColumn("[bold]calibrating[/] {task.description}"),
        BarColumn(),
        TextColumn("{task.completed:>6.0f}/{task.total:.0f} sim s"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        unit="sim s",
    ) as bar:
        task = bar.add_task(args.city, total=1.0)

        last_stage = [""]

        def progress(status: str, done: float, total: float) -> None:
            bar.update(task, completed=done, total=total, description=status)
            stage = status.split(":")[0]
            if not console.is_terminal and stage != last_stage[0]:
                # a log file gets a line as each stage begins, saying what it does (routing
                # a window's trips takes minutes with no sim time passing), and one every
                # half minute of wall time while a run steps (`LoggedProgress`)
                last_stage[0] = stage
                console.print(f"calibrating: {status} ({done:.0f}/{total:.0f} sim s)")

        outcome = calibrate_background(
            built.net_file, data_dir, cal.PERIODS, settings,
            work_dir=folder / "runs", routes_dir=built.net_file.parent / "routes",
            free_flow=scorer.set_free_flow, score=scorer.score, allowed_edges=allowed,
            progress=progress,
        )  # fmt: skip
    report = report_json(args.city, outcome, scorer, sumo_version())
    report["wall_s"] = round(time.perf_counter() - started, 1)
    (folder / "calibration.json").write_text(json.dumps(report, indent=2) + "\n")
    cal.calibration_png(report, folder / "calibration.png")
    if not args.keep_runs:
        shutil.rmtree(folder / "runs", ignore_errors=True)
    return report


class _Scorer:
    """Speed ratios of a run against INRIX, once the free-flow run has been seen."""

    def __init__(self, edges: Any, inrix: Any, empty: Any = None) -> None:
        self.edges, self.inrix, self.empty = edges, inrix, empty
        self.reference = "ffs" if empty is None else "ea"
        self.free: Any = None

    def set_free_flow(self, run: Any, start_of_day_s: float) -> None:
        from robotaxi.metrics import calibration as cal

        # measured where the near-empty run drove (10 vehicle-seconds at least): like INRIX's
        # free flow, it includes what signals cost an empty street; other edges are left out
        # (their type's mean factor on quiet streets put loaded speeds above free flow)
        self.free = cal.free_flow_speeds(
            cal.read_edge_data(run.edge_data), self.edges, FREE_FLOW_MIN_SAMPLED_S,
            scale_limits=True, measured_only=True,
        )  # fmt: skip

    def score(self, period: str, run: Any, start_of_day_s: float) -> tuple[float, Any]:
        from robotaxi.metrics import calibration as cal

        intervals = cal.read_edge_data(run.edge_data)
        sim = cal.simulated_ratios(
            intervals, self.free, self.edges, sim_start_of_day_s=start_of_day_s, periods=(period,)
        )
        real = {k: v for k, v in self.inrix.items() if k[1] == period}
        rows = cal.compare(sim, real, self.empty)
        table = {
            "rows": cal.rows_json(rows),
            "stalled_share": round(cal.stalled_share(intervals), 4),
        }
        return cal.log_error(rows), table


def _num(value: float, digits: int = 4) -> float | None:
    return round(value, digits) if math.isfinite(value) else None


def report_json(
    city: str, outcome: CalibrationOutcome, scorer: _Scorer, sumo_version: str
) -> dict[str, Any]:
    """calibration.json: the chosen scale, its table and every candidate tried."""
    chosen = outcome.chosen
    settings = outcome.settings

    def raw(rows: list[dict[str, Any]]) -> float | None:
        """Arterials' mean simulated / INRIX-against-FFS ratio (geometric), whatever the
        reference the search used."""
        logs = [
            math.log(r["sim_over_inrix"])
            for r in rows
            if r["facility_type"] in ("major_arterial", "minor_arterial") and r["sim_over_inrix"]
        ]
        return _num(math.exp(sum(logs) / len(logs))) if logs else None

    def clock(s: float) -> str:
        return f"{int(s // 3600):02d}:{int(s % 3600 // 60):02d}"

    candidates = []
    for c in outcome.candidates:
        candidates.append(
            {
                "scale": round(c.scale, 4),
                "error": _num(c.error),
                "arterial_sim_over_target": _num(math.exp(c.error)),
                "arterial_sim_over_inrix": raw([r for p in c.periods for r in p.table["rows"]]),
                "inserted": c.inserted,
                "teleports": c.teleports,
                "teleport_share": round(c.teleport_share, 5),
                "wall_s": round(c.wall_s, 1),
                "periods": [
                    {
                        "period": p.window.period,
                        "loaded": p.run.loaded,
                        "inserted": p.run.inserted,
                        "teleports": p.run.teleports,
                        "teleport_share": round(p.run.teleport_share, 5),
                        "wall_s": round(p.run.wall_s, 1),
                        "arterial_sim_over_target": _num(math.exp(p.error)),
                        "arterial_sim_over_inrix": raw(p.table["rows"]),
                        "stalled_share": p.table["stalled_share"],
                        "rows": p.table["rows"],
                    }
                    for p in c.periods
                ],
            }
        )
    free = scorer.free
    day: dict[str, Any] | None = None
    if outcome.day is not None:
        day = {
            "hours": round(settings.day_s / 3600.0, 2),
            "chosen_scale": outcome.day.scale,
            "bound_met": outcome.day.bound_met,
            "runs": [
                {
                    "scale": scale,
                    "inserted": r.inserted,
                    "teleports": r.teleports,
                    "teleport_share": round(share, 5),
                    "wall_s": round(r.wall_s, 1),
                    "stopped_early": r.stopped_early,
                }
                for (scale, share), r in zip(outcome.day.trials, outcome.day_runs, strict=True)
            ],
        }
    return {
        "city": city,
        "traffic_model": settings.traffic_model,
        "scale": round(chosen.scale, 4),
        "reference": scorer.reference,
        "arterial_sim_over_target": _num(math.exp(chosen.error)),
        "arterial_sim_over_inrix": raw([r for p in chosen.periods for r in p.table["rows"]]),
        "teleport_share": round(chosen.teleport_share, 5),
        # the day's teleports at the chosen scale, when the day was run (the bound's test)
        "day_teleport_share": (
            None if outcome.day is None else round(outcome.day.trials[outcome.day.chosen][1], 5)
        ),
        "teleport_bound_met": outcome.search.teleport_bound_met,
        "max_teleport_share": settings.max_teleport_share,
        "target": "major and minor arterials, AM/MD/PM: simulated ratio within ±15 % of "
        + (
            "INRIX's ratio over its EA (03:00-06:00) ratio"
            if scorer.empty is not None
            else "INRIX's ratio (speed / INRIX free-flow speed)"
        ),
        "table": [row for p in chosen.periods for row in p.table["rows"]],
        "windows": {
            p.window.period: {
                "warmup_from": clock(p.window.start_s),
                "measured": f"{clock(p.window.measure_begin_s)}-{clock(p.window.end_s)}",
            }
            for p in chosen.periods
        },
        "free_flow": {
            "scale": settings.free_flow_scale,
            "period": outcome.free_flow_window.period,
            "inserted": outcome.free_flow.inserted,
            "teleports": outcome.free_flow.teleports,
            "wall_s": round(outcome.free_flow.wall_s, 1),
            "measured_edges": len(free.measured) if free is not None else 0,
            "limit_factor": {
                ft.name.lower(): round(v, 3)
                for ft, v in (free.limit_factor.items() if free else ())
            },
        },
        "routed_vehicles_at_max_scale": dict(outcome.routed_vehicles),
        "candidates": candidates,
        "day": day,
        "chosen_candidate": outcome.search.chosen + 1,
        "search": {k: v for k, v in asdict(settings).items() if k != "periods"}
        | {"periods": list(settings.periods)},
        "seed": settings.seed,
        "sumo_version": sumo_version,
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "sources": "INRIX 2016 speeds via SFCTA (sfcta/tncsandcongestion); MTC/ABAG Plan "
        "Bay Area 2015 trips; NHTS 2001 hourly profile",
    }


def _print_table(report: dict[str, Any], out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"calibration — {report['city']}, {report['traffic_model']}, "
        f"scale {report['scale']} (speed / free-flow speed, length-weighted)"
    )
    names = ("facility type", "period", "simulated", "INRIX", "INRIX EA", "target", "sim / target")
    for name in names:
        table.add_column(name, justify="left" if name == "facility type" else "right")

    def num(v: float | None) -> str:
        return "–" if v is None else f"{v:.3f}"

    for r in report["table"]:
        table.add_row(
            r["facility_type"].replace("_", " "), r["period"], num(r["simulated"]),
            num(r["inrix"]), num(r.get("inrix_empty")), num(r.get("target")),
            num(r.get("sim_over_target")),
        )  # fmt: skip
    console = Console()
    if not console.is_terminal:  # a pipe or a file: room for every column on one line
        console = Console(width=120)
    console.print(table)
    bound = "met" if report["teleport_bound_met"] else "NOT met by any candidate"
    day = report.get("day")
    where = "in the windows"
    if day is not None:
        tried = ", ".join(f"{r['scale']:g}: {100 * r['teleport_share']:.2f} %" for r in day["runs"])
        console.print(f"the day (00:00 + {day['hours']:g} h), teleports by scale: {tried}")
        where = f"in the windows, {100 * report['day_teleport_share']:.2f} % over the day"
    console.print(
        f"teleports {100 * report['teleport_share']:.2f} % of inserted vehicles {where} "
        f"(bound {100 * report['max_teleport_share']:.2f} %: {bound}); "
        f"{len(report['candidates'])} candidates in {report['wall_s']:.0f} s"
    )
    console.print(f"results in {out}/ (calibration.json, calibration.png)")
