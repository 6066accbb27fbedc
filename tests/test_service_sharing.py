"""At the car and beyond the rider: trip sharing (a read-only link for someone else), find my
car (honk and flash) and unlocking, against the real app, a real SQLite file and the live
grid city (stepped by the test)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from robotaxi.service.app import create_app
from test_service_api import (
    OP,
    book,
    drive_until,
    latlon_distance_m,
    point,
    runtime_of,
    settings_for,
    sign_in,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
# what a link holder may see: the car, the ETA and the places; never who the rider is
SHARED_KEYS = {
    "rider_first_name", "state", "status_text", "over", "vehicle_id", "vehicle", "eta_s",
    "pickup_name", "dropoff_name", "pickup_curb", "dropoff_curb",
}  # fmt: skip


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, map_cache: Path) -> Iterator[TestClient]:
    app = create_app(settings_for(tmp_path_factory.mktemp("sharing"), map_cache))
    with TestClient(app) as c:
        yield c


@pytest.mark.sumo
def test_a_shared_link_follows_the_car_until_the_ride_ends_or_sharing_stops(
    client: TestClient,
) -> None:
    me = sign_in(client, "Ada Lovelace")
    ride_id = book(client, me, (0.15, 0.2), (0.8, 0.75))
    made = client.post(f"/api/rides/{ride_id}/share", headers=me)
    assert made.status_code == 201, made.text
    token = made.json()["token"]
    assert made.json()["url"] == f"/share/{token}" and len(token) >= 40

    # the link holder needs no account; they see the car and ETA, not the rider's account
    drive_until(client, ride_id, "en_route", 300)
    # the rider sees the car's way to them, ending at their kerb
    coming = client.get(f"/api/rides/{ride_id}", headers=me).json()
    assert len(coming["car_route"]) >= 2
    assert (
        latlon_distance_m(
            dict(zip(("lat", "lon"), coming["car_route"][-1], strict=True)), coming["pickup_curb"]
        )
        < 5
    )
    seen = client.get(f"/api/shared/{token}")
    assert seen.status_code == 200, seen.text
    body = seen.json()
    assert set(body) == SHARED_KEYS
    assert body["rider_first_name"] == "Ada" and "Ada" in body["status_text"]
    assert body["state"] == "en_route" and not body["over"]
    assert body["vehicle"] is not None and body["eta_s"] is not None
    assert "Lovelace" not in seen.text and ride_id not in seen.text
    # the page is served, and reads its token from its own URL
    page = client.get(f"/share/{token}")
    assert page.status_code == 200 and "share.js" in page.text

    # someone else cannot share or revoke the ride; a made-up link shows nothing
    other = sign_in(client, "Mallory")
    assert client.post(f"/api/rides/{ride_id}/share", headers=other).status_code == 404
    assert client.delete(f"/api/rides/{ride_id}/share", headers=other).status_code == 404
    assert client.get("/api/shared/not-a-real-link").status_code == 404

    # stopping sharing kills every link at once; a new link works again
    second = client.post(f"/api/rides/{ride_id}/share", headers=me).json()["token"]
    stopped = client.delete(f"/api/rides/{ride_id}/share", headers=me)
    assert stopped.json() == {"revoked": 2}
    for old in (token, second):
        gone = client.get(f"/api/shared/{old}")
        assert gone.status_code == 404 and "ask the rider for a new one" in gone.json()["detail"]
    token = client.post(f"/api/rides/{ride_id}/share", headers=me).json()["token"]
    assert client.get(f"/api/shared/{token}").status_code == 200

    # at the pick-up: find my car (rate limited), unlock, then the ride
    drive_until(client, ride_id, "arrived")
    assert client.get(f"/api/shared/{token}").json()["status_text"] == "The car is waiting for Ada"
    found = client.post(f"/api/rides/{ride_id}/find-car", headers=me)
    assert found.status_code == 200 and found.json()["signalled_s"] is not None
    for _ in range(2):
        runtime_of(client).live.step()  # a moment later (the log keeps one per car, kind, time)
        assert client.post(f"/api/rides/{ride_id}/find-car", headers=me).status_code == 200
    honked_out = client.post(f"/api/rides/{ride_id}/find-car", headers=me)
    assert honked_out.status_code == 429 and "Retry-After" in honked_out.headers
    assert client.post(f"/api/rides/{ride_id}/unlock", headers=me).json()["unlocked"] is True
    for action, body_json in (("board", None), ("buckle", {"buckled": True}), ("start", None)):
        r = client.post(f"/api/rides/{ride_id}/{action}", json=body_json, headers=me)
        assert r.status_code == 200, r.text
    drive_until(client, ride_id, "completed", 2000)

    # over: the link says so and shows no position; no new links for an ended ride
    ended = client.get(f"/api/shared/{token}").json()
    assert ended["over"] and ended["vehicle"] is None and ended["eta_s"] is None
    assert ended["status_text"] == "Ada has arrived: the ride is over"
    late = client.post(f"/api/rides/{ride_id}/share", headers=me)
    assert late.status_code == 409 and "nothing to follow" in late.json()["detail"]
    # operations see the rider's actions at the car in the car's log
    log = client.get("/api/vehicle-events", headers=OP).json()
    kinds = [e["kind"] for e in log if e["data"].get("trip") == ride_id]
    assert kinds.count("horn_and_lights") == 3 and kinds.count("doors_unlocked") == 1


@pytest.mark.sumo
def test_find_my_car_and_unlock_wait_for_the_car(client: TestClient) -> None:
    me = sign_in(client, "Grace")
    ride_id = book(client, me, (0.7, 0.2), (0.2, 0.8))
    for action in ("find-car", "unlock"):
        early = client.post(f"/api/rides/{ride_id}/{action}", headers=me)
        assert early.status_code == 409 and "has not arrived" in early.json()["detail"]
    assert client.post(f"/api/rides/{ride_id}/cancel", headers=me).status_code == 200


@pytest.mark.sumo
def test_pickup_spots_are_kerb_spots_near_the_rider_nearest_first(client: TestClient) -> None:
    me = sign_in(client, "Hedy")
    at = point(client, 0.42, 0.37)
    spots = client.get("/api/places/pickup-spots", params={**at, "limit": 4}).json()
    assert 2 <= len(spots) <= 4
    walks = [s["walk_m"] for s in spots]
    assert walks == sorted(walks) and walks[-1] <= 400
    for s in spots:
        assert s["walk_s"] == pytest.approx(s["walk_m"] / 1.3, abs=0.1)
        assert s["name"] and ("&" in s["name"] or "near" in s["name"])
        # along the streets: never shorter than as the crow flies, drawn from here to the spot
        assert s["walk_m"] >= latlon_distance_m(at, s) - 1.0
        path = [{"lat": lat, "lon": lon} for lat, lon in s["walk_path"]]
        assert latlon_distance_m(path[0], at) < 0.5 and latlon_distance_m(path[-1], s) < 0.5
        drawn = sum(latlon_distance_m(a, b) for a, b in itertools.pairwise(path))
        assert drawn == pytest.approx(s["walk_m"], rel=0.01, abs=1.0)
    # both sides of a street have spots, named by side: the north one lies north of the south one
    sides = {s["name"]: s for s in spots}
    for s in spots:
        base, side = s["name"].rsplit(" (", 1)
        opposite = {"north": "south", "south": "north", "east": "west", "west": "east"}
        other = sides.get(f"{base} ({opposite[side.split()[0]]} side)")
        if other is not None and side.startswith(("north", "east")):
            key = "lat" if side.startswith("north") else "lon"
            assert s[key] > other[key], (s, other)
    # a chosen spot is where the car stops: the quote's kerb is that spot, and the car's
    # ETA shown beside each spot is the quote's pick-up ETA from there (one estimate)
    for spot in spots:
        quote = client.post(
            "/api/rides/quote",
            json={
                "pickup": {"lat": spot["lat"], "lon": spot["lon"]},
                "dropoff": point(client, 0.9, 0.9),
            },
            headers=me,
        ).json()
        assert latlon_distance_m(quote["pickup_curb"], spot) < 1.0
        assert quote["pickup_eta_s"] is not None and quote["pickup_eta_s"] > 0
        assert spot["car_eta_s"] == quote["pickup_eta_s"]
    assert len({s["car_eta_s"] for s in spots}) > 1  # spots on other streets: other times
    # nothing outside the city; bad coordinates are refused with the reason
    b = client.get("/api/map").json()["bounds"]
    outside = {"lat": b["north"] + 0.05, "lon": b["east"] + 0.05}
    assert client.get("/api/places/pickup-spots", params=outside).json() == []
    assert client.get("/api/places/pickup-spots", params={"lat": 95, "lon": 0}).status_code == 422
