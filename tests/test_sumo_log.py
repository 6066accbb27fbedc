"""SUMO's mesoscopic model names the cars it teleports only in its warnings
(`world.sumo_log`): the world counts them from there, keeps them off the console, and a
meso run's teleports are reported (before, a meso day reported 0 while SUMO teleported
thousands). Real SUMO (meso) on the grid city."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from robotaxi.config import load_config
from robotaxi.world.sumo_log import LoggedTeleport, teleports_in_log


def _meso_world(
    grid_map: Any, grid_graph: Any, tmp_path: Path, ambulances_per_hour: float, setup: Any = None
) -> Any:
    from robotaxi.world.sumo_world import SumoWorld

    config = load_config(
        overrides={
            "world.traffic_model": "meso", "world.emergency_per_hour": ambulances_per_hour,
            "fleet.size": 1,
        }
    )  # fmt: skip
    return SumoWorld(
        grid_map, grid_graph, config.world, config.fleet, seed=3, end_s=900.0,
        work_dir=tmp_path / "w", background=False, setup=setup,
    )  # fmt: skip


def test_teleports_are_read_from_meso_and_micro_warnings(tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    log.write_text(
        "Warning: Environment variable SUMO_HOME is not set properly.\n"
        "Warning: Teleporting vehicle 'bg1'; waited too long, from edge 'A0A1':2 to edge "
        "'A10A9':1, time=324.44.\n"
        "Warning: Vehicle 'bg1' ends teleporting on edge 'A10A9':0, time=330.00.\n"
        "Warning: Teleporting vehicle 'taxi003'; waited too long (jam), lane='e12_0', "
        "time=900.00.\n"
    )
    assert teleports_in_log(log) == [
        LoggedTeleport(324.44, "bg1", "A0A1", "waited too long"),
        LoggedTeleport(900.0, "taxi003", "e12", "waited too long (jam)"),
    ]
    assert teleports_in_log(tmp_path / "missing.log") == []


@pytest.mark.sumo
def test_a_meso_run_counts_the_car_sumo_teleported(
    grid_map: Any, grid_graph: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from robotaxi.world.traffic import SumoSetup

    # a car whose route has a gap: it waits at the end of its first street until SUMO
    # teleports it (time-to-teleport 300 s)
    routes = tmp_path / "gap.rou.xml"
    routes.write_text(
        '<routes><vType id="t" vClass="passenger"/>'
        '<vehicle id="gap" type="t" depart="0"><route edges="A0A1 A10A9"/></vehicle></routes>'
    )
    world = _meso_world(grid_map, grid_graph, tmp_path, 0.0, SumoSetup(route_files=(routes,)))
    with world:
        seen_during_run = 0
        for _ in range(400):
            world.step()
        seen_during_run = world.stats.teleports
    assert seen_during_run == 1  # libsumo's own teleport list says 0 in meso
    assert world.stats.teleports == 1
    assert world.stats.teleports_by_cause.get("jam") == 1
    assert world.stats.robotaxi_teleports == 0  # the car was not ours
    # SUMO's warning went to its log file, not to the console
    assert "Teleporting" not in capfd.readouterr().err
    assert "Teleporting vehicle 'gap'" in (tmp_path / "w" / "sumo-warnings.log").read_text()


@pytest.mark.sumo
def test_meso_runs_ambulances_without_signal_preemption_or_console_warnings(
    grid_map: Any, grid_graph: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """meso's signals are a delay from their green split, not phases: no pre-emption there
    (libsumo has no getNextTLS in meso; its warning used to be hidden, now it would show)."""
    world = _meso_world(grid_map, grid_graph, tmp_path, 30.0)
    with world:
        sirens = 0
        for _ in range(900):
            world.step()
            sirens += sum(world.snapshot().sirens)
    assert sirens > 0  # ambulances drove with their sirens on
    assert world.stats.preemptions == 0
    assert "Warning" not in capfd.readouterr().err
