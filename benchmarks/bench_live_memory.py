"""Does the live service's memory level off? RSS of `robotaxi serve --autonomous 1` over time.

    .venv/bin/python benchmarks/bench_live_memory.py [--minutes 30] [--baseline-src DIR]

Starts `robotaxi serve --city grid --autonomous 1 --speed 20` (hearing and city blocks on,
synthetic riders) and samples its resident set size (/proc/<pid>/status VmRSS) every
`--every-s` seconds of wall time for `--minutes`. The slope of a least-squares line through
the samples after the first `--warm-up-min` minutes (MB per minute) is the figure: the issue's
target is under 0.1 MB/min. With `--baseline-src` (a checkout's `src` folder, e.g. the code
before a change), the same command from that code runs at the same time on the same machine,
so both curves share the machine's load. Writes benchmarks/results/live_memory.json, .md and
.png. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TARGET_MB_PER_MIN = 0.1


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def start(label: str, src: Path | None, port: int, work: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    cmd = [
        sys.executable, "-m", "robotaxi.cli.main", "serve", "--city", "grid",
        "--autonomous", "1", "--speed", "20", "--hours", "24", "--port", str(port),
        "--data-dir", str(work / label), "--log-level", "warning",
    ]  # fmt: skip
    log = (work / f"{label}.log").open("wb")
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


def slope_mb_per_min(t_min: list[float], mb: list[float], warm_up_min: float) -> float | None:
    keep = [(t, m) for t, m in zip(t_min, mb, strict=True) if t >= warm_up_min]
    if len(keep) < 3:
        return None
    t, m = np.array(keep).T
    return float(np.polyfit(t, m, 1)[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--every-s", type=float, default=30.0)
    parser.add_argument("--warm-up-min", type=float, default=5.0)
    parser.add_argument("--baseline-src", type=Path, default=None)
    parser.add_argument("--port", type=int, default=8731)
    args = parser.parse_args()
    runs: dict[str, Path | None] = {"ours": None}
    if args.baseline_src is not None:
        runs["baseline"] = args.baseline_src.resolve()
    curves: dict[str, dict[str, list[float]]] = {k: {"t_min": [], "rss_mb": []} for k in runs}
    with tempfile.TemporaryDirectory(prefix="live-memory-") as tmp:
        work = Path(tmp)
        procs = {
            label: start(label, src, args.port + k, work)
            for k, (label, src) in enumerate(runs.items())
        }
        t0 = time.monotonic()
        try:
            while (elapsed := time.monotonic() - t0) < args.minutes * 60.0:
                for label, proc in procs.items():
                    if proc.poll() is not None:
                        log = (work / f"{label}.log").read_text(errors="replace")[-2000:]
                        print(f"{label}: serve exited early:\n{log}", file=sys.stderr)
                        return 1
                    mb = rss_mb(proc.pid)
                    if mb is not None:
                        curves[label]["t_min"].append(round(elapsed / 60.0, 3))
                        curves[label]["rss_mb"].append(round(mb, 2))
                status = ", ".join(
                    f"{k} {c['rss_mb'][-1]:.1f} MB" for k, c in curves.items() if c["rss_mb"]
                )
                print(f"  {elapsed / 60:5.1f} / {args.minutes:.0f} min: {status}", file=sys.stderr)
                time.sleep(args.every_s)
        finally:
            for proc in procs.values():
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    slopes = {
        k: slope_mb_per_min(c["t_min"], c["rss_mb"], args.warm_up_min) for k, c in curves.items()
    }
    ours = slopes["ours"]
    result = {
        "benchmark": "live_memory",
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "command": "robotaxi serve --city grid --autonomous 1 --speed 20 --hours 24",
        "machine": {"python": platform.python_version(), "cores": os.cpu_count()},
        "minutes": args.minutes,
        "sample_every_s": args.every_s,
        "warm_up_min": args.warm_up_min,
        "baseline_src": str(args.baseline_src) if args.baseline_src else None,
        "slope_mb_per_min": slopes,
        "target_mb_per_min": TARGET_MB_PER_MIN,
        "met": ours is not None and ours < TARGET_MB_PER_MIN,
        "curves": curves,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "live_memory.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [
        "# Live service memory: RSS of `robotaxi serve --autonomous 1 --speed 20` over time",
        "",
        f"Sampled every {args.every_s:.0f} s for {args.minutes:.0f} min of wall time; slope of a "
        f"least-squares line after the first {args.warm_up_min:.0f} min. Target: under "
        f"{TARGET_MB_PER_MIN} MB/min. `.venv/bin/python benchmarks/bench_live_memory.py`",
        "",
        "| run | RSS at start, MB | RSS at end, MB | slope after warm-up, MB/min |",
        "|---|---|---|---|",
    ]
    for k, c in curves.items():
        slope = slopes[k]
        lines.append(
            f"| {k} | {c['rss_mb'][0] if c['rss_mb'] else '–'} | "
            f"{c['rss_mb'][-1] if c['rss_mb'] else '–'} | "
            f"{'–' if slope is None else f'{slope:.3f}'} |"
        )
    lines += ["", f"**met: {'yes' if result['met'] else 'no'}**", ""]
    (RESULTS / "live_memory.md").write_text("\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    for k, c in curves.items():
        ax.plot(c["t_min"], c["rss_mb"], label=f"{k} ({slopes[k] or 0:.3f} MB/min)")
    ax.axvline(args.warm_up_min, color="grey", ls=":", lw=1)
    ax.set_xlabel("wall time, min")
    ax.set_ylabel("RSS, MB")
    ax.set_title("robotaxi serve --autonomous 1 --speed 20")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "live_memory.png")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
