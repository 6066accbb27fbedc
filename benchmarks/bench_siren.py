"""Siren detector benchmark: real clips, synthetic street scenes, false alarms, latency, compute.

- Real clips (../shared/data/audio): the TEST side of the fixed split — ambulance clips
  against the test negative recordings cut into 3 s clips; clip-level precision, recall,
  F1, ROC AUC. Skipped (and said so) when ../shared/data is absent.
- Synthetic street, 4-microphone roof array: distance 20–300 m × background 60/68/76 dB SPL
  (the SNR axis) × wail/yelp/hi-lo, `--trials` scenes per cell: detection range at 95 %
  recall, bearing error, latency from the siren's arrival to detection.
- False alarms: `--hours` of siren-free street audio, minute by minute with random level,
  event rate and seed; its recorded part is the TEST negatives only (looped, random gains).
- Compute per 0.1 s window: wall clock and thread CPU time of one `push`, one core,
  single-threaded numpy.

Writes benchmarks/results/siren.json and siren.md.

    .venv/bin/python benchmarks/bench_siren.py [--trials 8] [--hours 1]
"""

from __future__ import annotations

import os

# one core, one thread: set before numpy is imported
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from rich.progress import Progress  # noqa: E402

from robotaxi.autonomy.perception import siren_train as st  # noqa: E402
from robotaxi.autonomy.perception.siren import load_model  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DATA_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
TARGETS = {
    "real_recall": 0.95,
    "real_precision": 0.95,
    "range_m": 150.0,
    "bearing_median_deg": 10.0,
    "false_alarms_per_hour": 1.0,
    "latency_s": 1.0,
    "compute_ms": 2.0,
}


def run(trials: int, hours: float, seed: int) -> dict[str, Any]:
    model = load_model()
    has_data = (DATA_DIR / "audio").is_dir()
    out: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
        },
        "model": model.info,
        "real_data": has_data,
    }
    with Progress(transient=True, disable=not sys.stderr.isatty()) as bar:
        tasks: dict[str, Any] = {}

        def progress(task: str, done: int, total: int) -> None:
            if task not in tasks:
                tasks[task] = bar.add_task(task, total=total)
            bar.update(tasks[task], completed=done)

        t0 = time.perf_counter()
        if has_data:
            out["real"] = st.evaluate_real(DATA_DIR, model=model, progress=progress)
        out["synthetic"] = st.evaluate_synthetic(
            seed=seed,
            trials=trials,
            model=model,
            data_dir=DATA_DIR if has_data else None,
            progress=progress,
        )
        out["false_alarms"] = st.evaluate_false_alarms(
            hours=hours, model=model, data_dir=DATA_DIR if has_data else None, progress=progress
        )
        out["approach"] = st.evaluate_approach(model=model, progress=progress)
        out["wall_s"] = round(time.perf_counter() - t0, 1)
    out["load_average_1min"] = os.getloadavg()[0]
    out["targets"] = _verdicts(out)
    return out


def _verdicts(r: dict[str, Any]) -> dict[str, Any]:
    syn, fa = r["synthetic"], r["false_alarms"]
    real = r.get("real") or {}
    rows = {
        "real_recall": (real.get("recall"), TARGETS["real_recall"], "≥"),
        "real_precision": (real.get("precision"), TARGETS["real_precision"], "≥"),
        "range_m_at_68dB": (syn["range_at_95_recall_m"].get("68dB/all"), TARGETS["range_m"], "≥"),
        "bearing_median_deg": (
            syn["bearing_error_deg"]["median"],
            TARGETS["bearing_median_deg"],
            "≤",
        ),
        "false_alarms_per_hour": (
            fa["false_alarms_per_hour"],
            TARGETS["false_alarms_per_hour"],
            "≤",
        ),
        "latency_median_s": (syn["latency_s"]["median"], TARGETS["latency_s"], "≤"),
        "latency_p95_s": (syn["latency_s"]["p95"], TARGETS["latency_s"], "≤"),
        "compute_median_ms": (fa["compute_ms_per_window"]["median"], TARGETS["compute_ms"], "<"),
        "compute_p99_ms": (fa["compute_ms_per_window"]["p99"], TARGETS["compute_ms"], "<"),
        "cpu_median_ms": (fa["cpu_ms_per_window"]["median"], TARGETS["compute_ms"], "<"),
        "cpu_p99_ms": (fa["cpu_ms_per_window"]["p99"], TARGETS["compute_ms"], "<"),
    }
    out = {}
    for name, (value, target, op) in rows.items():
        if value is None:
            met = None
        elif op == "≥":
            met = value >= target
        elif op == "≤":
            met = value <= target
        else:
            met = value < target
        out[name] = {"value": value, "target": f"{op} {target:g}", "met": met}
    return out


def _f(v: Any, digits: int = 2) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def markdown(r: dict[str, Any]) -> str:
    syn, fa, ap = r["synthetic"], r["false_alarms"], r["approach"]
    decision = (r["model"] or {}).get("decision_tuning", {})
    lines = [
        "# Siren detector benchmark",
        "",
        "Detector: 0.5 s windows every 0.1 s, peak-track features, gradient-boosted trees "
        f"(`siren_model.json`), then the mean of the last {decision.get('smooth_windows')} "
        f"window probabilities with hysteresis (on ≥ {decision.get('on_threshold')}, off < "
        f"{decision.get('off_threshold')}, chosen on train-side validation audio); "
        "GCC-PHAT/SRP bearing on the tracked tone. Roof array: 4 microphones on a 0.6 m "
        "square. One core, single-threaded numpy, on a machine shared with other jobs "
        f"(1-min load average at the end: {r['load_average_1min']:.1f}).",
        "",
        "## Targets",
        "",
        "| target | measured | wanted | met |",
        "|---|---|---|---|",
    ]
    for name, row in r["targets"].items():
        met = {True: "yes", False: "**no**", None: "—"}[row["met"]]
        lines.append(f"| {name} | {_f(row['value'])} | {row['target']} | {met} |")
    lines += ["", "## Real recordings (test side of the fixed split)", ""]
    real = r.get("real")
    if real:
        lines += [
            f"{real['test_positive_clips']} ambulance clips vs {real['test_negative_clips']} "
            f"siren-free 3 s clips cut from {', '.join(real['test_negative_files'])}; trained "
            f"on {real['train_positive_clips']} other ambulance clips (no cut of the same "
            f"recording) and {', '.join(real['train_negative_files'])}.",
            "",
            "| precision | recall | F1 | ROC AUC (clip) | ROC AUC (window) | TP | FP | FN |",
            "|---|---|---|---|---|---|---|---|",
            f"| {_f(real['precision'])} | {_f(real['recall'])} | {_f(real['f1'])} | "
            f"{_f(real['roc_auc_clip'], 3)} | {_f(real['roc_auc_window'], 3)} | {real['tp']} | "
            f"{real['fp']} | {real['fn']} |",
            "",
            "Only four real siren-free recordings exist (car horn, car engine, train, rain): "
            "two train, two test, so the real precision rests on few negatives.",
        ]
    else:
        lines.append("../shared/data absent: not measured.")
    lines += [
        "",
        "## Synthetic street scenes",
        "",
        f"{syn['trials_per_cell']} scenes per cell; siren at a random azimuth, driving in a "
        "random direction at 0–15 m/s, source level 112–124 dB SPL at 1 m, heard for 3 s "
        "after 1 s of street. The background (synthetic traffic hum, engine orders, tyres, "
        "wind, crowd babble, horns, beepers, brake squeal, car music, plus the recorded test "
        "negatives) is synthesised: only four real negative recordings exist.",
        "",
        "Detection range at 95 % recall (m), by background level and pattern:",
        "",
        "| background | wail | yelp | hi-lo | all |",
        "|---|---|---|---|---|",
    ]
    ranges = syn["range_at_95_recall_m"]
    for level in sorted({c["background_db_spl"] for c in syn["cells"]}):
        row = [ranges.get(f"{level:g}dB/{p}") for p in ("wail", "yelp", "hi-lo", "all")]
        lines.append(f"| {level:g} dB SPL | " + " | ".join(_f(v, 0) for v in row) + " |")
    lines += [
        "",
        "Recall by distance (all patterns, each background level):",
        "",
        "| distance m | " + " | ".join(f"{lv:g} dB" for lv in _levels(syn)) + " | SNR at 68 dB |",
        "|---|" + "---|" * (len(_levels(syn)) + 1),
    ]
    for d in sorted({c["distance_m"] for c in syn["cells"]}):
        vals = []
        snr = None
        for lv in _levels(syn):
            cells = [
                c for c in syn["cells"] if c["distance_m"] == d and c["background_db_spl"] == lv
            ]
            vals.append(sum(c["recall"] for c in cells) / len(cells))
            if lv == 68.0:
                snr = cells[0]["snr_db"]
        lines.append(f"| {d:g} | " + " | ".join(f"{v:.2f}" for v in vals) + f" | {_f(snr, 1)} dB |")
    b, lat = syn["bearing_error_deg"], syn["latency_s"]
    cpu, wall = fa["cpu_ms_per_window"], fa["compute_ms_per_window"]
    lines += [
        "",
        f"Bearing error over detected windows: median {_f(b['median'], 1)}°, p90 "
        f"{_f(b['p90'], 1)}° ({b['windows']} windows). The simulation is free field with a "
        "road reflection — no buildings, no car body — so this is optimistic.",
        "",
        f"Latency from the siren's arrival to detection: median {_f(lat['median'])} s, p95 "
        f"{_f(lat['p95'])} s (detected trials, all distances); median of the cells within "
        f"150 m: {_f(lat['median_within_150m'])} s. A window needs roughly 0.3–0.4 s of "
        "siren before its features describe it, and hi-lo needs a tone change (0.45–0.8 s) "
        "to tell it from a horn or a car radio: faint (beyond ≈ 150 m) hi-lo sirens make the "
        "slow tail (1–1.5 s).",
        "",
        "## False alarms and compute",
        "",
        f"{fa['hours']:.2f} h of siren-free street audio ({fa['windows']} windows): "
        f"{fa['false_alarms']} false alarms = {fa['false_alarms_per_hour']:.1f} per hour. "
        "Synthesised minute by minute: background 55–80 dB SPL, 1–8 sound events per minute, "
        "random component seed; recorded part from "
        f"{', '.join(fa['recorded_clips']) or 'no recordings (data absent)'} with random gains "
        "(±6 dB), offsets and directions.",
        "",
        f"Compute per window (one push of 0.1 s, 4 channels): wall median {wall['median']:.2f} "
        f"ms, p99 {wall['p99']:.2f} ms; thread CPU median {cpu['median']:.2f} ms, p99 "
        f"{cpu['p99']:.2f} ms.",
        "",
        "## Approaching / receding",
        "",
        f"{ap['trials']} pass-by scenes (8–18 m/s, 4–20 m lateral offset, from 150 m before to "
        f"150 m after): accuracy {_f(ap['accuracy'])} over the detected windows that carry a "
        f"call; {_f(ap['call_rate'])} of detected windows carry one.",
        "",
        f"Benchmark wall time: {r['wall_s']} s.",
        "",
    ]
    return "\n".join(lines)


def _levels(syn: dict[str, Any]) -> list[float]:
    return sorted({c["background_db_spl"] for c in syn["cells"]})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8, help="synthetic scenes per grid cell")
    parser.add_argument("--hours", type=float, default=1.0, help="siren-free audio, hours")
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--markdown-only", action="store_true", help="rewrite siren.md from siren.json"
    )
    args = parser.parse_args()
    if args.markdown_only:
        result = json.loads((args.out / "siren.json").read_text())
        (args.out / "siren.md").write_text(markdown(result))
        return 0
    result = run(args.trials, args.hours, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "siren.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "siren.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
