"""The live service (`robotaxi serve`'s city) on FakeWorld: the fleet, the rider's actions and
a car driven by our autonomy stack, all without SUMO, in seconds."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from fakecity import mini_city
from robotaxi.config import load_config
from robotaxi.core import TripState
from robotaxi.sim.live import LiveService
from robotaxi.world.fake import FakeWorld

CAR = "taxi000"  # --autonomous 1 drives the first car by id


def _live(tmp_path: Path, autonomous: int) -> LiveService:
    config = load_config(
        overrides={
            "map.city": "grid", "fleet.size": 3, "hours": 1.0, "seed": 4,
            "world.emergency_per_hour": 0.0,
        }
    )  # fmt: skip
    return LiveService(
        config, tmp_path, riders_per_hour=0.0, background_traffic=False,
        autonomous=autonomous, hearing=False, city_blocks=False,
        world=FakeWorld, city=mini_city(),
    )  # fmt: skip


def _route_m(live: LiveService, a: int, b: int) -> float:
    """Length (m) of the drive from curb spot `a` to curb spot `b` (junctions left out)."""
    curbs, edges = live.map.curbs, live.map.edges
    route = live.graph.route(curbs.edge_ids[a], curbs.edge_ids[b])
    length = sum(edges[e].length for e in route[:-1]) - curbs.pos[a] + curbs.pos[b]
    return float(length) if route and length >= 0.0 else float("inf")  # none, or behind `a`


def _trip_from(live: LiveService, vehicle_id: str) -> tuple[tuple[float, float], ...]:
    """A pick-up a little way ahead of the car on its street, a drop-off two blocks off:
    over 300 m away as the crow flies, the shortest drive of those (each simulated second
    of it runs the planner ten times)."""
    curbs = live.map.curbs
    car = live.fleet.vehicles[vehicle_id]
    ahead = [
        i
        for i in range(len(curbs))
        if curbs.edge_ids[i] == car.edge and curbs.pos[i] > car.lane_pos + 40.0
    ]
    pickup = ahead[0] if ahead else int(np.argmin(np.hypot(*(curbs.xy - car.xy).T)))
    d = np.hypot(*(curbs.xy - curbs.xy[pickup]).T)
    far = np.flatnonzero((d > 300) & (d < 450))
    dropoff = min((int(i) for i in far), key=lambda i: _route_m(live, pickup, i))
    return (
        (float(curbs.xy[pickup, 0]), float(curbs.xy[pickup, 1])),
        (float(curbs.xy[dropoff, 0]), float(curbs.xy[dropoff, 1])),
    )


def _ride(live: LiveService, vehicle_id: str) -> list[str]:
    pickup, dropoff = _trip_from(live, vehicle_id)
    view = live.request_ride("r1", "rider-1", "Kevin", pickup, dropoff)
    trip_id = view.trip_id

    def state() -> str:
        trip = live.trip(trip_id)
        assert trip is not None
        return trip.state.value

    assert live.step_until(lambda: state() == "arrived", 900), state()
    live.unlock(trip_id)
    live.board(trip_id)
    live.buckle(trip_id, True)
    live.start_ride(trip_id)
    assert live.step_until(lambda: state() == "completed", 900), state()
    trip = live.fleet.trips[trip_id]
    return [e.state.value for e in trip.events]


def test_a_ride_on_fake_world_at_fleet_fidelity(tmp_path: Path) -> None:
    with _live(tmp_path, autonomous=0) as live:
        live.step()
        states = _ride(live, CAR)
    assert states[0] == "requested" and states[-1] == "completed"
    assert {"arrived", "boarded", "started", "driving", "arrived_at_destination"} <= set(states)


def test_a_car_driven_by_the_stack_serves_a_ride_on_fake_world(tmp_path: Path) -> None:
    with _live(tmp_path, autonomous=1) as live:
        live.step()
        states = _ride(live, CAR)
        trip = live.fleet.trips["r1"]
        view = live.snapshot().autonomy[CAR]
        vehicle = live.fleet.vehicles[CAR]
    assert trip.vehicle_id == CAR and trip.state == TripState.COMPLETED
    assert states[-1] == "completed"
    assert view.driver == "autonomy" and view.behaviour
    # the stack drove it: the odometer the fleet read is our vehicle model's
    assert vehicle.km_occupied > 0.2


def test_the_kpis_over_time_count_the_ride_its_wait_and_the_cars(tmp_path: Path) -> None:
    with _live(tmp_path, autonomous=0) as live:
        live.step()
        _ride(live, CAR)
        trip = live.fleet.trips["r1"]
        requested = trip.events[0].time.time_s
        arrived = next(e for e in trip.events if e.state == TripState.ARRIVED).time.time_s
        live.step_until(lambda: False, 61.0)  # one more sample after the ride ended
        history = live.kpi_history()
        assert live.kpi_history(since_s=history[-1].time_s) == history[-1:]
    times = [k.time_s for k in history]
    assert all(59.0 <= b - a <= 61.0 for a, b in itertools.pairwise(times))
    assert len(history) >= 3
    # every car is in exactly one group at every minute
    assert all(sum(k.cars.values()) == 3 for k in history)
    assert any(k.cars["with_rider"] == 1 for k in history)
    # the one ride: requested, waited for, completed; nobody waits at the end
    last = history[-1]
    assert (last.requests, last.completed, last.cancelled, last.waiting) == (1, 1, 0, 0)
    assert all(k.waiting == (1 if requested < k.time_s < arrived else 0) for k in history)
    waits = [k.wait_p50_s for k in history if k.wait_p50_s is not None]
    assert waits == [pytest.approx(arrived - requested, abs=0.2)]
