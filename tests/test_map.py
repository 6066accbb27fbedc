"""Maps: the grid city, the San Francisco sources, caching, routing, curb spots, lat/lon."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA, needs_data
from robotaxi.core import DataNotFoundError, MapBuildError
from robotaxi.map import RoutingGraph, build_network, load_map


@pytest.mark.sumo
def test_grid_city_is_3km_with_two_lane_streets_and_signalised_four_lane_arterials(
    grid_map,
) -> None:
    xmin, ymin, xmax, ymax = grid_map.bounds
    assert xmax - xmin == pytest.approx(3000, abs=1) and ymax - ymin == pytest.approx(3000, abs=1)
    lanes_per_edge = {len(e.lane_ids) for e in grid_map.drivable_edges}
    assert lanes_per_edge == {1, 2}  # one lane each way on streets, two each way on arterials
    arterial = [e for e in grid_map.drivable_edges if len(e.lane_ids) == 2]
    assert all("Blvd" in e.name for e in arterial)
    assert all(e.speed_limit > 15 for e in arterial)
    assert len(grid_map.traffic_lights) == 57  # every junction on an arterial
    assert {j.tls_id for j in grid_map.signal_junctions} == set(grid_map.traffic_lights)
    # every road can be reached from every other one
    assert len(grid_map.main_component) == len(
        [e for e in grid_map.edges.values() if not e.internal]
    )


@pytest.mark.sumo
def test_build_is_cached_by_content(map_cache: Path) -> None:
    first = build_network("grid", SHARED_DATA, map_cache)
    stamp = first.net_file.stat().st_mtime_ns
    again = build_network("grid", SHARED_DATA, map_cache)
    assert again.net_file == first.net_file and again.net_file.stat().st_mtime_ns == stamp


@pytest.mark.sumo
def test_lonlat_round_trip_and_grid_sits_in_san_francisco(grid_map) -> None:
    x = np.array([0.0, 1500.0, 3000.0])
    y = np.array([0.0, 1500.0, 3000.0])
    lon, lat = grid_map.projection.xy_to_lonlat(x, y)
    assert np.all((lat > 37.70) & (lat < 37.80)) and np.all((lon > -122.5) & (lon < -122.35))
    x2, y2 = grid_map.projection.lonlat_to_xy(lon, lat)
    np.testing.assert_allclose(x2, x, atol=1e-3)
    np.testing.assert_allclose(y2, y, atol=1e-3)
    # 3 km east in UTM is 3 km on the ground (scale factor ≈ 0.9996 near the central meridian)
    assert (lon[2] - lon[0]) * 111_320 * np.cos(np.radians(lat[0])) == pytest.approx(3000, rel=0.01)


@pytest.mark.sumo
def test_curb_spots_lie_on_the_right_edge_of_the_rightmost_lane(grid_map) -> None:
    curbs = grid_map.curbs
    assert len(curbs) > 1000
    for k in range(0, len(curbs), 97):
        lane = grid_map.lanes[curbs.lane_ids[k]]
        assert lane.index == 0 and 0 < curbs.pos[k] < lane.length
        # distance from the lane's centerline is half the lane width
        pts = lane.centerline
        d = np.min(np.hypot(*(pts - curbs.xy[k]).T)) if len(pts) == 2 else None
        seg = pts[1] - pts[0]
        t = np.clip(np.dot(curbs.xy[k] - pts[0], seg) / np.dot(seg, seg), 0, 1)
        dist = np.hypot(*(pts[0] + t * seg - curbs.xy[k]))
        assert dist == pytest.approx(lane.width / 2, abs=0.05), d
    idx, walk = curbs.nearest(np.array([[1500.0, 1500.0]]))
    assert walk[0] < 40.0 and curbs.edge_ids[idx[0]] in grid_map.edges


@pytest.mark.sumo
def test_routing_eta_agrees_with_the_route_it_finds(grid_map, grid_graph: RoutingGraph) -> None:
    rng = np.random.default_rng(3)
    edges = list(grid_graph.edge_ids)
    for _ in range(20):
        a, b = rng.choice(edges, 2, replace=False)
        route = grid_graph.route(a, b)
        assert route[0] == a and route[-1] == b
        # consecutive edges are joined by a turn of the map
        for u, v in itertools.pairwise(route):
            succ = {
                grid_map.lanes[s].edge_id
                for lid in grid_map.edges[u].lane_ids
                for s in grid_map.lanes[lid].successors
            }
            assert v in succ
        eta = grid_graph.eta_matrix([a], np.array([0.0]), [b], np.array([grid_map.edges[b].length]))
        expected = sum(grid_graph.travel_time[grid_graph.index[e]] for e in route)
        assert eta[0, 0] == pytest.approx(expected, rel=1e-6)


@pytest.mark.sumo
def test_a_point_behind_on_the_same_edge_means_going_round_the_block(
    grid_graph: RoutingGraph,
) -> None:
    edge = grid_graph.edge_ids[0]
    length = grid_graph.length[0]
    ahead = grid_graph.eta_matrix([edge], np.array([10.0]), [edge], np.array([length - 10]))
    behind = grid_graph.eta_matrix([edge], np.array([length - 10]), [edge], np.array([10.0]))
    assert ahead[0, 0] == pytest.approx((length - 20) / grid_graph.free_flow_speed[0], rel=1e-6)
    assert behind[0, 0] > 3 * grid_graph.travel_time[0]  # at least three more sides of a block


def test_unknown_city_and_unreadable_files_are_named_errors(
    tmp_path: Path, map_cache: Path
) -> None:
    with pytest.raises(MapBuildError, match="unknown city"):
        build_network("atlantis", SHARED_DATA, map_cache)
    with pytest.raises(DataNotFoundError, match="--data-dir"):
        build_network("sf-mission", tmp_path / "nowhere", map_cache)
    # the whole city needs both of its plain-XML files
    (tmp_path / "data" / "sf" / "city").mkdir(parents=True)
    (tmp_path / "data" / "sf" / "city" / "sf.nod.xml.gz").write_bytes(b"")
    with pytest.raises(DataNotFoundError, match=r"sf\.edg\.xml\.gz not found"):
        build_network("sf", tmp_path / "data", map_cache)
    broken = tmp_path / "broken.osm"
    broken.write_text("<osm><node id='1' lat='37.7' lon='-122.4'></osm")
    with pytest.raises(MapBuildError, match="not well-formed"):
        build_network(str(broken), SHARED_DATA, map_cache)
    not_osm = tmp_path / "other.osm.gz"
    not_osm.write_bytes(gzip.compress(b"<html><body>hi</body></html>"))
    with pytest.raises(MapBuildError, match="not an OpenStreetMap file"):
        build_network(str(not_osm), SHARED_DATA, map_cache)
    assert not list(map_cache.glob("broken*")) and not list(map_cache.glob("other*"))


@needs_data
@pytest.mark.sumo
def test_sf_mission_builds_from_openstreetmap(map_cache: Path) -> None:
    road_map = load_map(build_network("sf-mission", SHARED_DATA, map_cache))
    assert 4000 < len(road_map.drivable_edges) < 6000
    assert 120 < len(road_map.traffic_lights) < 200
    assert 450 < road_map.road_km < 650
    named = {e.name for e in road_map.drivable_edges}
    assert {"Mission Street", "Valencia Street"} <= named
    lon, lat = road_map.projection.xy_to_lonlat(
        np.array([road_map.bounds[0], road_map.bounds[2]]),
        np.array([road_map.bounds[1], road_map.bounds[3]]),
    )
    assert lat[0] == pytest.approx(37.731, abs=0.003) and lon[1] == pytest.approx(
        -122.377, abs=0.003
    )


@needs_data
@pytest.mark.sumo
def test_sf_ne_builds_from_the_matsim_network_in_metres(map_cache: Path) -> None:
    road_map = load_map(build_network("sf-ne", SHARED_DATA, map_cache))
    xmin, ymin, xmax, ymax = road_map.bounds
    # the README: about 6.5 × 7.6 km; left in US feet it would be 3.28× larger
    assert 6000 < xmax - xmin < 7200 and 7000 < ymax - ymin < 8200
    lon, lat = road_map.projection.xy_to_lonlat(np.array([xmin]), np.array([ymax]))
    assert lon[0] == pytest.approx(-122.456, abs=0.01) and lat[0] == pytest.approx(37.812, abs=0.01)


def _matsim_grid(
    path: Path, crs: str | None, x0: float, y0: float, n: int = 4, block_m: float = 200.0
) -> None:
    """A MATSim network: an n × n grid of two-way links `block_m` apart, nodes in `crs`
    (named in its attributes; None: no attributes)."""
    nodes = [
        f'<node id="n{i}_{j}" x="{x0 + j * block_m:.2f}" y="{y0 + i * block_m:.2f}"/>'
        for i in range(n)
        for j in range(n)
    ]
    links = []
    for i in range(n):
        for j in range(n):
            for di, dj in ((0, 1), (1, 0)):
                if i + di < n and j + dj < n:
                    a, b = f"n{i}_{j}", f"n{i + di}_{j + dj}"
                    for u, v in ((a, b), (b, a)):
                        links.append(
                            f'<link id="{u}-{v}" from="{u}" to="{v}" length="{block_m}" '
                            'freespeed="13.9" capacity="900" permlanes="1" modes="car"/>'
                        )
    named = (
        '<attributes><attribute name="coordinateReferenceSystem" '
        f'class="java.lang.String">{crs}</attribute></attributes>\n'
        if crs is not None
        else ""
    )
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<network>\n' + named
        + "<nodes>" + "".join(nodes) + "</nodes>\n"
        '<links capperiod="01:00:00">' + "".join(links)
        + "</links>\n</network>\n"
    )  # fmt: skip


@pytest.mark.sumo
def test_a_matsim_network_of_another_city_is_projected_in_its_own_utm_zone(
    tmp_path: Path,
) -> None:
    """Berlin's MATSim scenarios use Gauss-Krüger zone 4 (EPSG:31468): the map comes out in
    UTM 33N with true lengths, not stretched by a projection for San Francisco."""
    city = tmp_path / "berlin-network.xml"
    _matsim_grid(city, "EPSG:31468", 4_595_000.0, 5_821_000.0)
    road_map = load_map(build_network(str(city), tmp_path, tmp_path / "cache"))
    xmin, ymin, xmax, ymax = road_map.bounds
    assert xmax - xmin == pytest.approx(600.0, abs=40.0)  # junction shapes stick out
    assert ymax - ymin == pytest.approx(600.0, abs=40.0)
    lon, lat = road_map.projection.xy_to_lonlat(np.array([xmin]), np.array([ymin]))
    assert lon[0] == pytest.approx(13.39, abs=0.02) and lat[0] == pytest.approx(52.51, abs=0.02)
    lengths = [e.length for e in road_map.edges.values() if not e.edge_id.startswith(":")]
    assert np.median(lengths) == pytest.approx(200.0, rel=0.1)
    bad = tmp_path / "bad-crs.xml"
    _matsim_grid(bad, "EPSG:999999", 0.0, 0.0)
    with pytest.raises(MapBuildError, match="unknown coordinate reference system"):
        build_network(str(bad), tmp_path, tmp_path / "cache")
    # Berlin's coordinates with no CRS named (read as San Francisco's feet), or the wrong one
    unnamed = tmp_path / "berlin-no-crs.xml"
    _matsim_grid(unnamed, None, 4_595_000.0, 5_821_000.0)
    with pytest.raises(MapBuildError, match="names no coordinateReferenceSystem"):
        build_network(str(unnamed), tmp_path, tmp_path / "cache")
    wrong = tmp_path / "berlin-wrong-crs.xml"
    _matsim_grid(wrong, "EPSG:2154", 4_595_000.0, 5_821_000.0)  # France's Lambert-93
    with pytest.raises(MapBuildError, match="outside the area EPSG:2154 is made for"):
        build_network(str(wrong), tmp_path, tmp_path / "cache")


def test_a_map_read_again_is_the_one_kept_until_its_file_changes(tmp_path: Path) -> None:
    """`load_map` hands out the map it read while the file is unchanged: equal, field by
    field, to a fresh read of the file; a changed file is read again."""
    import dataclasses
    import os
    import shutil

    from fakecity import CRS, NET_FILE, OFFSET
    from robotaxi.map.build import BuiltNetwork
    from robotaxi.map.model import _read_map

    net = tmp_path / "mini.net.xml"
    shutil.copyfile(NET_FILE, net)
    built = BuiltNetwork("grid", net, CRS, OFFSET, "a copy of tests/data")
    kept = load_map(built)
    assert load_map(dataclasses.replace(built, from_cache=True, source="elsewhere")) is kept
    fresh = _read_map(built)
    assert fresh is not kept
    for f in dataclasses.fields(kept):
        if f.name not in ("lanes", "curbs"):
            assert getattr(kept, f.name) == getattr(fresh, f.name), f.name
    assert kept.lanes.keys() == fresh.lanes.keys()
    for lane_id, lane in kept.lanes.items():
        other = fresh.lanes[lane_id]
        for f in dataclasses.fields(lane):
            a, b = getattr(lane, f.name), getattr(other, f.name)
            assert np.array_equal(a, b) if f.name == "centerline" else a == b, (lane_id, f.name)
        assert not lane.centerline.flags.writeable
    for column in ("edge_ids", "lane_ids", "lane_index", "pos", "xy"):
        a, b = getattr(kept.curbs, column), getattr(fresh.curbs, column)
        assert np.array_equal(a, b), column
        assert not isinstance(a, np.ndarray) or not a.flags.writeable, column
    # the file changes (here only its time stamp): read again
    stamp = net.stat().st_mtime_ns
    os.utime(net, ns=(stamp + 1_000_000_000, stamp + 1_000_000_000))
    assert load_map(built) is not kept
    net.unlink()
    with pytest.raises(MapBuildError, match="cannot read network"):
        load_map(built)
