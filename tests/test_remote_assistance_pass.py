"""Remote assistance through the service API: works close the only lane of a two-way street
with a solid centre line, and the car may cross it only with an operator's leave (issue 13,
item 7; the `works-solid-centre-line` scenario, staged in the live city).

Against the real app, a real SQLite file and SUMO on the grid city, stepped by the test, with
one fleet car that our autonomy stack drives. The scenario's street is marked with a solid
centre line (`map.solid_centre_lines`) and its works stand in the car's lane (seen by the
car's cameras). A rider rides along that street: the car stands behind the works and does
not cross the line on its own however long it waits; it asks for help, and the request
says why. The operator lists the requests and answers "pass using the opposite lane when
clear" over HTTP; the car takes the leave, still lets an oncoming car by, passes the works
without touching anything, returns to its lane and drops the rider off. The request closes
with its time to resolution; every step is in the vehicle event log.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from robotaxi.config.scenario import load_scenario
from robotaxi.core.types import AgentState
from robotaxi.service.app import create_app
from robotaxi.service.settings import serve_run_config
from robotaxi.sim.drive import across_solid_line, lane_closure_agents
from robotaxi.sim.live import LiveService
from scenes import collides
from test_service_api import OP, runtime_of, settings_for
from test_service_autonomy import book_ride

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.sumo]
SCENARIO = load_scenario("works-solid-centre-line")
OPERATOR = SCENARIO.operator
assert OPERATOR is not None, "the scenario has its operator"
STREET = SCENARIO.solid_centre_lines[0]
(WORKS,) = SCENARIO.lane_closures
CAR = "taxi000"
WAIT_BEFORE_ANSWER_S = 20.0  # the operator answers this long after the request opens
ONCOMING = "oncoming-1"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, map_cache: Path) -> Iterator[TestClient]:
    run = serve_run_config(
        **{
            "fleet.size": 1,
            "hours": 1.0,
            "map.cache_dir": map_cache,
            "world.emergency_per_hour": 0.0,
            "fleet.assist_after_s": OPERATOR.assist_after_s,
            "map.solid_centre_lines": list(SCENARIO.solid_centre_lines),
        }
    )
    base = settings_for(
        tmp_path_factory.mktemp("pass-opposite"), map_cache, fleet=1, autonomous=1,
        autonomy_hearing=False,
    )  # fmt: skip
    with TestClient(create_app(base.model_copy(update={"run": run}))) as c:
        yield c


def curb_on(live: LiveService, edge: str, *, before_m: float = math.inf) -> tuple[float, float]:
    """The curb spot on `edge` furthest along it short of `before_m` (m along the lane)."""
    curbs = live.map.curbs
    spots = [i for i in range(len(curbs)) if curbs.edge_ids[i] == edge and curbs.pos[i] < before_m]
    assert spots, f"no curb spot on {edge} before {before_m} m"
    best = max(spots, key=lambda i: float(curbs.pos[i]))
    return float(curbs.xy[best, 0]), float(curbs.xy[best, 1])


def test_the_car_stands_behind_works_asks_and_passes_with_leave_through_the_api(
    client: TestClient,
) -> None:
    live = runtime_of(client).live
    live.step()
    driver = live.driver
    assert driver is not None
    works = tuple(lane_closure_agents(live.map, SCENARIO))
    driver.works = works
    car = driver.cars[CAR]
    # the rider is picked up on the street before the works and set down on the next one
    pickup = curb_on(live, STREET, before_m=WORKS.from_m - 50.0)
    dropoff = curb_on(live, SCENARIO.ego.route[-1])
    ride_id, me = book_ride(client, runtime_of(client), "Ada Lovelace", pickup, dropoff)

    def state() -> str:
        view = live.trip(ride_id)
        assert view is not None
        return view.state.value

    assert live.step_until(lambda: state() == "arrived", 900), "the car never came"
    for action, payload in [("unlock", None), ("board", None), ("buckle", {"buckled": True})]:
        done = client.post(f"/api/rides/{ride_id}/{action}", json=payload, headers=me)
        assert done.status_code == 200, done.text
    assert client.post(f"/api/rides/{ride_id}/start", headers=me).status_code == 200

    # per tick: (t, speed, across the line, touching anything, the oncoming car's lead over
    # us along our path in m: positive while it is still ahead, None when not around)
    log: list[tuple[float, float, bool, bool, float | None]] = []

    def watch() -> None:
        leg = car.leg
        assert leg is not None
        around = live.world.surroundings(CAR)
        truth: list[AgentState] = [*around, *works]
        path = leg.route.path
        ahead = None
        for a in around:
            if a.agent_id == ONCOMING:
                ahead = float(path.project(a.x, a.y)[0] - path.project(car.state.x, car.state.y)[0])
        log.append(
            (
                live.now_s,
                car.state.speed,
                across_solid_line(path, car.state),
                collides(car.state, truth),
                ahead,
            )
        )

    def asked() -> bool:
        watch()
        return live.fleet.assistance.open_for(CAR) is not None

    assert live.step_until(asked, 180), "the car never asked for help"
    listed = client.get("/api/assistance", headers=OP)
    assert listed.status_code == 200, listed.text
    (request,) = [r for r in listed.json() if r["open"]]
    assert request["vehicle_id"] == CAR and request["trip_id"] == ride_id
    assert request["leg"] == "dropoff" and request["edge"] == STREET
    assert request["blocked_edge"] == STREET and request["street"]
    assert request["sees"].endswith("behind a blocker it may pass only across a solid centre line")
    assert request["standing_s"] >= OPERATOR.assist_after_s
    assert request["answers"] == [] and request["resolution_s"] is None

    # no answer yet: it keeps standing in its lane, never over the line
    opened_s = live.now_s
    assert not live.step_until(lambda: (watch(), car.state.speed > 1.0)[1], WAIT_BEFORE_ANSWER_S)
    stood = [row for row in log if row[1] < 0.5]
    assert stood and log[-1][0] - stood[0][0] >= OPERATOR.assist_after_s + WAIT_BEFORE_ANSWER_S - 2
    assert not any(across for _, _, across, *_ in log)

    # an oncoming car just past the works when leave comes: the car must let it by first
    live.world.add_vehicle(ONCOMING, ["B2B1", "B1B0"], depart_pos=120.0, speed=10.0)
    answered = client.post(
        f"/api/assistance/{request['id']}/answer", json={"answer": "pass_opposite"}, headers=OP
    )
    assert answered.status_code == 200, answered.text
    answered_s = live.now_s
    assert answered.json()["answers"][-1] == {
        **answered.json()["answers"][-1], "answer": "pass_opposite", "outcome": "",
    }  # fmt: skip

    def dropped_off() -> bool:
        watch()
        return state() == "arrived_at_destination"

    assert live.step_until(dropped_off, 300), f"the rider never got there ({state()})"
    (closed,) = [
        r for r in client.get("/api/assistance", headers=OP).json() if r["id"] == request["id"]
    ]
    assert closed["answers"][-1]["outcome"] == "accepted"
    assert not closed["open"] and closed["closed_how"] == "moving again"
    assert closed["resolution_s"] == pytest.approx(closed["closed_s"] - closed["opened_s"])
    assert WAIT_BEFORE_ANSWER_S < closed["resolution_s"] < WAIT_BEFORE_ANSWER_S + 60.0

    # it crossed the line only after leave, and only once the oncoming car had gone by
    crossing = [row for row in log if row[2]]
    assert crossing and crossing[0][0] > answered_s
    seen = [lead for *_, lead in log if lead is not None]
    assert seen and max(seen) > 20.0  # the oncoming car was there, ahead of the car
    lead = crossing[0][4]
    assert lead is None or lead < 0.0, f"crossed with the oncoming car {lead:.0f} m ahead"
    assert not any(touching for _, _, _, touching, _ in log)
    assert live.world.stats.robotaxi_teleports == 0

    live.step()  # the writer's queue is empty
    events = client.get("/api/vehicle-events", params={"vehicle_id": CAR}, headers=OP).json()
    assist = [e for e in events if e["kind"].startswith("assist_")]
    assert [e["kind"] for e in assist] == [
        "assist_requested", "assist_answered", "assist_accepted", "assist_closed",
    ]  # fmt: skip
    assert assist[1]["data"]["answer"] == "pass_opposite"
    assert assist[-1]["data"]["resolution_s"] == closed["resolution_s"]
    print(
        f"time to resolution {closed['resolution_s']} s "
        f"(answered {answered_s - opened_s:.0f} s after the request opened)"
    )
