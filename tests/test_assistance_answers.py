"""Operators' answers to a stuck car, on FakeWorld (without SUMO): "another way" for a car our
own stack drives (it plans its lane route again without the blocked street and drives around
it, or refuses and says why, as `SumoWorld` does for the cars SUMO drives); "pull over" on the
way to a pick-up hands the rider to another car, never back to the stuck one."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fakecity import mini_city
from robotaxi.config import load_config
from robotaxi.core.commands import AvoidStreet
from robotaxi.fleet.assistance import AssistAnswer, StandingCar
from robotaxi.sim.live import LiveService
from robotaxi.world.fake import FakeWorld

CAR = "taxi000"


def test_routes_enter_no_avoided_edge_and_say_when_there_is_no_way() -> None:
    _, graph = mini_city()
    edges = list(graph.index)
    a, b = max(
        ((x, y) for x in edges[:40] for y in edges[-40:]),
        key=lambda p: len(graph.route(*p)),
    )
    fastest = graph.route(a, b)
    assert len(fastest) >= 4, fastest
    middle = fastest[len(fastest) // 2]
    around = graph.route(a, b, avoid=(middle,))
    assert around and around[0] == a and around[-1] == b
    assert middle not in around
    # with every edge that leads into b avoided, there is no way
    into_b = [e for e in edges if graph.route(e, b)[1:2] == (b,)]
    assert into_b and a not in into_b
    assert graph.route(a, b, avoid=into_b) == ()
    assert graph.route(a, b, avoid=(b,)) == fastest  # it may end on an avoided edge


def _live(tmp_path: Path, *, fleet: int, autonomous: int) -> LiveService:
    """The live service on the mini city with FakeWorld, no riders of its own, no ambulances."""
    config = load_config(
        overrides={
            "map.city": "grid", "fleet.size": fleet, "hours": 1.0, "seed": 4,
            "world.emergency_per_hour": 0.0,
        }
    )  # fmt: skip
    return LiveService(
        config, tmp_path, riders_per_hour=0.0, background_traffic=False,
        autonomous=autonomous, hearing=False, city_blocks=False, world=FakeWorld,
        city=mini_city(),
    )  # fmt: skip


def _far_pickup(live: LiveService) -> tuple[tuple[float, float], tuple[float, float]]:
    curbs = live.map.curbs
    car = live.fleet.vehicles[CAR]
    d = np.hypot(*(curbs.xy - np.asarray(car.xy)).T)
    pickup = int(np.argmax(d))
    dropoff = int(np.argmin(np.hypot(*(curbs.xy - curbs.xy[pickup]).T) + (d < 1.0) * 1e9))
    return (
        (float(curbs.xy[pickup, 0]), float(curbs.xy[pickup, 1])),
        (float(curbs.xy[dropoff, 0]), float(curbs.xy[dropoff, 1])),
    )


def test_a_stack_driven_car_takes_another_way_or_refuses(tmp_path: Path) -> None:
    with _live(tmp_path, fleet=1, autonomous=1) as live:
        live.step()
        pickup, dropoff = _far_pickup(live)
        trip_id = live.request_ride("r1", "rider-1", "Kevin", pickup, dropoff).trip_id
        driver = live.driver
        assert driver is not None
        car = driver.cars[CAR]
        assert live.step_until(lambda: car.leg is not None and car.state.speed > 1.0, 120)
        leg = car.leg
        assert leg is not None
        target = leg.target[0]
        way = list(dict.fromkeys(e for e in leg.edges[: leg.edges.index(target) + 1]))
        assert len(way) >= 4, way
        blocked = way[len(way) // 2]
        snapshot = live.world.snapshot()

        # the stop's own street: refused, the car keeps its way
        for_world, refused = driver.apply([AvoidStreet(CAR, target)], snapshot)
        assert for_world == [] and [f.reason for f in refused] == [
            f"its stop is on {target}, the blocked street"
        ]
        assert car.leg is leg
        # a street on its way: a new lane route without it, to the same kerb spot
        for_world, refused = driver.apply([AvoidStreet(CAR, blocked)], snapshot)
        assert for_world == [] and refused == []
        new = car.leg
        assert new is not leg and new.target == leg.target
        assert blocked not in new.edges[: new.edges.index(target) + 1]
        # a street not on its way: nothing to do
        assert driver.apply([AvoidStreet(CAR, blocked)], snapshot) == ([], [])
        assert car.leg is new

        driven: set[str] = set()

        def arrived() -> bool:
            driven.add(car.edge)
            trip = live.trip(trip_id)
            return trip is not None and trip.state.value == "arrived"

        assert live.step_until(arrived, 900)
        assert blocked not in driven and target in driven


def test_pull_over_on_the_way_to_a_rider_hands_the_rider_to_another_car_for_good(
    tmp_path: Path,
) -> None:
    with _live(tmp_path, fleet=2, autonomous=0) as live:
        live.step()
        fleet = live.fleet
        first = fleet.vehicles[CAR]
        curbs = live.map.curbs
        d = np.hypot(*(curbs.xy - np.asarray(first.xy)).T)
        pickup = int(np.argsort(d)[len(d) // 3])  # nearer this car than the other, yet a drive
        xy = (float(curbs.xy[pickup, 0]), float(curbs.xy[pickup, 1]))
        far = int(np.argmax(d))
        trip_id = live.request_ride(
            "r1", "rider-1", "Kevin", xy, (float(curbs.xy[far, 0]), float(curbs.xy[far, 1]))
        ).trip_id
        assert live.step_until(lambda: fleet.trips[trip_id].state.value == "en_route", 60)
        stuck = fleet.trips[trip_id].vehicle_id
        assert stuck is not None
        other = next(v for v in fleet.vehicles if v != stuck)
        # the car stands behind something that does not move: it asks (as its tick would)
        desk, now = fleet.assistance, live.world.time.time_s
        v = fleet.vehicles[stuck]
        held = StandingCar(stuck, trip_id, "pickup", True, v.edge, v.xy, v.heading, 0.0)
        for t in range(int(desk.after_s) + 1):
            desk.observe([held], now + t, [], [])
        request = desk.open_for(stuck)
        assert request is not None
        live.answer_assistance(request.request_id, AssistAnswer.PULL_OVER)
        assert fleet.vehicles[stuck].trip_id is None
        handed = len(fleet.trips[trip_id].events)
        assert live.step_until(lambda: fleet.trips[trip_id].state.value == "arrived", 900)
        assigned = [
            (e.vehicle_id, e.cause)
            for e in fleet.trips[trip_id].events[handed:]
            if e.state.value == "assigned"
        ]
        # the stuck car stood nearer the rider, yet every later batch gave the rider the other
        assert assigned and {car for car, _ in assigned} == {other}, assigned
        assert fleet.trips[trip_id].vehicle_id == other
