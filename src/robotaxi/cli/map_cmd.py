"""`robotaxi map build`: build (or reuse from the cache) a city's road network and describe it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("map", help="road networks: build and inspect")
    map_sub = p.add_subparsers(dest="map_command", metavar="ACTION")
    build = map_sub.add_parser("build", help="build a city's network (cached by content hash)")
    build.add_argument(
        "--city",
        default="grid",
        help="grid, sf-mission, sf (whole city), sf-ne, or an OSM/MATSim file",
    )
    build.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    build.add_argument("--cache-dir", type=Path, default=Path(".cache/maps"))
    build.set_defaults(handler=run_build)


def run_build(args: argparse.Namespace) -> int:
    from rich.console import Console

    from robotaxi.map import build_network, load_map

    console = Console(stderr=True)
    with console.status(f"building {args.city} with SUMO's tools…"):
        built = build_network(args.city, args.data_dir, args.cache_dir)
        road_map = load_map(built)
    xmin, ymin, xmax, ymax = road_map.bounds
    print(f"city      {args.city}")
    print(f"network   {built.net_file}")
    print(f"source    {built.source}")
    print(f"size      {(xmax - xmin) / 1000:.1f} × {(ymax - ymin) / 1000:.1f} km")
    print(f"roads     {len(road_map.drivable_edges)} edges, {road_map.road_km:.0f} km")
    print(f"signals   {len(road_map.traffic_lights)}")
    print(f"curbs     {len(road_map.curbs)} spots where a car may stop")
    return 0
