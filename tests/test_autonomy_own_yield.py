"""An autonomous car that pulls over by its own decision gets a yield record too.

Against the real app and the grid city: mid-ride, an ambulance with its siren on comes along
the cross street of the next junction ahead of the autonomous car. The fleet's range check
looks only along the car's road, so it opens no yield; the car's roof microphones hear the
siren and its stack stops at the kerb by itself. That stop is recorded as the fleet's own
yields are (the ops view, the rider's app, the vehicle event log), marked as the car's own
decision and what it rested on, and closed when the stack drives on; the ride completes.
"""

from __future__ import annotations

import math
from typing import Any, cast

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from robotaxi.autonomy.planning.behaviour import Behaviour
from robotaxi.core import EvApproach, TimePoint, YieldBasis
from robotaxi.fleet.manager import EvStop, YieldRecord
from robotaxi.map import RoadMap
from robotaxi.service.runtime import ServiceRuntime
from robotaxi.sim.live import LiveService
from robotaxi.world.traffic import AMBULANCE_TYPE
from test_service_autonomy import (  # noqa: F401 - quiet_client: a fixture
    CAR,
    OPERATOR,
    quiet_client,
    ride_underway,
    trip_state,
)

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.sumo]
AMBULANCE = "amb-cross"
JUNCTION_AHEAD_M = 70.0  # the junction the ambulance crosses is at least this far ahead
AMBULANCE_BEFORE_M = 150.0  # the ambulance starts this far before that junction


def _heading(m: RoadMap, edge: str) -> float:
    line = m.lanes[m.edges[edge].lane_ids[0]].centerline
    dx, dy = line[-1] - line[0]
    return math.atan2(float(dy), float(dx))


def send_ambulance_across(live: LiveService) -> None:
    """An ambulance, siren on, `AMBULANCE_BEFORE_M` before the first junction on the car's
    route at least `JUNCTION_AHEAD_M` ahead, on a street crossing it at right angles, and
    going straight over (SUMO drives it)."""
    assert live.driver is not None
    m, car = live.map, live.driver.cars[CAR]
    assert car.leg is not None
    edges = list(car.leg.edges)
    rest = edges[edges.index(car.edge) :]
    k, ahead = 0, m.edges[car.edge].length - car.lane_pos
    while ahead < JUNCTION_AHEAD_M:
        k += 1
        ahead += m.edges[rest[k]].length
    junction, road = m.edges[rest[k]].to_node, _heading(m, rest[k])
    crossing = [
        e
        for e, edge in sorted(m.edges.items())
        if e in live.graph.index
        and edge.to_node == junction
        and e not in edges
        and abs(math.cos(_heading(m, e) - road)) < 0.3
    ]
    assert crossing, f"no cross street at {junction}"
    cross = crossing[0]
    h = _heading(m, cross)
    onward = {
        m.lanes[s].edge_id for lane in m.edges[cross].lane_ids for s in m.lanes[lane].successors
    }
    straight = max(onward - {cross}, key=lambda e: math.cos(_heading(m, e) - h))
    route, pos = [cross, straight], m.edges[cross].length - AMBULANCE_BEFORE_M
    if pos < 0:  # a short block: start on the street before it, in line
        before = [
            e
            for e, edge in sorted(m.edges.items())
            if e in live.graph.index
            and edge.to_node == m.edges[cross].from_node
            and math.cos(_heading(m, e) - h) > 0.9
        ]
        assert before, f"no street leads straight onto {cross}"
        route, pos = [before[0], *route], max(m.edges[before[0]].length + pos, 0.0)
    live.world.add_vehicle(AMBULANCE, route, type_id=AMBULANCE_TYPE, depart_pos=pos, speed=12.0)


def test_the_cars_own_stop_for_an_ambulance_on_a_cross_street_is_recorded_as_a_yield(
    quiet_client: TestClient,  # noqa: F811
) -> None:
    client = quiet_client
    runtime: ServiceRuntime = cast(FastAPI, client.app).state.runtime
    live = runtime.live
    assert live.driver is not None and live.driver.hearing
    live.step()
    ops = {"Authorization": f"Bearer {OPERATOR}"}
    ride_id, me, dropoff_xy = ride_underway(client, live, runtime, "Eve")
    send_ambulance_across(live)
    rows: list[dict[str, Any]] = []  # per tick: what the stack does, the records, the app

    def watch() -> bool:
        v = live.fleet.vehicles[CAR]
        ride = client.get(f"/api/rides/{ride_id}", headers=me).json()
        rows.append(
            {
                "behaviour": live.snapshot().autonomy[CAR].behaviour,
                "speed": v.speed,
                "yielding": v.yielding,
                "app": ride["yielding_for_emergency"],
                "state": trip_state(live, ride_id),
            }
        )  # fmt: skip
        return trip_state(live, ride_id) == "completed"

    assert live.step_until(watch, 300), f"the ride never completed ({trip_state(live, ride_id)})"

    # the car stood still by its own decision while the ride was under way …
    own = [
        k
        for k, r in enumerate(rows)
        if r["behaviour"] in ("ev_caution", "yield_to_ev")
        and r["speed"] < 0.1
        and r["state"] == "driving"
    ]
    assert own, "the car never stopped for the ambulance"
    # … with a yield open from then until it drove on, shown in the rider's app
    recorded = [k for k, r in enumerate(rows) if r["yielding"] is not None]
    assert recorded and recorded == list(range(recorded[0], recorded[-1] + 1))
    assert recorded[0] <= own[0] + 1 and recorded[-1] >= own[-1]
    assert all(rows[k]["app"] for k in recorded)
    assert rows[recorded[-1] + 1]["speed"] > 0.1  # closed as it drives on
    # exactly one yield, the car's own: heard first, the ambulance on the cross street
    assert len([y for y in live.fleet.yields if y.vehicle_id == CAR]) == 1
    record = live.fleet.yields[0]
    assert record.decided_by == "car" and record.basis in ("heard", "heard_and_seen")
    assert record.ev_id == AMBULANCE and record.approach == "cross-street"
    assert record.stopped_at is not None and record.resumed_at is not None
    yields = [y for y in client.get("/api/yields", headers=ops).json() if y["vehicle_id"] == CAR]
    assert len(yields) == 1, yields
    y = yields[0]
    assert y["ev_id"] == AMBULANCE and y["trip_id"] == ride_id and not y["active"]
    assert y["decided_by"] == "car" and y["basis"] == record.basis
    assert y["in_range_s"] <= y["stopped_s"] < y["resumed_s"]
    # the vehicle event log: pulled over, then resumed, both saying whose decision it was
    logged = [
        e
        for e in client.get("/api/vehicle-events", params={"vehicle_id": CAR}, headers=ops).json()
        if e["kind"].startswith("ev_")  # not the rider's unlocking at the pick-up
    ]
    assert [e["kind"] for e in logged] == ["ev_pulled_over", "ev_resumed"]
    assert [e["time_s"] for e in logged] == [y["stopped_s"], y["resumed_s"]]
    expected = {
        "ev": AMBULANCE, "approach": "cross-street", "trip": ride_id, "decided_by": "car",
        "basis": record.basis, "in_range_s": y["in_range_s"],
    }  # fmt: skip
    assert all(e["data"] == expected for e in logged)
    # the trip life cycle is unchanged: no trip-level pull-over, the ride completed there
    events = [e["state"] for e in client.get(f"/api/rides/{ride_id}", headers=me).json()["events"]]
    assert events[-3:] == ["driving", "arrived_at_destination", "completed"]
    assert "pulled_over" not in events
    car = live.vehicle(CAR)
    assert car is not None and math.dist((car.x, car.y), dropoff_xy) < 30

    # a car the fleet already yields for: its own stop adds no second record, not even
    # once the fleet's yield has closed while the car still stands for the same ambulance
    fleet, now = live.fleet, live.now_s
    at = TimePoint.from_s(now)
    fleet.vehicles[CAR].yielding = YieldRecord(CAR, AMBULANCE, at, None, EvApproach.BEHIND)
    snapshot = live.world.snapshot()
    stop = EvStop(at, at, YieldBasis.HEARD, Behaviour.EV_CAUTION, AMBULANCE)
    emitted = [e for _ in range(2) for e in fleet.tick(snapshot, [], {CAR: stop}).vehicle_events]
    # only the fleet's record: stopped (the car stands), then closed (its EV is gone)
    assert [e.kind for e in emitted] == ["ev_pulled_over", "ev_resumed"]
    assert not any("decided_by" in e.data for e in emitted)
    assert [r.decided_by for r in fleet.yields] == ["car", "fleet"]
    assert fleet.vehicles[CAR].yielding is None
