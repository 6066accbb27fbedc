"""A robotaxi parked at the curb with no command since is read once, not every step: the
world drops its SUMO subscription and reports its last state until a command wakes it. The
fleet sees the same car either way. Runs SUMO on the grid city."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from robotaxi.config import load_config
from robotaxi.core import DriveTo

pytestmark = pytest.mark.sumo


def test_a_parked_car_is_reported_where_it_stands_and_wakes_on_its_next_command(
    grid_map, grid_graph, tmp_path: Path
) -> None:
    import libsumo

    from robotaxi.world.sumo_world import SumoWorld

    config = load_config(overrides={"world.emergency_per_hour": 0.0, "fleet.size": 2})
    world = SumoWorld(
        grid_map, grid_graph, config.world, config.fleet,
        seed=3, end_s=900.0, work_dir=tmp_path, background=False,
    )  # fmt: skip
    curbs = grid_map.curbs
    far = int(np.argmax(np.hypot(*(curbs.xy - curbs.xy[0]).T)))
    with world:
        world.add_robotaxi("taxi0", 0)
        world.add_robotaxi("taxi1", 5)
        for _ in range(5):
            world.step()
            snap = world.snapshot()
        assert "taxi0" in world._dormant and "taxi1" in world._dormant
        assert "taxi0" not in libsumo.vehicle.getAllSubscriptionResults()
        row = snap.ids.index("taxi0")
        x, y = libsumo.vehicle.getPosition("taxi0")
        assert snap.xy[row] == pytest.approx((x, y))
        assert snap.speed[row] == 0.0 and snap.stopped[row]
        # a command wakes it: it is read every step again and drives off
        assert not world.apply([DriveTo("taxi0", curbs.edge_ids[far], float(curbs.pos[far]), 0)])
        assert "taxi0" not in world._dormant
        start_odo = float(snap.odometer_m[row])
        moved = False
        for _ in range(60):
            world.step()
            snap = world.snapshot()
            row = snap.ids.index("taxi0")
            moved = moved or snap.speed[row] > 1.0
            assert snap.xy[row] == pytest.approx(libsumo.vehicle.getPosition("taxi0"))
        assert moved and float(snap.odometer_m[row]) > start_odo + 10.0
        assert "taxi1" in world._dormant  # the other car still sleeps
