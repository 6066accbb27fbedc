"""Places through the real app on the live grid city (SUMO): search, the name of a point,
and street names on the quote, the ride, the receipt and the in-car screen."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from robotaxi.service.app import create_app
from test_service_api import OP, drive_until, settings_for, sign_in

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.sumo]
CORNER = "C Blvd & 2nd Ave"  # the grid city's generated names


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, map_cache: Path) -> Iterator[TestClient]:
    tmp = tmp_path_factory.mktemp("places")
    with TestClient(create_app(settings_for(tmp, map_cache))) as c:
        yield c


def place(client: TestClient, q: str) -> dict[str, object]:
    r = client.get("/api/places", params={"q": q, "limit": 1})
    assert r.status_code == 200, r.text
    (first,) = r.json()
    return dict(first)


def test_search_autocompletes_streets_and_corners(client: TestClient) -> None:
    r = client.get("/api/places", params={"q": "c blv"})
    assert r.status_code == 200
    names = [p["name"] for p in r.json()]
    assert names[0] == "C Blvd" and "C Blvd & 1st Ave" in names and len(names) == 8
    assert {p["kind"] for p in r.json()} == {"street", "intersection"}
    found = place(client, "2nd & c")
    assert found["name"] == CORNER and found["kind"] == "intersection"
    assert client.get("/api/places", params={"q": "c blv"}).json() == r.json()  # same answer
    assert client.get("/api/places", params={"q": "no such street"}).json() == []
    assert len(client.get("/api/places", params={"q": "st", "limit": 20}).json()) == 20


@pytest.mark.parametrize(
    ("query", "why"),
    [("", "string_too_short"), ("   ", "string_pattern_mismatch"), ("x" * 101, "string_too_long")],
)
def test_bad_searches_get_a_clear_422(client: TestClient, query: str, why: str) -> None:
    r = client.get("/api/places", params={"q": query})
    assert r.status_code == 422
    (error,) = r.json()["detail"]
    assert error["loc"] == ["query", "q"] and error["type"] == why
    assert client.get("/api/places", params={"q": "a", "limit": 21}).status_code == 422
    assert client.get("/api/places").status_code == 422  # q is required


def test_a_point_is_named_by_its_corner_and_round_trips(client: TestClient) -> None:
    found = place(client, CORNER)
    r = client.get("/api/places/reverse", params={"lat": found["lat"], "lon": found["lon"]})
    assert r.status_code == 200
    body = r.json()
    assert body["name"] == CORNER and {body["street"], body["cross_street"]} == {
        "C Blvd",
        "2nd Ave",
    }
    far = client.get("/api/places/reverse", params={"lat": 0.0, "lon": 0.0}).json()
    assert far == {
        "name": None,
        "street": None,
        "cross_street": None,
        "place": None,
        "distance_m": None,
    }
    assert client.get("/api/places/reverse", params={"lat": 91, "lon": 0}).status_code == 422


def test_quote_ride_receipt_and_screen_carry_street_names(client: TestClient) -> None:
    me = sign_in(client, "Rosa")
    a, b = place(client, "B St & 2nd Ave"), place(client, "H St & 8th Ave")
    body = {
        "pickup": {"lat": a["lat"], "lon": a["lon"]},
        "dropoff": {"lat": b["lat"], "lon": b["lon"]},
    }
    q = client.post("/api/rides/quote", json=body, headers=me).json()
    # the curb where the car stops is named: at the corner or along the block from it
    assert "B St" in q["pickup_name"] or "2nd Ave" in q["pickup_name"], q["pickup_name"]
    assert "H St" in q["dropoff_name"] or "8th Ave" in q["dropoff_name"], q["dropoff_name"]
    r = client.post("/api/rides", json=body, headers=me)
    assert r.status_code == 201, r.text
    ride = r.json()
    assert (ride["pickup_name"], ride["dropoff_name"]) == (q["pickup_name"], q["dropoff_name"])
    drive_until(client, ride["id"], "en_route")
    screen = client.get(f"/api/vehicles/{ride['vehicle_id'] or ''}/screen", headers=me)
    if ride["vehicle_id"] is None:
        ride = client.get(f"/api/rides/{ride['id']}", headers=me).json()
        screen = client.get(f"/api/vehicles/{ride['vehicle_id']}/screen", headers=me)
    assert screen.status_code == 200, screen.text
    car = screen.json()
    assert car["place_name"] and any(s in car["place_name"] for s in ("St", "Ave", "Blvd"))
    assert car["ride"]["dropoff_name"] == q["dropoff_name"]
    client.post(f"/api/rides/{ride['id']}/cancel", headers=me)
    receipt = client.get(f"/api/rides/{ride['id']}/receipt", headers=me).json()
    assert (receipt["pickup_name"], receipt["dropoff_name"]) == (
        q["pickup_name"],
        q["dropoff_name"],
    )
    history = client.get("/api/rides", headers=me).json()
    assert history[0]["pickup_name"] == q["pickup_name"]
    # operators see the same names on any car's screen
    assert client.get(f"/api/vehicles/{ride['vehicle_id']}/screen", headers=OP).status_code == 200
