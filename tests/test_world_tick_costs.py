"""The world's per-tick reads done cheaply give what SUMO itself says: in meso, travel times
asked of the streets with cars on them only (`SumoWorld.edge_travel_times`) equal reading
every street. Real SUMO (meso) on the grid city with background traffic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from robotaxi.config import load_config

pytestmark = pytest.mark.sumo


def test_meso_travel_times_are_sumo_s_own_for_every_street(
    grid_map: Any, grid_graph: Any, tmp_path: Path
) -> None:
    import libsumo

    from robotaxi.world.sumo_world import SumoWorld

    config = load_config(
        overrides={
            "world.traffic_model": "meso", "world.emergency_per_hour": 0.0,
            "world.background_demand": "random",
        }
    )  # fmt: skip
    world = SumoWorld(
        grid_map, grid_graph, config.world, config.fleet,
        seed=3, end_s=1800.0, work_dir=tmp_path, background=True,
    )  # fmt: skip
    edges = grid_graph.edge_ids
    with world:
        first: dict[str, float] = {}
        changed = 0
        for _ in range(5):  # every 300 s, as the service reads them
            for _ in range(round(300.0 / config.world.tick_s)):
                world.step()
            assert libsumo.vehicle.getIDCount() > 0  # streets with cars and without
            times = world.edge_travel_times(edges)
            assert list(times) == list(edges)
            assert times == {edge: libsumo.edge.getTraveltime(edge) for edge in edges}
            first = first or times
            changed = max(changed, sum(times[e] != first[e] for e in edges))
        assert changed > 0  # the traffic slowed some streets down: both kinds were read
