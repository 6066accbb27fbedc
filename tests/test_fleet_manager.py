"""The fleet manager's bookkeeping on hand-built situations (no SUMO): no trip ever has two
cars, and a real rider's actions follow the life cycle."""

from __future__ import annotations

import numpy as np
import pytest

from robotaxi.config import load_config
from robotaxi.core import EvApproach, RideRequest, TimePoint, TripState
from robotaxi.fleet.manager import (
    FleetManager,
    FleetTickResult,
    RideActionError,
    VehicleStatus,
    YieldRecord,
)

pytestmark = pytest.mark.sumo  # every test runs on the grid city, which netgenerate builds


def _manager(grid_map, grid_graph, policy: str = "batch") -> FleetManager:  # type: ignore[no-untyped-def]
    config = load_config(overrides={"dispatch.policy": policy, "dispatch.rebalance": False})
    return FleetManager(
        grid_map, grid_graph, config.fleet, config.dispatch,
        demand=None, day=1, start_hour=8.0, seed=1,
    )  # fmt: skip


def _request(grid_map, rid: str, near_curb: int, far_curb: int, t: float = 0.0) -> RideRequest:  # type: ignore[no-untyped-def]
    pu, do = grid_map.curbs.xy[near_curb], grid_map.curbs.xy[far_curb]
    return RideRequest(rid, f"rider-{rid}", "Kevin", TimePoint.from_s(t), *pu, *do)


def _empty_snapshot(t: float):  # type: ignore[no-untyped-def]
    from robotaxi.core import WorldSnapshot

    z = np.zeros(0)
    return WorldSnapshot(TimePoint.from_s(t), (), (), np.zeros((0, 2)), z, z, z, z, (), z, ())


def _farthest_curb(grid_map, curb: int) -> int:  # type: ignore[no-untyped-def]
    """The curb spot farthest (straight line) from `curb`: where a car that must come a long
    way stands."""
    curbs = grid_map.curbs
    return int(np.argmax(np.hypot(*(curbs.xy - curbs.xy[curb]).T)))


def test_a_trip_taken_from_a_car_pulled_over_for_an_ambulance_releases_it(
    grid_map, grid_graph
) -> None:  # type: ignore[no-untyped-def]
    fm = _manager(grid_map, grid_graph)
    curbs = grid_map.curbs
    pickup = 500
    # the far car gets the trip first (the only car), then pulls over for an ambulance
    far = _farthest_curb(grid_map, pickup)
    fm.add_vehicle("far", far)
    out = fm.tick(_empty_snapshot(1.0), [_request(grid_map, "r1", pickup, 900)])
    trip = fm.trips["r1"]
    assert trip.vehicle_id == "far" and fm.vehicles["far"].status == VehicleStatus.TO_PICKUP
    fm.vehicles["far"].yielding = YieldRecord(
        "far", "ambulance0", TimePoint.from_s(1.0), "r1", EvApproach.BEHIND
    )
    # a car right next to the rider becomes free: batch dispatch moves the trip to it
    near = int(np.argsort(np.hypot(*(curbs.xy - curbs.xy[pickup]).T))[1])
    fm.add_vehicle("near", near)
    out = FleetTickResult()
    fm._dispatch(40.0, out)
    assert trip.vehicle_id == "near"
    holders = [v.vehicle_id for v in fm.vehicles.values() if v.trip_id == "r1"]
    assert holders == ["near"]  # never two cars on one trip
    assert fm.vehicles["far"].trip_id is None
    assert any(e.state == TripState.ASSIGNED and e.cause == "reassigned" for e in out.events)


def test_a_batch_with_no_rider_waiting_runs_only_once_a_car_came_free(
    grid_map, grid_graph, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from robotaxi.fleet import manager

    solved: list[float] = []
    real = manager.assign_nearby

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        solved.append(len(args[2]))
        return real(*args, **kwargs)

    monkeypatch.setattr(manager, "assign_nearby", counting)
    fm = _manager(grid_map, grid_graph)
    curbs = grid_map.curbs
    pickup = 500
    far = _farthest_curb(grid_map, pickup)
    fm.add_vehicle("far", far)
    fm.tick(_empty_snapshot(1.0), [_request(grid_map, "r1", pickup, 900)])
    assert fm.trips["r1"].vehicle_id == "far" and len(solved) == 1
    # batches with the car on its way, no rider waiting and no other car: nothing to solve
    for t in (20.0, 40.0, 60.0):
        fm._dispatch(t, FleetTickResult())
    assert len(solved) == 1
    # a car comes free right next to the rider: the next batch gives it the trip
    near = int(np.argsort(np.hypot(*(curbs.xy - curbs.xy[pickup]).T))[1])
    fm.add_vehicle("near", near)
    fm._dispatch(80.0, FleetTickResult())
    assert len(solved) == 2 and fm.trips["r1"].vehicle_id == "near"
    # "far", which lost the trip, is a car come free: one more batch, then none
    for t in (100.0, 120.0, 140.0):
        fm._dispatch(t, FleetTickResult())
    assert len(solved) == 3 and fm.trips["r1"].vehicle_id == "near"


def test_start_ride_needs_the_rider_boarded_and_buckled(grid_map, grid_graph) -> None:  # type: ignore[no-untyped-def]
    fm = _manager(grid_map, grid_graph, policy="nearest")
    fm.add_vehicle("taxi", 500)
    trip, events = fm.request_ride(_request(grid_map, "app1", 501, 900))
    assert [e.state for e in events] == [TripState.REQUESTED]
    fm.tick(_empty_snapshot(1.0), [])
    with pytest.raises(RideActionError, match="on board"):
        fm.start_ride("app1", 2.0)
    # the car arrives: parked at the pick-up curb
    car = fm.vehicles["taxi"]
    car.edge = grid_map.curbs.edge_ids[trip.pickup_curb]
    car.lane_pos = float(grid_map.curbs.pos[trip.pickup_curb])
    car.stopped = True
    out = FleetTickResult()
    fm._advance(car, 30.0, out)
    assert trip.state == TripState.ARRIVED
    assert out.events[-1].data["greeting"] == "Hey there, Kevin!"
    with pytest.raises(RideActionError, match="doors are locked"):
        fm.board("app1", 34.0)
    unlocked = fm.unlock("app1", 34.5)
    assert [e.kind.value for e in unlocked] == ["doors_unlocked"]
    assert fm.unlock("app1", 34.6) == []  # already unlocked: nothing new to log
    fm.board("app1", 35.0)
    with pytest.raises(RideActionError, match="seat belt"):
        fm.start_ride("app1", 36.0)
    fm.buckle("app1", True)
    events = fm.start_ride("app1", 40.0)
    assert [e.state for e in events] == [TripState.STARTED, TripState.DRIVING]
    assert events[0].data["seatbelt"] is True
    with pytest.raises(RideActionError):
        fm.cancel("app1", 41.0)  # no cancelling once the ride is under way


def test_a_car_the_world_stopped_short_of_its_spot_goes_to_one_on_another_street(
    grid_map, grid_graph
) -> None:  # type: ignore[no-untyped-def]
    """The world gave up on a car's DriveTo (held in a queue it could not leave, its street
    jammed): the car goes to the nearest spot on another street, its rider's trip kept; a
    failure of a command the car has since been given another of changes nothing."""
    from robotaxi.core import CommandFailure, DriveTo

    fm = _manager(grid_map, grid_graph)
    curbs = grid_map.curbs
    pickup = 500
    far = _farthest_curb(grid_map, pickup)
    fm.add_vehicle("taxi", far)
    out = fm.tick(_empty_snapshot(1.0), [_request(grid_map, "r1", pickup, 900)])
    (sent,) = [c for c in out.commands if isinstance(c, DriveTo)]
    car = fm.vehicles["taxi"]
    spot = car.target_curb
    assert sent.edge == curbs.edge_ids[spot]
    fm.on_command_failed(CommandFailure(sent, "held in a queue: stopped short"))
    assert car.target_curb != spot and car.trip_id == "r1"
    assert curbs.edge_ids[car.target_curb] != sent.edge
    again = car.pending_command
    assert isinstance(again, DriveTo) and again.edge == curbs.edge_ids[car.target_curb]
    # nearest of those on other streets
    gap = np.hypot(*(curbs.xy - curbs.xy[spot]).T)
    other = [i for i in np.argsort(gap) if curbs.edge_ids[i] != sent.edge]
    assert car.target_curb in other[:3]
    # the old command failing again (it was given before the new one) changes nothing
    now = car.target_curb
    fm.on_command_failed(CommandFailure(sent, "held in a queue: stopped short"))
    assert car.target_curb == now


def test_batches_keep_their_interval_on_average_whatever_the_tick(grid_map, grid_graph) -> None:  # type: ignore[no-untyped-def]
    """Batches fall on the first tick at or after each multiple of `batch_interval_s` (15 s)
    from the first: every third tick of 5 s, and with ticks of 10 s at 20, 30, 50,
    60 … s (15 s on average, not every 20 s); a tick after a long gap runs one batch."""

    def batch_times(tick_s: float, until_s: float) -> list[float]:
        fm = _manager(grid_map, grid_graph)
        times = []
        for k in range(int(until_s / tick_s) + 1):
            now = 100.0 + k * tick_s
            if fm._dispatch_due(now):
                fm._dispatch(now, FleetTickResult())
                times.append(now - 100.0)
        return times

    assert batch_times(5.0, 90.0) == [0.0, 15.0, 30.0, 45.0, 60.0, 75.0, 90.0]
    assert batch_times(1.0, 45.0) == [0.0, 15.0, 30.0, 45.0]
    assert batch_times(10.0, 120.0) == [0.0, 20.0, 30.0, 50.0, 60.0, 80.0, 90.0, 110.0, 120.0]
    fm = _manager(grid_map, grid_graph)
    fm._dispatch(0.0, FleetTickResult())
    assert not fm._dispatch_due(14.0) and fm._dispatch_due(100.0)
    fm._dispatch(100.0, FleetTickResult())  # six intervals late: one batch, then on the grid
    assert not fm._dispatch_due(104.0) and fm._dispatch_due(105.0)


def test_cars_near_a_siren_pull_over_as_the_exact_test_says_whatever_the_prefilter(
    grid_map, grid_graph
) -> None:  # type: ignore[no-untyped-def]
    """`_yield_to_emergency` looks only at the cars its box around each siren keeps
    (`_near_sirens`, all cars' rows at once): the cars that pull over are exactly those the
    per-car test (behind or head-on, within reach and the lateral band) picks over every car,
    among them cars a hair inside and outside every edge of the band."""
    import math

    from robotaxi.core import AgentKind, WorldSnapshot

    fm = _manager(grid_map, grid_graph)
    reach, lateral = fm.config.ev_yield_range_m, fm.config.ev_yield_lateral_m
    rng = np.random.default_rng(7)
    ev = np.array([1000.0, 1000.0])
    ev_heading = 0.3
    n = 400
    heading = ev_heading + rng.choice([0.0, math.pi, 0.5 * math.pi], n) + rng.normal(0, 0.2, n)
    lon = rng.uniform(-1.5 * reach, 1.5 * reach, n)
    lat = rng.uniform(-2 * lateral, 2 * lateral, n)
    # a hair inside and outside the band's and the reach's edges
    lat[:40] = np.repeat([lateral - 1e-9, lateral + 1e-9, -lateral - 1e-9, -lateral + 1e-9], 10)
    lon[40:60] = np.repeat([-reach + 1e-9, -reach - 1e-9], 10)
    # where each car stands so that the EV is `lon` ahead and `lat` left of it
    ch, sh = np.cos(heading), np.sin(heading)
    xy = ev - np.stack([lon * ch - lat * sh, lon * sh + lat * ch], axis=1)
    ids = tuple(f"car{i:03d}" for i in range(n))
    for i, vid in enumerate(ids):
        fm.add_vehicle(vid, i % len(grid_map.curbs.xy))
        fm.vehicles[vid].status = VehicleStatus.REBALANCING
    rows = n + 1
    snapshot = WorldSnapshot(
        TimePoint.from_s(10.0), (*ids, "ambulance0"),
        (AgentKind.ROBOTAXI,) * n + (AgentKind.EMERGENCY,),
        np.vstack([xy, ev]), np.append(heading, ev_heading), np.full(rows, 8.0),
        np.full(rows, 5.0), np.full(rows, 2.0), ("",) * rows, np.zeros(rows),
        (False,) * n + (True,), stopped=(False,) * rows,
    )  # fmt: skip
    fm._observe(snapshot, 10.0)
    out = FleetTickResult()
    fm._yield_to_emergency(snapshot, 10.0, out)
    pulled = {v.vehicle_id for v in fm.vehicles.values() if v.yielding is not None}
    expected = set()
    for vid in ids:
        v = fm.vehicles[vid]
        dx, dy = ev[0] - v.xy[0], ev[1] - v.xy[1]
        c, s = math.cos(v.heading), math.sin(v.heading)
        along, aside, cos = dx * c + dy * s, -dx * s + dy * c, math.cos(ev_heading - v.heading)
        if abs(aside) <= lateral and (
            (cos > 0.7 and -reach <= along < 0) or (cos < -0.7 and 0 < along <= reach)
        ):
            expected.add(vid)
    assert 20 < len(expected) < n - 20  # cars on both sides of every edge of the test
    assert pulled == expected
    assert [e.vehicle_id for e in out.vehicle_events] == sorted(expected)  # in the fleet's order
