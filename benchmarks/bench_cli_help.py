"""How fast `robotaxi --help` and `robotaxi simulate --help` answer (target: median < 0.5 s).

Run: .venv/bin/python benchmarks/bench_cli_help.py [--runs 5] [--before-src DIR --before-label L]
Writes benchmarks/results/cli_help.json and cli_help.md. Each command runs as a fresh
subprocess, `--runs` times, interleaved so that a busy moment on a shared machine hits all of
them alike; the figures are medians of wall time. Measured in the same run:

- baseline: `python -c pass`, the interpreter's own start-up, which no CLI can beat;
- eager reference: one interpreter importing every module the sub-commands import when they
  run (found by reading `robotaxi/cli/*.py`): about what `--help` loaded when the parser
  imported its sub-commands' modules eagerly;
- with `--before-src DIR` (a `src/` folder of an older checkout, e.g. from `git archive`),
  `python -m robotaxi.cli.main --help` from that code.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
CLI_DIR = ROOT / "src" / "robotaxi" / "cli"
TARGET_S = 0.5


def robotaxi_script() -> str:
    """The `robotaxi` console script beside this interpreter (the one users run)."""
    script = Path(sys.executable).parent / "robotaxi"
    if not script.exists():
        raise SystemExit(f"{script} not found: install the project first (make setup)")
    return str(script)


def run_time_imports() -> list[str]:
    """Every module `robotaxi/cli/*.py` imports inside a function: what its commands load."""
    modules: set[str] = set()
    for path in sorted(CLI_DIR.glob("*.py")):
        for func in ast.walk(ast.parse(path.read_text())):
            if not isinstance(func, ast.FunctionDef):
                continue
            for node in ast.walk(func):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    modules.add(node.module)
                elif isinstance(node, ast.Import):
                    modules.update(alias.name for alias in node.names)
    return sorted(modules)


def wall_s(argv: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr[-400:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each command (default 5)")
    parser.add_argument("--before-src", type=Path, default=None, help="an older src/ to compare")
    parser.add_argument("--before-label", default=None, help="what --before-src is (a commit)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    args = parser.parse_args()

    script = robotaxi_script()
    eager = run_time_imports()
    commands: dict[str, tuple[list[str], dict[str, str] | None]] = {
        "python -c pass (baseline)": ([sys.executable, "-c", "pass"], None),
        "robotaxi --help": ([script, "--help"], None),
        "robotaxi simulate --help": ([script, "simulate", "--help"], None),
        "eager reference (import every command's modules)": (
            [sys.executable, "-c", "import " + ", ".join(eager)],
            None,
        ),
    }
    if args.before_src is not None:
        before_env = {**os.environ, "PYTHONPATH": str(args.before_src.resolve())}
        for label, extra in (("--help", []), ("simulate --help", ["simulate"])):
            commands[f"before: robotaxi {label}"] = (
                [sys.executable, "-m", "robotaxi.cli.main", *extra, "--help"],
                before_env,
            )
    for argv, env in commands.values():  # warm the file cache; not timed
        wall_s(argv, env)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for run in range(args.runs):
        for name, (argv, env) in commands.items():
            times[name].append(wall_s(argv, env))
        print(
            f"run {run + 1}/{args.runs}: "
            + ", ".join(f"{name.split(' (')[0]} {t[-1]:.3f} s" for name, t in times.items()),
            file=sys.stderr,
            flush=True,
        )
    median = {name: statistics.median(t) for name, t in times.items()}
    baseline = median["python -c pass (baseline)"]
    helps = ("robotaxi --help", "robotaxi simulate --help")
    result: dict[str, Any] = {
        "benchmark": "cli_help",
        "what": "wall time of a fresh subprocess, median of runs",
        "runs": args.runs,
        "target_s": TARGET_S,
        "median_s": {name: round(m, 4) for name, m in median.items()},
        "all_s": {name: [round(x, 4) for x in t] for name, t in times.items()},
        "over_baseline_s": {name: round(median[name] - baseline, 4) for name in median},
        "target_met": all(median[name] < TARGET_S for name in helps),
        "eager_reference_modules": eager,
        "before": None if args.before_src is None else (args.before_label or str(args.before_src)),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_1min": round(os.getloadavg()[0], 2),
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cli_help.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = "".join(
        f"| `{name}` | {median[name]:.3f} s | {median[name] - baseline:+.3f} s |\n"
        for name in commands
    )
    (args.out / "cli_help.md").write_text(
        "# CLI start-up: `--help`\n\n"
        f"Median wall time of {args.runs} fresh subprocesses each, interleaved; "
        "`.venv/bin/python benchmarks/bench_cli_help.py`. Target: both `--help` under "
        f"{TARGET_S} s — {'met' if result['target_met'] else 'NOT met'}.\n\n"
        "| command | median | over `python -c pass` |\n|---|---|---|\n"
        f"{rows}\n"
        "The eager reference imports, in one interpreter, every module the sub-commands "
        f"import when they run ({len(eager)} modules, read from `src/robotaxi/cli/*.py`): "
        "about what `--help` paid when the parser imported its sub-commands' modules eagerly."
        + (
            f" `before:` rows run the code of {result['before']}, with the same interpreter."
            if args.before_src is not None
            else ""
        )
        + f"\n\nPython {platform.python_version()}, {os.cpu_count()} CPUs, load average "
        f"{result['machine']['load_average_1min']} at the end of the run.\n"
    )
    print(json.dumps(result["median_s"]), file=sys.stderr)
    return 0 if result["target_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
