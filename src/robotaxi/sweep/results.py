"""The results table: one row per cell, kept as Parquet (for analysis) and JSON (for machines).

A row holds every parameter, every scalar KPI, the cell's wall time, host, status, attempts
and the code version that ran it; the JSON rows also carry the cell's full KPI record.
Both files are rewritten atomically after every finished cell, so an interrupted sweep keeps
what it finished and a rerun of the same sweep skips it.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from robotaxi.sweep.errors import SweepError

RESULTS_JSON = "results.json"
RESULTS_PARQUET = "results.parquet"
CELLS_DIR = "cells"

OK = "ok"
FAILED = "failed"

# KPIs that measure the machine, not the service: left out when cells are compared
TIMING_KEYS = frozenset({"wall_s", "real_time_factor"})
# nested KPI records: in the JSON row's "kpis" and the cell's kpis.json, not in columns
_NESTED = ("kpis", "settings")


@functools.cache
def code_version() -> dict[str, Any]:
    """This process's robotaxi: package version, git commit (or "unknown"), dirty tree."""
    try:
        version = importlib.metadata.version("robotaxi")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    source = Path(__file__).resolve().parent
    commit, dirty = "unknown", False
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, timeout=10
        )
        if head.returncode == 0:
            commit = head.stdout.strip()
            status = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no", "--", "."],
                cwd=source.parent, capture_output=True, text=True, timeout=10,
            )  # fmt: skip
            dirty = bool(status.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "code_version": f"{version}+{commit[:12]}",
        "package_version": version,
        "git_commit": commit,
        "git_dirty": dirty,
    }


def scalar_kpis(kpis: Mapping[str, Any]) -> dict[str, Any]:
    """The KPIs that fit a column: numbers, strings and booleans (records stay in kpis.json)."""
    return {k: v for k, v in kpis.items() if v is None or isinstance(v, bool | int | float | str)}


def comparable_kpis(kpis: Mapping[str, Any]) -> dict[str, Any]:
    """A run's KPIs without its timing: what two runs with the same settings must share."""
    return {k: v for k, v in kpis.items() if k not in TIMING_KEYS}


def load_rows(out: Path) -> dict[str, dict[str, Any]]:
    """The rows in `out/results.json` by cell id ({} when the sweep has not run)."""
    path = out / RESULTS_JSON
    if not path.exists():
        return {}
    try:
        rows = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise SweepError(
            f"{path} is not valid JSON (a sweep from elsewhere?): pick another --out"
        ) from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "cell_id" in r for r in rows):
        raise SweepError(f"{path} is not a sweep results file: pick another --out")
    return {row["cell_id"]: row for row in rows}


def save_rows(out: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Write `results.json` and `results.parquet` (each via a temporary file and a rename)."""
    rows = list(rows)
    out.mkdir(parents=True, exist_ok=True)
    _replace(out / RESULTS_JSON, (json.dumps(rows, indent=1, default=str) + "\n").encode())
    write_parquet(out / RESULTS_PARQUET, rows)


def write_parquet(path: Path, rows: list[Mapping[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = list(dict.fromkeys(k for row in rows for k in row if k not in _NESTED))
    columns = {name: _column([row.get(name) for row in rows]) for name in names}
    if rows:
        columns["settings"] = [json.dumps(row.get("settings", {}), sort_keys=True) for row in rows]
    table = pa.table(columns) if columns else pa.table({"cell_id": pa.array([], pa.string())})
    scratch = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, scratch)
    os.replace(scratch, path)


def read_parquet(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    return list(pq.read_table(path).to_pylist())


def _column(values: list[Any]) -> Any:
    """One column with a single Arrow type: bools, ints, floats, or else text."""
    import pyarrow as pa

    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pa.array(values, pa.bool_())
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pa.array(values, pa.int64())
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    return pa.array(
        [None if v is None else v if isinstance(v, str) else json.dumps(v) for v in values],
        pa.string(),
    )


def _replace(path: Path, data: bytes) -> None:
    scratch = path.with_name(f".{path.name}.tmp")
    scratch.write_bytes(data)
    os.replace(scratch, path)
