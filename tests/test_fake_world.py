"""FakeWorld: the `World` protocol without SUMO (cars along the routing graph at edge speeds)."""

from __future__ import annotations

import math

import pytest

from fakecity import mini_city
from robotaxi.config import FleetConfig, WorldConfig
from robotaxi.core import AgentKind, DriveTo, PullOver, Resume, WorldError
from robotaxi.world.fake import AMBULANCE_SPEED_FACTOR, FakeWorld


def _world(**world: object) -> FakeWorld:
    road_map, graph = mini_city()
    settings = {"emergency_per_hour": 0.0, "background_vehicles_per_hour_per_km2": 0.0}
    settings.update(world)
    return FakeWorld(
        road_map, graph, WorldConfig(**settings), FleetConfig(), seed=3, end_s=3600.0
    )  # fmt: skip


def _curb_on(edge_id: str) -> int:
    road_map, _ = mini_city()
    return next(i for i, e in enumerate(road_map.curbs.edge_ids) if e == edge_id)


def _far_curbs() -> tuple[int, int]:
    """Two kerb spots on different streets, far apart."""
    road_map, _ = mini_city()
    xy = road_map.curbs.xy
    a = int(((xy[:, 0] - 0) ** 2 + (xy[:, 1] - 0) ** 2).argmin())
    b = int(((xy[:, 0] - 800) ** 2 + (xy[:, 1] - 800) ** 2).argmin())
    return a, b


def _drive_to(vid: str, curb: int) -> DriveTo:
    curbs = mini_city()[0].curbs
    return DriveTo(vid, curbs.edge_ids[curb], float(curbs.pos[curb]), int(curbs.lane_index[curb]))


def test_a_robotaxi_drives_the_fastest_route_to_a_kerb_spot_and_parks_there() -> None:
    road_map, graph = mini_city()
    a, b = _far_curbs()
    with _world() as world:
        world.add_robotaxi("taxi000", a)
        first = world.snapshot()
        assert first.stopped == (True,) and first.road_ids == (road_map.curbs.edge_ids[a],)
        assert world.apply([_drive_to("taxi000", b)]) == []
        route = graph.route(road_map.curbs.edge_ids[a], road_map.curbs.edge_ids[b])
        expected_m = (
            road_map.edges[route[0]].length
            - float(road_map.curbs.pos[a])
            + sum(road_map.edges[e].length for e in route[1:-1])
            + float(road_map.curbs.pos[b])
        )
        expected_s = (
            (road_map.edges[route[0]].length - float(road_map.curbs.pos[a]))
            / road_map.edges[route[0]].speed_limit
            + sum(road_map.edges[e].free_flow_s for e in route[1:-1])
            + float(road_map.curbs.pos[b]) / road_map.edges[route[-1]].speed_limit
        )
        moving = 0
        for _ in range(int(expected_s) + 5):
            world.step()
            snap = world.snapshot()
            if not snap.stopped[0]:
                moving += 1
                assert snap.speed[0] > 0
        snap = world.snapshot()
        assert snap.stopped == (True,) and snap.speed[0] == 0.0
        assert snap.road_ids[0] == road_map.curbs.edge_ids[b]
        assert snap.lane_pos[0] == pytest.approx(float(road_map.curbs.pos[b]))
        assert snap.odometer_m[0] == pytest.approx(expected_m)
        # it took the free-flow time of its route, to the step
        assert abs(moving - expected_s) <= 1.0
        assert world.time.time_s == pytest.approx(int(expected_s) + 5)


def test_a_spot_behind_on_the_same_street_is_reached_once_round_the_block() -> None:
    road_map, graph = mini_city()
    edge = next(e for e in road_map.curbs.edge_ids if road_map.edges[e].length > 150)
    spots = [i for i, e in enumerate(road_map.curbs.edge_ids) if e == edge]
    behind, ahead = (
        min(spots, key=lambda i: road_map.curbs.pos[i]),
        max(spots, key=lambda i: road_map.curbs.pos[i]),
    )
    assert road_map.curbs.pos[ahead] - road_map.curbs.pos[behind] > 20
    with _world() as world:
        world.add_robotaxi("taxi000", ahead)
        world.apply([_drive_to("taxi000", behind)])
        for _ in range(600):
            world.step()
            if world.snapshot().stopped[0]:
                break
        snap = world.snapshot()
        assert snap.road_ids[0] == edge and snap.stopped[0]
        loop = graph.route_around(edge)
        assert loop[0] == loop[-1] == edge and len(loop) >= 4
        # it drove the whole loop, less the part of the street between the two spots
        loop_m = sum(road_map.edges[e].length for e in loop[1:])
        gap = float(road_map.curbs.pos[ahead] - road_map.curbs.pos[behind])
        assert snap.odometer_m[0] == pytest.approx(loop_m - gap)


def test_pull_over_holds_a_car_where_it_is_until_resume() -> None:
    a, b = _far_curbs()
    with _world() as world:
        world.add_robotaxi("taxi000", a)
        world.apply([_drive_to("taxi000", b)])
        for _ in range(5):
            world.step()
        world.apply([PullOver("taxi000")])
        world.step()
        held = world.snapshot()
        for _ in range(10):
            world.step()
        assert world.snapshot().odometer_m[0] == held.odometer_m[0]
        assert world.snapshot().stopped == (True,)
        world.apply([Resume("taxi000")])
        world.step()
        assert world.snapshot().odometer_m[0] > held.odometer_m[0]


def test_commands_it_cannot_carry_out_come_back_as_failures() -> None:
    a, _ = _far_curbs()
    with _world() as world:
        world.add_robotaxi("taxi000", a)
        failures = world.apply([Resume("nobody"), DriveTo("taxi000", "no-such-edge", 1.0, 0)])
        assert [f.command.vehicle_id for f in failures] == ["nobody", "taxi000"]
        assert "not a robotaxi" in failures[0].reason
        assert "not a drivable edge" in failures[1].reason
        assert world.stats.command_failures == 2


def test_ambulances_run_faster_than_their_ordinary_twin_and_show_in_the_snapshot() -> None:
    with _world(emergency_per_hour=4.0) as world:
        seen_ev = False
        for _ in range(3600 + 600):
            world.step()
            snap = world.snapshot()
            for i, kind in enumerate(snap.kinds):
                if kind == AgentKind.EMERGENCY:
                    seen_ev = True
                    assert snap.sirens[i] and snap.length[i] == pytest.approx(6.5)
        records = list(world.emergency.values())
    assert seen_ev and records
    for record in records:
        assert record.travel_s is not None and record.probe_travel_s is not None
        assert record.travel_s * AMBULANCE_SPEED_FACTOR == pytest.approx(
            record.probe_travel_s, abs=2.0
        )
        assert record.route_m >= 1500.0


def test_background_traffic_comes_and_goes_without_entering_the_snapshot() -> None:
    with _world(background_vehicles_per_hour_per_km2=600.0) as world:
        counts = []
        for _ in range(1200):
            world.step()
            counts.append(world.vehicle_count())
        assert world.snapshot().ids == ()
    assert max(counts) > 5
    assert counts[-1] < max(counts) + 1 and not math.isnan(sum(counts))


def test_the_same_seed_moves_every_car_the_same_way() -> None:
    def trace(seed: int) -> list[tuple[str, float, float]]:
        road_map, graph = mini_city()
        world = FakeWorld(
            road_map, graph, WorldConfig(emergency_per_hour=6.0), FleetConfig(),
            seed=seed, end_s=1800.0,
        )  # fmt: skip
        out = []
        with world:
            a, b = _far_curbs()
            world.add_robotaxi("taxi000", a)
            world.apply([_drive_to("taxi000", b)])
            for _ in range(1800):
                world.step()
                snap = world.snapshot()
                out += [
                    (v, float(snap.xy[i, 0]), float(snap.xy[i, 1])) for i, v in enumerate(snap.ids)
                ]
            out.append(("count", float(world.vehicle_count()), 0.0))
        return out

    assert trace(5) == trace(5)
    assert trace(5) != trace(6)


def test_stepping_before_start_is_an_error() -> None:
    with pytest.raises(WorldError, match="start"):
        _world().step()
