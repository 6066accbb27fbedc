"""Operators' answers to a stuck car, on FakeWorld (without SUMO): "another way" for a car our
own stack drives (it plans its lane route again without the blocked street and drives around
it, or refuses and says why, as `SumoWorld` does for the cars SUMO drives); "pull over" on the
way to a pick-up hands the rider to another car, never back to the stuck one; "lane closed"
goes to the world for the street the car stands on, is taken only where another lane of it
leads on along the car's way (FakeWorld checks it on the map's lanes; a car our stack drives
plans its lane route in the other lane and keeps to it to the end of the street), and is
refused with the reason on a one-lane street or where only the closed lane turns its way."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fakecity import mini_city
from robotaxi.config import FleetConfig, WorldConfig, load_config
from robotaxi.core import DriveTo
from robotaxi.core.commands import AvoidStreet, LaneClosed
from robotaxi.fleet.assistance import AssistanceDesk, AssistAnswer, StandingCar
from robotaxi.map import RoadMap
from robotaxi.sim.autonomous import AutonomousDriver
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


# --- "this lane is closed" ------------------------------------------------------------------

TWO_LANES, STRAIGHT_ON, RIGHT_TURN = "A2B2", "B2C2", "B2B1"  # C Blvd east; on / right
ONE_LANE = "B1B2"


def _curb_on(road_map: RoadMap, edge: str, *, last: bool = False) -> int:
    """The first (or last) curb spot along `edge`."""
    spots = [i for i in range(len(road_map.curbs)) if road_map.curbs.edge_ids[i] == edge]
    assert spots, f"no curb spot on {edge}"
    pick = max if last else min
    return pick(spots, key=lambda i: float(road_map.curbs.pos[i]))


def _drive_to(road_map: RoadMap, vehicle_id: str, edge: str) -> DriveTo:
    curbs, spot = road_map.curbs, _curb_on(road_map, edge, last=True)
    return DriveTo(vehicle_id, edge, float(curbs.pos[spot]), int(curbs.lane_index[spot]))


def test_lane_closed_goes_to_the_world_for_the_street_the_car_stands_on() -> None:
    road_map, _ = mini_city()
    desk = AssistanceDesk(road_map, 10.0)
    car = StandingCar(CAR, "r1", "dropoff", True, TWO_LANES, (0.0, 0.0), 0.0, 0.0)
    events: list = []
    for t in range(11):
        desk.observe([car], float(t), events, [])
    request = desk.open_for(CAR)
    assert request is not None
    request.blocked_edge = STRAIGHT_ON  # what it sees stands across the junction: no matter
    _, record, answered = desk.answer(request.request_id, AssistAnswer.LANE_CLOSED, 11.0)
    desk.send(request, record)
    commands: list = []
    desk.observe([car], 12.0, events, commands)
    assert commands == [LaneClosed(CAR, TWO_LANES)]  # the lane it is in, on its own street
    desk.world_refused(commands[0], "some reason", 12.0)
    desk.observe([car], 13.0, events, [])
    assert record.outcome == "refused" and request.refusal == "no other lane to take: some reason"
    assert [e.kind for e in answered + events[-1:]] == ["assist_answered", "assist_refused"]
    assert events[-1].data == {
        "request": request.request_id, "trip": "r1", "answer": AssistAnswer.LANE_CLOSED,
        "reason": "no other lane to take: some reason",
    }  # fmt: skip
    # asked again and not refused: accepted a tick after it went out
    _, again, _ = desk.answer(request.request_id, AssistAnswer.LANE_CLOSED, 14.0)
    desk.send(request, again)
    desk.observe([car], 15.0, events, [])
    desk.observe([car], 16.0, events, [])
    assert again.outcome == "accepted" and events[-1].kind == "assist_accepted"
    assert request.to_json(16.0)["answers"][-1]["answer"] == "lane_closed"


def test_the_fake_world_takes_lane_closed_only_where_another_lane_leads_on() -> None:
    road_map, graph = mini_city()
    street = road_map.edges[TWO_LANES].name or TWO_LANES
    world = FakeWorld(
        road_map, graph, WorldConfig(emergency_per_hour=0.0), FleetConfig(size=3),
        seed=3, end_s=3600.0, background=False,
    )  # fmt: skip
    with world:
        for k, (start, target) in enumerate(
            [(TWO_LANES, STRAIGHT_ON), (TWO_LANES, RIGHT_TURN), (ONE_LANE, STRAIGHT_ON)]
        ):
            world.add_robotaxi(f"car{k}", _curb_on(road_map, start))
            assert world.apply([_drive_to(road_map, f"car{k}", target)]) == []
        world.step()
        assert world.apply([LaneClosed("car0", TWO_LANES)]) == []  # both lanes go on
        refusals = world.apply(
            [
                LaneClosed("car1", TWO_LANES),  # only the kerb lane turns right
                LaneClosed("car2", ONE_LANE),
                LaneClosed("car0", STRAIGHT_ON),  # not there yet
            ]
        )
        one_lane = road_map.edges[ONE_LANE].name or ONE_LANE
        assert [(f.command.vehicle_id, f.reason) for f in refusals] == [
            ("car1", f"no other lane of {street} leads on along its way"),
            ("car2", f"{one_lane} has one lane in its direction: there is no other lane to use"),
            ("car0", f"it is on {TWO_LANES} now, no longer on {STRAIGHT_ON}"),
        ]


def _driver(start: str, target: str) -> tuple[FakeWorld, AutonomousDriver]:
    """Our stack driving one car from the first curb spot of `start` toward the last one of
    `target`, in a FakeWorld (started; no other road users)."""
    road_map, graph = mini_city()
    world = FakeWorld(
        road_map, graph, WorldConfig(emergency_per_hour=0.0), FleetConfig(size=1),
        seed=3, end_s=3600.0, background=False,
    )  # fmt: skip
    world.start()
    curb = _curb_on(road_map, start)
    world.add_robotaxi(CAR, curb)
    driver = AutonomousDriver(road_map, graph, world, {CAR: curb}, seed=3)
    driver.apply([_drive_to(road_map, CAR, target)], world.snapshot())
    return world, driver


def _drive(world: FakeWorld, driver: AutonomousDriver, until: object, max_s: float) -> bool:
    for _ in range(int(max_s)):
        world.step()
        driver.drive(world.snapshot(), 1.0)
        if until():  # type: ignore[operator]
            return True
    return False


def test_a_stack_driven_car_moves_to_the_other_lane_and_keeps_to_it_to_the_street_end() -> None:
    road_map, _ = mini_city()
    world, driver = _driver(TWO_LANES, STRAIGHT_ON)
    car = driver.cars[CAR]
    try:
        assert _drive(world, driver, lambda: car.state.speed > 3.0 and car.edge == TWO_LANES, 60)
        assert car.lane_index == 0
        for_world, refused = driver.apply([LaneClosed(CAR, TWO_LANES)], world.snapshot())
        assert for_world == [] and refused == []
        lanes: list[tuple[str, int, float]] = []

        def on_next() -> bool:
            lanes.append((car.edge, car.lane_index, car.lane_pos))
            return car.edge == STRAIGHT_ON

        assert _drive(world, driver, on_next, 120)
        length = road_map.lanes[f"{TWO_LANES}_0"].length
        on_street = [(lane, pos) for edge, lane, pos in lanes if edge == TWO_LANES]
        # over within a few seconds, then in the other lane to the end of the street
        assert on_street[-1][1] > length - 15.0
        moved = next(k for k, (lane, _) in enumerate(on_street) if lane == 1)
        assert moved <= 3 and all(lane == 1 for lane, _ in on_street[moved:])
        leg = car.leg
        assert leg is not None and leg.target[0] == STRAIGHT_ON
    finally:
        world.close()


def test_a_stack_driven_car_refuses_lane_closed_where_it_cannot_take_it() -> None:
    road_map, _ = mini_city()
    street = road_map.edges[TWO_LANES].name or TWO_LANES
    turn = road_map.edges[RIGHT_TURN].name or RIGHT_TURN
    one_lane = road_map.edges[ONE_LANE].name or ONE_LANE
    # turning right at the end of a two-lane street: only the kerb lane turns there
    for start, target, edge, why in [
        (TWO_LANES, RIGHT_TURN, TWO_LANES,
         f"no lane beside it on {street} leads on to {turn}: only its own lane turns there"),
        (TWO_LANES, RIGHT_TURN, ONE_LANE, f"it is on {TWO_LANES} now, no longer on {ONE_LANE}"),
        (ONE_LANE, STRAIGHT_ON, ONE_LANE,
         f"{one_lane} has one lane in its direction: there is no other lane to use"),
    ]:  # fmt: skip
        world, driver = _driver(start, target)
        car = driver.cars[CAR]
        try:
            assert _drive(
                world, driver, lambda c=car, e=start: c.state.speed > 3.0 and c.edge == e, 60
            )
            leg = car.leg
            for_world, refused = driver.apply([LaneClosed(CAR, edge)], world.snapshot())
            assert for_world == [] and [f.reason for f in refused] == [why]
            assert car.leg is leg and car.closed_lane is None  # it keeps its lane
        finally:
            world.close()
