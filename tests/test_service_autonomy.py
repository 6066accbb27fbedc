"""`robotaxi serve --autonomous N`: fleet cars driven by the autonomy stack in the live city.

Against the real app and the grid city, stepped by the test: a rider's ride is served by the
autonomous car from booking to completion, and the in-car screen shows what its stack sees
(tracks that match SUMO's vehicles), its steering-wheel angle and its behaviour. An ambulance
sent up behind the car mid-ride is heard by its roof microphones before its cameras see it;
the car pulls over by itself, the screen says so, the ops view records the yield, and the
ride completes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import robotaxi.sim.autonomous as autonomous
from robotaxi.config import RunConfig, load_config
from robotaxi.core import ScenarioError
from robotaxi.service.app import create_app
from robotaxi.service.runtime import ServiceRuntime
from robotaxi.service.settings import ServiceSettings
from robotaxi.sim.live import LiveService
from robotaxi.world.traffic import AMBULANCE_TYPE

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.sumo]
OPERATOR = "operator-secret-for-autonomy-tests"
CAR = "taxi000"  # --autonomous 1 drives the first car by id


def _curb_ahead(live: LiveService, beyond_m: float) -> int:
    """The first curb spot on the autonomous car's street more than `beyond_m` ahead of it."""
    curbs = live.map.curbs
    car = live.fleet.vehicles[CAR]
    ahead = [
        i
        for i in range(len(curbs))
        if curbs.edge_ids[i] == car.edge and curbs.pos[i] > car.lane_pos + beyond_m
    ]
    assert ahead, "the autonomous car starts too near the end of its street"
    return ahead[0]


def trip_curbs(live: LiveService) -> tuple[tuple[float, float], tuple[float, float]]:
    """A pick-up curb ahead of the autonomous car on its street (so it is the nearest car)
    and a drop-off 300-600 m from there on another street (a turn or two on the way)."""
    curbs = live.map.curbs
    pickup = _curb_ahead(live, 100.0)
    d_pick = np.hypot(*(curbs.xy - curbs.xy[pickup]).T)
    far = [
        i
        for i in np.flatnonzero((d_pick > 250) & (d_pick < 500))
        if curbs.edge_ids[i] != curbs.edge_ids[pickup]
    ]
    eta = live.graph.eta_matrix(
        [curbs.edge_ids[pickup]], np.array([curbs.pos[pickup]]),
        [curbs.edge_ids[i] for i in far], np.array([curbs.pos[i] for i in far]),
    )[0]  # fmt: skip
    dropoff = int(far[int(np.argmin(eta))])  # the quickest to reach: no detour round a block
    return (
        (float(curbs.xy[pickup, 0]), float(curbs.xy[pickup, 1])),
        (float(curbs.xy[dropoff, 0]), float(curbs.xy[dropoff, 1])),
    )


@pytest.fixture
def client(tmp_path: Path, map_cache: Path) -> Iterator[TestClient]:
    tmp = tmp_path
    settings = ServiceSettings(
        fleet=2, autonomous=1, speed=50.0, hours=1.0, data_dir=tmp / "data",
        operator_token=OPERATOR, map_cache_dir=map_cache, background_traffic=True,
        background_per_hour_per_km2=600.0,
        ev_per_hour=0.0, riders_per_hour=0.0, tick_in_background=False,
    )  # fmt: skip
    with TestClient(create_app(settings)) as c:
        yield c


def test_an_autonomous_car_serves_a_ride_and_its_screen_shows_what_it_tracks(
    client: TestClient,
) -> None:
    runtime: ServiceRuntime = cast(FastAPI, client.app).state.runtime
    live = runtime.live
    live.step()
    pickup_xy, dropoff_xy = trip_curbs(live)
    ride_id, me = book_ride(client, runtime, "Ada", pickup_xy, dropoff_xy)
    screens: list[dict[str, Any]] = []
    track_errors: list[float] = []

    def watch() -> str:
        """One tick's checks: the screen, and the stack's tracks against SUMO's truth."""
        view = live.trip(ride_id)
        assert view is not None
        if view.vehicle_id == CAR and view.state.value in ("en_route", "driving"):
            screen = client.get(f"/api/vehicles/{CAR}/screen", headers=me).json()
            screens.append(screen)
            snap = live.snapshot()
            seen, car = snap.autonomy[CAR], snap.vehicles[CAR]
            truth = live.world.surroundings(CAR)  # the same instant: SUMO has not moved since
            for track in seen.tracks:
                near = math.hypot(track.x - car.x, track.y - car.y) <= 60.0
                if truth and near and not track.coasting:
                    track_errors.append(
                        min(math.hypot(track.x - a.x, track.y - a.y) for a in truth)
                    )
        return view.state.value

    assert live.step_until(lambda: watch() == "arrived", 900), "the car never arrived"
    assert live.trip(ride_id).vehicle_id == CAR  # type: ignore[union-attr]
    screen = client.get(f"/api/vehicles/{CAR}/screen", headers=me).json()
    assert screen["ride"]["greeting"] == "Hey there, Ada!"
    assert screen["position"]  # standing at the pick-up curb
    car = live.vehicle(CAR)
    assert car is not None and car.stopped and car.speed < 0.1
    pickup_gap = math.dist((car.x, car.y), pickup_xy)
    assert pickup_gap < 30, f"stopped {pickup_gap:.0f} m from the pick-up curb"
    assert client.post(f"/api/rides/{ride_id}/unlock", headers=me).status_code == 200
    assert client.post(f"/api/rides/{ride_id}/board", headers=me).status_code == 200
    client.post(f"/api/rides/{ride_id}/buckle", json={"buckled": True}, headers=me)
    assert client.post(f"/api/rides/{ride_id}/start", headers=me).status_code == 200
    assert live.step_until(lambda: watch() == "completed", 900), "the ride never completed"
    events = [e["state"] for e in client.get(f"/api/rides/{ride_id}", headers=me).json()["events"]]
    assert events[-3:] == ["driving", "arrived_at_destination", "completed"]
    car = live.vehicle(CAR)
    assert car is not None and math.dist((car.x, car.y), dropoff_xy) < 30

    # while it drove, the screen showed the stack's view, not SUMO's
    assert len(screens) > 30
    assert {s["nearby_source"] for s in screens} == {"autonomy"}
    angles = [s["steering"]["angle_deg"] for s in screens]
    assert all(a is not None and math.isfinite(a) for a in angles)
    assert max(angles) - min(angles) > 20.0  # it turned the wheel (curbs, corners)
    behaviours = {s["behaviour"] for s in screens}
    assert "curbside_stop" in behaviours and behaviours & {"lane_follow", "car_follow"}
    # what it tracked were SUMO's vehicles, within a few metres of where they really were
    assert sum(len(s["nearby"]) for s in screens) > 20
    assert len(track_errors) > 20
    assert float(np.median(track_errors)) < 1.0 and max(track_errors) < 3.0
    tracked = [n for s in screens for n in s["nearby"]]
    assert all(n["id"].startswith("track ") and n["distance_m"] <= 60.0 for n in tracked)
    # the SUMO-driven car keeps today's screen
    other = client.get(
        "/api/vehicles/taxi001/screen", headers={"Authorization": f"Bearer {OPERATOR}"}
    ).json()
    assert other["nearby_source"] == "sumo" and other["steering"]["angle_deg"] is None


def config(map_cache: Path) -> RunConfig:
    return load_config(
        None,
        {
            "map.cache_dir": str(map_cache),
            "fleet.size": 2,
            "hours": 0.5,
            "world.emergency_per_hour": 0.0,
        },
    )


def trace(live: LiveService, ticks: int) -> list[tuple[Any, ...]]:
    out = []
    for _ in range(ticks):
        live.step()
        v, seen = live.vehicle(CAR), live.snapshot().autonomy[CAR]
        assert v is not None
        out.append(
            (
                v.x,
                v.y,
                v.speed,
                seen.steering_wheel_deg,
                seen.behaviour,
                seen.tracks,
                v.status,
                seen.siren_probability,
            )
        )
    return out


def test_same_seed_same_drive(tmp_path: Path, map_cache: Path) -> None:
    def run(folder: str) -> list[tuple[Any, ...]]:
        live = LiveService(config(map_cache), tmp_path / folder, riders_per_hour=0, autonomous=1)
        with live:
            live.step()
            pickup, dropoff = trip_curbs(live)
            live.request_ride("r1", "rider", "Bo", pickup, dropoff)
            return trace(live, 70)

    first, second = run("a"), run("b")
    moving = [row for row in first if row[2] > 1.0]
    assert len(moving) > 10  # it drove (so the comparison means something)
    assert first == second


def test_a_leg_without_a_lane_route_is_handed_to_sumo_and_taken_back(
    tmp_path: Path, map_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = autonomous.AutonomousDriver._plan_leg
    failures = [0]

    def first_leg_fails(self: autonomous.AutonomousDriver, *args: Any) -> Any:
        if failures[0] == 0:  # the pick-up leg
            failures[0] += 1
            raise ScenarioError("route turns from A to B, which the map does not allow")
        return real(self, *args)

    monkeypatch.setattr(autonomous.AutonomousDriver, "_plan_leg", first_leg_fails)
    live = LiveService(
        config(map_cache), tmp_path, riders_per_hour=0, background_traffic=False, autonomous=1
    )
    with live:
        live.step()
        pickup, dropoff = trip_curbs(live)
        live.request_ride("r1", "rider", "Cy", pickup, dropoff)

        def state() -> str:
            view = live.trip("r1")
            return "" if view is None else view.state.value

        assert live.step_until(lambda: state() == "en_route", 60)
        assert live.trip("r1").vehicle_id == CAR  # type: ignore[union-attr]
        handed = live.snapshot().autonomy[CAR]
        assert handed.driver == "sumo" and "does not allow" in handed.note
        assert live.step_until(lambda: state() == "arrived", 600)  # SUMO drove it there
        live.unlock("r1")
        live.board("r1")
        live.buckle("r1", True)
        live.start_ride("r1")
        live.step()
        back = live.snapshot().autonomy[CAR]
        assert back.driver == "autonomy"  # parked at the pick-up: the stack drives on
        assert live.step_until(lambda: state() == "completed", 600)
    assert failures[0] == 1


# --- hearing the ambulance ------------------------------------------------------------------

AMBULANCE = "amb-test"
AMBULANCE_BEHIND_M = 150.0


def long_trip_curbs(live: LiveService) -> tuple[tuple[float, float], tuple[float, float]]:
    """A pick-up just ahead of the autonomous car and a drop-off 500-800 m away along the
    straightest way there (the least ETA per metre): time for an ambulance to catch up."""
    curbs = live.map.curbs
    pickup = _curb_ahead(live, 60.0)
    d = np.hypot(*(curbs.xy - curbs.xy[pickup]).T)
    far = np.flatnonzero((d > 500) & (d < 800))
    eta = live.graph.eta_matrix(
        [curbs.edge_ids[pickup]], np.array([curbs.pos[pickup]]),
        [curbs.edge_ids[i] for i in far], np.array([curbs.pos[i] for i in far]),
    )[0]  # fmt: skip
    dropoff = int(far[int(np.argmin(eta / d[far]))])
    return (
        (float(curbs.xy[pickup, 0]), float(curbs.xy[pickup, 1])),
        (float(curbs.xy[dropoff, 0]), float(curbs.xy[dropoff, 1])),
    )


def send_ambulance_behind(live: LiveService) -> None:
    """An ambulance, siren on, `AMBULANCE_BEHIND_M` behind the car on its lane route,
    following the car's route (SUMO drives it)."""
    assert live.driver is not None
    car = live.driver.cars[CAR]
    assert car.leg is not None
    edges = list(car.leg.edges)
    rest = edges[edges.index(car.edge) :]
    if car.lane_pos >= AMBULANCE_BEHIND_M:
        start, pos = rest, car.lane_pos - AMBULANCE_BEHIND_M
    else:
        m = live.map
        before = [
            e
            for e in sorted(m.edges)
            if e in live.graph.index
            and e not in rest
            and any(
                m.lanes[succ].edge_id == car.edge
                for lane in m.edges[e].lane_ids
                for succ in m.lanes[lane].successors
            )
        ]
        assert before, f"no edge leads onto {car.edge}"
        length = m.lanes[m.edges[before[0]].lane_ids[0]].length
        start = [before[0], *rest]
        pos = max(length - (AMBULANCE_BEHIND_M - car.lane_pos), 0.0)
    live.world.add_vehicle(AMBULANCE, start, type_id=AMBULANCE_TYPE, depart_pos=pos, speed=12.0)


def book_ride(
    client: TestClient,
    runtime: ServiceRuntime,
    rider: str,
    pickup_xy: tuple[float, float],
    dropoff_xy: tuple[float, float],
) -> tuple[str, dict[str, str]]:
    """A new rider books a ride between two map points: (ride id, their auth header)."""
    token = client.post("/api/riders", json={"name": rider}).json()["token"]
    me = {"Authorization": f"Bearer {token}"}
    (plat, plon), (dlat, dlon) = runtime.to_latlon(np.array([pickup_xy, dropoff_xy]))
    booked = client.post(
        "/api/rides",
        json={"pickup": {"lat": plat, "lon": plon}, "dropoff": {"lat": dlat, "lon": dlon}},
        headers=me,
    )
    assert booked.status_code == 201, booked.text
    return booked.json()["id"], me


def ride_underway(
    client: TestClient, live: LiveService, runtime: ServiceRuntime, rider: str
) -> tuple[str, dict[str, str], tuple[float, float]]:
    """A rider books the long trip, the autonomous car fetches them, they board, buckle and
    start; returns (ride id, the rider's auth header, the drop-off curb) once it drives."""
    pickup_xy, dropoff_xy = long_trip_curbs(live)
    ride_id, me = book_ride(client, runtime, rider, pickup_xy, dropoff_xy)
    assert live.step_until(lambda: trip_state(live, ride_id) == "arrived", 600), "never came"
    assert live.trip(ride_id).vehicle_id == CAR  # type: ignore[union-attr]
    assert client.post(f"/api/rides/{ride_id}/unlock", headers=me).status_code == 200
    assert client.post(f"/api/rides/{ride_id}/board", headers=me).status_code == 200
    client.post(f"/api/rides/{ride_id}/buckle", json={"buckled": True}, headers=me)
    assert client.post(f"/api/rides/{ride_id}/start", headers=me).status_code == 200
    assert live.step_until(lambda: live.fleet.vehicles[CAR].speed > 3.0, 30)
    return ride_id, me, dropoff_xy


def trip_state(live: LiveService, ride_id: str) -> str:
    view = live.trip(ride_id)
    assert view is not None
    return view.state.value


@pytest.fixture
def quiet_client(tmp_path: Path, map_cache: Path) -> Iterator[TestClient]:
    settings = ServiceSettings(
        fleet=2, autonomous=1, speed=50.0, hours=1.0, data_dir=tmp_path / "data",
        operator_token=OPERATOR, map_cache_dir=map_cache, background_traffic=False,
        ev_per_hour=0.0, riders_per_hour=0.0, tick_in_background=False,
    )  # fmt: skip
    with TestClient(create_app(settings)) as c:
        yield c


def test_the_autonomous_car_hears_an_ambulance_pulls_over_by_itself_and_completes_the_ride(
    quiet_client: TestClient,
) -> None:
    client = quiet_client
    runtime: ServiceRuntime = cast(FastAPI, client.app).state.runtime
    live = runtime.live
    assert live.driver is not None and live.driver.hearing and live.driver.occluders is not None
    live.step()
    ops = {"Authorization": f"Bearer {OPERATOR}"}
    ride_id, me, dropoff_xy = ride_underway(client, live, runtime, "Ada")
    send_ambulance_behind(live)
    driver = live.driver
    rows: list[dict[str, Any]] = []  # per tick: the screen, the ambulance's distance, trip state

    def watch() -> bool:
        response = client.get(f"/api/vehicles/{CAR}/screen", headers=me)
        if response.status_code == 404:
            # the car no longer serves the ride: only once it has ended (issue 13)
            assert trip_state(live, ride_id) == "completed"
            return True
        assert response.status_code == 200, response.text
        screen = response.json()
        snap = live.world.snapshot()
        car = live.fleet.vehicles[CAR]
        try:
            i = snap.index_of(AMBULANCE)
            gap = math.dist((float(snap.xy[i, 0]), float(snap.xy[i, 1])), car.xy)
        except KeyError:
            gap = math.inf
        leg = driver.cars[CAR].leg
        rows.append(
            {
                "screen": screen, "gap": gap, "state": trip_state(live, ride_id),
                "fleet_pull_over": leg is not None and leg.pulled_over,
            }
        )  # fmt: skip
        return trip_state(live, ride_id) == "completed"

    assert live.step_until(watch, 300), f"the ride never completed ({trip_state(live, ride_id)})"

    heard = [k for k, r in enumerate(rows) if r["screen"]["hearing"]["siren_heard"]]
    assert heard, "the microphones never heard the siren"
    first = rows[heard[0]]
    # heard from well behind, around a stretch the cameras do not see: before seeing it
    assert first["gap"] > 100.0
    assert first["screen"]["hearing"]["ev_seen_since_s"] is None
    assert first["screen"]["emergency_state"] == "siren_heard"
    assert first["screen"]["emergency_banner"].startswith("Siren heard")
    # its own pull-over: stopped in yield_to_ev mid-ride (not at the drop-off, no rider or
    # fleet pull-over in force: the adapter leaves the fleet's ambulance pull_over to the stack)
    stopped = [
        k
        for k, r in enumerate(rows)
        if r["screen"]["behaviour"] == "yield_to_ev"
        and r["screen"]["speed_mps"] < 0.2
        and r["state"] == "driving"
    ]
    assert stopped, "the car never stopped for the ambulance"
    assert not any(r["fleet_pull_over"] for r in rows)
    assert heard[0] < stopped[0]
    at_stop = rows[stopped[0]]["screen"]
    assert at_stop["emergency_state"] == "pulling_over"
    assert at_stop["emergency_banner"].startswith("Ambulance — pulling over")
    lead = at_stop["hearing"]["heard_before_seen_s"]
    assert lead is not None and lead > 1.0
    assert f"heard its siren {lead:.0f} s before we saw it" in at_stop["emergency_banner"]
    assert min(r["gap"] for r in rows[stopped[0] :]) < 20.0  # it passed the stopped car
    # then it drove on, and the ride completed with no trip-level pull-over
    assert any(
        r["screen"]["speed_mps"] > 5.0 and r["state"] == "driving" for r in rows[stopped[-1] :]
    )
    events = [e["state"] for e in client.get(f"/api/rides/{ride_id}", headers=me).json()["events"]]
    assert events[-3:] == ["driving", "arrived_at_destination", "completed"]
    assert "pulled_over" not in events
    car = live.vehicle(CAR)
    assert car is not None and math.dist((car.x, car.y), dropoff_xy) < 30
    # the ops view's EV-yield record, as for a SUMO-driven car: in range → pulled over → resumed
    yields = [y for y in client.get("/api/yields", headers=ops).json() if y["vehicle_id"] == CAR]
    assert len(yields) == 1, yields
    y = yields[0]
    assert y["ev_id"] == AMBULANCE and y["trip_id"] == ride_id and not y["active"]
    assert y["stopped_s"] is not None and y["resumed_s"] is not None
    assert y["in_range_s"] <= y["stopped_s"] <= y["resumed_s"]
    # once the ambulance has passed, the banner is gone
    assert rows[-1]["screen"]["emergency_banner"] is None
