"""`robotaxi siren`: detect sirens in a WAV file, evaluate the detector, retrain its model."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DEFAULT_DATA_DIR = Path("../shared/data")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "siren",
        help="siren detection from the roof microphones",
        description="Siren detection from the roof microphones: detect, eval, train.",
    )
    parser.set_defaults(handler=lambda args: _usage(parser))
    sub = parser.add_subparsers(dest="siren_command", metavar="SUBCOMMAND")

    detect = sub.add_parser("detect", help="detections over time in a WAV file")
    detect.add_argument("file", type=Path, help="WAV file: mono or multichannel, any rate")
    detect.add_argument("--json", action="store_true", help="print one JSON object")
    detect.add_argument("--model", type=Path, default=None, help="model file (default: shipped)")
    detect.set_defaults(handler=_detect)

    ev = sub.add_parser("eval", help="evaluate on the real clips and synthetic street scenes")
    ev.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    ev.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    ev.add_argument("--trials", type=int, default=6, help="synthetic scenes per grid cell")
    ev.add_argument("--hours", type=float, default=0.25, help="siren-free audio for false alarms")
    ev.add_argument("--model", type=Path, default=None)
    ev.add_argument("--seed", type=int, default=12345)
    ev.add_argument(
        "--loco",
        action="store_true",
        help="also run the leave-one-class-out protocol (retrains once per held-out class)",
    )
    ev.add_argument(
        "--loco-hours", type=float, default=1.0, help="at-the-car audio per held-out class"
    )
    ev.add_argument(
        "--loco-only", action="store_true", help="run only the leave-one-class-out protocol"
    )
    ev.set_defaults(handler=_eval)

    tr = sub.add_parser("train", help="regenerate the model file (deterministic for a seed)")
    tr.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--out", type=Path, default=None, help="model file (default: the shipped one)")
    tr.add_argument("--siren-scenes", type=int, default=None)
    tr.add_argument("--quiet-scenes", type=int, default=None)
    tr.add_argument(
        "--synthetic-clips", type=int, default=None, help="takes per synthetic negative family"
    )
    tr.set_defaults(handler=_train)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


@contextmanager
def _progress() -> Iterator[Any]:
    """A rich progress bar on stderr (a line every 30 s when stderr is not a terminal)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from robotaxi.cli.progress import LoggedProgress

    console = Console(stderr=True)
    bar = LoggedProgress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    tasks: dict[str, Any] = {}

    def update(task: str, done: int, total: int) -> None:
        if task not in tasks:
            tasks[task] = bar.add_task(task, total=total)
        bar.update(tasks[task], completed=done, total=total)

    with bar:
        yield update


# --- detect -----------------------------------------------------------------------------


def _detect(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from robotaxi.autonomy.perception.siren import SirenDetector, load_model
    from robotaxi.autonomy.perception.siren_features import WINDOW_S
    from robotaxi.core.errors import ConfigError
    from robotaxi.sim.sensors.microphones import read_wav, resample_to

    rate, audio = read_wav(args.file)
    duration = audio.shape[1] / rate
    if duration < WINDOW_S:
        raise ConfigError(
            f"{args.file}: {duration:.2f} s of audio, the detector needs at least {WINDOW_S} s"
        )
    x = resample_to(audio, rate)
    model = load_model(args.model)
    # offline: a bearing for every window, not only where the detector needs one
    windows = SirenDetector(x.shape[0], model=model, every_bearing=True).push(x)
    several = x.shape[0] > 1
    first = next((w.time_s for w in windows if w.detected), None)
    result: dict[str, Any] = {
        "file": str(args.file),
        "sample_rate_hz": rate,
        "channels": int(x.shape[0]),
        "duration_s": round(duration, 3),
        "detected": first is not None,
        "first_detection_s": first,
        "max_probability": round(max((w.probability for w in windows), default=0.0), 4),
        "segments": _segments(windows),
        "windows": [
            {
                "time_s": round(w.time_s, 2),
                "probability": round(w.probability, 4),
                "smoothed": round(w.smoothed, 4),
                "detected": w.detected,
                **(
                    {"bearing_deg": round(math.degrees(w.bearing_rad), 1)}
                    if several and w.bearing_rad is not None
                    else {}
                ),
            }
            for w in windows
        ],
    }
    if args.json:
        try:
            print(json.dumps(result), flush=True)
        except BrokenPipeError:  # `| head`: the reader left, which is fine
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    console = Console()
    verdict = f"[bold red]siren detected[/] from {first:.1f} s" if first is not None else "no siren"
    console.print(
        f"{args.file}: {duration:.1f} s, {x.shape[0]} channel(s), {rate} Hz — {verdict}; "
        f"max probability {result['max_probability']:.2f}"
    )
    table = Table("start s", "end s", "max probability", "bearing °" if several else "")
    for seg in result["segments"]:
        bearing = seg.get("bearing_deg")
        table.add_row(
            f"{seg['start_s']:.1f}",
            f"{seg['end_s']:.1f}",
            f"{seg['max_probability']:.2f}",
            "" if bearing is None else f"{bearing:.0f}",
        )
    if result["segments"]:
        console.print(table)
    return 0


def _segments(windows: list[Any]) -> list[dict[str, Any]]:
    """Runs of detected windows: start/end time, peak probability, mean bearing."""
    out: list[dict[str, Any]] = []
    run: list[Any] = []
    for w in [*windows, None]:
        if w is not None and w.detected:
            run.append(w)
            continue
        if run:
            seg: dict[str, Any] = {
                "start_s": round(run[0].time_s, 2),
                "end_s": round(run[-1].time_s, 2),
                "max_probability": round(max(r.probability for r in run), 4),
            }
            bearings = [r.bearing_rad for r in run if r.bearing_rad is not None]
            if bearings:
                s = sum(math.sin(b) for b in bearings)
                c = sum(math.cos(b) for b in bearings)
                seg["bearing_deg"] = round(math.degrees(math.atan2(s, c)), 1)
            out.append(seg)
            run = []
    return out


# --- eval -------------------------------------------------------------------------------


def _eval(args: argparse.Namespace) -> int:

    from robotaxi.autonomy.perception.siren import load_model
    from robotaxi.core.errors import ConfigError
    from robotaxi.training import siren as st

    if args.trials < 1 or args.hours <= 0 or args.loco_hours <= 0:
        raise ConfigError("--trials must be ≥ 1, --hours and --loco-hours > 0")
    model = load_model(args.model)
    data_dir = Path(args.data_dir)
    has_data = (data_dir / "audio").is_dir()
    results: dict[str, Any] = {"data_dir": str(data_dir), "real_data": has_data}
    if args.loco or args.loco_only:
        from robotaxi.training import siren_loco

        with _progress() as progress:
            results["loco"] = siren_loco.evaluate_loco(
                data_dir if has_data else None,
                hours=args.loco_hours,
                compare={"evaluated model (not held out)": model},
                progress=progress,
            )
        _print_loco(results["loco"])
    if args.loco_only:
        _write(results, args.out)
        return 0
    with _progress() as progress:
        if has_data:
            results["real"] = st.evaluate_real(data_dir, model=model, progress=progress)
        results["synthetic"] = st.evaluate_synthetic(
            seed=args.seed,
            trials=args.trials,
            model=model,
            data_dir=data_dir if has_data else None,
            progress=progress,
        )
        results["false_alarms"] = st.evaluate_false_alarms(
            hours=args.hours,
            model=model,
            data_dir=data_dir if has_data else None,
            progress=progress,
        )
        results["approach"] = st.evaluate_approach(model=model, progress=progress)
    _print_eval(results)
    _write(results, args.out)
    return 0


def _write(results: dict[str, Any], out: Path | None) -> None:
    from rich.console import Console

    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1) + "\n")
        Console(stderr=True).print(f"wrote {out}")


def _print_loco(loco: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    from robotaxi.training.siren_loco import TARGET_READING, TARGET_SCOPES, target_rows

    hours = loco["protocol"]["at_car_hours_per_class"]
    table = Table(
        "held-out class",
        "real",
        f"at the car: false alarms/h ({hours:g} h)",
        "raw: clips alarming",
        "raw: windows flagged",
        title="leave one class out (a fold trained without the class)",
    )
    for name, row in sorted(loco["per_class"].items()):
        table.add_row(
            name,
            "real" if row["real"] else "made",
            f"{row['at_car_false_alarms_per_hour']:.1f}",
            f"{row['raw_clips_alarming']}/{row['raw_clips']} ({row['raw_clip_alarm_share']:.0%})",
            f"{row['raw_window_flag_share']:.1%}",
        )
    console = Console()
    console.print(table)
    targets = Table(
        "held-out classes", "target", "held out", "wanted", "met", title="leave one class out"
    )
    for row in target_rows(loco["summary"]):
        met = "—" if row.met is None else ("yes" if row.met else "no")
        targets.add_row(TARGET_SCOPES[row.scope], row.metric, row.text, row.wanted, met)
    console.print(targets)
    console.print(TARGET_READING)
    sirens = loco["sirens"]
    if sirens["clips"]:
        by_d = ", ".join(f"{d} m {v:.2f}" for d, v in sirens["at_car_recall_by_distance"].items())
        console.print(
            f"real sirens held out by recording ({sirens['clips']} clips): raw recall "
            f"{sirens['raw_recall']:.2f}; at the car {by_d} (target ≥ 0.95)"
        )


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _print_eval(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table("metric", "value", "target", title="siren detector")
    real = results.get("real")
    if real:
        table.add_row("real clips: recall", _fmt(real["recall"]), "≥ 0.95")
        table.add_row("real clips: precision", _fmt(real["precision"]), "≥ 0.95")
        table.add_row("real clips: F1", _fmt(real["f1"]), "")
        table.add_row("real clips: ROC AUC (clip)", _fmt(real["roc_auc_clip"], 3), "")
        table.add_row(
            "real clips: test set",
            f"{real['test_positive_clips']} siren, {real['test_negative_clips']} siren-free",
            "",
        )
    else:
        table.add_row("real clips", "../shared/data absent: skipped", "")
    syn = results["synthetic"]
    for key, reach in syn["range_at_95_recall_m"].items():
        if key.endswith("/all"):
            table.add_row(f"range at 95 % recall, background {key[:-4]}", f"{reach:g} m", "≥ 150")
    table.add_row("bearing error median", f"{_fmt(syn['bearing_error_deg']['median'], 1)}°", "≤ 10")
    claimed = syn["latency_s"]["within_claimed_range"]
    table.add_row(
        "latency arrival → detection within 150 m, median / p95",
        f"{_fmt(claimed['median'])} / {_fmt(claimed['p95'])} s",
        "≤ 1",
    )
    table.add_row(
        "latency, p95 out to the 95 %-recall range / all distances",
        f"{_fmt(syn['latency_s']['within_measured_range']['p95'])} / "
        f"{_fmt(syn['latency_s']['p95'])} s",
        "",
    )
    fa = results["false_alarms"]
    table.add_row(
        "false alarms per hour",
        f"{fa['false_alarms_per_hour']:.1f} ({fa['false_alarms']} in {fa['hours']:.2f} h)",
        "≤ 1",
    )
    wall, cpu = fa["compute_ms_per_window"], fa["cpu_ms_per_window"]
    table.add_row(
        "compute per window, wall median / p99 (thread CPU p99)",
        f"{wall['median']:.2f} / {wall['p99']:.2f} ({cpu['p99']:.2f}) ms",
        "< 2",
    )
    ap = results["approach"]
    table.add_row(
        "approaching/receding accuracy (call rate)",
        f"{_fmt(ap['accuracy'])} ({_fmt(ap['call_rate'])})",
        "",
    )
    console.print(table)


# --- train ------------------------------------------------------------------------------


def _train(args: argparse.Namespace) -> int:
    from rich.console import Console

    from robotaxi.autonomy.perception.siren import MODEL_PATH
    from robotaxi.core.errors import ConfigError
    from robotaxi.training import siren as st

    out = args.out or MODEL_PATH
    data_dir = args.data_dir if (Path(args.data_dir) / "audio").is_dir() else None
    if data_dir is None:
        Console(stderr=True).print(
            f"{args.data_dir}/audio is absent: training on synthetic scenes only"
        )
    sizes = {}
    if args.siren_scenes is not None:
        sizes["n_siren_scenes"] = args.siren_scenes
    if args.quiet_scenes is not None:
        sizes["n_quiet_scenes"] = args.quiet_scenes
    if args.synthetic_clips is not None:
        sizes["clips_per_family"] = args.synthetic_clips
    if any(v < 1 for v in sizes.values()):
        raise ConfigError("scene counts must be ≥ 1")
    with _progress() as progress:
        model = st.train(seed=args.seed, out=out, data_dir=data_dir, progress=progress, **sizes)
    info = model.info or {}
    Console().print(
        f"wrote {out}: {info.get('windows')} training windows "
        f"({info.get('positive_windows')} siren), seed {args.seed}"
    )
    return 0
