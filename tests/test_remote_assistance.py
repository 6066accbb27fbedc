"""Remote assistance: a robotaxi stuck on its way asks a person, who answers with context,
and the car checks the answer before it acts.

Against the real app, a real SQLite file and SUMO on the grid city, stepped by the test. The
street ahead of the car is held by cars that do not move (as in test_route_around_jams.py);
SUMO's own rerouting of stuck cars and its teleporting are pushed out of the way, so only the
assistance loop can get the car going. On the way to the pick-up the blocked street is two
streets ahead: the operator's "take another way" makes it leave by another street and
arrive. On the way to the drop-off the blocked street is the one with the drop-off kerb:
"take another way" is refused with the reason, "wait" is taken, and once the street clears
the car drives on and the request closes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from robotaxi.config import FleetConfig
from robotaxi.core import TimePoint
from robotaxi.fleet.assistance import AssistanceDesk, AssistAnswer, StandingCar
from robotaxi.service.app import create_app
from robotaxi.service.settings import serve_run_config
from robotaxi.service.views import SUPPORT_NOTE
from robotaxi.sim.live import LiveService
from test_service_api import OP, runtime_of, settings_for, sign_in

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
ASSIST_AFTER_S = 60.0


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, map_cache: Path) -> Iterator[TestClient]:
    run = serve_run_config(
        **{
            "fleet.size": 1,
            "hours": 2.0,
            "map.cache_dir": map_cache,
            "world.emergency_per_hour": 0.0,
            "fleet.assist_after_s": ASSIST_AFTER_S,
            "world.stuck_reroute_s": 3600.0,  # SUMO's own way out of a queue: not this time
            "world.teleport_time_s": 3600.0,  # nor teleporting the car past the blockage
        }
    )
    # the service settings of test_service_api, on this city (given whole: no short names)
    base = settings_for(tmp_path_factory.mktemp("assist"), map_cache)
    settings = base.model_copy(update={"run": run})
    with TestClient(create_app(settings)) as c:
        yield c


# --- helpers (the OpenAPI test holds a car the same way) -----------------------------------


def block_entrance(live: LiveService, edge: str, tag: str) -> list[str]:
    """A car held still just inside `edge` on each of its lanes (wholly on it: a car that
    sticks out into the junction would hold the junction too); returns their ids."""
    import libsumo

    libsumo.route.add(f"blocked-{tag}", [edge])
    ids = []
    for k in range(len(live.map.edges[edge].lane_ids)):
        vid = f"stalled-{tag}-{k}"
        libsumo.vehicle.add(
            vid, f"blocked-{tag}", typeID="car", departLane=str(k), departPos="6",
            departSpeed="0",
        )  # fmt: skip
        libsumo.vehicle.setSpeed(vid, 0.0)
        ids.append(vid)
    return ids


def unblock(ids: list[str]) -> None:
    import libsumo

    for vid in ids:
        libsumo.vehicle.remove(vid)


def route_ahead(vehicle_id: str) -> tuple[str, ...]:
    import libsumo

    route = libsumo.vehicle.getRoute(vehicle_id)
    return tuple(route[max(libsumo.vehicle.getRouteIndex(vehicle_id), 0) :])


def hold_until_it_asks(live: LiveService, vehicle_id: str, blocked: str, tag: str) -> list[str]:
    """Block `blocked` (on the car's way) and step until the car opens a request."""
    blockers = block_entrance(live, blocked, tag)
    opened = live.step_until(lambda: live.fleet.assistance.open_for(vehicle_id) is not None, 600)
    assert opened, f"{vehicle_id} never asked for help behind {blocked}"
    return blockers


def latlon_of(client: TestClient, xy: np.ndarray) -> dict[str, float]:
    (lat, lon), *_ = runtime_of(client).to_latlon(xy)
    return {"lat": lat, "lon": lon}


def the_request(client: TestClient, vehicle_id: str) -> dict[str, Any]:
    listed = client.get("/api/assistance", headers=OP)
    assert listed.status_code == 200, listed.text
    (row,) = [r for r in listed.json() if r["vehicle_id"] == vehicle_id and r["open"]]
    return dict(row)


def answer(client: TestClient, request_id: str, what: str, headers: dict[str, str] = OP) -> Any:
    return client.post(
        f"/api/assistance/{request_id}/answer", json={"answer": what}, headers=headers
    )


def kinds_of(client: TestClient, vehicle_id: str) -> list[str]:
    events = client.get("/api/vehicle-events", params={"vehicle_id": vehicle_id}, headers=OP)
    return [e["kind"] for e in events.json() if e["kind"].startswith("assist_")]


# --- the loop on the live city ----------------------------------------------------------


@pytest.mark.sumo
def test_a_stuck_car_asks_takes_another_way_refuses_an_impossible_one_and_drives_on(
    client: TestClient,
) -> None:
    live = runtime_of(client).live
    live.step()
    (car,) = live.fleet.vehicles
    curbs = live.map.curbs
    start = np.array(live.fleet.vehicles[car].xy)
    far = int(np.argmax(np.hypot(*(curbs.xy - start).T)))
    home = int(np.argmin(np.hypot(*(curbs.xy - start).T)))
    me = sign_in(client, "Grace Hopper")
    body = {
        "pickup": latlon_of(client, curbs.xy[far]),
        "dropoff": latlon_of(client, curbs.xy[home]),
    }
    booked = client.post("/api/rides", json=body, headers=me)
    assert booked.status_code == 201, booked.text
    ride_id = booked.json()["id"]
    assert live.step_until(lambda: live.trip(ride_id).state.value == "en_route", 60)

    # on the way to the pick-up: the street two ahead is blocked
    ahead = route_ahead(car)
    assert len(ahead) >= 4, ahead
    blocked = ahead[2]
    blockers = hold_until_it_asks(live, car, blocked, "pickup")
    request = the_request(client, car)
    assert request["trip_id"] == ride_id and request["leg"] == "pickup"
    assert request["blocked_edge"] == blocked
    assert request["sees"].endswith("behind a vehicle that does not move")
    assert request["standing_s"] >= ASSIST_AFTER_S and request["answers"] == []
    assert request["street"] and -90 <= request["where"]["lat"] <= 90
    ride = client.get(f"/api/rides/{ride_id}", headers=me).json()
    assert ride["support_note"] == SUPPORT_NOTE

    # operators only
    assert client.get("/api/assistance").status_code == 401
    assert client.get("/api/assistance", headers=me).status_code == 403
    assert answer(client, request["id"], "another_way", me).status_code == 403
    assert answer(client, "assist-999", "wait").status_code == 404

    sent = answer(client, request["id"], "another_way")
    assert sent.status_code == 200, sent.text
    assert sent.json()["answers"][-1]["outcome"] == ""  # the car checks it at the next tick
    live.step()
    live.step()
    checked = the_request(client, car)["answers"][-1]
    assert checked == {**checked, "answer": "another_way", "outcome": "accepted", "reason": ""}
    assert blocked not in route_ahead(car)
    assert live.step_until(lambda: live.trip(ride_id).state.value == "arrived", 900)
    (closed,) = [
        r for r in client.get("/api/assistance", headers=OP).json() if r["id"] == request["id"]
    ]
    assert not closed["open"] and closed["closed_how"] == "moving again"
    assert client.get(f"/api/rides/{ride_id}", headers=me).json()["support_note"] is None
    late = answer(client, request["id"], "wait")
    assert late.status_code == 409 and "closed" in late.json()["detail"]
    unblock(blockers)

    # with the rider on board, the blocked street is the one with the drop-off kerb
    for action, payload in [("unlock", None), ("board", None), ("buckle", {"buckled": True})]:
        assert (
            client.post(f"/api/rides/{ride_id}/{action}", json=payload, headers=me).status_code
            == 200
        )
    assert client.post(f"/api/rides/{ride_id}/start", headers=me).status_code == 200
    live.step()
    live.step()
    ahead = route_ahead(car)
    assert len(ahead) >= 2, ahead
    blockers = hold_until_it_asks(live, car, ahead[-1], "dropoff")
    request = the_request(client, car)
    assert request["leg"] == "dropoff" and request["blocked_edge"] == ahead[-1]
    assert answer(client, request["id"], "another_way").status_code == 200
    live.step()
    live.step()
    refused = the_request(client, car)
    assert refused["answers"][-1]["outcome"] == "refused"
    assert refused["refusal"].startswith("no other way to the drop-off: its stop is on")
    assert route_ahead(car)[-1] == ahead[-1]  # it keeps its way, and waits
    waited = answer(client, request["id"], "wait")
    assert waited.json()["answers"][-1] == {**waited.json()["answers"][-1], "outcome": "accepted"}
    assert live.fleet.assistance.open_for(car) is not None
    unblock(blockers)
    assert live.step_until(lambda: live.trip(ride_id).state.value == "arrived_at_destination", 600)
    assert live.fleet.assistance.open_for(car) is None
    live.step()  # the writer's queue is empty
    assert kinds_of(client, car) == [
        "assist_requested", "assist_answered", "assist_accepted", "assist_closed",
        "assist_requested", "assist_answered", "assist_refused",
        "assist_answered", "assist_accepted", "assist_closed",
    ]  # fmt: skip
    assert live.world.stats.robotaxi_teleports == 0


# --- the desk on its own (no world) --------------------------------------------------------


def _car(speed: float, *, held: bool = True) -> StandingCar:
    return StandingCar("taxi0", "r1", "pickup", held, "e1", (0.0, 0.0), 0.0, speed)


def test_one_request_per_car_cleared_when_it_moves_on_by_itself(grid_map: Any) -> None:
    after_s = FleetConfig().assist_after_s
    desk = AssistanceDesk(grid_map, after_s)
    events: list[Any] = []
    for t in range(int(after_s) + 30):  # standing: one request, at after_s, never a second
        desk.observe([_car(0.2)], float(t), events, [])
    assert [e.kind for e in events] == ["assist_requested"]
    assert events[0].time == TimePoint.from_s(after_s)
    assert events[0].data["sees"] == "stopped 2 min, not at a stop"  # nothing to look with
    assert desk.open_for_trip("r1")
    desk.observe([_car(5.0)], after_s + 40, events, [])
    assert [e.kind for e in events] == ["assist_requested", "assist_closed"]
    assert events[-1].data["how"] == "cleared" and not desk.open_for_trip("r1")
    for t in range(int(after_s) - 1):  # at the kerb (not held): never asks
        desk.observe([_car(0.0, held=False)], after_s + 41 + t, events, [])
    assert len(events) == 2


def test_another_way_goes_to_the_world_once_and_counts_when_not_refused(grid_map: Any) -> None:
    desk = AssistanceDesk(grid_map, 10.0)
    events: list[Any] = []
    for t in range(11):
        desk.observe([_car(0.0)], float(t), events, [])
    request = desk.open_for("taxi0")
    assert request is not None
    _, _, answered = desk.answer(request.request_id, AssistAnswer.ANOTHER_WAY, 11.0)
    desk.send_another_way(request, request.answers[-1])
    commands: list[Any] = []
    desk.observe([_car(0.0)], 12.0, events, commands)
    assert [(c.vehicle_id, c.edge) for c in commands] == [("taxi0", "e1")]
    desk.observe([_car(0.0)], 13.0, events, commands)
    assert len(commands) == 1 and request.answers[-1].outcome == "accepted"
    assert [e.kind for e in answered + events[-1:]] == ["assist_answered", "assist_accepted"]


def test_the_fake_world_takes_another_way_or_says_why_not(grid_map: Any, grid_graph: Any) -> None:
    """FakeWorld (for fleet tests without SUMO) carries out the new command as SUMO does:
    a way around the street when there is one, a reason when the street holds the stop."""
    from robotaxi.config import WorldConfig
    from robotaxi.core import DriveTo
    from robotaxi.core.commands import AvoidStreet
    from robotaxi.world.fake import FakeWorld

    curbs = grid_map.curbs
    far = int(np.argmax(np.hypot(*(curbs.xy - curbs.xy[0]).T)))
    target = curbs.edge_ids[far]
    world = FakeWorld(
        grid_map, grid_graph, WorldConfig(emergency_per_hour=0.0), FleetConfig(size=1),
        seed=3, end_s=3600.0,
    )  # fmt: skip
    with world:
        world.add_robotaxi("taxi0", 0)
        drive = DriveTo("taxi0", target, float(curbs.pos[far]), int(curbs.lane_index[far]))
        assert world.apply([drive]) == []
        world.step()
        fastest = grid_graph.route(world.snapshot().road_ids[0], target)
        avoided = fastest[len(fastest) // 2]
        assert world.apply([AvoidStreet("taxi0", avoided)]) == []
        (refused,) = world.apply([AvoidStreet("taxi0", target)])
        assert refused.reason == f"its stop is on {target}, the blocked street"
        driven = set()
        for _ in range(1800):
            world.step()
            snapshot = world.snapshot()
            driven.add(snapshot.road_ids[0])
            if snapshot.stopped[0]:
                break
        assert snapshot.stopped[0] and snapshot.road_ids[0] == target
        assert avoided not in driven
