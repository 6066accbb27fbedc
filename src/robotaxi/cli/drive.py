"""`robotaxi drive`: run driving scenarios closed-loop with the autonomy stack in SUMO."""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

# the parser is built on every `robotaxi` call, `--help` included: SUMO, the autonomy stack
# and rich are imported by the functions that run the command, not here
if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from robotaxi.config.scenario import ScenarioSpec


def register(sub: Any) -> None:
    p = sub.add_parser(
        "drive",
        help="drive scenarios closed-loop with the autonomy stack",
        description="Run driving scenarios: the car drives itself from its own sensors in SUMO.",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--scenario", help="a scenario name (see --list) or a path to a YAML file")
    which.add_argument("--all", action="store_true", help="run the whole suite")
    which.add_argument("--list", action="store_true", help="list the scenarios")
    p.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    p.add_argument("--render", type=Path, default=None, help="write an animation (GIF)")
    p.add_argument("--json", action="store_true", help="print one JSON object per scenario")
    p.add_argument("--out", type=Path, default=None, help="folder for --all results")
    p.add_argument("--data-dir", type=Path, default=None, help="shared data (../shared/data)")
    p.add_argument(
        "--microphones",
        choices=("on", "off"),
        default=None,
        help="roof microphones + siren detector on or off (default: the scenario's, on)",
    )
    p.add_argument(
        "--city-blocks",
        choices=("on", "off"),
        default=None,
        help="city blocks hide what is behind them from the cameras (default: the scenario's, on)",
    )
    p.add_argument(
        "--background-db",
        type=float,
        default=None,
        help="street background level at the roof microphones, dB SPL (default: the scenario's)",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from robotaxi.config.scenario import load_scenario, scenario_names
    from robotaxi.core import ConfigError

    if args.list:
        for name in scenario_names():
            print(name)
        return 0
    if args.render is not None and args.all:
        raise ConfigError("--render draws one scenario: use it with --scenario")
    names = scenario_names() if args.all else [args.scenario]
    specs = [load_scenario(n) for n in names]  # every file checked before anything runs
    if args.seed is not None:
        specs = [s.model_copy(update={"seed": args.seed}) for s in specs]
    sensors: dict[str, object] = {}
    if args.microphones is not None:
        sensors["microphones"] = args.microphones == "on"
    if args.city_blocks is not None:
        sensors["city_blocks"] = args.city_blocks == "on"
    if args.background_db is not None:
        if not 0.0 <= args.background_db <= 120.0:
            raise ConfigError(f"--background-db {args.background_db}: give 0–120 dB SPL")
        sensors["background_db_spl"] = args.background_db
    if sensors:
        specs = [
            s.model_copy(update={"sensors": s.sensors.model_copy(update=sensors)}) for s in specs
        ]
    return _drive(specs, args)


def _drive(specs: list[ScenarioSpec], args: argparse.Namespace) -> int:
    """Drive each scenario with our stack and with the IDM reference; report the scores."""
    from rich.console import Console

    from robotaxi.cli.progress import LoggedProgress
    from robotaxi.metrics.render import render_drive_gif
    from robotaxi.metrics.scenario_report import scenario_report
    from robotaxi.sim.drive import idm_planner, run_scenario

    console = Console(stderr=True)
    reports = []
    with (
        tempfile.TemporaryDirectory(prefix="robotaxi-drive-") as work,
        LoggedProgress(console=console, transient=True, unit="sim s") as bar,
    ):
        for spec in specs:
            task = bar.add_task(f"driving {spec.name}", total=spec.duration_s)
            result = run_scenario(
                spec,
                work_dir=Path(work) / spec.name,
                data_dir=args.data_dir,
                keep_frames=args.render is not None,
                progress=_updater(bar, task),
            )
            bar.update(task, completed=spec.duration_s)
            reference = run_scenario(
                spec, work_dir=Path(work) / f"{spec.name}-idm", data_dir=args.data_dir,
                planner=idm_planner(), microphones=False,
            )  # fmt: skip
            report = scenario_report(result, reference)
            reports.append(report)
            if args.render is not None:
                render_drive_gif(result, args.render)
            if args.json:
                print(json.dumps(report))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        suite = _suite_summary(reports)
        (args.out / "suite.json").write_text(
            json.dumps({"suite": suite, "scenarios": reports}, indent=2)
        )
    if not args.json:
        _print_table(reports)
        if args.render is not None:
            print(f"animation written to {args.render}")
    return 0


def _updater(bar: Progress, task: TaskID) -> Callable[[float, float], None]:
    def update(done: float, _total: float) -> None:
        bar.update(task, completed=done)

    return update


def _suite_summary(reports: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "scenarios": len(reports),
        "passed": sum(r["passed"] for r in reports),
        "mean_score": round(sum(r["score"] for r in reports) / max(len(reports), 1), 4),
        "at_fault_collisions": sum(r["at_fault_collisions"] for r in reports),
    }


def _print_table(reports: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="robotaxi drive")
    for col in ("scenario", "passed", "score", "progress m", "at-fault coll.", "EV yield"):
        table.add_column(col)
    for r in reports:
        ev = r.get("ev_yield")
        ev_text = (
            "–" if ev is None
            else f"{'ok' if ev['pulled_over'] and ev['resumed'] and not ev['blocked_ev'] else 'NO'}"
            f" ({ev['stopped_within_s']} s)"
        )  # fmt: skip
        table.add_row(
            r["scenario"], "yes" if r["passed"] else "NO", f"{r['score']:.3f}",
            f"{r['progress_m']:.0f}", str(r["at_fault_collisions"]), ev_text,
        )  # fmt: skip
    if len(reports) > 1:
        s = _suite_summary(reports)
        table.add_row("suite", f"{s['passed']}/{s['scenarios']}", f"{s['mean_score']:.3f}", "",
                      str(s["at_fault_collisions"]), "")  # fmt: skip
    Console().print(table)
