"""Robotaxis route by the travel times SUMO measured, not by speed limits: a street where
traffic stands still is left out of the next route it plans. Runs SUMO on the grid city: a
street on a robotaxi's fastest way is blocked (a car held still on every lane) for four
minutes; the car, then sent across town, drives around it — and with `route_around_jams`
off, the same command sends it into the blocked street."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from robotaxi.config import load_config
from robotaxi.core import DriveTo

pytestmark = pytest.mark.sumo


def _world(grid_map: Any, grid_graph: Any, work_dir: Path, **world: Any) -> Any:
    """A SUMO world on the grid city with one robotaxi ("taxi0") parked at curb 0."""
    from robotaxi.world.sumo_world import SumoWorld

    overrides = {"world.emergency_per_hour": 0.0, "fleet.size": 1}
    config = load_config(overrides=overrides | {f"world.{k}": v for k, v in world.items()})
    return SumoWorld(
        grid_map, grid_graph, config.world, config.fleet,
        seed=3, end_s=1200.0, work_dir=work_dir, background=False,
    )  # fmt: skip


def _far_curb(grid_map: Any) -> int:
    curbs = grid_map.curbs
    return int(np.argmax(np.hypot(*(curbs.xy - curbs.xy[0]).T)))


def _sent_across_town(world: Any, grid_map: Any) -> tuple[str, ...]:
    """Robotaxi "taxi0", parked at curb 0, sent to the farthest curb: the route SUMO gave it."""
    import libsumo

    curbs, far = grid_map.curbs, _far_curb(grid_map)
    world.add_robotaxi("taxi0", 0)
    world.step()
    assert not world.apply([DriveTo("taxi0", curbs.edge_ids[far], float(curbs.pos[far]), 0)])
    world.step()
    return tuple(libsumo.vehicle.getRoute("taxi0"))


def _block(grid_map: Any, edge: str, pos: str) -> None:
    """A car held still (not parked: SUMO counts it in the jam) on every lane of `edge`."""
    import libsumo

    libsumo.route.add("blocked", [edge])
    for k in range(len(grid_map.edges[edge].lane_ids)):
        vid = f"stalled{k}"
        libsumo.vehicle.add(
            vid, "blocked", typeID="car", departLane=str(k), departPos=pos, departSpeed="0"
        )
        libsumo.vehicle.setSpeed(vid, 0.0)


def _stop_cars_on(grid_map: Any, edge: str) -> None:
    """Cars stopped on every lane of `edge` near its start (a stop, not a jam: SUMO never
    teleports them, so the queue behind them is what it must clear)."""
    import libsumo

    libsumo.route.add("blocked", [edge])
    for k in range(len(grid_map.edges[edge].lane_ids)):
        libsumo.vehicle.add(
            f"stopped{k}", "blocked", typeID="car", departLane=str(k), departPos="3",
            departSpeed="0",
        )  # fmt: skip
        libsumo.vehicle.setStop(f"stopped{k}", edge, pos=5.0, laneIndex=k, duration=9e3)


def _route_after_a_jam(
    grid_map: Any, grid_graph: Any, work_dir: Path, route_around_jams: bool
) -> tuple[str, tuple[str, ...]]:
    import libsumo

    world = _world(grid_map, grid_graph, work_dir, route_around_jams=route_around_jams)
    curbs, far = grid_map.curbs, _far_curb(grid_map)
    with world:
        world.add_robotaxi("taxi0", 0)
        world.step()
        fastest = libsumo.simulation.findRoute(curbs.edge_ids[0], curbs.edge_ids[far]).edges
        blocked = fastest[len(fastest) // 2]
        length = grid_map.lanes[grid_map.edges[blocked].lane_ids[0]].length
        _block(grid_map, blocked, f"{length / 2:.1f}")
        for _ in range(240):  # four minutes of a street that does not move
            world.step()
        assert not world.apply([DriveTo("taxi0", curbs.edge_ids[far], float(curbs.pos[far]), 0)])
        world.step()
        route = libsumo.vehicle.getRoute("taxi0")
    return blocked, route


def test_a_robotaxi_drives_around_a_street_that_stands_still(
    grid_map, grid_graph, tmp_path: Path
) -> None:
    blocked, route = _route_after_a_jam(grid_map, grid_graph, tmp_path / "on", True)
    assert blocked not in route
    assert route[-1] != route[0]  # it does go somewhere


def test_without_measured_times_the_same_car_drives_into_it(
    grid_map, grid_graph, tmp_path: Path
) -> None:
    blocked, route = _route_after_a_jam(grid_map, grid_graph, tmp_path / "off", False)
    assert blocked in route


def test_a_robotaxi_held_in_a_queue_finds_another_way(grid_map, grid_graph, tmp_path: Path) -> None:
    """The street ahead is blocked at its entrance after the car planned its route: it waits
    at the junction, then turns another way instead of waiting to be teleported."""
    import libsumo

    # the stalled cars stay put (SUMO would teleport them after its default 300 s)
    world = _world(grid_map, grid_graph, tmp_path, teleport_time_s=3600)
    with world:
        route = _sent_across_town(world, grid_map)
        blocked = route[len(route) // 2]
        _block(grid_map, blocked, "3")
        passed = False
        for _ in range(900):
            world.step()
            if libsumo.vehicle.getRoadID("taxi0") == route[-1]:
                passed = True
                break
        assert world.stats.stuck_reroutes >= 1
        assert blocked not in libsumo.vehicle.getRoute("taxi0")
        assert passed and world.stats.robotaxi_teleports == 0


def test_a_robotaxi_teleport_says_where_and_sumo_says_why(
    grid_map, grid_graph, tmp_path: Path
) -> None:
    """Without rerouting out of queues, a car held behind a blocked street is teleported by
    SUMO (here after 30 s): the run records the car and the street it stood on, and SUMO's
    statistics give the cause of every teleport."""

    world = _world(grid_map, grid_graph, tmp_path, teleport_time_s=30, route_around_jams=False)
    with world:
        route = _sent_across_town(world, grid_map)
        blocked = route[len(route) // 2]
        _stop_cars_on(grid_map, blocked)
        for _ in range(600):
            world.snapshot()
            world.step()
            if world.stats.robotaxi_teleports:
                break
    assert world.stats.robotaxi_teleports == 1
    at_s, vid, place = world.stats.robotaxi_teleport_places[0]
    before = route[route.index(blocked) - 1]
    assert vid == "taxi0" and place == f"{grid_map.edges[before].name} ({before})"
    assert at_s > 30.0
    causes = world.stats.teleports_by_cause
    assert set(causes) == {"jam", "yield", "wrong_lane"}
    assert sum(causes.values()) == world.stats.teleports >= 1


def test_a_robotaxi_held_before_its_blocked_target_street_parks_rather_than_be_teleported(
    grid_map, grid_graph, tmp_path: Path
) -> None:
    """Cars stopped across the entrance of the car's target street: no reroute helps (every
    way ends there). Once SUMO has held it 100 s, two checks before its 120 s, it parks off
    the lane where it stands; its DriveTo comes back as failed (the fleet sends it to a spot
    on another street) and SUMO teleports nothing of ours."""
    import libsumo

    world = _world(grid_map, grid_graph, tmp_path, teleport_time_s=120, stuck_reroute_s=20)
    failures: list[Any] = []
    with world:
        route = _sent_across_town(world, grid_map)
        target = route[-1]
        _stop_cars_on(grid_map, target)
        for _ in range(900):  # the runner's tick: step, read, commands
            world.step()
            world.snapshot()
            failures += world.apply([])
        here = libsumo.vehicle.getRoadID("taxi0")
        parked = libsumo.vehicle.getStopState("taxi0") & 2
    assert world.stats.held_short == 1
    assert [(f.command.vehicle_id, f.command.edge) for f in failures] == [("taxi0", target)]
    assert isinstance(failures[0].command, DriveTo) and "held in a queue" in failures[0].reason
    assert here != target and here in route and parked
    assert world.stats.robotaxi_teleports == 0


def test_a_held_robotaxi_inside_a_junction_does_not_park_there(
    grid_map, grid_graph, tmp_path: Path
) -> None:
    """A car parked inside a junction would stay in it, in every foe's way, and its hold would
    keep SUMO from clearing it: held there, it keeps its leg (SUMO may teleport it)."""
    import libsumo

    world = _world(grid_map, grid_graph, tmp_path)
    with world:
        _sent_across_town(world, grid_map)
        for _ in range(600):
            world.step()
            if libsumo.vehicle.getRoadID("taxi0").startswith(":"):
                break
        assert libsumo.vehicle.getRoadID("taxi0").startswith(":")

        def stops() -> list[tuple[str, float, int]]:
            return [(s.lane, s.endPos, s.stopFlags) for s in libsumo.vehicle.getStops("taxi0")]

        before = stops()
        world._park_short("taxi0", 290.0)
        assert world.stats.held_short == 0 and not world.apply([])
        assert stops() == before and before


def test_in_micro_a_car_blocking_a_junction_for_a_minute_no_longer_holds_its_foes() -> None:
    # (measured on all of SF, micro, 07:00–07:30, four seeds: the cars left standing inside
    # the Market / Castro junction clusters were most robotaxi teleports; README)
    from robotaxi.world.sumo_world import sumo_command

    def command(**world: Any) -> list[str]:
        config = load_config(overrides={f"world.{k}": v for k, v in world.items()})
        return sumo_command(Path("city.net.xml"), Path("types.add.xml"), [], config.world, 1,
                            end_s=60.0)  # fmt: skip

    micro = command()
    assert micro[micro.index("--ignore-junction-blocker") + 1] == "60"
    # meso has no junction interiors to block; -1 keeps SUMO's default (always blocks)
    assert "--ignore-junction-blocker" not in command(traffic_model="meso")
    assert "--ignore-junction-blocker" not in command(junction_blocker_s=-1)


def test_a_robotaxi_held_on_a_connector_too_short_to_park_turns_another_way(
    grid_map, grid_graph, tmp_path: Path
) -> None:
    """Held where it cannot park (here: every street counts as too short), a car whose next
    street does not move takes another way out of the junction and still drives to the same
    kerb; on its target street there is no other way, and nothing changes."""
    import libsumo

    from robotaxi.world import sumo_world

    world = _world(grid_map, grid_graph, tmp_path)
    with world, pytest.MonkeyPatch.context() as mp:
        mp.setattr(sumo_world, "_PARK_LANE_CARS", 1e6)  # no street is long enough to park on
        route = _sent_across_town(world, grid_map)
        target = route[-1]
        while libsumo.vehicle.getRouteIndex("taxi0") < 1 or libsumo.vehicle.getRoadID(
            "taxi0"
        ).startswith(":"):
            world.step()
        here, index = libsumo.vehicle.getRoadID("taxi0"), libsumo.vehicle.getRouteIndex("taxi0")
        blocked = route[index + 1]
        assert blocked != target
        _stop_cars_on(grid_map, blocked)
        stops = [(s.lane, s.endPos) for s in libsumo.vehicle.getStops("taxi0")]
        world._park_short("taxi0", 290.0)
        new = libsumo.vehicle.getRoute("taxi0")
        now = libsumo.vehicle.getRouteIndex("taxi0")
        assert new[now] == here and new[now + 1] != blocked and new[-1] == target
        assert [(s.lane, s.endPos) for s in libsumo.vehicle.getStops("taxi0")] == stops
        assert world.stats.turned_elsewhere == 1 and world.stats.held_short == 0
        for _ in range(900):
            world.step()
            if libsumo.vehicle.getStopState("taxi0") & 1:
                break
        assert libsumo.vehicle.getRoadID("taxi0") == target  # at its kerb, not through it
        assert blocked not in libsumo.vehicle.getRoute("taxi0")
        world._park_short("taxi0", 290.0)  # on its target street: nothing else to do
        assert world.stats.turned_elsewhere == 1
