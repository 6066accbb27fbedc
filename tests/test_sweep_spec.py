"""`robotaxi sweep` without running anything: the grid, bad input, the results table,
`--target` on a hand-made table, and the fleet-size bisection against brute force."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from robotaxi.sweep.errors import GridError, SweepError
from robotaxi.sweep.results import load_rows, read_parquet, save_rows
from robotaxi.sweep.spec import Cell, build_spec
from robotaxi.sweep.target import answer, fleet_search, parse_target


def test_the_grid_is_the_cross_product_times_the_seeds() -> None:
    spec = build_spec(
        None, {"fleet": ["20", "40"], "policy": ["batch", "nearest"], "hours": ["0.5"]}, seeds=3
    )
    assert len(spec.cells) == 2 * 2 * 3
    settings = [c.as_dict() for c in spec.cells]
    assert {(s["fleet.size"], s["dispatch.policy"], s["seed"]) for s in settings} == {
        (f, p, s) for f in (20, 40) for p in ("batch", "nearest") for s in (0, 1, 2)
    }
    assert all(s["hours"] == 0.5 for s in settings)
    assert set(spec.varying) == {"fleet", "policy", "seed"}


def test_a_cell_id_depends_on_its_settings_not_on_how_they_were_written() -> None:
    from_cli = build_spec(None, {"fleet": ["20"], "hours": ["1"]}, seed_list=["3"]).cells[0]
    from_yaml = build_spec({"hours": 1.0, "fleet": 20, "seed": 3}).cells[0]
    assert from_cli == from_yaml and from_cli.cell_id == from_yaml.cell_id
    other = build_spec({"hours": 1.0, "fleet": 20, "seed": 4}).cells[0]
    assert other.cell_id != from_cli.cell_id and len(other.cell_id) == 12


def test_a_yaml_file_takes_settings_lists_and_explicit_cells(tmp_path: Path) -> None:
    from robotaxi.sweep.spec import read_sweep_file

    path = tmp_path / "sweep.yaml"
    path.write_text(
        "city: sf-mission\nstart: 'tue 08:00'\nhours: 1\nseeds: 2\n"
        "settings:\n  dispatch:\n    batch_interval_s: 10\n"
        "cells:\n  - {fleet: 20, market_share: 0.1}\n  - {fleet: 60, market_share: 0.5}\n"
        "target: 'served_pct>=95'\n"
    )
    spec = build_spec(read_sweep_file(path))
    assert len(spec.cells) == 4 and spec.target == "served_pct>=95"
    first = spec.cells[0].as_dict()
    assert first["map.city"] == "sf-mission" and first["dispatch.batch_interval_s"] == 10
    assert {(c.as_dict()["fleet.size"], c.as_dict()["seed"]) for c in spec.cells} == {
        (20, 0), (20, 1), (60, 0), (60, 1)
    }  # fmt: skip


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--fleet", "20,,40"], "empty value"),
        (["--fleet", "20,abc"], "is not a number"),
        (["--fleet", "2.5"], "not a whole number"),
        (["--set", "fleet.wings=2"], "unknown setting 'fleet.wings'"),
        (["--set", "world=3"], "is a group"),
        (["--set", "nokey"], "KEY=VALUE"),
        (["--fleet", "20", "--policy", "fastest"], "invalid setting dispatch.policy"),
        (["--fleet", "20", "--start", "someday 08:00"], "start 'someday 08:00'"),
        (["--seeds", "0", "--fleet", "3"], "positive whole number"),
        (["--fleet-search", "5:1", "--target", "served_pct>=9"], "LO < HI"),
        (["--fleet-search", "1:9"], "needs a --target"),
        (["--fleet", "3", "--target", "served%>=9"], "is not KPI<=VALUE"),
        ([], "nothing to sweep"),
    ],
)
def test_bad_grids_are_one_line_and_exit_2(cli_main, tmp_path: Path, args, says) -> None:
    done = cli_main("sweep", "--out", "out", *args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("robotaxi: error:"), done.stderr
    assert says in lines[0], lines[0]
    assert "Traceback" not in done.stderr and not (tmp_path / "out" / "results.json").exists()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "is empty"),
        ("fleet: [3\n", "not valid YAML at line"),
        ("- 3\n- 4\n", "must be a mapping"),
        ("fleet: []\n", "no values"),
        ("cells: []\n", "non-empty list"),
        ("wings: 2\n", "unknown setting 'wings'"),
    ],
)
def test_bad_sweep_files_are_one_line_and_exit_2(cli_main, tmp_path: Path, text, says) -> None:
    (tmp_path / "sweep.yaml").write_text(text)
    done = cli_main("sweep", "--config", "sweep.yaml", "--out", "out", cwd=tmp_path)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert says in done.stderr


def test_a_missing_sweep_file_is_named(cli_main, tmp_path: Path) -> None:
    done = cli_main("sweep", "--config", "nope.yaml", "--out", "out", cwd=tmp_path)
    assert done.returncode == 2 and "nope.yaml does not exist" in done.stderr


def _row(fleet: int, seed: int, share: float, wait: float, served: float, **extra) -> dict:
    settings = {"map.city": "sf-mission", "fleet.size": fleet, "seed": seed,
                "demand.market_share": share}  # fmt: skip
    return {
        "cell_id": Cell.of(settings).cell_id, "status": "ok", "city": "sf-mission",
        "fleet": fleet, "seed": seed, "market_share": share, "policy": "batch",
        "start": "tue 07:00", "hours": 3.0, "requests_per_hour": 120.0,
        "wait_p95_s": wait, "served_pct": served, "settings": settings, "kpis": {}, **extra,
    }  # fmt: skip


HAND_MADE = [
    # share 0.1: fleet 20 misses on the seeds' mean wait (250, 400 -> 325), 40 meets
    _row(20, 0, 0.1, 250.0, 97.0), _row(20, 1, 0.1, 400.0, 96.0),
    _row(40, 0, 0.1, 200.0, 99.0), _row(40, 1, 0.1, 220.0, 99.5),
    _row(60, 0, 0.1, 150.0, 100.0), _row(60, 1, 0.1, 160.0, 100.0),
    # share 0.3: nothing meets served >= 95
    _row(20, 0, 0.3, 900.0, 60.0), _row(60, 0, 0.3, 420.0, 90.0),
    # share 0.5: the smallest fleet tried already meets
    _row(80, 0, 0.5, 100.0, 99.0), _row(100, 0, 0.5, 90.0, 99.0),
    # a failed cell does not count
    {**_row(10, 0, 0.1, 10.0, 100.0), "status": "failed"},
]  # fmt: skip


def test_target_answers_the_smallest_fleet_per_market_share() -> None:
    target = parse_target("wait_p95_s<=300, served_pct>=95")
    got = {a.group["market_share"]: a for a in answer(HAND_MADE, target)}
    assert set(got) == {0.1, 0.3, 0.5}
    assert (got[0.1].fleet, got[0.1].status, got[0.1].tried) == (40, "met", (20, 40, 60))
    assert got[0.1].kpis_at_answer == {"wait_p95_s": 210.0, "served_pct": 99.25}
    assert (got[0.3].fleet, got[0.3].status) == (None, "above range")
    assert (got[0.5].fleet, got[0.5].status) == (80, "at or below the smallest tried")


def test_target_from_a_results_folder_on_the_command_line(cli_main, tmp_path: Path) -> None:
    save_rows(tmp_path / "hand", HAND_MADE)
    done = cli_main(
        "sweep", "--out", "hand", "--target", "wait_p95_s<=300,served_pct>=95", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "smallest fleet meeting wait_p95_s<=300,served_pct>=95" in done.stdout
    assert "> 60" in done.stdout and "≤ 80" in done.stdout
    record = json.loads((tmp_path / "hand" / "target.json").read_text())
    by_share = {a["market_share"]: a["smallest_fleet"] for a in record["answers"]}
    assert by_share == {0.1: 40, 0.3: None, 0.5: 80}
    assert (tmp_path / "hand" / "target.md").read_text().count("\n") == 4 + 3
    assert (tmp_path / "hand" / "fleet_curves.png").stat().st_size > 10_000
    unknown = cli_main("sweep", "--out", "hand", "--target", "wait_p99_s<=3", cwd=tmp_path)
    assert unknown.returncode == 2 and "no KPI 'wait_p99_s'" in unknown.stderr


def test_the_table_round_trips_through_parquet_and_json(tmp_path: Path) -> None:
    rows = [*HAND_MADE, {**_row(7, 0, 0.1, 1.0, 2.0), "git_dirty": True, "error": "SUMO died"}]
    save_rows(tmp_path, rows)
    assert load_rows(tmp_path) == {r["cell_id"]: r for r in rows}
    table = read_parquet(tmp_path / "results.parquet")
    assert len(table) == len(rows)
    assert [r["fleet"] for r in table] == [r["fleet"] for r in rows]
    assert table[-1]["error"] == "SUMO died" and table[0]["wait_p95_s"] == 250.0
    assert json.loads(table[0]["settings"]) == rows[0]["settings"]


def test_a_foreign_results_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text('{"not": "rows"}')
    with pytest.raises(SweepError, match="not a sweep results file"):
        load_rows(tmp_path)


def test_fleet_search_finds_what_brute_force_finds() -> None:
    """Bisection over a monotone served % curve per group gives brute force's smallest fleet,
    asking for far fewer probes; out-of-range answers are said."""
    target = parse_target("served_pct>=95")
    need = {0.1: 37, 0.3: 101, 0.5: 5}  # the fleet each share needs (closed form below)
    probes: list[int] = []

    def run(cells: list[Cell]) -> list[dict]:
        rows = []
        for cell in cells:
            s = cell.as_dict()
            probes.append(s["fleet.size"])
            served = 100.0 if s["fleet.size"] >= need[s["demand.market_share"]] else 80.0
            rows.append({"cell_id": cell.cell_id, "status": "ok", "fleet": s["fleet.size"],
                         "served_pct": served})  # fmt: skip
        return rows

    bases = [{"demand.market_share": share} for share in need]
    searches = fleet_search(bases, [0], 10, 100, target, run)
    outcome = {s.base["demand.market_share"]: (s.outcome, s.hi) for s in searches}
    assert outcome[0.1] == ("met", 37)  # brute force: min f in 10..100 with f >= 37
    assert outcome[0.3][0] == "above range"
    assert outcome[0.5] == ("at or below the smallest tried", 10)
    assert len(probes) <= 3 * 2 + 7  # both ends of each, then log2(90) middles for one group
    stepped = fleet_search(bases[:1], [0], 10, 100, target, run, step=5)
    assert stepped[0].outcome == "met" and 37 <= stepped[0].hi <= 37 + 5


def test_sweep_help_loads_no_heavy_library(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom robotaxi.cli.main import main\n"
        "try:\n    main(['sweep', '--help'])\nexcept SystemExit as done:\n"
        "    assert done.code == 0\n"
        "print(sorted(m for m in ('ray', 'pyarrow', 'numpy', 'rich', 'libsumo') "
        "if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "--fleet-search" in proc.stdout and proc.stdout.strip().splitlines()[-1] == "[]"


def test_grid_errors_are_named() -> None:
    with pytest.raises(GridError, match="no values"):
        build_spec({"fleet": []})
