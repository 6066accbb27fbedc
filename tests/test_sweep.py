"""`robotaxi sweep` for real: Ray schedules the cells, SUMO runs each in its own worker process.

One 2 × 2 sweep on the grid city (fleet 3 and 5, seeds 0 and 1, three simulated minutes)
with 2 workers feeds most tests: the table, resume, a standalone `simulate` of one cell.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from robotaxi.cli.main import main
from robotaxi.cli.sweep import simulate_cell
from robotaxi.sweep.execute import CellFinished, CellRetried, Sweep
from robotaxi.sweep.results import code_version, comparable_kpis, load_rows, read_parquet, save_rows
from robotaxi.sweep.spec import build_spec

pytestmark = [pytest.mark.sumo, pytest.mark.slow]

GRID = ("--city", "grid", "--hours", "0.05", "--no-background")
SWEEP = ("sweep", *GRID, "--fleet", "3,5", "--seeds", "2", "--workers", "2", "--out", "out")


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder the 2 × 2 sweep ran in (its results in out/)."""
    work = tmp_path_factory.mktemp("sweep")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        assert main(list(SWEEP)) == 0
    return work


def _cell(fleet: int, seed: int):
    return build_spec(
        None, {"city": ["grid"], "hours": ["0.05"], "background": [False], "fleet": [str(fleet)]},
        seed_list=[seed],
    ).cells[0]  # fmt: skip


def test_the_table_has_a_row_per_cell(swept: Path) -> None:
    out = swept / "out"
    rows = read_parquet(out / "results.parquet")
    assert sorted((r["fleet"], r["seed"]) for r in rows) == [(3, 0), (3, 1), (5, 0), (5, 1)]
    assert load_rows(out).keys() == {r["cell_id"] for r in rows}
    version = code_version()
    for row in rows:
        assert row["status"] == "ok" and row["error"] is None and row["attempts"] == 1
        assert (row["city"], row["hours"], row["policy"]) == ("grid", 0.05, "batch")
        assert row["background"] is False
        assert row["requests"] > 0 and 0 <= row["served_pct"] <= 100
        assert row["wait_p95_s"] >= row["wait_p50_s"] > 0
        assert row["cell_wall_s"] > 0 and row["host"] and len(row["ray_node"]) == 12
        assert row["code_version"] == version["code_version"]
        assert row["git_commit"] == version["git_commit"]
        cell = out / "cells" / row["cell_id"]
        kpis = json.loads((cell / "kpis.json").read_text())
        assert kpis["fleet"] == row["fleet"] and kpis["served_pct"] == row["served_pct"]
        assert (cell / "events.sqlite").stat().st_size > 0
    # a bigger fleet serves its riders sooner (the seeds' mean p95 wait)
    mean = {f: sum(r["wait_p95_s"] for r in rows if r["fleet"] == f) / 2 for f in (3, 5)}
    assert mean[5] < mean[3]
    assert not list((out / "cells").glob(".*")), "a scratch folder was left behind"
    assert (out / "fleet_curves.png").stat().st_size > 10_000
    # the network was built once, before the fan-out, into the driver's cache
    assert list((swept / ".cache" / "maps").iterdir())


def test_each_cell_ran_in_its_own_worker_process(swept: Path) -> None:
    rows = load_rows(swept / "out").values()
    pids = {r["worker_pid"] for r in rows}
    assert len(pids) == 4 and os.getpid() not in pids


def test_a_cell_equals_its_standalone_simulate(swept: Path, cli_main) -> None:
    done = cli_main(
        "simulate", *GRID, "--fleet", "5", "--seed", "1", "--no-map", "--out", "solo", cwd=swept
    )
    assert done.returncode == 0, done.stderr
    solo = json.loads((swept / "solo" / "kpis.json").read_text())
    cell = json.loads((swept / "out" / "cells" / _cell(5, 1).cell_id / "kpis.json").read_text())
    assert comparable_kpis(cell) == comparable_kpis(solo)
    assert solo["requests"] > 0 and solo.keys() == cell.keys()


def test_a_rerun_skips_every_finished_cell(swept: Path, cli_main) -> None:
    before = (swept / "out" / "results.json").read_bytes()
    done = cli_main(*SWEEP, cwd=swept)
    assert done.returncode == 0, done.stderr
    assert "sweep: 4 cells, 4 already finished, 0 to run" in done.stderr
    assert "✓" not in done.stderr  # no cell ran
    assert (swept / "out" / "results.json").read_bytes() == before


def test_rerun_stale_reruns_cells_of_another_version(swept: Path, cli_main, tmp_path) -> None:
    shutil.copytree(swept / "out", tmp_path / "out")
    rows = load_rows(tmp_path / "out")
    old = _cell(3, 1).cell_id
    before = rows[old]
    rows[old] = {**before, "code_version": "0.0.1+0123456789ab"}
    save_rows(tmp_path / "out", rows.values())
    shutil.copytree(swept / ".cache", tmp_path / ".cache")
    plain = cli_main(*SWEEP, cwd=tmp_path)
    assert "4 already finished, 0 to run" in plain.stderr
    done = cli_main(*SWEEP, "--rerun-stale", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "sweep: 4 cells, 3 already finished, 1 to run" in done.stderr
    after = load_rows(tmp_path / "out")[old]
    assert after["code_version"] == code_version()["code_version"]
    assert after["worker_pid"] != before["worker_pid"]
    assert comparable_kpis(after["kpis"]) == comparable_kpis(before["kpis"])


def test_a_killed_worker_is_retried_and_a_cell_that_keeps_dying_is_recorded_as_failed(
    swept: Path, tmp_path: Path
) -> None:
    """Cell A's worker is killed mid-simulation once: its retry equals the uninterrupted run.
    Cell B's is killed on every attempt: B is recorded as failed, and the sweep goes on."""
    once, always = _cell(3, 0), _cell(5, 0)
    out = tmp_path / "out"
    to_kill = [(once, 1), (always, 1), (always, 2)]
    killed: dict[tuple[str, int], int] = {}

    def kill_mid_simulation() -> None:
        deadline = time.monotonic() + 120
        while len(killed) < len(to_kill) and time.monotonic() < deadline:
            for cell, attempt in to_kill:
                scratch = out / "cells" / f".{cell.cell_id}.attempt{attempt}"
                # events.sqlite is opened once the city is loaded: the simulation is running
                if (cell.cell_id, attempt) not in killed and (scratch / "events.sqlite").exists():
                    pid = int((scratch / "worker.pid").read_text())
                    os.kill(pid, signal.SIGKILL)
                    killed[(cell.cell_id, attempt)] = pid
            time.sleep(0.02)

    events: list[object] = []
    killer = threading.Thread(target=kill_mid_simulation, daemon=True)
    killer.start()
    environment = {"map.cache_dir": str(swept / ".cache" / "maps")}
    with Sweep(out, simulate_cell, environment, workers=2, retries=1, on_event=events.append) as s:
        rows = {r["cell_id"]: r for r in s.run([once, always])}
    killer.join(timeout=5)
    assert len(killed) == 3, f"only {killed} were killed: a cell finished first"
    retried = [(e.cell, e.attempt) for e in events if isinstance(e, CellRetried)]
    assert sorted(retried, key=str) == sorted([(once, 1), (always, 1)], key=str)
    good, bad = rows[once.cell_id], rows[always.cell_id]
    assert good["status"] == "ok" and good["attempts"] == 2
    assert good["worker_pid"] not in killed.values()
    uninterrupted = load_rows(swept / "out")[once.cell_id]
    assert comparable_kpis(good["kpis"]) == comparable_kpis(uninterrupted["kpis"])
    assert bad["status"] == "failed" and bad["attempts"] == 2 and bad["kpis"] == {}
    assert "worker" in bad["error"].lower() and "\n" not in bad["error"]
    assert load_rows(out)[always.cell_id]["status"] == "failed"
    assert [p.name for p in (out / "cells").iterdir()] == [once.cell_id]
    # a rerun tries the failed cell again and skips the finished one
    assert Sweep(out, simulate_cell, environment).plan([once, always]).to_run == (always,)


def test_ctrl_c_keeps_the_finished_cells(swept: Path, tmp_path: Path) -> None:
    cells = [_cell(3, 0), _cell(5, 0)]
    out = tmp_path / "out"
    environment = {"map.cache_dir": str(swept / ".cache" / "maps")}

    def interrupt_after_the_first(event: object) -> None:
        if isinstance(event, CellFinished):
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C sends

    # Ctrl-C as `robotaxi sweep` in a terminal takes it: Python's own handler (a suite run in
    # the background, `… &`, starts with SIGINT ignored, and the interrupt never surfaced)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with (
            pytest.raises(KeyboardInterrupt),
            Sweep(
                out, simulate_cell, environment, workers=1, on_event=interrupt_after_the_first
            ) as s,
        ):
            s.run(cells)
    finally:
        signal.signal(signal.SIGINT, previous)
    rows = load_rows(out)
    assert list(rows) == [cells[0].cell_id] and rows[cells[0].cell_id]["status"] == "ok"
    assert [p.name for p in (out / "cells").iterdir()] == [cells[0].cell_id]
    assert Sweep(out, simulate_cell, environment).plan(cells).to_run == (cells[1],)


def test_an_unreachable_address_is_one_line_and_exit_2(swept: Path, cli_main) -> None:
    done = cli_main(*SWEEP[:-2], "--out", "elsewhere", "--address", "127.0.0.1:1", cwd=swept)
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()[-1:]
    assert line.startswith("robotaxi: error: no Ray cluster answers at 127.0.0.1:1")
    assert "ray start --head" in line and "Traceback" not in done.stderr
