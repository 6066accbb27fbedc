"""`robotaxi serve --autonomous N`: fleet cars driven by the autonomy stack in the live city.

Against the real app and the grid city, stepped by the test: a rider's ride is served by the
autonomous car from booking to completion, and the in-car screen shows what its stack sees
(tracks that match SUMO's vehicles), its steering-wheel angle and its behaviour.
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

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
OPERATOR = "operator-secret-for-autonomy-tests"
CAR = "taxi000"  # --autonomous 1 drives the first car by id


def trip_curbs(live: LiveService) -> tuple[tuple[float, float], tuple[float, float]]:
    """A pick-up curb ahead of the autonomous car on its street (so it is the nearest car)
    and a drop-off 300-600 m from there on another street (a turn or two on the way)."""
    curbs = live.map.curbs
    car = live.fleet.vehicles[CAR]
    ahead = [
        i
        for i in range(len(curbs))
        if curbs.edge_ids[i] == car.edge and curbs.pos[i] > car.lane_pos + 100
    ]
    assert ahead, "the autonomous car starts too near the end of its street"
    pickup = ahead[0]
    d_pick = np.hypot(*(curbs.xy - curbs.xy[pickup]).T)
    far = [
        i for i in np.flatnonzero((d_pick > 250) & (d_pick < 500)) if curbs.edge_ids[i] != car.edge
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
    token = client.post("/api/riders", json={"name": "Ada"}).json()["token"]
    me = {"Authorization": f"Bearer {token}"}
    pickup_xy, dropoff_xy = trip_curbs(live)
    (plat, plon), (dlat, dlon) = runtime.to_latlon(np.array([pickup_xy, dropoff_xy]))
    booked = client.post(
        "/api/rides",
        json={"pickup": {"lat": plat, "lon": plon}, "dropoff": {"lat": dlat, "lon": dlon}},
        headers=me,
    )
    assert booked.status_code == 201, booked.text
    ride_id = booked.json()["id"]
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
            (v.x, v.y, v.speed, seen.steering_wheel_deg, seen.behaviour, seen.tracks, v.status)
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
        live.board("r1")
        live.buckle("r1", True)
        live.start_ride("r1")
        live.step()
        back = live.snapshot().autonomy[CAR]
        assert back.driver == "autonomy"  # parked at the pick-up: the stack drives on
        assert live.step_until(lambda: state() == "completed", 600)
    assert failures[0] == 1
