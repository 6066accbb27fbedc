"""Remote assistance: "this lane is closed ahead: use another lane of this street" (issue 13,
item 7), for a car our stack drives (through the service API) and for one SUMO drives.

Against the real app, a real SQLite file and SUMO on the grid city, stepped by the test, with
one fleet car that our autonomy stack drives. Works close the kerb lane of C Blvd (two lanes
eastbound) for 100 m, a little ahead of where the car picks its rider up (seen by the car's
cameras), and traffic streams by in the other lane at 11 m/s, a car every 2 s: the car's
stack draws up behind the works with room to steer out, waits for a gap to pass them that
does not come, and asks for help (after 3 s here, see `ASSIST_AFTER_S`). The operator
answers "lane closed" over HTTP as the traffic thins to a car every 8 s. The car checks that
another lane of its street leads on along its way and that it has room to steer out, holds
where it stands, and merges as it does for any lane change — into a gap its lane-change rule
accepts (`planning.lane_change`, from its own predictions) — drives past the works without
touching anything, keeps to that lane to the end of the street (it does not cut back in
after the works, as it does passing an obstacle on its own) and drops the rider off on the
next one. The request closes with its time to resolution; every step is in the vehicle event
log. A car SUMO drives changes lane by SUMO's own lane changer, or refuses with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from robotaxi.autonomy.vehicle import IPACE
from robotaxi.config.scenario import LaneClosureSpec, load_scenario
from robotaxi.service.app import create_app
from robotaxi.service.settings import serve_run_config
from robotaxi.sim.drive import lane_closure_agents
from scenes import collides
from test_remote_assistance_pass import curb_on
from test_service_api import OP, runtime_of, settings_for
from test_service_autonomy import book_ride

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.sumo]
CAR = "taxi000"
STREET, NEXT = "A2B2", "B2C2"  # C Blvd eastbound (two lanes), then on across 2nd Ave
WORKS_FROM_M, WORKS_TO_M = 100.0, 200.0  # the closed stretch of the kerb lane
STREAM_MPS = 11.0  # the other lane's traffic
DENSE_EVERY_S, SPARSE_EVERY_S = 2.0, 8.0  # a car every …, while the car pulls out / after
BOARDING_S = 15.0  # the rider takes this long to get in
# the car stands behind the works with room to steer out (`planning.steer_out`); it asks
# soon, so that the test does not wait long
ASSIST_AFTER_S = 3.0


@pytest.fixture
def client(tmp_path_factory: pytest.TempPathFactory, map_cache: Path) -> Iterator[TestClient]:
    """The service with SUMO running, for one test (the other starts its own SUMO world)."""
    run = serve_run_config(
        **{
            "fleet.size": 1,
            "hours": 1.0,
            "map.cache_dir": map_cache,
            "world.emergency_per_hour": 0.0,
            "fleet.assist_after_s": ASSIST_AFTER_S,
        }
    )
    base = settings_for(
        tmp_path_factory.mktemp("lane-closed"), map_cache, fleet=1, autonomous=1,
        autonomy_hearing=False,
    )  # fmt: skip
    with TestClient(create_app(base.model_copy(update={"run": run}))) as c:
        yield c


class Stream:
    """Cars entering the other lane of `STREET` at `STREAM_MPS`, one every `every_s`."""

    def __init__(self) -> None:
        import libsumo

        libsumo.route.add("stream-route", [STREET, NEXT])
        self.ids: list[str] = []
        self.last_s = -math.inf
        self.every_s = DENSE_EVERY_S

    def feed(self, now_s: float) -> None:
        import libsumo

        if now_s - self.last_s < self.every_s - 1e-6:
            return
        vid = f"stream-{len(self.ids)}"
        libsumo.vehicle.add(
            vid, "stream-route", typeID="car", departLane="1", departPos="0",
            departSpeed=f"{STREAM_MPS}",
        )  # fmt: skip
        libsumo.vehicle.setMaxSpeed(vid, STREAM_MPS)
        libsumo.vehicle.setLaneChangeMode(vid, 0)  # it keeps to its lane
        self.ids.append(vid)
        self.last_s = now_s

    def on_street(self) -> list[tuple[str, float]]:
        """(id, m along) of the stream's cars on `STREET` now."""
        import libsumo

        present = set(libsumo.vehicle.getIDList())
        return [
            (vid, libsumo.vehicle.getLanePosition(vid))  # front bumper
            for vid in self.ids
            if vid in present and libsumo.vehicle.getRoadID(vid) == STREET
        ]


def test_told_its_lane_is_closed_the_car_merges_in_a_gap_and_drives_past(
    client: TestClient,
) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    offered = schema["AssistanceAnswerCreate"]["properties"]["answer"]["enum"]
    assert "lane_closed" in offered and "pass_opposite" in offered
    live = runtime_of(client).live
    live.step()
    driver = live.driver
    assert driver is not None
    car = driver.cars[CAR]
    street = live.map.edges[STREET]
    assert [live.map.lanes[x].index for x in street.lane_ids] == [0, 1]
    kerb_lane = live.map.lanes[f"{STREET}_0"]
    xy0 = kerb_lane.centerline[0]
    direction = (kerb_lane.centerline[-1] - xy0) / kerb_lane.length
    works = lane_closure_agents(
        live.map,
        load_scenario("lane-closed-by-works").model_copy(
            update={
                "lane_closures": [
                    LaneClosureSpec(edge=STREET, from_m=WORKS_FROM_M, to_m=WORKS_TO_M)
                ]
            }
        ),
    )
    driver.works = tuple(works)
    curbs = live.map.curbs
    spots = [i for i in range(len(curbs)) if curbs.edge_ids[i] == STREET and curbs.pos[i] < 60]
    assert spots, f"no curb spot on {STREET} in its first 60 m"
    spot = min(spots, key=lambda i: float(curbs.pos[i]))
    pickup = (float(curbs.xy[spot, 0]), float(curbs.xy[spot, 1]))
    dropoff = curb_on(live, NEXT)
    ride_id, me = book_ride(client, runtime_of(client), "Ada Lovelace", pickup, dropoff)

    def state() -> str:
        view = live.trip(ride_id)
        assert view is not None
        return view.state.value

    # per tick: (t, speed, edge, m along the street and m left of its kerb lane's centre
    # (footprint centre), touching anything, the gap (m, bumper to bumper) to the nearest
    # stream car behind us and ahead of us on the street)
    log: list[tuple[float, float, str, float, float, bool, float, float]] = []

    stream: Stream | None = None

    def watch() -> None:
        if stream is not None:
            stream.feed(live.now_s)
        st = car.state
        cx = st.x + IPACE.rear_axle_to_center_m * math.cos(st.heading)
        cy = st.y + IPACE.rear_axle_to_center_m * math.sin(st.heading)
        rel = (cx - xy0[0], cy - xy0[1])
        along = rel[0] * direction[0] + rel[1] * direction[1]
        left = -rel[0] * direction[1] + rel[1] * direction[0]
        front, rear = along + IPACE.length_m / 2, along - IPACE.length_m / 2
        others = stream.on_street() if stream is not None else []
        behind = [rear - pos for _, pos in others if pos <= front]
        ahead = [pos - 5.0 - front for _, pos in others if pos > front]
        around = [*live.world.surroundings(CAR), *works]
        log.append(
            (live.now_s, st.speed, car.edge, along, left, collides(st, around),
             min(behind, default=math.inf), min(ahead, default=math.inf))
        )  # fmt: skip

    def asked() -> bool:
        watch()
        return live.fleet.assistance.open_for(CAR) is not None

    def came() -> bool:
        watch()
        return state() == "arrived"

    assert live.step_until(came, 900), "the car never came"
    stream = Stream()
    live.step_until(lambda: (watch(), False)[1], BOARDING_S)
    for action, payload in [("unlock", None), ("board", None), ("buckle", {"buckled": True})]:
        done = client.post(f"/api/rides/{ride_id}/{action}", json=payload, headers=me)
        assert done.status_code == 200, done.text
    assert client.post(f"/api/rides/{ride_id}/start", headers=me).status_code == 200
    started = len(log)

    def stood() -> bool:
        watch()
        last = log[started:][-3:]
        return len(last) == 3 and all(
            row[1] < 0.1 and row[2] == STREET and abs(row[4]) < 0.5 for row in last
        )

    assert live.step_until(stood, 120), "the car never stood behind the works"
    assert live.step_until(asked, 240), "the car never asked for help"
    listed = client.get("/api/assistance", headers=OP)
    assert listed.status_code == 200, listed.text
    (request,) = [r for r in listed.json() if r["open"]]
    assert request["vehicle_id"] == CAR and request["trip_id"] == ride_id
    assert request["leg"] == "dropoff" and request["edge"] == STREET
    assert request["sees"].startswith("stopped")
    assert request["standing_s"] >= ASSIST_AFTER_S and request["answers"] == []

    # it stands behind the works in the kerb lane, with room to steer out
    _, _, edge, along, left, *_ = log[-1]
    assert edge == STREET and abs(left) < 0.5
    assert 5.0 <= WORKS_FROM_M - (along + IPACE.length_m / 2) <= 12.0
    assert len(stream.ids) >= 8  # traffic went by all along

    stream.every_s = SPARSE_EVERY_S
    answered = client.post(
        f"/api/assistance/{request['id']}/answer", json={"answer": "lane_closed"}, headers=OP
    )
    assert answered.status_code == 200, answered.text
    answered_s = live.now_s
    last = answered.json()["answers"][-1]
    assert last == {**last, "answer": "lane_closed", "outcome": ""}

    def dropped_off() -> bool:
        watch()
        return state() == "arrived_at_destination"

    assert live.step_until(dropped_off, 300), f"the rider never got there ({state()})"
    (closed,) = [
        r for r in client.get("/api/assistance", headers=OP).json() if r["id"] == request["id"]
    ]
    assert closed["answers"][-1]["outcome"] == "accepted", closed["answers"]
    assert not closed["open"] and closed["closed_how"] == "moving again"
    assert closed["resolution_s"] == pytest.approx(closed["closed_s"] - closed["opened_s"])
    assert 0.0 < closed["resolution_s"] < 60.0

    # from the answer until it moved over, it held back: room to steer out all along
    after = [row for row in log if row[0] >= answered_s]
    held = after[: next(k for k, row in enumerate(after) if row[4] > 0.25)]
    assert held and min(WORKS_FROM_M - (row[3] + IPACE.length_m / 2) for row in held) >= 5.0

    on_street = [row for row in log if row[0] > answered_s and row[2] == STREET]
    lane_w = kerb_lane.width
    # it moved over into a gap: as it began, the stream's next car was well behind it and
    # none was beside it; no one came nearer than SUMO's standstill gap after
    over = [row for row in on_street if row[4] > 0.25]
    assert over, "it never moved to the other lane"
    assert over[0][6] > 20.0 and over[0][7] > 0.0, over[0]
    assert min(row[6] for row in over) > 2.0 and min(row[7] for row in over) > 0.0
    # past the works in the other lane, and in it to the end of the street
    beyond = [row for row in on_street if row[3] > WORKS_FROM_M + IPACE.length_m]
    assert beyond and all(abs(row[4] - lane_w) < 0.6 for row in beyond)
    assert any(row[2] == NEXT for row in log)
    assert not any(row[5] for row in log), "it touched something"
    assert live.world.stats.robotaxi_teleports == 0

    live.step()  # the writer's queue is empty
    events = client.get("/api/vehicle-events", params={"vehicle_id": CAR}, headers=OP).json()
    # (with so short a wait, it also asks at red lights on its way: those close by themselves)
    assist = [e for e in events if e["data"].get("request") == request["id"]]
    assert [e["kind"] for e in assist] == [
        "assist_requested", "assist_answered", "assist_accepted", "assist_closed",
    ]  # fmt: skip
    assert [e["data"].get("answer") for e in assist[1:3]] == ["lane_closed", "lane_closed"]
    assert assist[-1]["data"]["resolution_s"] == closed["resolution_s"]
    print(
        f"time to resolution {closed['resolution_s']} s "
        f"(answered {answered_s - closed['opened_s']:.0f} s after the request opened)"
    )


# --- a car SUMO drives (fleet fidelity) -----------------------------------------------------


def test_a_car_sumo_drives_changes_lane_for_the_rest_of_the_street_or_says_why_not(
    grid_map: Any, grid_graph: Any, tmp_path: Path
) -> None:
    """SumoWorld: "lane closed" becomes SUMO's own lane change (into a gap its lane changer
    finds safe) to the lane beside that goes on along the car's route, kept to the end of the
    street; refused on a one-lane street and where only the car's lane turns its way."""
    import libsumo

    from robotaxi.config import load_config
    from robotaxi.core import DriveTo
    from robotaxi.core.commands import LaneClosed
    from robotaxi.world.sumo_world import SumoWorld

    config = load_config(overrides={"world.emergency_per_hour": 0.0, "fleet.size": 3})
    world = SumoWorld(
        grid_map, grid_graph, config.world, config.fleet,
        seed=3, end_s=1200.0, work_dir=tmp_path, background=False,
    )  # fmt: skip
    curbs = grid_map.curbs

    def first_spot(edge: str) -> int:
        return min(
            (i for i in range(len(curbs)) if curbs.edge_ids[i] == edge),
            key=lambda i: float(curbs.pos[i]),
        )

    def to_last_spot(vid: str, edge: str) -> DriveTo:
        spot = max(
            (i for i in range(len(curbs)) if curbs.edge_ids[i] == edge),
            key=lambda i: float(curbs.pos[i]),
        )
        return DriveTo(vid, edge, float(curbs.pos[spot]), int(curbs.lane_index[spot]))

    street = grid_map.edges[STREET].name
    with world:
        trips = [("on", STREET, NEXT), ("right", STREET, "B2B1"), ("one", "B1B2", NEXT)]
        for vid, start, _ in trips:
            world.add_robotaxi(vid, first_spot(start))
        world.step()
        for vid, _, target in trips:
            assert world.apply([to_last_spot(vid, target)]) == []
        for _ in range(60):
            world.step()
            if all(libsumo.vehicle.getSpeed(v) > 3.0 for v, *_ in trips):
                break
        assert [libsumo.vehicle.getRoadID(v) for v, *_ in trips] == [STREET, STREET, "B1B2"]
        assert [libsumo.vehicle.getLaneIndex(v) for v, *_ in trips] == [0, 0, 0]
        refused = world.apply(
            [LaneClosed("on", STREET), LaneClosed("right", STREET), LaneClosed("one", "B1B2"),
             LaneClosed("on", NEXT)]
        )  # fmt: skip
        assert [(f.command.vehicle_id, f.reason) for f in refused] == [
            ("right", f"no lane beside it on {street} leads on along its way: only its own "
             "lane does"),
            ("one", f"{grid_map.edges['B1B2'].name} has one lane in its direction: there is "
             "no other lane to use"),
            ("on", f"it is on {STREET} now, no longer on {NEXT}"),
        ]  # fmt: skip
        lanes: list[tuple[str, int]] = []
        turning: list[tuple[str, int]] = []  # the car refused: it keeps the lane it turns from
        for _ in range(60):
            world.step()
            lanes.append((libsumo.vehicle.getRoadID("on"), libsumo.vehicle.getLaneIndex("on")))
            turning.append(
                (libsumo.vehicle.getRoadID("right"), libsumo.vehicle.getLaneIndex("right"))
            )
            if lanes[-1][0] == NEXT:
                break
        on_street = [lane for road, lane in lanes if road == STREET]
        moved = on_street.index(1)  # over within a few seconds (no one in its way) …
        assert moved <= 5 and all(lane == 1 for lane in on_street[moved:])  # … and kept to
        assert lanes[-1][0] == NEXT
        assert {lane for road, lane in turning if road == STREET} == {0}
