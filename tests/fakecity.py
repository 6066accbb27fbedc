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

from robotaxi.map import RoadMap, RoutingGraph, load_map
from robotaxi.map.build import BuiltNetwork

NET_FILE = Path(__file__).resolve().parent / "data" / "mini-grid.net.xml"
# what the grid builder returned for it: UTM 10N, origin placed on the Mission
CRS = "EPSG:32610"
OFFSET = (-550135.4456617642, -4176676.693550879)


@cache
def mini_city() -> tuple[RoadMap, RoutingGraph]:
    road_map = load_map(BuiltNetwork("grid", NET_FILE, CRS, OFFSET, "tests/data"))
    return road_map, RoutingGraph(road_map)
