"""Running cells on Ray: one `simulate` run per worker process, retried when the worker dies.

libsumo runs one simulation per process, so the cell task is a Ray task with `max_calls=1`:
its worker process exits after the one call and the next cell gets a fresh process. Ray
retries nothing itself (`max_retries=0`); the driver resubmits a failed cell up to
`retries` times, so the row can say how many attempts it took and what went wrong.

Every finished cell's row is written at once (results.json / .parquet), so Ctrl-C or a
crash of the driver keeps every finished cell; rerunning the sweep skips them.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from robotaxi.sweep.errors import ClusterError, SweepError
from robotaxi.sweep.results import (
    CELLS_DIR,
    FAILED,
    OK,
    code_version,
    load_rows,
    save_rows,
    scalar_kpis,
)
from robotaxi.sweep.spec import Cell
from robotaxi.sweep.validate import resolve_cell, row_parameters


class CellRunner(Protocol):
    """Runs one `simulate` with dotted config overrides into `folder`; returns its KPIs.

    It runs inside a Ray worker process, so it must be a module-level function (Ray pickles
    it by reference)."""

    def __call__(
        self, overrides: dict[str, Any], background: bool, folder: Path
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Plan:
    """What a sweep is about to do: `total` cells, `done` already finished, `to_run`."""

    total: int
    done: int
    to_run: tuple[Cell, ...]
    estimate_s: float | None
    estimate_basis: str
    workers: int
    address: str | None


@dataclass(frozen=True)
class CellFinished:
    cell: Cell
    row: dict[str, Any]


@dataclass(frozen=True)
class CellRetried:
    cell: Cell
    attempt: int  # the attempt that failed
    error: str


Event = Plan | CellFinished | CellRetried
EventSink = Callable[[Event], None]


@dataclass
class Sweep:
    """A results folder and the Ray pool that fills it; runs cells, skipping finished ones.

    Use as a context manager: Ray starts on the first cell that needs running and shuts down
    on exit."""

    out: Path
    runner: CellRunner
    environment: Mapping[str, Any] = field(default_factory=dict)
    workers: int = 2
    address: str | None = None
    retries: int = 2
    rerun_stale: bool = False
    on_event: EventSink | None = None
    ray_temp_dir: Path | None = None
    rows: dict[str, dict[str, Any]] = field(init=False, repr=False)
    _pool: _RayPool | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.out = Path(self.out).resolve()
        if isinstance(self.workers, bool) or self.workers < 1:
            raise SweepError(f"--workers {self.workers}: give at least 1 worker")
        if self.retries < 0:
            raise SweepError(f"--retries {self.retries}: give 0 or more")
        self.rows = load_rows(self.out)

    def __enter__(self) -> Sweep:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def start(self) -> _RayPool:
        """Start (or join) Ray now, not on the first cell that needs it; `ClusterError` when
        it cannot."""
        if self._pool is None:
            self._pool = _RayPool(self.workers, self.address, self.ray_temp_dir)
        return self._pool

    def is_done(self, cell: Cell) -> bool:
        row = self.rows.get(cell.cell_id)
        if row is None or row.get("status") != OK:
            return False
        return not (self.rerun_stale and row.get("code_version") != code_version()["code_version"])

    def plan(self, cells: Sequence[Cell]) -> Plan:
        """Validate every cell (raising `GridError`) and say what would run."""
        for cell in cells:
            resolve_cell(cell, self.environment)
        to_run = tuple(c for c in cells if not self.is_done(c))
        estimate, basis = self._estimate(to_run)
        return Plan(
            total=len(cells), done=len(cells) - len(to_run), to_run=to_run,
            estimate_s=estimate, estimate_basis=basis, workers=self.workers,
            address=self.address,
        )  # fmt: skip

    def run(self, cells: Sequence[Cell]) -> list[dict[str, Any]]:
        """Run the cells not yet finished; return the rows of all `cells`, in their order."""
        plan = self.plan(cells)
        self._emit(plan)
        if plan.to_run:
            self._build_networks(plan.to_run)
            self._pool = self.start()
            self._pool.run(self, plan.to_run)
        return [self.rows[c.cell_id] for c in cells if c.cell_id in self.rows]

    # -- inside

    def _emit(self, event: Event) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def _estimate(self, cells: Sequence[Cell]) -> tuple[float | None, str]:
        """Seconds for `cells` on the workers: from this folder's finished cells when it has
        some (wall s per simulated hour, by city), else a rough guess per city."""
        if not cells:
            return 0.0, "nothing to run"
        per_hour: dict[str, list[float]] = {}
        for row in self.rows.values():
            if row.get("status") == OK and row.get("hours"):
                per_hour.setdefault(str(row.get("city")), []).append(
                    float(row["cell_wall_s"]) / float(row["hours"])
                )
        # wall s per simulated hour, with background traffic, at 100 cars (rough, from runs on
        # a 2-core machine: sf-mission runs some 65x real time at 40 cars)
        guess = {"grid": 40.0, "sf-mission": 100.0, "sf": 1500.0}
        total, measured = 0.0, True
        for cell in cells:
            config = resolve_cell(cell, self.environment)
            city = config.map.city
            if city in per_hour:
                total += statistics.median(per_hour[city]) * config.hours
            else:
                measured = False
                scale = 1 + config.fleet.size / 100
                total += 4.0 + guess.get(city, 600.0) * config.hours * scale
        basis = "from this folder's finished cells" if measured else "rough guess"
        return total / min(self.workers, len(cells)), basis

    def _build_networks(self, cells: Sequence[Cell]) -> None:
        """Build each city's network once, here, so workers only read the cache."""
        from robotaxi.map import build_network

        seen: set[tuple[str, str, str, str]] = set()
        for cell in cells:
            config = resolve_cell(cell, self.environment)
            model = config.world.traffic_model
            key = (config.map.city, str(config.map.data_dir), str(config.map.cache_dir), model)
            if key not in seen:
                seen.add(key)
                build_network(
                    config.map.city, config.map.data_dir, config.map.cache_dir, traffic_model=model
                )

    def _record(self, cell: Cell, result: Mapping[str, Any] | None, error: str | None,
                attempts: int) -> dict[str, Any]:  # fmt: skip
        config = resolve_cell(cell, self.environment)
        kpis = dict(result["kpis"]) if result is not None else {}
        meta = (
            {k: result.get(k) for k in ("host", "ray_node", "worker_pid", "cell_wall_s")}
            if result is not None
            else {}
        )
        version = (
            {k: result[k] for k in ("code_version", "package_version", "git_commit", "git_dirty")}
            if result is not None
            else code_version()
        )
        row: dict[str, Any] = {
            "cell_id": cell.cell_id,
            "status": OK if error is None else FAILED,
            "error": error,
            "attempts": attempts,
            **scalar_kpis(kpis),
            **row_parameters(config),
            **cell.columns(),
            "cell_wall_s": meta.get("cell_wall_s"),
            "host": meta.get("host"),
            "ray_node": meta.get("ray_node"),
            "worker_pid": meta.get("worker_pid"),
            **version,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "settings": cell.as_dict(),
            "kpis": kpis,
        }
        self.rows[cell.cell_id] = row
        save_rows(self.out, self.rows.values())
        self._emit(CellFinished(cell, row))
        return row


def run_cell_in_worker(
    runner: CellRunner, overrides: dict[str, Any], background: bool, cells_dir: str,
    cell_id: str, attempt: int,
) -> dict[str, Any]:  # fmt: skip
    """The Ray task: one `simulate` into `cells_dir/<cell_id>/` (built in a scratch folder and
    renamed at the end, so a killed worker leaves no half-written cell)."""
    started = time.perf_counter()
    cells = Path(cells_dir)
    scratch = cells / f".{cell_id}.attempt{attempt}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    # the worker's process id, for people (and the retry test) who want to find it
    (scratch / "worker.pid").write_text(f"{os.getpid()}\n")
    kpis = runner(overrides, background, scratch)
    (scratch / "worker.pid").unlink()
    final = cells / cell_id
    if final.exists():
        shutil.rmtree(final)
    scratch.rename(final)
    return {
        "kpis": kpis,
        "host": socket.gethostname(),
        "worker_pid": os.getpid(),
        "ray_node": _ray_node_id(),
        "cell_wall_s": round(time.perf_counter() - started, 3),
        **code_version(),
    }


def _ray_node_id() -> str | None:
    """The Ray node this worker runs on (12 hex digits), when it runs under Ray."""
    try:
        import ray

        return str(ray.get_runtime_context().get_node_id())[:12]
    except Exception:  # outside a Ray worker there is no node to name
        return None


def default_ray_temp_dir() -> Path:
    """Ray's session files: short (Unix socket paths are capped at 107 bytes), per user."""
    return Path(tempfile.gettempdir()) / f"robotaxi-ray-{os.getuid()}"


class _RayPool:
    """A Ray runtime: local with `workers` CPUs, or the cluster at `address`."""

    def __init__(self, workers: int, address: str | None, temp_dir: Path | None) -> None:
        self.workers = workers
        self.address = address
        try:
            import ray
        except ImportError as exc:  # pragma: no cover - ray is a dependency
            raise ClusterError(f"Ray is not installed ({exc}): pip install robotaxi") from None
        self.ray = ray
        if address is not None:
            _check_reachable(address)
        # Ray reports usage statistics to its makers unless told not to; this machine (and
        # many clusters) has no internet, and a sweep should not phone home anyway
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        # Ray runs task workers at nice 15; a cell is the user's own `simulate` and should run
        # at the priority `robotaxi simulate` would (3x slower beside other jobs otherwise)
        os.environ.setdefault("RAY_worker_niceness", "0")
        quiet: dict[str, Any] = {
            "log_to_driver": False, "logging_level": logging.ERROR, "configure_logging": True,
        }  # fmt: skip
        try:
            if address is None:
                ray.init(
                    num_cpus=workers, include_dashboard=False,
                    _temp_dir=str(temp_dir or default_ray_temp_dir()), **quiet,
                )  # fmt: skip
            else:
                ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
            ray.shutdown()
            first = " ".join(str(exc).split())[:200]
            where = f"the cluster at {address}" if address else "a local Ray runtime"
            raise ClusterError(
                f"could not start or join {where} ({first}); for --address start one with "
                "`ray start --head` and pass its address, or leave --address out"
            ) from None
        self.task = ray.remote(num_cpus=1, max_calls=1, max_retries=0)(run_cell_in_worker)

    def close(self) -> None:
        self.ray.shutdown()

    def run(self, sweep: Sweep, cells: Sequence[Cell]) -> None:
        ray = self.ray
        cells_dir = sweep.out / CELLS_DIR
        cells_dir.mkdir(parents=True, exist_ok=True)
        for stale in cells_dir.glob(".*.attempt*"):
            shutil.rmtree(stale, ignore_errors=True)
        pending: dict[Any, tuple[Cell, int]] = {}

        def submit(cell: Cell, attempt: int) -> None:
            overrides = {**cell.config_overrides(), **_as_text(sweep.environment)}
            ref = self.task.remote(
                sweep.runner, overrides, cell.background, str(cells_dir), cell.cell_id, attempt
            )
            pending[ref] = (cell, attempt)

        for cell in cells:
            submit(cell, 1)
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                for ref in ready:
                    cell, attempt = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        error = _error_line(exc)
                        if attempt <= sweep.retries:
                            sweep._emit(CellRetried(cell, attempt, error))
                            submit(cell, attempt + 1)
                        else:
                            sweep._record(cell, None, error, attempt)
                        continue
                    sweep._record(cell, result, None, attempt)
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        finally:
            # scratch folders of cancelled or killed attempts: never a finished cell
            for stale in cells_dir.glob(".*.attempt*"):
                shutil.rmtree(stale, ignore_errors=True)


def _as_text(environment: Mapping[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in environment.items()}


def _error_line(exc: BaseException) -> str:
    """One line for a failed cell: the cause's type and message (no traceback)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        text = f"{type(cause).__name__}: {cause}"
    else:
        text = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
    return " ".join(text.split())[:300]


def _check_reachable(address: str) -> None:
    """Fail fast, with a clear line, when `host:port` does not answer (Ray would wait)."""
    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    try:
        port_number = int(port)
    except ValueError:
        raise ClusterError(
            f"--address {address!r} is not HOST:PORT (e.g. 10.0.0.5:6379) or auto"
        ) from None
    try:
        with socket.create_connection((host or "127.0.0.1", port_number), timeout=3.0):
            pass
    except OSError as exc:
        raise ClusterError(
            f"no Ray cluster answers at {address} ({exc.strerror or exc}): start one there with "
            "`ray start --head --port PORT`, or check the address"
        ) from None
