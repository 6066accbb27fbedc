"""A small city for tests that run without SUMO: a 5 × 5 grid (200 m blocks, one signalised
two-lane arterial each way) built once by our own grid builder and kept as a file
(`tests/data/mini-grid.net.xml`), so that loading it needs neither netgenerate nor netconvert.

Regenerate with:
    python -c "from pathlib import Path; from robotaxi.map.build import GridSpec, _build_grid;
    _build_grid(GridSpec(junctions=5, block_m=200.0, arterial_lines=(2,)),
    Path('tests/data/mini-grid.net.xml'))"
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from robotaxi.config import RunConfig
from robotaxi.fleet.demand import SyntheticDemand
from robotaxi.map import RoadMap, RoutingGraph, load_map
from robotaxi.map.build import BuiltNetwork
from robotaxi.sim.runner import ServiceSimulation
from robotaxi.world.fake import FakeWorld

NET_FILE = Path(__file__).resolve().parent / "data" / "mini-grid.net.xml"
# what the grid builder returned for it: UTM 10N, origin placed on the Mission
CRS = "EPSG:32610"
OFFSET = (-550135.4456617642, -4176676.693550879)


@cache
def mini_city() -> tuple[RoadMap, RoutingGraph]:
    road_map = load_map(BuiltNetwork("grid", NET_FILE, CRS, OFFSET, "tests/data"))
    return road_map, RoutingGraph(road_map)


def mini_service(config: RunConfig, work_dir: Path, **kwargs: Any) -> ServiceSimulation:
    """A `ServiceSimulation` of `config` on the mini city with FakeWorld (unless `world` is
    given) and the synthetic demand of the config's seed (keyword arguments go to
    `ServiceSimulation`)."""
    road_map, graph = mini_city()
    demand = SyntheticDemand(
        road_map.bounds, config.demand, layout_seed=config.seed, inside=road_map.inside
    )
    kwargs.setdefault("world", FakeWorld)
    return ServiceSimulation(config, work_dir, city=(road_map, graph), demand=demand, **kwargs)
