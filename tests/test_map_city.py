"""The whole of San Francisco (`sf`): real signals, street names, road classes, one connected
road network, and the DataSF signals with fire pre-emption matched to its traffic lights."""

from __future__ import annotations

import gzip
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA, needs_data
from fakecity import mini_city
from robotaxi.map import RoadMap, RoutingGraph, build_network, load_map
from robotaxi.map.model import ROBOTAXI_VCLASS, allows_vclass
from robotaxi.map.signals import (
    DATASF_SIGNALS,
    match_signals,
    preemption_tls_ids,
    read_city_signals,
)

# road classes the INRIX calibration maps to facility types; each must be on the city's roads
CALIBRATED_CLASSES = {
    "highway.motorway",
    "highway.motorway_link",
    "highway.trunk",
    "highway.primary",
    "highway.secondary",
    "highway.tertiary",
    "highway.residential",
}


@pytest.fixture(scope="module")
def city(city_cache: Path) -> RoadMap:
    # netconvert takes ≈11 s and loading ≈6 s: once for the whole module
    return load_map(build_network("sf", SHARED_DATA, city_cache))


@needs_data
@pytest.mark.sumo
def test_the_whole_city_keeps_its_real_signals_and_is_one_road_network(city: RoadMap) -> None:
    xmin, ymin, xmax, ymax = city.bounds
    assert 14_000 < xmax - xmin < 17_000 and 14_000 < ymax - ymin < 17_000  # ≈15.8 × 16 km
    lon, lat = city.projection.xy_to_lonlat(np.array([xmin, xmax]), np.array([ymin, ymax]))
    assert lon[0] == pytest.approx(-122.54, abs=0.01) and lat[1] == pytest.approx(37.84, abs=0.01)
    # the 1,281 DataSF signals given as traffic_light nodes survive junction joining
    assert len(city.traffic_lights) >= 1200
    assert len(city.signal_junctions) >= 1200
    assert {j.tls_id for j in city.signal_junctions} <= set(city.traffic_lights)
    # the whole of a signalised crossing is signalised, by one light: Market, 16th and Noe is
    # four nodes, and DataSF's point fell on a shape node of Noe Street beside them
    lights = {j.junction_id: j.tls_id for j in city.signal_junctions}
    market_16th_noe = ["n10757", "n10765", "cluster_n10769_n7041"]
    assert all(n in lights for n in market_16th_noe)
    assert len({lights[n] for n in market_16th_noe}) == 1
    roads = [e for e in city.edges.values() if not e.internal and city.robotaxi_lanes(e)]
    assert len(roads) > 25_000
    assert len(city.main_component) / len(roads) >= 0.99
    assert 2_000 < city.road_km < 3_500


@needs_data
@pytest.mark.sumo
def test_street_names_survive_and_every_road_has_its_osm_class(city: RoadMap) -> None:
    drivable = city.drivable_edges
    assert sum(bool(e.name) for e in drivable) / len(drivable) > 0.9
    named = {e.name for e in drivable}
    assert {"Market Street", "Mission Street", "Geary Boulevard", "Lombard Street"} <= named
    assert all(e.road_class.startswith("highway.") for e in drivable)
    assert {e.road_class for e in drivable} >= CALIBRATED_CLASSES
    assert {e.road_class for e in drivable if e.name == "Mission Street"} == {"highway.secondary"}
    km = city.road_class_km()
    assert sum(km.values()) == pytest.approx(city.road_km)
    assert next(iter(km)) == "highway.residential"  # most of the city's streets
    assert km["highway.motorway"] > 30  # I-80, US-101, I-280


@needs_data
@pytest.mark.sumo
def test_routes_cross_the_city(city: RoadMap) -> None:
    graph = RoutingGraph(city)
    rng = np.random.default_rng(11)
    origins = list(rng.choice(graph.edge_ids, 20))
    targets = list(rng.choice(graph.edge_ids, 30))
    eta = graph.eta_matrix(origins, np.zeros(20), targets, np.zeros(30))
    assert np.isfinite(eta).all()
    # nothing in a 16 km city is more than an hour away at the speed limit
    assert 0 < np.median(eta) < 3600 and eta.max() < 3600


@needs_data
@pytest.mark.sumo
def test_second_build_of_the_city_is_a_cache_hit(city: RoadMap, city_cache: Path) -> None:
    stamp = city.net_file.stat().st_mtime_ns
    again = build_network("sf", SHARED_DATA, city_cache)
    assert again.from_cache
    assert again.net_file == city.net_file and again.net_file.stat().st_mtime_ns == stamp


@needs_data
@pytest.mark.sumo
def test_fire_preemption_signals_match_the_citys_traffic_lights(city: RoadMap) -> None:
    preempt = preemption_tls_ids(city, SHARED_DATA / DATASF_SIGNALS)
    # DataSF lists 519 working signals with FIRE PREEMPT (520 rows in all)
    assert 480 <= len(preempt) <= 519
    assert preempt <= set(city.traffic_lights)


def _signal_table(rows: list[tuple[str, str, str, float, float]]) -> bytes:
    header = "CNN,STREET1,STREET2,TYPE,PREEMPT_PR,shape\n"
    body = "".join(
        f'{cnn},A,B,{kind},"{preempt}",POINT ({lon:.7f} {lat:.7f})\n'
        for cnn, kind, preempt, lon, lat in rows
    )
    return gzip.compress((header + body).encode())


def test_a_signal_matches_the_nearest_light_within_30_m(tmp_path: Path) -> None:
    road_map, _graph = mini_city()
    lights = {j.junction_id: j for j in road_map.signal_junctions}
    assert len(lights) == len(road_map.traffic_lights) == 9

    def near(junction: str, dx: float) -> tuple[float, float]:
        lon, lat = road_map.projection.xy_to_lonlat(
            np.array([lights[junction].x + dx]), np.array([lights[junction].y])
        )
        return float(lon[0]), float(lat[0])

    table = tmp_path / "signals.csv.gz"
    table.write_bytes(
        _signal_table(
            [
                ("1", "SIGNAL", "TSP,FIRE PREEMPT", *near("C2", 12.0)),  # matched
                ("2", "SIGNAL", "FIRE PREEMPT", *near("A2", -40.0)),  # too far from any light
                ("3", "SIGNAL", "TSP", *near("E2", 3.0)),  # a light, but no pre-emption
                ("4", "PENDING SIGNAL", "FIRE PREEMPT", *near("C4", 0.0)),  # not built yet
                ("5", "SIGNAL", "CABLE CAR PREEMPTION,FIRE PREEMPT", *near("C0", -25.0)),
            ]
        )
    )
    assert preemption_tls_ids(road_map, table) == {"C2", "C0"}
    matches = {m.signal.cnn: m for m in match_signals(road_map, read_city_signals(table))}
    assert set(matches) == {"1", "2", "3", "5"}
    assert matches["1"].distance_m == pytest.approx(12.0, abs=0.01)
    assert matches["2"].tls_id == "" and matches["3"].tls_id == "E2"
    # a tighter radius drops the signal 25 m away
    assert preemption_tls_ids(road_map, table, max_distance_m=20.0) == {"C2"}


@needs_data
@pytest.mark.sumo
def test_car_free_market_street_is_closed_to_private_cars_but_open_to_robotaxis(
    city: RoadMap,
) -> None:
    market = [e for e in city.drivable_edges if e.name == "Market Street"]
    first_points = np.array([city.lanes[e.lane_ids[0]].centerline[0] for e in market])
    lon, _ = city.projection.xy_to_lonlat(first_points[:, 0], first_points[:, 1])
    downtown = {e.edge_id for e, x in zip(market, lon, strict=True) if -122.415 < x < -122.398}
    upper = {e.edge_id for e, x in zip(market, lon, strict=True) if x < -122.425}  # the Castro
    assert len(downtown) >= 20 and len(upper) >= 10
    # robotaxis (SUMO class taxi) drive all of Market Street; private cars only its upper part
    private: dict[str, bool] = {}
    for _, elem in ET.iterparse(city.net_file):
        if elem.tag == "edge" and elem.get("id") in downtown | upper:
            lanes = list(elem.iter("lane"))
            assert all(allows_vclass(lane, ROBOTAXI_VCLASS) for lane in lanes)
            private[elem.get("id", "")] = any(allows_vclass(lane, "passenger") for lane in lanes)
        if elem.tag == "edge":
            elem.clear()
    assert not any(private[e] for e in downtown)
    assert all(private[e] for e in upper)
