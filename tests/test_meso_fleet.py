"""Robotaxis in SUMO's mesoscopic model (`world.meso_fleet`): a car is in SUMO only between
kerbs, stands at its spot out of SUMO, pulls over at the end of its street and goes on, and
its odometer is the length of the streets it drove (SUMO 1.28's own meso distance is about
1.8 times that). Real SUMO (meso) on the grid city."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from robotaxi.config import load_config
from robotaxi.core import ConfigError, DriveTo, MoveEgo, PullOver, Resume, WorldError
from robotaxi.metrics.fleet_kpis import fleet_kpis
from robotaxi.sim.runner import ServiceHistory, ServiceSimulation

pytestmark = pytest.mark.sumo


def _world(
    grid_map: Any, grid_graph: Any, work_dir: Path, tick_steps: int = 1, **world: Any
) -> Any:
    from robotaxi.world.sumo_world import SumoWorld

    config = load_config(
        overrides={
            "world.traffic_model": "meso", "world.emergency_per_hour": 0.0, "fleet.size": 1,
            "world.tick_steps": tick_steps,
        } | {f"world.{k}": v for k, v in world.items()}
    )  # fmt: skip
    return SumoWorld(
        grid_map, grid_graph, config.world, config.fleet,
        seed=3, end_s=3600.0, work_dir=work_dir, background=False,
    )  # fmt: skip


def _far_curb(grid_map: Any) -> int:
    curbs = grid_map.curbs
    return int(np.argmax(np.hypot(*(curbs.xy - curbs.xy[0]).T)))


def _way_m(grid_map: Any, route: tuple[str, ...], start: int, end: int) -> float:
    """Metres along `route` from curb spot `start` (on its first street) to `end` (on its
    last)."""
    curbs = grid_map.curbs
    edges_m = sum(grid_map.edges[e].length for e in route[:-1])
    return edges_m - float(curbs.pos[start]) + float(curbs.pos[end])


def _row(world: Any, vid: str = "taxi0") -> tuple[str, float, bool, float]:
    snap = world.snapshot()
    i = snap.ids.index(vid)
    return snap.road_ids[i], float(snap.lane_pos[i]), snap.stopped[i], float(snap.odometer_m[i])


def _until_stopped(world: Any, limit_s: float = 1500.0) -> tuple[str, float, bool, float]:
    moved = False
    for _ in range(int(limit_s)):
        world.step()
        row = _row(world)
        moved = moved or not row[2]
        if moved and row[2]:
            return row
    raise AssertionError("the car never stopped")


def test_a_car_drives_between_kerbs_and_its_odometer_is_the_way_it_drove(
    grid_map: Any, grid_graph: Any, tmp_path: Path
) -> None:
    import libsumo

    curbs, far = grid_map.curbs, _far_curb(grid_map)
    with _world(grid_map, grid_graph, tmp_path) as world:
        world.add_robotaxi("taxi0", 0)
        world.step()
        edge, pos, stopped, odo = _row(world)
        assert (edge, stopped, odo) == (curbs.edge_ids[0], True, 0.0)
        assert pos == pytest.approx(float(curbs.pos[0]))
        assert "taxi0" not in libsumo.vehicle.getIDList()  # at the kerb: out of SUMO
        target = DriveTo("taxi0", curbs.edge_ids[far], float(curbs.pos[far]), 0)
        assert not world.apply([target])
        world.step()
        route = libsumo.vehicle.getRoute("taxi0")
        assert route[0] == curbs.edge_ids[0] and route[-1] == curbs.edge_ids[far]
        # the routing graph's way (a fastest one: the grid has many of the same time)
        fastest = grid_graph.route(curbs.edge_ids[0], curbs.edge_ids[far])
        time_of = [float(grid_graph.travel_time[grid_graph.index[e]]) for e in route]
        fastest_time = [float(grid_graph.travel_time[grid_graph.index[e]]) for e in fastest]
        assert sum(time_of[1:]) == pytest.approx(sum(fastest_time[1:]))
        for _ in range(30):  # driving: the snapshot's row is what SUMO says this step
            world.step()
            snap = world.snapshot()
            i = snap.ids.index("taxi0")
            assert tuple(snap.xy[i]) == pytest.approx(libsumo.vehicle.getPosition("taxi0"))
            assert snap.speed[i] == libsumo.vehicle.getSpeed("taxi0")
            assert snap.road_ids[i] == libsumo.vehicle.getRoadID("taxi0")
        edge, pos, stopped, odo = _until_stopped(world)
        assert (edge, stopped) == (curbs.edge_ids[far], True)
        assert pos == pytest.approx(float(curbs.pos[far]))
        assert "taxi0" not in libsumo.vehicle.getIDList()
        assert odo == pytest.approx(_way_m(grid_map, route, 0, far), rel=0.01)


def test_a_tick_of_several_steps_keeps_the_odometer_and_the_clock(
    grid_map: Any, grid_graph: Any, tmp_path: Path
) -> None:
    """Read every 10 s (10 SUMO steps a tick), a car moves on between two reads and
    arrives between two: its odometer is still the length of its way, and the world's
    clock moves a tick at a time."""
    import libsumo

    curbs, far = grid_map.curbs, _far_curb(grid_map)
    with _world(grid_map, grid_graph, tmp_path, tick_steps=10) as world:
        world.add_robotaxi("taxi0", 0)
        world.step()
        assert world.time.time_s == pytest.approx(10.0)
        world.apply([DriveTo("taxi0", curbs.edge_ids[far], float(curbs.pos[far]), 0)])
        world.step()
        route = libsumo.vehicle.getRoute("taxi0")
        assert world.time.time_s == pytest.approx(20.0)
        edge, _pos, stopped, odo = _until_stopped(world, 150.0)
        assert (edge, stopped) == (curbs.edge_ids[far], True)
        assert world.time.time_s % 10.0 == pytest.approx(0.0)
        assert odo == pytest.approx(_way_m(grid_map, route, 0, far), rel=0.01)


def test_a_car_that_arrives_on_a_street_it_was_never_read_on_stands_at_its_target(
    grid_map: Any, grid_graph: Any, tmp_path: Path
) -> None:
    """With 10 SUMO steps a tick, a car whose spot lies near the start of its last street
    enters that street and arrives between two reads: it stands at its target, not at the
    end of the street it was last read on (a day of 5-s ticks left 373 rides unfinished so)."""
    curbs = grid_map.curbs
    dist = np.hypot(*(curbs.xy - curbs.xy[0]).T)
    near_start = np.flatnonzero((curbs.pos < 30.0) & (dist > 600.0))[:3]
    assert len(near_start) == 3
    with _world(grid_map, grid_graph, tmp_path, tick_steps=10) as world:
        world.add_robotaxi("taxi0", 0)
        world.step()
        for target in near_start.tolist():
            edge, pos = curbs.edge_ids[target], float(curbs.pos[target])
            world.apply([DriveTo("taxi0", edge, pos, 0)])
            assert _until_stopped(world, 300.0)[:3] == (edge, pytest.approx(pos), True)


def test_ticks_of_several_steps_need_meso() -> None:
    with pytest.raises(ConfigError, match="tick_steps 5 needs the mesoscopic traffic model"):
        load_config(overrides={"world.tick_steps": 5})
    meso = load_config(overrides={"world.tick_steps": 3, "world.traffic_model": "meso"})
    assert meso.world.tick_s == 3.0
    assert load_config(overrides={"world.traffic_model": "meso"}).world.tick_steps == 5


def test_a_car_sent_elsewhere_before_it_enters_sumo_goes_there(
    grid_map: Any, grid_graph: Any, tmp_path: Path
) -> None:
    """A car sent off waits for room to enter SUMO (a jammed street): a new target then
    must not fail (it did, every tick, in a jammed morning: 214,237 failed commands)."""
    import libsumo

    curbs, far = grid_map.curbs, _far_curb(grid_map)
    mid = len(curbs.edge_ids) // 2
    with _world(grid_map, grid_graph, tmp_path) as world:
        world.add_robotaxi("taxi0", 0)
        world.step()
        assert not world.apply([DriveTo("taxi0", curbs.edge_ids[far], float(curbs.pos[far]), 0)])
        assert libsumo.vehicle.getRoadID("taxi0") == ""  # not in SUMO yet
        # read while it waits: SUMO reports it on no street; it stands at its spot
        assert _row(world)[:3] == (curbs.edge_ids[0], pytest.approx(float(curbs.pos[0])), True)
        again = DriveTo("taxi0", curbs.edge_ids[mid], float(curbs.pos[mid]), 0)
        assert world.apply([again]) == []
        edge, pos, stopped, _odo = _until_stopped(world)
        assert (edge, stopped) == (curbs.edge_ids[mid], True)
        assert pos == pytest.approx(float(curbs.pos[mid]))


def test_pull_over_stands_at_the_end_of_the_street_and_resume_goes_on(
    grid_map: Any, grid_graph: Any, tmp_path: Path
) -> None:
    import libsumo

    curbs, far = grid_map.curbs, _far_curb(grid_map)
    with _world(grid_map, grid_graph, tmp_path) as world:
        world.add_robotaxi("taxi0", 0)
        world.step()
        world.apply([DriveTo("taxi0", curbs.edge_ids[far], float(curbs.pos[far]), 0)])
        for _ in range(60):
            world.step()
        assert not _row(world)[2]  # on its way
        route = libsumo.vehicle.getRoute("taxi0")
        assert not world.apply([PullOver("taxi0")])
        edge, pos, stopped, _ = _until_stopped(world, 120.0)
        assert edge in route and edge != curbs.edge_ids[far]
        assert pos == pytest.approx(grid_map.curb_lane(edge).length - 1.0)
        assert "taxi0" not in libsumo.vehicle.getIDList()
        assert not world.apply([Resume("taxi0")])
        edge, pos, stopped, _ = _until_stopped(world)
        assert (edge, stopped) == (curbs.edge_ids[far], True)


@pytest.mark.parametrize("blocked", [False, True])
def test_the_last_stretch_to_the_spot_takes_the_street_s_time(
    grid_map: Any, grid_graph: Any, tmp_path: Path, blocked: bool
) -> None:
    """SUMO lets a robotaxi arrive as it enters its target street; it then drives the
    stretch to its spot at the street's speed (free: its limit), and stands there. On a
    street whose cars stand (stopped near its start, in the car's way: SUMO's queue would
    hold it there and, in the end, teleport it) it edges along at walking pace."""
    import libsumo

    from robotaxi.world.meso_fleet import LAST_STRETCH_MIN_MPS

    curbs, far = grid_map.curbs, _far_curb(grid_map)
    target, pos = curbs.edge_ids[far], float(curbs.pos[far])
    lane = grid_map.curb_lane(target)
    assert pos > 0.5 * lane.length  # a spot well along its street
    with _world(grid_map, grid_graph, tmp_path) as world:
        world.add_robotaxi("taxi0", 0)
        world.step()
        if blocked:
            libsumo.route.add("blocked", [target])
            for k in range(12):
                libsumo.vehicle.add(f"stopped{k}", "blocked", typeID="car", departPos="1")
                libsumo.vehicle.setStop(f"stopped{k}", target, pos=5.0, duration=9e3)
        world.apply([DriveTo("taxi0", target, pos, 0)])
        entered = None
        for _ in range(1800):
            world.step()
            edge, along, stopped, _ = _row(world)
            if edge == target and entered is None:
                entered = libsumo.simulation.getTime()
                assert not stopped and along == pytest.approx(pos)  # on its way to the spot
            if stopped and entered is not None:
                break
        took = libsumo.simulation.getTime() - entered
    assert (edge, along, stopped) == (target, pytest.approx(pos), True)
    expected = pos / (LAST_STRETCH_MIN_MPS if blocked else lane.speed_limit)
    assert expected - 1.0 <= took <= expected + 1.0
    assert world.stats.robotaxi_teleports == 0


def _held_at_a_closed_street(
    grid_map: Any, grid_graph: Any, work_dir: Path, route_around_jams: bool
) -> tuple[Any, list[Any], str, tuple[str, ...], Any]:
    """taxi0 sent across town; the street halfway along its route then lets no car in (its
    lanes closed: a queue that never moves, which the routing graph does not know of).
    SUMO teleports a car held 120 s. Returns the world (closed), the failures `apply`
    returned, the closed street, the route and taxi0's last row (None: not in the world)."""
    import libsumo

    curbs, far = grid_map.curbs, _far_curb(grid_map)
    failures: list[Any] = []
    world = _world(
        grid_map, grid_graph, work_dir, teleport_time_s=120.0, stuck_reroute_s=20.0,
        route_around_jams=route_around_jams,
    )  # fmt: skip
    with world:
        world.add_robotaxi("taxi0", 0)
        world.step()
        failures += world.apply([DriveTo("taxi0", curbs.edge_ids[far], float(curbs.pos[far]), 0)])
        world.step()
        route = tuple(libsumo.vehicle.getRoute("taxi0"))
        closed = route[len(route) // 2]
        for k in range(len(grid_map.edges[closed].lane_ids)):
            libsumo.lane.setDisallowed(f"{closed}_{k}", ["all"])
        for _ in range(900):  # the runner's tick: step, read, commands
            world.step()
            world.snapshot()
            failures += world.apply([])
        row = _row(world) if "taxi0" in world.snapshot().ids else None
    return world, failures, closed, route, row


def test_a_car_held_in_a_queue_stops_short_rather_than_be_teleported(
    grid_map: Any, grid_graph: Any, tmp_path: Path
) -> None:
    """Rerouting cannot help (the routing graph still sends the car that way): once SUMO has
    held it 100 s, two checks before its 120 s, its leg ends at the end of the street it
    waits on, it stands there, and its DriveTo comes back as failed so that the fleet sends
    it elsewhere."""
    curbs, far = grid_map.curbs, _far_curb(grid_map)
    world, failures, closed, route, row = _held_at_a_closed_street(
        grid_map, grid_graph, tmp_path / "held", True
    )
    before = route[route.index(closed) - 1]
    assert world.stats.stuck_reroutes >= 1 and world.stats.held_short == 1
    assert [f.command for f in failures] == [
        DriveTo("taxi0", curbs.edge_ids[far], float(curbs.pos[far]), 0)
    ]
    assert "held in a queue" in failures[0].reason
    edge, pos, stopped, _ = row
    assert (edge, stopped) == (before, True)
    assert pos == pytest.approx(grid_map.curb_lane(before).length - 1.0)
    assert world.stats.robotaxi_teleports == 0


def test_without_the_stuck_checks_sumo_teleports_the_same_car(
    grid_map: Any, grid_graph: Any, tmp_path: Path
) -> None:
    world, failures, _, _, _ = _held_at_a_closed_street(
        grid_map, grid_graph, tmp_path / "teleported", False
    )
    assert not failures and world.stats.held_short == 0
    assert world.stats.robotaxi_teleports == 1


def test_cars_our_stack_drives_are_refused_in_meso(
    grid_map: Any, grid_graph: Any, tmp_path: Path
) -> None:
    with _world(grid_map, grid_graph, tmp_path) as world:
        world.add_robotaxi("taxi0", 0)
        failed = world.apply([MoveEgo("taxi0", 0.0, 0.0, 0.0, 0.0)])
        assert len(failed) == 1 and "micro" in failed[0].reason
        with pytest.raises(WorldError, match="micro"):
            world.add_ego("ego", [grid_map.curbs.edge_ids[0]], depart_pos=1.0, lane=0)


def test_clearing_the_way_asked_for_in_meso_is_refused() -> None:
    meso = {"world.traffic_model": "meso"}
    assert not load_config(overrides=meso).world.clear_way_for_emergency  # off by itself
    with pytest.raises(ConfigError, match="clear_way_for_emergency needs the microscopic"):
        load_config(overrides=meso | {"world.clear_way_for_emergency": True})


def _meso_grid_run(map_cache: Path, work: Path, hours: float = 20 / 60) -> ServiceHistory:
    config = load_config(
        overrides={
            "map.city": "grid", "map.cache_dir": str(map_cache), "fleet.size": 20,
            "hours": hours, "seed": 7, "world.emergency_per_hour": 6.0,
            "demand.requests_per_hour": 120.0, "world.traffic_model": "meso",
        }
    )  # fmt: skip
    return ServiceSimulation(config, work).run()


@pytest.fixture(scope="module")
def meso_run(map_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> ServiceHistory:
    return _meso_grid_run(map_cache, tmp_path_factory.mktemp("meso-run"))


def test_the_service_runs_in_meso(meso_run: ServiceHistory) -> None:
    kpis = fleet_kpis(meso_run)
    assert kpis["requests"] >= 30
    assert kpis["served_pct"] > 90.0, kpis
    # the odometer follows the streets: rides are about as long as their fastest routes
    # (SUMO's own meso distance is ~1.8×). A ride may be shorter than the route that is
    # fastest when it arrives (travel times change on the way): one here is 0.75 of it
    assert 0.95 <= kpis["detour_ratio_mean"] < 1.3, kpis["detour_ratio_mean"]
    assert kpis["robotaxi_teleports"] == 0
    assert any(y.stopped_at is not None and y.resumed_at is not None for y in meso_run.yields)


def test_the_same_seed_gives_the_same_meso_service(
    meso_run: ServiceHistory, map_cache: Path, tmp_path: Path
) -> None:
    again = _meso_grid_run(map_cache, tmp_path)

    def log(history: ServiceHistory) -> list[tuple[str, str, int, str | None]]:
        return [
            (trip_id, e.state.value, e.time.time_us, e.vehicle_id)
            for trip_id, trip in sorted(history.trips.items())
            for e in trip.events
        ]

    assert len(log(meso_run)) > 100
    assert log(again) == log(meso_run)


def _service_state(history: ServiceHistory) -> tuple[object, ...]:
    """Everything a run's results are made of: every trip event (with its data), the KPIs
    (energy and utilisation among them), every car's km and hours, the yields."""
    kpis = fleet_kpis(history)
    return (
        [
            (t, e.state.value, e.time.time_us, e.vehicle_id, sorted(e.data.items()))
            for t, trip in sorted(history.trips.items())
            for e in trip.events
        ],
        {k: v for k, v in kpis.items() if "wall" not in k and "real_time" not in k},
        history.vehicles,
        [
            (y.vehicle_id, y.ev_id, y.in_range_at, y.stopped_at, y.resumed_at)
            for y in history.yields
        ],
    )


class _Everyone(set[str]):
    """A set that holds every car and never lets one go: the tick's spot check then looks at
    every idle car every tick, as it did before it kept the cars whose spot was taken."""

    def __contains__(self, item: object) -> bool:
        return True

    def __bool__(self) -> bool:
        return True

    def discard(self, item: object) -> None:
        pass


def _reference_update(self: Any, results: dict[str, Any]) -> Any:
    """`MesoFleet.update` as it was: each reported row through `report` and `write`."""
    now_driving = set()
    for vid, row in results.items():
        if vid in self.table.slot:
            self.table.write(vid, self.report(vid, row))
            now_driving.add(vid)
    for vid in self._driving - now_driving:
        self.table.write(vid, self.report(vid, None))
    self._driving = now_driving
    self.finish_last_stretches()
    return self.table


def _subscribed_read(self: Any) -> dict[str, Any]:
    """`MesoFleet.read` through subscriptions, as the cars in SUMO were read before."""
    import libsumo

    from robotaxi.world.meso_fleet import MESO_CAR_VARS

    subscribed = libsumo.vehicle.getAllSubscriptionResults()
    for vid in self._in_sumo:
        if vid not in subscribed:
            with contextlib.suppress(libsumo.TraCIException):  # it arrived this step
                libsumo.vehicle.subscribe(vid, MESO_CAR_VARS)
    results = libsumo.vehicle.getAllSubscriptionResults()
    return {vid: results[vid] for vid in self._in_sumo if results.get(vid)}


def _reference_consume(
    self: Any,
    slots: Any,
    distance_m: Any,
    parked: Any,
    trip_of: Any,
    duration_s: float,
    now_s: float,
) -> list[Any]:
    """`FleetCharging.consume_slots` as one `consume` per car, the plain arithmetic."""
    ids = {self.batteries.slot(v): v for v in self.batteries.cars}
    out = []
    for k, slot in enumerate(slots.tolist()):
        empty = self.consume(
            ids[slot], float(distance_m[k]), duration_s, parked=bool(parked[k]), now_s=now_s,
            trip_id=trip_of(k),
        )  # fmt: skip
        if empty is not None:
            out.append(empty)
    return out


def test_the_tick_s_shortcuts_change_nothing(
    meso_run: ServiceHistory, map_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fleet tick skips work for a large fleet: the rows that equal the last tick's
    (cars standing at kerbs), the spot check of idle cars that still hold their spot, the
    battery loop (array operations), the search for each ride's length (a bound stands in
    until a battery check needs more); the world reads its driving cars with getters, not
    subscriptions, and writes their rows straight into its table. With every shortcut
    undone the run is the same: every event, every battery, every car's hours."""
    from robotaxi.fleet.charging import FleetCharging
    from robotaxi.fleet.manager import FleetManager
    from robotaxi.world.meso_fleet import MesoFleet

    monkeypatch.setattr(FleetManager, "_unchanged_rows", lambda self, snap: [False] * len(snap.ids))
    init = FleetManager.__init__

    def everyone(self: FleetManager, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self._spot_lost = _Everyone()

    monkeypatch.setattr(FleetManager, "__init__", everyone)
    monkeypatch.setattr(MesoFleet, "update", _reference_update)
    monkeypatch.setattr(MesoFleet, "read", _subscribed_read)
    monkeypatch.setattr(FleetCharging, "consume_slots", _reference_consume)
    monkeypatch.setattr(FleetManager, "_note_ride", _ride_searched_at_request)
    full = _meso_grid_run(map_cache, tmp_path)
    assert _service_state(full) == _service_state(meso_run)


def _ride_searched_at_request(self: Any, trip: Any) -> None:
    """The battery check's ride length searched when the trip is requested (no bound)."""
    self._ride_m[trip.trip_id] = self._direct_m(trip)


def test_a_battery_check_refused_on_the_bound_asks_for_the_ride_s_length(
    meso_run: ServiceHistory, map_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The battery check reads a bound on each ride's length; a pair it refuses on a bound
    is checked again on the ride's length, by the travel times of its request. With no bound
    worth having (every pair refused on it, so every ride searched, later) the run is the
    same: every event, every battery, every car's hours."""
    from robotaxi.fleet.manager import FleetManager
    from robotaxi.map import RoutingGraph

    def no_bound(self: RoutingGraph, a: str, b: str, *weights: Any) -> float:
        return float("inf")

    monkeypatch.setattr(RoutingGraph, "route_length_upper_m", no_bound)
    monkeypatch.setattr(RoutingGraph, "route_length_bound_m", no_bound)
    searched: list[str] = []
    length = FleetManager._ride_length

    def counted(self: FleetManager, trip: Any) -> float:
        searched.append(trip.trip_id)
        return length(self, trip)

    monkeypatch.setattr(FleetManager, "_ride_length", counted)
    late = _meso_grid_run(map_cache, tmp_path)
    assert _service_state(late) == _service_state(meso_run)
    assert len(set(searched)) >= 20  # the check went the long way for most rides


def test_a_car_whose_spot_was_taken_is_known(
    map_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The invariant the tick's spot check rests on, after every tick of a run: a car with
    a target curb holds it, or is among the cars whose spot was taken (`_spot_lost`)."""
    from robotaxi.fleet.manager import FleetManager

    tick, checked = FleetManager.tick, []

    def checked_tick(self: FleetManager, *args: Any, **kwargs: Any) -> Any:
        out = tick(self, *args, **kwargs)
        for v in self.vehicles.values():
            if v.target_curb is not None and v.vehicle_id not in self._spot_lost:
                assert self._holder.get(v.target_curb) == v.vehicle_id, v
        checked.append(len(self._spot_lost))
        return out

    monkeypatch.setattr(FleetManager, "tick", checked_tick)
    _meso_grid_run(map_cache, tmp_path, hours=10 / 60)
    assert len(checked) >= 120  # every tick (5 s in meso) of the 10-min window, at least
