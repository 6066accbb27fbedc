"""Background traffic from Plan Bay Area: the trips follow the district matrix and the hourly
profile, land on the right streets and gateways, and are reproducible by seed.

The statistical tests place trips on the whole city's plain edge file
(../shared/data/sf/city/sf.edg.xml.gz), not a built network, so they run without SUMO; one
test builds the sf-mission network and routes a short window with duarouter.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import shapely
from pyproj import Transformer
from scipy.stats import chisquare

from robotaxi.world import background as bg

DATA_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
CITY_EDGES = DATA_DIR / "sf" / "city" / "sf.edg.xml.gz"
UTM10 = "+proj=utm +zone=10 +ellps=WGS84 +datum=WGS84 +units=m +no_defs"
HOUR = 3600.0

pytestmark = [
    pytest.mark.sfdata,
    pytest.mark.skipif(
        not (DATA_DIR / bg.PLANBAYAREA_SUBDIR).is_dir() or not CITY_EDGES.is_file(),
        reason="../shared/data (Plan Bay Area, sf/city) is absent",
    ),
]


def _city_edges() -> bg.NetEdges:
    """NetEdges of the whole city from the plain edge file (lon/lat shapes → UTM 10N)."""
    ids, types, shapes = [], [], []
    with gzip.open(CITY_EDGES) as fh:
        for _event, elem in ET.iterparse(fh):
            if elem.tag == "edge":
                ids.append(elem.get("id", ""))
                types.append(elem.get("type", ""))
                shapes.append(
                    np.array([p.split(",") for p in elem.get("shape", "").split()], float)
                )
                elem.clear()
    to_xy = Transformer.from_crs("EPSG:4326", UTM10, always_xy=True)
    projected = [np.column_stack(to_xy.transform(s[:, 0], s[:, 1])) for s in shapes]
    return bg.NetEdges(
        ids=tuple(ids),
        types=tuple(types),
        length_m=np.array([np.hypot(*np.diff(p, axis=0).T).sum() for p in projected]),
        start_xy=np.array([p[0] for p in projected]),
        end_xy=np.array([p[-1] for p in projected]),
        mid_lonlat=np.array([s[len(s) // 2] if len(s) > 2 else s.mean(axis=0) for s in shapes]),
        to_xy=to_xy,
        offset=(0.0, 0.0),
    )


@pytest.fixture(scope="module")
def polygons():
    return bg.read_district_polygons(DATA_DIR)


@pytest.fixture(scope="module")
def placement(polygons) -> bg.DemandPlacement:
    return bg.place_demand(_city_edges(), polygons)


@pytest.fixture(scope="module")
def daily() -> np.ndarray:
    return bg.daily_vehicle_trips(bg.load_district_trips(DATA_DIR))


# --- the inputs ----------------------------------------------------------------------------


def test_plan_bay_area_matrix_and_vehicles_per_day():
    trips = bg.load_district_trips(DATA_DIR)
    assert trips.person_trips.shape == (2, 15, 15)
    total = trips.person_trips.sum(axis=0)
    # the README's "about 1.5 million car trips a day inside the city" (1,495,485 exactly)
    assert total[:12, :12].sum() == pytest.approx(1_495_485)
    assert total[bg.SOUTH_BAY, bg.SOUTH_BAY] == pytest.approx(7_041_942)
    vehicles = bg.daily_vehicle_trips(trips)
    mandatory, discretionary = trips.person_trips
    expected = mandatory / 1.14 + discretionary / 1.81
    assert vehicles[:12, :12] == pytest.approx(expected[:12, :12])
    assert vehicles[:12, 12:] == pytest.approx(expected[:12, 12:])
    # trips between outside districts stay outside, except North ↔ South Bay through the city
    assert vehicles[bg.SOUTH_BAY, bg.SOUTH_BAY] == 0
    assert vehicles[bg.EAST_BAY, bg.SOUTH_BAY] == 0
    assert vehicles[bg.NORTH_BAY, bg.SOUTH_BAY] == pytest.approx(expected[14, 12])
    assert bg.daily_vehicle_trips(trips, through_traffic=False)[14, 12] == 0
    touching = total.copy()
    touching[12:, 12:] = 0
    touching[14, 12], touching[12, 14] = total[14, 12], total[12, 14]
    occupancy = touching.sum() / vehicles.sum()
    assert 1.45 < occupancy < 1.55  # persons per car, averaged over purposes


def test_hourly_profile_is_a_weekday_shape():
    shares = bg.hourly_shares()
    assert shares.sum() == pytest.approx(1.0)
    assert int(np.argmax(shares)) == 17  # 17:00–18:00
    assert shares[7] == pytest.approx(0.0768, abs=1e-4)  # 07:00–08:00
    assert shares[3] < 0.001


def test_district_polygons_hold_known_places(polygons):
    places = {
        "Downtown": (-122.3937, 37.7955),  # Ferry Building
        "N. Beach/Chinatown": (-122.4058, 37.8024),  # Coit Tower
        "Hill Districts": (-122.4477, 37.7544),  # Twin Peaks
        "Sunset": (-122.508, 37.755),
        "East Bay": (-122.27, 37.80),  # Oakland
        "South Bay": (-121.89, 37.34),  # San José
        "North Bay": (-122.53, 37.97),  # San Rafael
    }
    for name, (lon, lat) in places.items():
        inside = [
            bg.DISTRICTS[d] for d, p in enumerate(polygons) if shapely.contains_xy(p, lon, lat)
        ]
        assert inside == [name]


def test_every_gateway_is_found_on_the_city(placement):
    assert placement.missing_gateways == ()
    edges = placement.edges
    for g in placement.gateways:
        assert g.entry_gap_m < 600 and g.exit_gap_m < 600, g.gateway.name
        assert edges.types[g.entry] in g.gateway.road_types
        assert edges.types[g.exit] in g.gateway.road_types
    bay_bridge = next(g for g in placement.gateways if g.gateway.name.startswith("Bay Bridge"))
    # the entry runs west into the city, the exit east out of it
    assert edges.end_xy[bay_bridge.entry, 0] < edges.start_xy[bay_bridge.entry, 0]
    assert edges.end_xy[bay_bridge.exit, 0] > edges.start_xy[bay_bridge.exit, 0]
    assert placement.placeable().all()


# --- the trips -----------------------------------------------------------------------------


def test_trips_follow_the_district_matrix(daily, placement):
    """Chi-square of trips per (origin, destination) district against Plan Bay Area's matrix
    × the hourly profile, at a fixed seed; the same counts reject a matrix whose city
    destinations are shifted by one district."""
    scale, start, end = 0.05, 7 * HOUR, 9 * HOUR
    trips = bg.sample_trips(daily, placement, start, end, scale=scale, seed=11)
    shares = bg.hourly_shares()
    expected = daily * scale * shares[7:9].sum()
    assert trips.expected == pytest.approx(expected.sum())
    assert abs(len(trips) + trips.dropped - expected.sum()) < 4 * np.sqrt(expected.sum())
    assert trips.dropped < 0.001 * len(trips)  # only draws of one street twice
    observed = trips.od_counts()

    def p_value(matrix: np.ndarray) -> float:
        cells = matrix > 0
        big = cells & (matrix * observed.sum() / matrix[cells].sum() >= 5)
        f_exp, f_obs = matrix[big], observed[big]
        if (cells & ~big).any():  # small cells pooled into one
            f_exp = np.append(f_exp, matrix[cells & ~big].sum())
            f_obs = np.append(f_obs, observed[cells & ~big].sum())
        return float(chisquare(f_obs, f_exp * f_obs.sum() / f_exp.sum()).pvalue)

    assert (observed[expected == 0] == 0).all()
    assert p_value(expected) > 0.001
    shifted = expected.copy()
    shifted[:, :12] = np.roll(expected[:, :12], 1, axis=1)
    assert p_value(shifted) < 1e-6


def test_trips_follow_the_hourly_profile(daily, placement):
    trips = bg.sample_trips(daily, placement, 0, 86400, scale=0.004, seed=3)
    by_hour = np.bincount((trips.depart_s // HOUR).astype(int), minlength=24)
    shares = bg.hourly_shares()
    assert chisquare(by_hour, shares * by_hour.sum()).pvalue > 0.001
    assert (np.diff(trips.depart_s) >= 0).all()


def test_trips_start_and_end_in_their_district_or_gateway(daily, placement, polygons):
    trips = bg.sample_trips(daily, placement, 8 * HOUR, 8.5 * HOUR, scale=0.02, seed=5)
    edges = placement.edges
    entries = {g.entry for g in placement.gateways}
    exits = {g.exit for g in placement.gateways}
    for edge_col, district_col, gates in (
        (trips.from_edge, trips.origin, entries),
        (trips.to_edge, trips.destination, exits),
    ):
        city = district_col < len(bg.SF_DISTRICTS)
        lon, lat = edges.mid_lonlat[edge_col[city]].T
        for d in np.unique(district_col[city]):
            rows = district_col[city] == d
            assert shapely.contains_xy(polygons[d], lon[rows], lat[rows]).all()
        assert {edges.types[e] for e in edge_col[city]} <= bg.ENDPOINT_TYPES
        assert set(edge_col[~city].tolist()) <= gates
    # East Bay trips all use the Bay Bridge; South Bay trips spread over its seven roads
    bay_bridge = next(g.entry for g in placement.gateways if g.gateway.name.startswith("Bay"))
    assert set(trips.from_edge[trips.origin == bg.EAST_BAY].tolist()) == {bay_bridge}
    assert len(set(trips.from_edge[trips.origin == bg.SOUTH_BAY].tolist())) == 7


def test_same_seed_same_trips_and_windows_agree(daily, placement):
    a = bg.sample_trips(daily, placement, 7 * HOUR, 7.5 * HOUR, scale=0.02, seed=1)
    b = bg.sample_trips(daily, placement, 7 * HOUR, 7.5 * HOUR, scale=0.02, seed=1)
    assert a.ids == b.ids
    assert (a.from_edge == b.from_edge).all() and (a.depart_s == b.depart_s).all()
    other = bg.sample_trips(daily, placement, 7 * HOUR, 7.5 * HOUR, scale=0.02, seed=2)
    assert other.ids != a.ids or (other.from_edge != a.from_edge).any()
    next_day = bg.sample_trips(daily, placement, 7 * HOUR, 7.5 * HOUR, scale=0.02, seed=1, day=1)
    assert not set(next_day.ids) & set(a.ids)
    # a wider window holds exactly the narrower window's trips
    wide = bg.sample_trips(daily, placement, 6 * HOUR, 9 * HOUR, scale=0.02, seed=1)
    inside = (wide.depart_s >= 7 * HOUR) & (wide.depart_s < 7.5 * HOUR)
    assert tuple(np.array(wide.ids)[inside]) == a.ids
    assert (wide.to_edge[inside] == a.to_edge).all()


def test_scale_multiplies_demand(daily, placement):
    none = bg.sample_trips(daily, placement, 7 * HOUR, 8 * HOUR, scale=0.0, seed=1)
    assert len(none) == 0 and none.expected == 0
    one = bg.sample_trips(daily, placement, 7 * HOUR, 8 * HOUR, scale=0.01, seed=1)
    three = bg.sample_trips(daily, placement, 7 * HOUR, 8 * HOUR, scale=0.03, seed=1)
    assert three.expected == pytest.approx(3 * one.expected)
    assert len(three) == pytest.approx(3 * len(one), rel=0.1)


def test_trips_xml_shifts_departures_to_the_simulation_clock(daily, placement):
    trips = bg.sample_trips(daily, placement, 7 * HOUR, 7.1 * HOUR, scale=0.01, seed=1)
    root = ET.fromstring(bg.trips_xml(trips, placement, 7 * HOUR, sim_begin_s=100.0))
    assert root.find("vType").get("id") == "background"
    rows = root.findall("trip")
    assert len(rows) == len(trips)
    departs = np.array([float(t.get("depart")) for t in rows])
    assert departs == pytest.approx(trips.depart_s - 7 * HOUR + 100.0, abs=0.01)
    assert departs.min() >= 100.0 and departs.max() < 100.0 + 0.1 * HOUR
    assert [t.get("from") for t in rows] == [placement.edges.ids[e] for e in trips.from_edge]


def test_bad_window_or_scale_is_refused(daily, placement):
    with pytest.raises(bg.WorldError, match="within one day"):
        bg.sample_trips(daily, placement, 8 * HOUR, 7 * HOUR)
    with pytest.raises(bg.WorldError, match="scale"):
        bg.sample_trips(daily, placement, 7 * HOUR, 8 * HOUR, scale=-1)


# --- with SUMO: routes on a real network ---------------------------------------------------


@pytest.mark.sumo
@pytest.mark.slow
def test_routes_on_sf_mission_are_made_once_and_cached(map_cache: Path, tmp_path: Path):
    from robotaxi.map import build_network

    net = build_network("sf-mission", DATA_DIR, map_cache).net_file
    out = tmp_path / "routes"
    demand = bg.plan_bay_area_routes(
        net, DATA_DIR, 8 * HOUR, 8 * HOUR + 300, out_dir=out, scale=0.05, seed=4
    )
    assert demand.routed and demand.path.is_file()
    # the Mission extract has no bridges or county line: those trips are dropped, and said so
    assert "Bay Bridge (I-80)" in demand.missing_gateways
    assert demand.dropped > 0
    assert 0 < demand.vehicles <= demand.sampled
    assert demand.sampled + demand.dropped == pytest.approx(demand.expected, rel=0.2)
    vehicles = ET.parse(demand.path).getroot().findall("vehicle")
    assert len(vehicles) == demand.vehicles
    assert all(0 <= float(v.get("depart")) < 300 for v in vehicles)
    assert vehicles[0].find("route") is not None
    started = time.perf_counter()
    again = bg.plan_bay_area_routes(
        net, DATA_DIR, 8 * HOUR, 8 * HOUR + 300, out_dir=out, scale=0.05, seed=4
    )
    assert again == demand
    assert time.perf_counter() - started < 1.0  # read from the cache, not generated again


# --- where trip ends go within a district ---------------------------------------------------

TREASURE_ISLAND = shapely.box(-122.385, 37.812, -122.355, 37.835)  # lon/lat, with Yerba Buena


def _share_on(placement: bg.DemandPlacement, area: shapely.Geometry) -> float:
    """Share of the city's trip-end weight (districts weighted alike) that lands in `area`."""
    lonlat = placement.edges.mid_lonlat
    inside = shapely.contains_xy(area, lonlat[:, 0], lonlat[:, 1])
    shares = [
        w[inside[e]].sum()
        for e, w in zip(placement.district_edges, placement.district_weights, strict=True)
        if len(e)
    ]
    return float(np.mean(shares))


def test_trip_ends_follow_activity_not_street_length(polygons, placement) -> None:
    from robotaxi.map.zones import load_tnc_zones

    activity = bg.EndpointActivity.of_tnc_zones(load_tnc_zones(DATA_DIR))
    by_activity = bg.place_demand(_city_edges(), polygons, activity=activity)
    # the same edges, other weights
    assert all(
        np.array_equal(a, b)
        for a, b in zip(by_activity.district_edges, placement.district_edges, strict=True)
    )
    by_length = _share_on(placement, TREASURE_ISLAND)
    assert by_length > 0.005  # many streets, few people
    assert _share_on(by_activity, TREASURE_ISLAND) < by_length / 5
    for w in by_activity.district_weights:
        assert len(w) == 0 or w.sum() == pytest.approx(1.0)


def test_activity_is_spread_over_each_zone_by_street_length() -> None:
    zones = np.array([shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)], dtype=object)
    activity = bg.EndpointActivity(zones, np.array([300.0, 100.0]))
    lonlat = np.array([[0.2, 0.5], [0.7, 0.5], [1.5, 0.5], [5.0, 5.0]])
    length = np.array([10.0, 30.0, 50.0, 20.0])
    w = activity.edge_weights(lonlat, length)
    # zone 0 holds 3× zone 1's activity, whatever its street length; within it, by length
    assert w[0] + w[1] == pytest.approx(3 * w[2])
    assert w[1] == pytest.approx(3 * w[0])
    # an edge in no zone: the median density (7.5 and 2 per m) times its length
    assert w[3] == pytest.approx(20.0 * np.median([300 / 40, 100 / 50]))
    assert activity.digest() != bg.EndpointActivity(zones, np.array([100.0, 300.0])).digest()


# --- gateways outside the main part, and a cache key that holds across processes ----------


def test_main_part_masks_follow_the_connections() -> None:
    ids = ("in", "a", "b", "out", "island")
    links = [("in", "a"), ("a", "b"), ("b", "a"), ("b", "out"), ("island", "island")]
    in_main, reaches, reached = bg._main_part_masks(ids, links, frozenset({"a", "b"}))
    assert in_main.tolist() == [False, True, True, False, False]
    assert reaches.tolist() == [True, True, True, False, False]  # "in" leads into it
    assert reached.tolist() == [False, True, True, True, False]  # "out" leads out of it


def test_gateways_enter_from_outside_the_main_part(polygons, placement) -> None:
    """A freeway crossing the network's boundary starts at a dead end, so it is not in the
    main (strongly connected) part; its gateway must stay on it, not snap to another road
    inside the main part. City trip ends stay in the main part."""
    edges = placement.edges
    boundary = np.zeros(len(edges.ids), dtype=bool)
    for g in placement.gateways:
        boundary[[g.entry, g.exit]] = True
    masked = dataclasses.replace(
        edges,
        in_main=~boundary,
        reaches_main=np.ones(len(edges.ids), dtype=bool),
        reached_from_main=np.ones(len(edges.ids), dtype=bool),
    )
    again = bg.place_demand(masked, polygons)
    assert [(g.entry, g.exit) for g in again.gateways] == [
        (g.entry, g.exit) for g in placement.gateways
    ]
    assert not any(boundary[e].any() for e in again.district_edges)
    # an entry that cannot reach the main part is not used
    no_way_in = dataclasses.replace(masked, reaches_main=~boundary)
    moved = bg.place_demand(no_way_in, polygons)
    assert all(not boundary[g.entry] for g in moved.gateways)


def test_the_routes_cache_key_is_the_same_in_every_process() -> None:
    """Python salts string hashes per process: a key built from the gateways' frozensets
    changed from run to run, and every calibration routed its trips again."""
    code = (
        "import hashlib; from robotaxi.world import background as bg; "
        "print(hashlib.sha256(repr(bg._gateways_key(bg.GATEWAYS)).encode()).hexdigest())"
    )
    keys = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        for seed in (1, 2, 3)
    }  # fmt: skip
    assert len(keys) == 1
