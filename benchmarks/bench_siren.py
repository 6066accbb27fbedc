"""Siren detector benchmark: real clips, synthetic street scenes, false alarms, latency, compute.

- Real clips (../shared/data/audio): the TEST side of the fixed split — ambulance clips
  against the test negative recordings cut into 3 s clips; clip-level precision, recall,
  F1, ROC AUC. Skipped (and said so) when ../shared/data is absent.
- Synthetic street, 4-microphone roof array: distance 20–300 m × background 60/68/76 dB SPL
  (the SNR axis) × wail/yelp/hi-lo, `--trials` scenes per cell: detection range at 95 %
  recall, bearing error, and latency: from the siren's sound reaching the array to the
  first detected window, over the detected trials of the cells within the claimed range
  (150 m, and within the level's measured 95 %-recall range) — the target row; the same
  out to the measured ranges and over all cells is reported beside it.
- False alarms: `--hours` of siren-free street audio, minute by minute with random level,
  event rate and seed; its recorded part is the TEST negatives only (looped, random gains).
- Compute per 0.1 s window: one `push`, one core, single-threaded numpy, on siren-free
  street and on streets with a siren; each stream repeated, a window's wall time the
  fastest of its repeats, its thread CPU time too, and a plain 8192-point rfft timed after
  every push as the baseline of the same run (the ratio says how loaded the machine was).

Writes benchmarks/results/siren.json and siren.md.

    .venv/bin/python benchmarks/bench_siren.py [--trials 8] [--hours 1]
    .venv/bin/python benchmarks/bench_siren.py --compute-only   # redo compute, keep the rest
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

import numpy as np  # noqa: E402
from rich.progress import Progress  # noqa: E402

from robotaxi.autonomy.perception.siren import SirenDetector, SirenModel, load_model  # noqa: E402
from robotaxi.autonomy.perception.siren_features import HOP_S, SAMPLE_RATE_HZ  # noqa: E402
from robotaxi.sim.sensors.microphones import (  # noqa: E402
    MicArrayConfig,
    SirenPattern,
    StreetBackground,
)
from robotaxi.training import siren as st  # noqa: E402

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


def run(trials: int, hours: float, seed: int, compute_s: float = 60.0) -> dict[str, Any]:
    model = load_model()
    has_data = (DATA_DIR / "audio").is_dir()
    out: dict[str, Any] = {
        "load_average_1min_start": os.getloadavg()[0],
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
        out["compute"] = measure_compute(
            model=model, seed=seed, seconds=compute_s, progress=progress
        )
        out["wall_s"] = round(time.perf_counter() - t0, 1)
    out["load_average_1min"] = os.getloadavg()[0]
    out["targets"] = _verdicts(out)
    return out


def _stats_ms(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1e3
    return {
        "median": float(np.median(ms)),
        "p99": float(np.percentile(ms, 99)),
        "max": float(ms.max()),
    }


def measure_compute(
    *,
    model: SirenModel,
    seed: int,
    seconds: float = 60.0,
    repeats: int = 3,
    progress: st.Progress = st._no_progress,
) -> dict[str, Any]:
    """Time one `push` of 0.1 s (4 channels) per window, single-threaded, on a siren-free
    street and on streets with a siren (where the bearing and the Doppler run too).

    Each stream is run `repeats` times with a fresh detector; a window's wall and thread CPU
    times are the fastest of its repeats (time slices taken by other jobs, and their sharing
    of the core, are not this window's compute); the single-pass times are kept too. After every
    push one plain 8192-point float64 rfft is timed as a baseline (fastest of the repeats):
    its median in the same run says how fast the (shared) machine was, and push/rfft is the
    ratio."""
    rng = np.random.default_rng([seed, 7])
    config = MicArrayConfig(negatives_dir=None)
    hop = round(HOP_S * SAMPLE_RATE_HZ)
    n = round(seconds * SAMPLE_RATE_HZ)
    free = StreetBackground(
        config.model_copy(update={"background_level_db_spl": 68.0}),
        seed=int(rng.integers(1 << 31)),
        clips=[],
    ).render(n)
    scene_s = 10.0
    sirens = [
        st.synth_scene(
            rng,
            config=config,
            clips=[],
            duration_s=scene_s,
            distance_m=d,
            pattern=list(SirenPattern)[i % len(SirenPattern)],
            background_db=68.0,
            onset_s=0.0,
        ).signal
        for i, d in enumerate(np.linspace(30.0, 200.0, round(seconds / scene_s)))
    ]
    baseline_x = rng.standard_normal(8192)
    out: dict[str, Any] = {"repeats": repeats, "load_average_1min_start": os.getloadavg()[0]}
    baseline: list[list[float]] = []
    for name, streams in (("siren_free", [free]), ("siren", sirens)):
        # wall[r][w], cpu[r][w]: repeat r of window w (the same audio, a fresh detector)
        wall: list[list[float]] = [[] for _ in range(repeats)]
        cpu: list[list[float]] = [[] for _ in range(repeats)]
        for k, audio in enumerate(streams):
            for rep in range(repeats):
                detector = SirenDetector(config.n_mics, model=model)
                base: list[float] = []
                for i in range(0, audio.shape[1] - hop + 1, hop):
                    chunk = audio[:, i : i + hop]
                    t0, c0 = time.perf_counter(), time.thread_time()
                    windows = detector.push(chunk)
                    t1, c1 = time.perf_counter(), time.thread_time()
                    if windows:  # the first 0.4 s only fill the first window
                        wall[rep].append(t1 - t0)
                        cpu[rep].append(c1 - c0)
                    b0 = time.perf_counter()
                    np.fft.rfft(baseline_x)
                    base.append(time.perf_counter() - b0)
                if rep == 0:
                    baseline.append(base)
                else:
                    baseline[-1] = list(np.minimum(baseline[-1], base))
            progress(f"compute: {name}", k + 1, len(streams))
        # the same window's work repeated: its fastest run is its compute, free of the
        # time slices other jobs took (the single-pass numbers keep those)
        best = np.min(np.array(wall), axis=0)
        out[name] = {
            "windows": len(wall[0]),
            "wall_ms": _stats_ms(list(best)),
            "wall_single_pass_ms": _stats_ms(wall[0]),
            "cpu_ms": _stats_ms(list(np.min(np.array(cpu), axis=0))),
            "cpu_single_pass_ms": _stats_ms(cpu[0]),
        }
    flat = [v for stream in baseline for v in stream]
    base_ms = float(np.median(flat) * 1e3)
    out["baseline_rfft8192_ms"] = {"median": base_ms, "p99": float(np.percentile(flat, 99) * 1e3)}
    for name in ("siren_free", "siren"):
        out[name]["median_over_rfft"] = out[name]["wall_ms"]["median"] / base_ms
    out["load_average_1min_end"] = os.getloadavg()[0]
    return out


def _resummarise_latency(r: dict[str, Any]) -> None:
    """Recompute the latency statistics from the stored per-trial latencies (a pure function
    of them), so a stored run reports under the current definitions."""
    syn = r["synthetic"]
    present = {c["pattern"] for c in syn["cells"]}
    syn["latency_s"] = st.latency_report(
        syn["cells"],
        syn["range_at_95_recall_m"],
        syn["trials_per_cell"],
        [p for p in SirenPattern if p.value in present],
    )


def _verdicts(r: dict[str, Any]) -> dict[str, Any]:
    syn, fa = r["synthetic"], r["false_alarms"]
    claimed = syn["latency_s"]["within_claimed_range"]
    measured = syn["latency_s"]["within_measured_range"]
    comp, free = r["compute"]["siren"], r["compute"]["siren_free"]
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
        "latency_median_s": (claimed["median"], TARGETS["latency_s"], "≤"),
        "latency_p95_s": (claimed["p95"], TARGETS["latency_s"], "≤"),
        # not the target (which is claimed to 150 m): the same out to the measured range
        "latency_p95_s_to_measured_range": (measured["p95"], TARGETS["latency_s"], "≤"),
        "compute_median_ms": (free["wall_ms"]["median"], TARGETS["compute_ms"], "<"),
        "compute_p99_ms": (free["wall_ms"]["p99"], TARGETS["compute_ms"], "<"),
        "cpu_p99_ms": (free["cpu_ms"]["p99"], TARGETS["compute_ms"], "<"),
        "compute_siren_median_ms": (comp["wall_ms"]["median"], TARGETS["compute_ms"], "<"),
        "compute_siren_p99_ms": (comp["wall_ms"]["p99"], TARGETS["compute_ms"], "<"),
        "cpu_siren_p99_ms": (comp["cpu_ms"]["p99"], TARGETS["compute_ms"], "<"),
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
        "(`siren_model.json`) whose probability is 0 outside the training sirens' feature "
        f"envelope (widened by {decision.get('envelope_margin', 0.1)} of its width on each "
        "side), then the mean of the last "
        f"{decision.get('smooth_windows')} window probabilities with hysteresis (on ≥ "
        f"{decision.get('on_threshold')}, off < {decision.get('off_threshold')}); rule and "
        "envelope margin chosen on validation audio with every negative class mixed in: "
        "the widest margin above the siren-free streams among the rules that keep "
        "validation recall ≥ 0.95 (also beyond 150 m) and latency p95 ≤ 1 s for each "
        "pattern within 150 m (validation: "
        + ", ".join(
            f"{k} {_f(v)} s"
            for k, v in decision.get("validation_latency_p95_s_within_150m_by_pattern", {}).items()
        )
        + f"; rule qualifies: {decision.get('qualifies', '—')}); "
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
    lines += [
        "",
        "latency_p95_s is the target's row: detected trials within the claimed 150 m (see "
        "Latency below); latency_p95_s_to_measured_range is the same out to the measured "
        "95 %-recall ranges "
        f"({_f(r['synthetic']['range_at_95_recall_m'].get('68dB/all'), 0)} m at 68 dB), shown "
        "whether or not it is met there. Compute rows: "
        "per window the fastest of 3 runs of the same audio; single-run numbers are in the "
        "compute table.",
    ]
    lines += [
        "",
        "## Real recordings (test side of the old fixed split: now heard in training)",
        "",
    ]
    real = r.get("real")
    if real:
        lines += [
            f"{real['test_positive_clips']} ambulance clips vs {real['test_negative_clips']} "
            f"siren-free 3 s clips cut from {', '.join(real['test_negative_files'])}. Since "
            "issue 12 the shipped model trains on every real clip, so these rows are a floor "
            "on clips it has heard, not a generalisation measure: the held-out numbers (every "
            "ambulance recording and every negative class left out in turn) are in "
            "siren_loco.md.",
            "",
            "| precision | recall | F1 | ROC AUC (clip) | ROC AUC (window) | TP | FP | FN |",
            "|---|---|---|---|---|---|---|---|",
            f"| {_f(real['precision'])} | {_f(real['recall'])} | {_f(real['f1'])} | "
            f"{_f(real['roc_auc_clip'], 3)} | {_f(real['roc_auc_window'], 3)} | {real['tp']} | "
            f"{real['fp']} | {real['fn']} |",
            "",
            "Real siren-free sound: the four street recordings and ESC-10's 320 clips; the "
            "rest of the negatives (music, birds, voices, applause, keyboards, engines and "
            "horns, beepers, squeal) is synthesised (`robotaxi.training.siren_synth`).",
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
        "wind, crowd babble, horns, beepers, brake squeal, car music, plus the recorded "
        "street clips car_engine.wav and rain.wav) is synthesised but for those clips.",
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
    claimed = lat["within_claimed_range"]
    measured = lat["within_measured_range"]
    cpu, wall = fa["cpu_ms_per_window"], fa["compute_ms_per_window"]
    lines += [
        "",
        f"Bearing error over detected windows: median {_f(b['median'], 1)}°, p90 "
        f"{_f(b['p90'], 1)}° ({b['windows']} windows). The simulation is free field with a "
        "road reflection — no buildings, no car body — so this is optimistic.",
        "",
        f"Latency: {lat['definition']}. The target row (latency_p95_s) counts the cells at "
        f"{claimed['cells']}: median {_f(claimed['median'])} s, p95 {_f(claimed['p95'])} s, max "
        f"{_f(claimed['max'])} s over {claimed['trials']} detected trials "
        f"({claimed['missed_trials']} missed); p95 by pattern "
        + ", ".join(f"{k} {_f(v)} s" for k, v in claimed["p95_by_pattern"].items())
        + "; by background level "
        + ", ".join(f"{k} {_f(v)} s" for k, v in claimed["p95_by_level"].items())
        + ".",
        "",
        f"Out to the measured ranges (the cells at {measured['cells']}, e.g. "
        f"{_f(syn['range_at_95_recall_m'].get('68dB/all'), 0)} m at 68 dB): median "
        f"{_f(measured['median'])} s, p95 {_f(measured['p95'])} s ({measured['missed_trials']} "
        "missed); p95 by pattern "
        + ", ".join(f"{k} {_f(v)} s" for k, v in measured["p95_by_pattern"].items())
        + ". The p95 latency stays within "
        f"{lat['target_s']:g} s out to "
        + ", ".join(f"{d:g} m at {lv}" for lv, d in lat["range_m_with_p95_within_target"].items())
        + " of street background. Levels whose own p95 within the claimed range misses the "
        "target: "
        + (
            ", ".join(
                f"{k} ({_f(v)} s)"
                for k, v in claimed["p95_by_level"].items()
                if v is not None and v > lat["target_s"]
            )
            or "none"
        )
        + ".",
        "",
        "Issue 12 (hear sirens, not birds): the model now trains on ESC-10, the street "
        "recordings and ten synthetic hard-negative families (mixed into the scenes and "
        "raw), with seven more features (dominance of the tone over the strongest other "
        "band peak, the share of power at 2.5–7.5 kHz, onsets, the broadband level's spread, "
        "the longest tonal run, held pitches and pitch levels), a siren envelope (a window "
        "unlike every training siren window scores 0) and a decision rule chosen for margin; "
        "leave-one-class-out results in siren_loco.md. Its first rule (mean of 1 window, on "
        "≥ 0.925, off < 0.625, envelope margin 0.1), chosen with only a pooled validation "
        "p95 ≤ 1.2 s over scenes to 300 m, measured here a p95 of 1.19 s within 150 m "
        "(hi-lo 1.51 s, 76 dB street 1.61 s); the selection now also requires p95 ≤ 1 s per "
        "pattern within 150 m and recall ≥ 0.95 beyond it on validation audio, and chooses "
        "the envelope's margin (0.1, 0.3 or 1.0 of its width) with the rule. Then a vibrato "
        "count (pitch swings a second in a regular 4–10 Hz oscillation of 0.6–8 %: a sung "
        "note, a violin; no window of a real or synthetic siren scores above 0): held out, "
        "24.9 → 20.9 false alarms/h at the car on average, melody 230 → 120 (siren_loco.md); "
        "its rule (mean of 3 windows, on ≥ 0.8, off < 0.5, margin 0.3) raised the median "
        "latency within 150 m here from 0.37 s to 0.53 s, not the p95 (0.88 → 0.85 s).",
        "",
        "Earlier, what moved the slow tail: three features against the siren-free sounds "
        "that scored highest on validation audio (train side, never the test audio above): "
        "what sounds at "
        "half the tracked pitch (a tracked overtone of car music or a voice has its "
        "fundamental there, a siren's fundamental is its lowest tone), the longest silence "
        "between two tonal runs on one pitch (a reversing beeper; a siren never stops), and "
        "the tone's frequency (brake squeal sits above a siren's 0.5–1.8 kHz); and the "
        "decision rule tuned on an hour of siren-free street and 240 scenes (the patterns in "
        "turn, to 300 m) instead of 20 minutes and 80, which once chose a rule with ten "
        "false alarms an hour here. The previous model, on this benchmark: p95 1.18 s out "
        "to the measured range (250 m at 68 dB), hi-lo 1.57 s, 0 false alarms in the hour.",
        "",
        "Tried, not adopted: steering the array at each 0.1 s hop's strongest tone "
        "(delay-and-sum toward its GCC-PHAT bearing) gains 7 dB on a far siren (95 % recall "
        "at a 76 dB street out to 250 m instead of 40 m), but the 0.6 m square's grating "
        "lobes comb-filter broadband sound from any other direction into steady spectral "
        "peaks: the recorded test negatives (rain, a car engine), arriving from one "
        "direction, scored siren-like in 65–84 % of their windows, 10–28 false alarms per "
        "hour here. More training scenes (800 + 1000) and larger ensembles (400 trees of "
        "depth 5) looked better on validation but raised false alarms on the unseen "
        "recordings: validation audio holds only the training recordings. Earlier: a CUSUM "
        "of the clipped log-odds, requiring a stable bearing (horns, beepers and music are "
        "point sources too), features over the current tonal run.",
        "",
        f"Over every detected trial at every distance, beyond the claimed ranges too: median "
        f"{_f(lat['median'])} s, p95 {_f(lat['p95'])} s. A window needs roughly 0.3–0.4 s of "
        "siren before its features describe it, and hi-lo needs a tone change (its tones last "
        "0.45–0.8 s) to tell it from a horn or a car radio, so faint hi-lo is the slow tail. "
        "Cells with a median latency above 0.8 s: " + _slow_cells(syn) + ".",
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
        "Compute per window (one push of 0.1 s, 4 channels, one thread). The target rows "
        f"use the dedicated measurement: each stream run {r['compute']['repeats']} times with a "
        "fresh detector, a window's wall and thread-CPU times the fastest of its runs (time "
        "slices taken by other jobs on this shared 2-core machine, and their sharing of the "
        "core, are not this window's compute); the single-run wall clock is shown too.",
        "",
        "| audio | windows | wall median ms | wall p99 ms | single-run wall p99 ms | "
        "CPU median ms | CPU p99 ms | median / rfft |",
        "|---|---|---|---|---|---|---|---|",
    ]
    comp = r["compute"]
    for name, label in (("siren_free", "siren-free, 68 dB"), ("siren", "siren at 30–200 m")):
        c = comp[name]
        lines.append(
            f"| {label} | {c['windows']} | {c['wall_ms']['median']:.2f} | "
            f"{c['wall_ms']['p99']:.2f} | {c['wall_single_pass_ms']['p99']:.2f} | "
            f"{c['cpu_ms']['median']:.2f} | {c['cpu_ms']['p99']:.2f} | "
            f"{c['median_over_rfft']:.1f} |"
        )
    lines += [
        f"| siren-free, the {fa['hours']:.2f} h above (one run) | {fa['windows']} | "
        f"{wall['median']:.2f} | — | {wall['p99']:.2f} | {cpu['median']:.2f} | "
        f"{cpu['p99']:.2f} | — |",
        "",
        "Baseline in the same run: one plain 8192-point float64 rfft, timed after every push: "
        f"median {comp['baseline_rfft8192_ms']['median'] * 1e3:.1f} µs, p99 "
        f"{comp['baseline_rfft8192_ms']['p99'] * 1e3:.1f} µs; the ratio column is the push's "
        "median over it (machine speed divided out). Bearings (GCC-PHAT) are computed only "
        "for windows that are detected or have probability ≥ 0.2, so the siren rows carry "
        "the full path (bearing and Doppler). 1-min load average when this measurement "
        f"started: {comp['load_average_1min_start']:.1f}, ended: "
        f"{comp['load_average_1min_end']:.1f} (2 cores).",
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


def _slow_cells(syn: dict[str, Any], above_s: float = 0.8) -> str:
    slow = [
        f"{c['pattern']} {c['background_db_spl']:g} dB {c['distance_m']:g} m "
        f"({c['latency_median_s']:.2f} s, recall {c['recall']:.2f})"
        for c in syn["cells"]
        if c["latency_median_s"] is not None and c["latency_median_s"] > above_s
    ]
    return "; ".join(slow) if slow else "none"


def _levels(syn: dict[str, Any]) -> list[float]:
    return sorted({c["background_db_spl"] for c in syn["cells"]})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8, help="synthetic scenes per grid cell")
    parser.add_argument("--hours", type=float, default=1.0, help="siren-free audio, hours")
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument(
        "--compute-seconds", type=float, default=60.0, help="audio per compute measurement, s"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--markdown-only", action="store_true", help="rewrite siren.md from siren.json"
    )
    parser.add_argument(
        "--compute-only",
        action="store_true",
        help="redo only the compute measurement and rewrite siren.json/.md",
    )
    args = parser.parse_args()
    if args.compute_only:
        result = json.loads((args.out / "siren.json").read_text())
        _resummarise_latency(result)
        result["compute"] = measure_compute(
            model=load_model(), seed=args.seed, seconds=args.compute_seconds
        )
        result["load_average_1min"] = os.getloadavg()[0]
        result["targets"] = _verdicts(result)
        (args.out / "siren.json").write_text(json.dumps(result, indent=1) + "\n")
        (args.out / "siren.md").write_text(markdown(result))
        return 0
    if args.markdown_only:
        result = json.loads((args.out / "siren.json").read_text())
        (args.out / "siren.md").write_text(markdown(result))
        return 0
    result = run(args.trials, args.hours, args.seed, args.compute_seconds)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "siren.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "siren.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
