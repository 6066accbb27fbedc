"""The CLI's bad-input cases: one clear line, exit code 2, no traceback, nothing left behind.

Most cases run the command in this process (`cli_main`, see inprocess_cli.py): a fresh
interpreter spends some 1.7 s importing the simulation before it can reject a bad city. One
case runs the real `python -m robotaxi.cli.main` process.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from inprocess_cli import RunCli


def robotaxi(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "robotaxi.cli.main", *args],
        capture_output=True, text=True, cwd=cwd, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--city", "atlantis"], "unknown city 'atlantis'"),
        (["--city", "sf-mission", "--data-dir", "no/such/folder"], "--data-dir"),
        (["--fleet", "0"], "fleet.size"),
        (["--start", "tue 25:00"], "past 24 hours"),
        (["--start", "someday 08:00"], "DAY HH:MM"),
        (["--hours", "30"], "hours"),
        (["--policy", "fastest"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], expected: str, tmp_path: Path, cli_main: RunCli
) -> None:
    out = tmp_path / "out"
    proc = cli_main("simulate", *args, "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 or proc.stderr.startswith("usage:"), proc.stderr
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_the_real_process_exits_2_with_one_line(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = robotaxi("simulate", "--fleet", "0", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "fleet.size" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_malformed_osm_file_is_rejected_cleanly(tmp_path: Path, cli_main: RunCli) -> None:
    bad = tmp_path / "bad.osm"
    bad.write_text('<?xml version="1.0"?><osm version="0.6"><node id="1" lat="37.7"')
    out = tmp_path / "out"
    proc = cli_main("simulate", "--city", str(bad), "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 2
    assert "not well-formed" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_meso_with_clearing_the_way_is_refused(tmp_path: Path, cli_main: RunCli) -> None:
    config = tmp_path / "clear-way.yaml"
    config.write_text("world:\n  clear_way_for_emergency: true\n")
    out = tmp_path / "out"
    proc = cli_main(
        "simulate", "--traffic-model", "meso", "--config", str(config), "--out", str(out),
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "clear_way_for_emergency needs the microscopic traffic model" in proc.stderr
    assert not out.exists()


def test_existing_results_are_not_overwritten(tmp_path: Path, cli_main: RunCli) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "kpis.json").write_text('{"kept": true}')
    proc = cli_main("simulate", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 2 and "--overwrite" in proc.stderr
    assert (out / "kpis.json").read_text() == '{"kept": true}'


@pytest.mark.sumo
def test_map_build_command(tmp_path: Path) -> None:
    proc = robotaxi(
        "map", "build", "--city", "grid", "--cache-dir", str(tmp_path / "c"), cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "grid" in proc.stdout and ".net.xml" in proc.stdout
    assert list((tmp_path / "c").glob("grid-*.net.xml"))


def _osm_grid(path: Path, lat0: float, lon0: float, n: int = 6, step_deg: float = 0.0018) -> None:
    """An OSM file of an n × n grid of two-way residential streets (~150 m blocks)."""
    nodes = [
        f'<node id="{i * n + j + 1}" lat="{lat0 + i * step_deg:.7f}" '
        f'lon="{lon0 + j * step_deg * 1.6:.7f}" version="1"/>'
        for i in range(n)
        for j in range(n)
    ]
    ways = []
    for k in range(n):
        rows = [k * n + j + 1 for j in range(n)]
        cols = [i * n + k + 1 for i in range(n)]
        for w, refs in ((2 * k + 1, rows), (2 * k + 2, cols)):
            nds = "".join(f'<nd ref="{r}"/>' for r in refs)
            ways.append(
                f'<way id="{w}" version="1">{nds}<tag k="highway" v="residential"/>'
                f'<tag k="name" v="Street {w}"/></way>'
            )
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<osm version="0.6">\n'
        + "\n".join(nodes + ways)
        + "\n</osm>\n"
    )


@pytest.mark.sumo
def test_a_map_outside_san_francisco_gets_made_up_riders(tmp_path: Path, cli_main: RunCli) -> None:
    """SFCTA's ride data covers San Francisco only: a map of another place (here a few Berlin
    blocks) is served with synthetic riders, and the run says so, rather than zero riders."""
    import json

    city = tmp_path / "elsewhere.osm"
    _osm_grid(city, 52.53, 13.40)
    out = tmp_path / "out"
    proc = cli_main(
        "simulate", "--city", str(city), "--fleet", "3", "--hours", "0.25",
        "--requests-per-hour", "120", "--no-background", "--no-map", "--out", str(out),
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "lies outside San Francisco" in " ".join(proc.stderr.split())
    kpis = json.loads((out / "kpis.json").read_text())
    assert 15 <= kpis["requests"] <= 50  # 30 expected in a quarter hour at 120 an hour
    assert kpis["served_pct"] > 0
