"""The service API against the real app, a real SQLite file and the live grid city.

The simulation is stepped by the test (`tick_in_background=False`), so a ride goes from
booking to its receipt in a fraction of a second of wall time and every run is the same.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from robotaxi.core import EvApproach, TimePoint, TripEvent, TripState
from robotaxi.fleet.fares import Tariff
from robotaxi.fleet.manager import YieldRecord
from robotaxi.fleet.trips import ALLOWED, fold_state
from robotaxi.service.app import create_app
from robotaxi.service.runtime import (
    CLOSE_VIA,
    RESTART_REASON,
    RateLimiter,
    ServiceRuntime,
    close_via,
    recover_open_rides,
    tariff_pricer,
)
from robotaxi.service.settings import ServiceSettings
from robotaxi.store.records import NewRide
from robotaxi.store.store import Store

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
OPERATOR = "operator-secret-for-tests"
OP = {"Authorization": f"Bearer {OPERATOR}"}
S = TripState


def settings_for(tmp: Path, map_cache: Path, **extra: Any) -> ServiceSettings:
    values: dict[str, Any] = {
        "fleet": 4,
        "speed": 50.0,
        "hours": 2.0,
        "data_dir": tmp / "data",
        "operator_token": OPERATOR,
        "map_cache_dir": map_cache,
        "background_traffic": False,
        "ev_per_hour": 0.0,
        "riders_per_hour": 0.0,
        "tick_in_background": False,
        "rides_per_window": 5,
        "signups_per_window": 500,  # this module signs in a few dozen riders from one address
        "max_body_bytes": 4096,
    }
    values.update(extra)
    return ServiceSettings(**values)


# starts the live city (SUMO): every test that takes it carries the sumo marker
@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, map_cache: Path) -> Iterator[TestClient]:
    tmp = tmp_path_factory.mktemp("service")
    app = create_app(settings_for(tmp, map_cache))
    with TestClient(app) as c:
        yield c


def runtime_of(client: TestClient) -> ServiceRuntime:
    runtime: ServiceRuntime = cast(FastAPI, client.app).state.runtime
    return runtime


def sign_in(client: TestClient, name: str) -> dict[str, str]:
    r = client.post("/api/riders", json={"name": name})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def point(client: TestClient, fx: float, fy: float) -> dict[str, float]:
    """A lat/lon at fractions (fx east, fy north) of the city's bounds."""
    b = client.get("/api/map").json()["bounds"]
    return {
        "lat": b["south"] + fy * (b["north"] - b["south"]),
        "lon": b["west"] + fx * (b["east"] - b["west"]),
    }


def ride_body(client: TestClient, a: tuple[float, float], b: tuple[float, float]) -> dict[str, Any]:
    return {"pickup": point(client, *a), "dropoff": point(client, *b)}


def book(
    client: TestClient, me: dict[str, str], a: tuple[float, float], b: tuple[float, float]
) -> str:
    r = client.post("/api/rides", json=ride_body(client, a, b), headers=me)
    assert r.status_code == 201, r.text
    ride_id: str = r.json()["id"]
    return ride_id


def drive_until(client: TestClient, ride_id: str, state: str, max_sim_s: float = 1500) -> None:
    live = runtime_of(client).live

    def reached() -> bool:
        view = live.trip(ride_id)
        return view is not None and view.state.value == state

    assert live.step_until(reached, max_sim_s), f"{ride_id} never reached {state}"


def done_curb(client: TestClient, me: dict[str, str], ride_id: str) -> dict[str, float]:
    curb: dict[str, float] = client.get(f"/api/rides/{ride_id}", headers=me).json()["dropoff_curb"]
    return curb


def latlon_distance_m(a: dict[str, float], b: dict[str, float]) -> float:
    dlat = math.radians(b["lat"] - a["lat"])
    dlon = math.radians(b["lon"] - a["lon"]) * math.cos(math.radians(a["lat"]))
    return 6_371_000 * math.hypot(dlat, dlon)


# --- a ride from booking to receipt -------------------------------------------------------


@pytest.mark.sumo
def test_booking_to_completion(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    runtime = runtime_of(client)
    runtime.live.step()
    r = client.post("/api/riders", json={"name": "Ada Lovelace"})
    token = r.json()["token"]
    me = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/riders/me", headers=me).json()["name"] == "Ada Lovelace"
    body = ride_body(client, (0.2, 0.2), (0.8, 0.7))

    quote = client.post("/api/rides/quote", json=body, headers=me)
    assert quote.status_code == 200, quote.text
    q = quote.json()
    assert q["free_cars"] == 4 and q["pickup_eta_s"] > 0
    assert q["trip_s"] > 0 and q["trip_m"] > 0
    # the route runs along the lane beside the pick-up curb to the one beside the drop-off
    # (curb spots sit half a lane, ~1.6 m, right of the lane centre), and is at least as
    # long as the straight line between them
    first, last = ({"lat": p[0], "lon": p[1]} for p in (q["route"][0], q["route"][-1]))
    assert latlon_distance_m(first, q["pickup_curb"]) < 2.5
    assert latlon_distance_m(last, q["dropoff_curb"]) < 2.5
    assert q["trip_m"] >= latlon_distance_m(q["pickup_curb"], q["dropoff_curb"]) - 1
    # the fare: the planned distance at the planned time, up to 1.5 × that time (SF taxi rates:
    # 350 c + 275 c/mile + 55 c/minute), in integer cents, and said as a rider reads it
    miles, minutes = q["trip_m"] / 1609.344, q["trip_s"] / 60
    assert q["currency"] == "USD"
    assert q["fare_low_cents"] == math.floor(350 + 275 * miles + 55 * minutes + 0.5)
    assert q["fare_high_cents"] == math.floor(350 + 275 * miles + 55 * 1.5 * minutes + 0.5)
    low, high = q["fare_low_cents"], q["fare_high_cents"]
    assert q["fare_text"] == f"${low // 100}.{low % 100:02d} – ${high // 100}.{high % 100:02d}"

    booked = client.post("/api/rides", json=body, headers=me)
    assert booked.status_code == 201, booked.text
    ride = booked.json()
    ride_id = ride["id"]
    assert ride["state"] == "requested" and ride["live"]
    stored = runtime.store.ride(ride_id)
    assert stored is not None and stored.pickup_latlon is not None
    assert stored.pickup_latlon.lat == pytest.approx(body["pickup"]["lat"])

    # not yet: boarding and Start ride before the car is there are refused with the reason
    assert client.post(f"/api/rides/{ride_id}/board", headers=me).status_code == 409
    drive_until(client, ride_id, "en_route", 60)
    en_route = client.get(f"/api/rides/{ride_id}", headers=me).json()
    assert en_route["vehicle"] is not None and en_route["eta_s"] > 0
    assert en_route["greeting"] is None
    early = client.get(f"/api/rides/{ride_id}/greeting.wav", headers=me)
    assert early.status_code == 409 and "arrived" in early.json()["detail"]

    drive_until(client, ride_id, "arrived")
    arrived = client.get(f"/api/rides/{ride_id}", headers=me).json()
    assert arrived["greeting"] == "Hey there, Ada Lovelace!"
    # ...said aloud by espeak-ng: a real WAV (its samples checked in test_service_speech)
    wav = client.get(f"/api/rides/{ride_id}/greeting.wav", headers=me)
    assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav"
    assert wav.content[:4] == b"RIFF" and wav.content[8:12] == b"WAVE"
    assert client.get(f"/api/rides/{ride_id}/greeting.wav", headers=OP).content == wav.content
    other = sign_in(client, "Not Ada")
    assert client.get(f"/api/rides/{ride_id}/greeting.wav", headers=other).status_code == 404
    assert (
        arrived["can_start"] is False and arrived["start_blocked_reason"] == "unlock the car first"
    )
    vid = arrived["vehicle_id"]
    screen = client.get(f"/api/vehicles/{vid}/screen", headers=me).json()
    assert screen["ride"]["greeting"] == "Hey there, Ada Lovelace!"
    assert screen["steering"] == {"angle_deg": None, "note": "not available for this car"}
    # the rider reads about "this car"; which part drives it is for operators and tools
    assert screen["nearby_source"] == "sumo" and "of this car" in screen["nearby_note"]
    said = json.dumps({k: screen[k] for k in ("nearby_note", "steering", "emergency_banner")})
    assert not re.search(r"SUMO|simulat|fidelity|autonomy stack", said), said
    # the car waits at the pick-up curb the quote named
    assert latlon_distance_m(screen["position"], arrived["pickup_curb"]) < 30

    start = client.post(f"/api/rides/{ride_id}/start", headers=me)
    assert start.status_code == 409 and "on board" in start.json()["detail"]
    # the doors stay locked until the rider unlocks them from the app
    locked = client.post(f"/api/rides/{ride_id}/board", headers=me)
    assert locked.status_code == 409 and "doors are locked" in locked.json()["detail"]
    unlocked = client.post(f"/api/rides/{ride_id}/unlock", headers=me).json()
    assert unlocked["unlocked"] is True and unlocked["state"] == "arrived"
    assert client.post(f"/api/rides/{ride_id}/board", headers=me).json()["state"] == "boarded"
    start = client.post(f"/api/rides/{ride_id}/start", headers=me)
    assert start.status_code == 409 and "seat belt" in start.json()["detail"]
    buckled = client.post(f"/api/rides/{ride_id}/buckle", json={"buckled": True}, headers=me)
    assert buckled.json()["can_start"] is True
    unbuckled = client.post(f"/api/rides/{ride_id}/buckle", json={"buckled": False}, headers=me)
    assert unbuckled.json()["start_blocked_reason"] == "fasten your seat belt first"
    assert client.post(f"/api/rides/{ride_id}/start", headers=me).status_code == 409
    client.post(f"/api/rides/{ride_id}/buckle", json={"buckled": True}, headers=me)
    started = client.post(f"/api/rides/{ride_id}/start", headers=me)
    assert started.status_code == 200 and started.json()["state"] == "driving"
    screen = client.get(f"/api/vehicles/{vid}/screen", headers=me).json()
    assert len(screen["route"]) >= 2 and screen["ride"]["eta_s"] > 0

    drive_until(client, ride_id, "completed")
    done = client.get(f"/api/rides/{ride_id}", headers=me).json()
    assert [e["state"] for e in done["events"]] == [
        "requested", "assigned", "en_route", "arrived", "boarded", "started", "driving",
        "arrived_at_destination", "completed",
    ]  # fmt: skip
    receipt = client.get(f"/api/rides/{ride_id}/receipt", headers=me).json()
    times = {e["state"]: e["time_s"] for e in done["events"]}
    assert receipt["ended"] and receipt["state"] == "completed" and receipt["ended_by"] == "rider"
    assert receipt["wait_s"] == pytest.approx(times["arrived"] - times["requested"])
    assert receipt["ride_s"] == pytest.approx(times["arrived_at_destination"] - times["started"])
    # SUMO's odometer agrees with the planned route to within the curb manoeuvres
    assert receipt["ride_m"] == pytest.approx(q["trip_m"], rel=0.15)
    # the receipt draws the route driven: sampled from the car, pick-up curb to drop-off curb
    assert receipt["route_kind"] == "driven"
    driven = [{"lat": a, "lon": o} for a, o in receipt["route"]]
    assert latlon_distance_m(driven[0], arrived["pickup_curb"]) < 50
    assert latlon_distance_m(driven[-1], done_curb(client, me, ride_id)) < 30
    driven_m = sum(latlon_distance_m(p, q) for p, q in itertools.pairwise(driven))
    assert 0.8 * receipt["ride_m"] < driven_m < 1.05 * receipt["ride_m"]
    # charged: base + the distance driven + the time from Start ride to the drop-off
    charged = math.floor(
        350 + 275 * receipt["ride_m"] / 1609.344 + 55 * receipt["ride_s"] / 60 + 0.5
    )
    assert receipt["fare"] == {
        "cents": charged, "refunded_cents": 0, "currency": "USD", "rule": "metered",
        "text": f"${charged // 100}.{charged % 100:02d}",
        "note": "Distance and time of your ride",
    }  # fmt: skip
    assert low <= charged <= high * 1.2  # the quote's range held, or nearly
    stored_fare = runtime.store.ride(ride_id).fare  # type: ignore[union-attr]
    assert stored_fare is not None and (stored_fare.cents, stored_fare.rule) == (charged, "metered")

    # the durable log equals what the fleet produced, and folds to the same state
    live_events = runtime.live.trip(ride_id).events  # type: ignore[union-attr]
    assert runtime.store.events(ride_id) == list(live_events)
    assert fold_state(runtime.store.events(ride_id)) == S.COMPLETED
    assert runtime.store.ride(ride_id).state == S.COMPLETED  # type: ignore[union-attr]

    # the live stream of a finished ride sends its last body and ends
    with client.stream("GET", f"/api/rides/{ride_id}/stream", headers=me) as stream:
        text = stream.read().decode()
    assert text.startswith("event: ride\ndata: ")
    first = json.loads(text.split("data: ", 1)[1].split("\n", 1)[0])
    assert first["state"] == "completed" and "event: end" in text

    history = client.get("/api/rides", headers=me).json()
    assert [h["id"] for h in history] == [ride_id]
    assert history[0]["fare"] == receipt["fare"]
    # neither the token nor the name reaches the logs at info level
    logged = "\n".join(rec.getMessage() for rec in caplog.records)
    assert token not in logged and "Ada" not in logged
    assert ride_id in logged  # ride ids are logged, so the log is not trivially empty


@pytest.mark.sumo
def test_cancel_after_arrival_is_recorded_as_such(client: TestClient) -> None:
    me = sign_in(client, "Grace")
    ride_id = client.post(
        "/api/rides", json=ride_body(client, (0.3, 0.6), (0.7, 0.3)), headers=me
    ).json()["id"]
    drive_until(client, ride_id, "arrived")
    cancelled = client.post(f"/api/rides/{ride_id}/cancel", headers=me)
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert cancelled.json()["events"][-1]["cause"] == "rider_after_arrival"
    again = client.post(f"/api/rides/{ride_id}/cancel", headers=me)
    assert again.status_code == 409 and "cannot be cancelled" in again.json()["detail"]
    # cancelled as the car arrived: within the free wait, no fee
    fare = client.get(f"/api/rides/{ride_id}/receipt", headers=me).json()["fare"]
    assert (fare["cents"], fare["rule"], fare["text"]) == (0, "cancel_free", "$0.00")


@pytest.mark.sumo
def test_cancellation_fee_after_the_car_waited_and_operator_refunds(client: TestClient) -> None:
    me = sign_in(client, "Katherine")
    ride_id = book(client, me, (0.3, 0.6), (0.7, 0.3))
    drive_until(client, ride_id, "arrived")
    runtime_of(client).live.step_until(lambda: False, 125)  # past the 120 s free wait
    cancelled = client.post(f"/api/rides/{ride_id}/cancel", headers=me)
    assert cancelled.status_code == 200 and cancelled.json()["fare"]["cents"] == 500
    # the ride's own body says so too, while it is still in the live city
    assert client.get(f"/api/rides/{ride_id}", headers=me).json()["fare"]["text"] == "$5.00"
    receipt = client.get(f"/api/rides/{ride_id}/receipt", headers=me).json()
    assert receipt["fare"]["cents"] == 500 and receipt["fare"]["rule"] == "cancel_fee"
    assert receipt["fare"]["text"] == "$5.00" and "waited" in receipt["fare"]["note"]

    url, why = f"/api/rides/{ride_id}/refund", "the rider could not find the car"
    assert client.post(url, json={"cents": 200, "reason": why}, headers=me).status_code == 403
    refunded = client.post(url, json={"cents": 200, "reason": why}, headers=OP)
    assert refunded.status_code == 200, refunded.text
    assert refunded.json()["fare"]["refunded_cents"] == 200
    assert refunded.json()["fare"]["text"] == "$5.00 (refunded $2.00)"
    # cents are whole JSON numbers: 1.0 is one cent (JSON Schema's integer), true or "1" or
    # 1.5 are not
    for bad in (True, "1", 1.5):
        assert client.post(url, json={"cents": bad, "reason": why}, headers=OP).status_code == 422
    # refunds add up to the fare at most
    too_much = client.post(url, json={"cents": 301, "reason": why}, headers=OP)
    assert too_much.status_code == 409 and "$3.00 left" in too_much.json()["detail"]
    rest = client.post(url, json={"cents": 300.0, "reason": why}, headers=OP).json()["fare"]
    assert (rest["cents"], rest["refunded_cents"]) == (500, 500)
    history = client.get("/api/rides", headers=me).json()
    assert history[0]["id"] == ride_id and history[0]["fare"]["refunded_cents"] == 500
    stored = runtime_of(client).store.ride(ride_id)
    assert stored is not None and stored.fare is not None and stored.fare.net_cents == 0
    assert stored.fare.refund_reason == why
    # a ride not yet ended has nothing to refund
    live_ride = book(client, me, (0.3, 0.6), (0.7, 0.3))
    early = client.post(
        f"/api/rides/{live_ride}/refund", json={"cents": 1, "reason": why}, headers=OP
    )
    assert early.status_code == 409 and "not been charged" in early.json()["detail"]
    client.post(f"/api/rides/{live_ride}/cancel", headers=me)


@pytest.mark.sumo
def test_pull_over_ends_the_ride_early(client: TestClient) -> None:
    me = sign_in(client, "Hedy")
    ride_id = client.post(
        "/api/rides", json=ride_body(client, (0.15, 0.85), (0.85, 0.15)), headers=me
    ).json()["id"]
    assert client.post(f"/api/rides/{ride_id}/pull-over", headers=me).status_code == 409
    drive_until(client, ride_id, "arrived")
    client.post(f"/api/rides/{ride_id}/unlock", headers=me)
    client.post(f"/api/rides/{ride_id}/board", headers=me)
    client.post(f"/api/rides/{ride_id}/buckle", json={"buckled": True}, headers=me)
    client.post(f"/api/rides/{ride_id}/start", headers=me)
    runtime_of(client).live.step_until(lambda: False, 30)
    pulled = client.post(f"/api/rides/{ride_id}/pull-over", headers=me)
    assert pulled.status_code == 200 and pulled.json()["state"] == "pulled_over"
    drive_until(client, ride_id, "completed", 300)
    states = [e.state for e in runtime_of(client).store.events(ride_id)]
    assert states[-2:] == [S.PULLED_OVER, S.COMPLETED] and S.ARRIVED_AT_DESTINATION not in states
    # charged the time ridden up to the rider's "pull over" and the distance to that kerb
    stored = runtime_of(client).store.events(ride_id)
    events = {e.state: e.time.time_s for e in stored}
    minutes = (events[S.PULLED_OVER] - events[S.STARTED]) / 60
    ride_m = stored[-1].data["ride_m"]
    assert ride_m > 50  # it drove for 30 s and more before stopping
    miles = ride_m / 1609.344
    fare = client.get(f"/api/rides/{ride_id}/receipt", headers=me).json()["fare"]
    assert fare["rule"] == "metered"
    assert fare["cents"] == math.floor(350 + 275 * miles + 55 * minutes + 0.5)


# --- input validation and rider rules -----------------------------------------------------


@pytest.mark.sumo
def test_requests_without_a_valid_token_are_refused(client: TestClient) -> None:
    body = ride_body(client, (0.2, 0.2), (0.8, 0.8))
    assert client.post("/api/rides", json=body).status_code == 401
    r = client.post("/api/rides", json=body, headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401 and "sign in" in r.json()["detail"]
    assert client.get("/api/rides", headers={"Authorization": "Basic abc"}).status_code == 401


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        ({"pickup": {"lat": 37.0, "lon": -122.42}}, "outside the service area"),
        ({"dropoff": {"lat": 37.75, "lon": -121.0}}, "outside the service area"),
        ({"pickup": {"lat": 123.0, "lon": -122.42}}, "less than or equal to 90"),
        ({"pickup": {"lat": "north", "lon": -122.42}}, "valid number"),
        ({"pickup": {"lat": 37.74}}, "Field required"),
        ({"dropoff": {"lat": 37.75, "lon": -122.41, "alt": 3}}, "Extra inputs"),
    ],
)
@pytest.mark.sumo
def test_bad_coordinates_answer_422_with_what_to_fix(
    client: TestClient, payload: dict[str, Any], needle: str
) -> None:
    me = sign_in(client, "Val")
    body = ride_body(client, (0.2, 0.2), (0.8, 0.8)) | payload
    for path in ("/api/rides/quote", "/api/rides"):
        r = client.post(path, json=body, headers=me)
        assert r.status_code == 422, r.text
        assert needle in json.dumps(r.json()["detail"])


@pytest.mark.sumo
def test_outside_service_area_message_says_where_to_tap(client: TestClient) -> None:
    me = sign_in(client, "Val")
    body = ride_body(client, (0.2, 0.2), (0.8, 0.8)) | {"pickup": {"lat": 37.0, "lon": -122.42}}
    detail = client.post("/api/rides", json=body, headers=me).json()["detail"][0]
    assert detail["loc"] == ["body", "pickup"] and detail["type"] == "outside_service_area"
    b = client.get("/api/map").json()["bounds"]
    assert f"lat {b['south']:.4f} to {b['north']:.4f}" in detail["msg"]
    assert f"lon {b['west']:.4f} to {b['east']:.4f}" in detail["msg"]


@pytest.mark.sumo
def test_nan_and_broken_json_are_422(client: TestClient) -> None:
    me = sign_in(client, "Val") | {"Content-Type": "application/json"}
    nan = b'{"pickup": {"lat": NaN, "lon": -122.42}, "dropoff": {"lat": 37.75, "lon": -122.41}}'
    assert client.post("/api/rides", content=nan, headers=me).status_code == 422
    assert client.post("/api/rides", content=b'{"pickup": ', headers=me).status_code == 422


@pytest.mark.sumo
def test_destination_equal_to_pickup_is_422(client: TestClient) -> None:
    me = sign_in(client, "Val")
    spot = point(client, 0.4, 0.4)
    r = client.post("/api/rides", json={"pickup": spot, "dropoff": spot}, headers=me)
    assert r.status_code == 422
    detail = r.json()["detail"][0]
    assert detail["type"] == "destination_equals_pickup" and "at least 100 m" in detail["msg"]
    near = {"lat": spot["lat"] + 0.0003, "lon": spot["lon"]}  # ~33 m north
    assert (
        client.post("/api/rides", json={"pickup": spot, "dropoff": near}, headers=me).status_code
        == 422
    )


@pytest.mark.sumo
def test_oversize_body_is_413(client: TestClient) -> None:
    me = sign_in(client, "Val") | {"Content-Type": "application/json"}
    big = json.dumps(ride_body(client, (0.2, 0.2), (0.8, 0.8)) | {"pad": "x" * 5000})
    r = client.post("/api/rides", content=big, headers=me)
    assert r.status_code == 413 and "at most 4096 bytes" in r.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it streams in
        for _ in range(10):
            yield b" " * 1000

    assert client.post("/api/riders", content=chunks(), headers=me).status_code == 413


@pytest.mark.sumo
def test_sign_in_needs_a_name(client: TestClient) -> None:
    assert client.post("/api/riders", json={"name": "   "}).status_code == 422
    assert client.post("/api/riders", json={"name": "x" * 81}).status_code == 422
    assert client.post("/api/riders", json={}).status_code == 422


@pytest.mark.sumo
def test_names_are_normalised_and_hidden_characters_refused(client: TestClient) -> None:
    """A name keeps no control or text-direction characters (that could spoof the greeting
    on the car's screen), and is stored composed, trimmed, one space between words."""
    for spoof in ("Ke\u0000vin\u202e", "Ke\u200bvin", "Kevin\u2066 admin", "Ke\nvin"):
        r = client.post("/api/riders", json={"name": spoof})
        assert r.status_code == 422, spoof
        assert "text-direction characters" in r.text
    r = client.post("/api/riders", json={"name": "  Zoe\u0308   Salda\u00f1a "})
    assert r.status_code == 201
    assert r.json()["name"] == "Zo\u00eb Salda\u00f1a"
    me = {"Authorization": f"Bearer {r.json()['token']}"}
    assert client.get("/api/riders/me", headers=me).json()["name"] == "Zo\u00eb Salda\u00f1a"


@pytest.mark.sumo
def test_coordinates_are_json_numbers(client: TestClient) -> None:
    me = sign_in(client, "Nico")
    pickup, dropoff = point(client, 0.3, 0.3), point(client, 0.7, 0.7)
    assert client.post(
        "/api/rides/quote", json={"pickup": pickup, "dropoff": dropoff}, headers=me
    ).is_success
    for bad in (True, str(pickup["lat"]), None, [pickup["lat"]]):
        body = {"pickup": {**pickup, "lat": bad}, "dropoff": dropoff}
        r = client.post("/api/rides/quote", json=body, headers=me)
        assert r.status_code == 422, bad


@pytest.mark.sumo
def test_sign_ups_are_rate_limited_per_client_address(client: TestClient) -> None:
    runtime = runtime_of(client)
    saved = runtime.signup_limiter
    runtime.signup_limiter = RateLimiter(3, 60.0)
    try:
        codes = [
            client.post("/api/riders", json={"name": f"Bot {k}"}).status_code for k in range(5)
        ]
        assert codes == [201, 201, 201, 429, 429]
        r = client.post("/api/riders", json={"name": "Bot 6"})
        assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 60
        assert "too many sign-ups" in r.json()["detail"]
    finally:
        runtime.signup_limiter = saved
    assert ServiceSettings().signups_per_window == 10  # what a real deployment allows


@pytest.mark.sumo
def test_one_active_ride_per_rider(client: TestClient) -> None:
    me = sign_in(client, "Una")
    first = client.post("/api/rides", json=ride_body(client, (0.2, 0.3), (0.7, 0.8)), headers=me)
    assert first.status_code == 201
    second = client.post("/api/rides", json=ride_body(client, (0.3, 0.2), (0.8, 0.7)), headers=me)
    assert second.status_code == 409 and first.json()["id"] in second.json()["detail"]
    client.post(f"/api/rides/{first.json()['id']}/cancel", headers=me)
    third = client.post("/api/rides", json=ride_body(client, (0.3, 0.2), (0.8, 0.7)), headers=me)
    assert third.status_code == 201
    client.post(f"/api/rides/{third.json()['id']}/cancel", headers=me)


@pytest.mark.sumo
def test_ride_creation_is_rate_limited_per_rider(client: TestClient) -> None:
    me = sign_in(client, "Rae")
    body = ride_body(client, (0.25, 0.25), (0.75, 0.75))
    for _ in range(5):
        r = client.post("/api/rides", json=body, headers=me)
        assert r.status_code == 201
        client.post(f"/api/rides/{r.json()['id']}/cancel", headers=me)
    limited = client.post("/api/rides", json=body, headers=me)
    assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 60
    # the limit is per rider: someone else books at once
    other = sign_in(client, "Sol")
    r = client.post("/api/rides", json=body, headers=other)
    assert r.status_code == 201
    client.post(f"/api/rides/{r.json()['id']}/cancel", headers=other)


def test_rate_limiter_window() -> None:
    limiter = RateLimiter(limit=2, window_s=10.0)
    assert limiter.check("a", now=0.0) is None
    assert limiter.check("a", now=1.0) is None
    assert limiter.check("a", now=2.0) == pytest.approx(8.0)
    assert limiter.check("b", now=2.0) is None
    assert limiter.check("a", now=10.0) is None  # the first hit left the window


@pytest.mark.sumo
def test_another_riders_ride_is_404(client: TestClient) -> None:
    owner = sign_in(client, "Olga")
    intruder = sign_in(client, "Ivan")
    ride = client.post(
        "/api/rides", json=ride_body(client, (0.6, 0.6), (0.2, 0.1)), headers=owner
    ).json()
    rid = ride["id"]
    for method, path in [
        ("GET", f"/api/rides/{rid}"),
        ("GET", f"/api/rides/{rid}/receipt"),
        ("GET", f"/api/rides/{rid}/stream"),
        ("POST", f"/api/rides/{rid}/cancel"),
        ("POST", f"/api/rides/{rid}/board"),
        ("POST", f"/api/rides/{rid}/start"),
        ("POST", f"/api/rides/{rid}/pull-over"),
    ]:
        r = client.request(method, path, headers=intruder)
        assert r.status_code == 404, (path, r.text)
        missing = client.request(method, path.replace(rid, "ride-doesnotexist"), headers=intruder)
        assert missing.status_code == 404 and missing.json()["detail"].startswith(
            "you have no ride"
        )
    buckle = client.post(f"/api/rides/{rid}/buckle", json={"buckled": True}, headers=intruder)
    assert buckle.status_code == 404
    ticket = client.post("/api/tickets", json={"text": "hi", "ride_id": rid}, headers=intruder)
    assert ticket.status_code == 404
    assert client.get("/api/rides", headers=intruder).json() == []
    drive_until(client, rid, "en_route", 60)
    vid = client.get(f"/api/rides/{rid}", headers=owner).json()["vehicle_id"]
    assert client.get(f"/api/vehicles/{vid}/screen", headers=intruder).status_code == 404
    assert client.get(f"/api/vehicles/{vid}/screen", headers=owner).status_code == 200
    assert client.post(f"/api/rides/{rid}/cancel", headers=owner).status_code == 200
    # a past rider of the car (here a cancelled ride) no longer follows it: the next rider's
    # position and destination are theirs alone (issue 13)
    assert client.get(f"/api/vehicles/{vid}/screen", headers=owner).status_code == 404
    assert client.get(f"/api/vehicles/{vid}/screen", headers=OP).status_code == 200


# --- operators ----------------------------------------------------------------------------


@pytest.mark.sumo
def test_operator_endpoints_need_the_operator_token(client: TestClient) -> None:
    rider = sign_in(client, "Pat")
    for path in ("/api/vehicles/state", "/api/kpis", "/api/trips/open", "/api/yields"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers=rider).status_code == 403
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 403
        assert client.get(path, headers=OP).status_code == 200
    cars = client.get("/api/vehicles/state", headers=OP).json()
    assert len(cars) == 4 and {"status", "trip_id", "yielding_for"} <= set(cars[0])
    public = client.get("/api/vehicles").json()
    assert len(public) == 4 and "trip_id" not in public[0] and "status" not in public[0]
    kpis = client.get("/api/kpis", headers=OP).json()
    assert kpis["fleet"] == 4 and kpis["requests"] >= 1 and kpis["completed"] >= 1
    assert kpis["requests"] == kpis["completed"] + kpis["cancelled"] + kpis["open"]


@pytest.mark.sumo
def test_emergency_pull_over_shows_on_the_screen_and_in_ops(client: TestClient) -> None:
    me = sign_in(client, "Eve")
    rid = book(client, me, (0.3, 0.3), (0.9, 0.9))
    drive_until(client, rid, "en_route", 60)
    live = runtime_of(client).live
    vid = client.get(f"/api/rides/{rid}", headers=me).json()["vehicle_id"]
    # the fleet's EV logic is tested in the fleet; here: what the screen and ops make of it
    with live._lock:
        live.fleet.vehicles[vid].yielding = YieldRecord(
            vid, "ambulance7", TimePoint.from_s(live.now_s), rid, EvApproach.BEHIND
        )
    live.refresh()  # poked from outside a tick: publish it
    screen = client.get(f"/api/vehicles/{vid}/screen", headers=me).json()
    assert "emergency vehicle" in screen["emergency_banner"]
    assert screen["ride"]["yielding_for_emergency"] is True
    active = [y for y in client.get("/api/yields", headers=OP).json() if y["active"]]
    assert [(y["vehicle_id"], y["ev_id"]) for y in active] == [(vid, "ambulance7")]
    state = {c["vehicle_id"]: c for c in client.get("/api/vehicles/state", headers=OP).json()}
    assert state[vid]["yielding_for"] == "ambulance7" and not state[vid]["available"]
    with live._lock:
        live.fleet.vehicles[vid].yielding = None
    live.refresh()
    assert client.get(f"/api/vehicles/{vid}/screen", headers=me).json()["emergency_banner"] is None
    client.post(f"/api/rides/{rid}/cancel", headers=me)


def test_car_groups_on_hand_built_cars() -> None:
    """Each fleet status and curb stage lands in the group the ops filter names."""
    from robotaxi.fleet.manager import CurbStage
    from robotaxi.service.schemas import CarGroup as G
    from robotaxi.service.views import car_groups
    from robotaxi.sim.live_views import VehicleView

    def car(status: str, trip: str | None = None, **kw: Any) -> VehicleView:
        fields: dict[str, Any] = {"stage": CurbStage.NONE, "yielding_for": None}
        fields.update(kw)
        return VehicleView("c", status, 0.0, 0.0, 0.0, 0.0, False, trip, None, **fields)

    assert car_groups(car("idle"), False) == [G.IDLE]
    assert car_groups(car("rebalancing"), False) == [G.IDLE]
    assert car_groups(car("idle", "t1"), False) == [G.TO_PICKUP]  # given a ride this tick
    assert car_groups(car("to_pickup", "t1"), False) == [G.TO_PICKUP]
    assert car_groups(car("at_pickup", "t1", stage=CurbStage.NO_SHOW), False) == [G.TO_PICKUP]
    assert car_groups(car("at_pickup", "t1", stage=CurbStage.BUCKLING), False) == [G.WITH_RIDER]
    waiting = car("at_pickup", "t1", stage=CurbStage.WAITING_FOR_START)
    assert car_groups(waiting, False) == [G.WITH_RIDER]
    assert car_groups(car("to_dropoff", "t1"), False) == [G.WITH_RIDER]
    assert car_groups(car("at_dropoff", "t1"), False) == [G.WITH_RIDER]
    assert car_groups(car("to_charger"), False) == [G.CHARGING]
    assert car_groups(car("charging"), False) == [G.CHARGING]
    yielding = car("to_dropoff", "t1", yielding_for="ambulance1")
    assert car_groups(yielding, False) == [G.WITH_RIDER, G.PULLED_OVER]
    stopping = car("to_dropoff", "t1", stage=CurbStage.RIDER_PULL_OVER)
    assert car_groups(stopping, False) == [G.WITH_RIDER, G.PULLED_OVER]
    assert car_groups(car("to_pickup", "t1"), True) == [G.TO_PICKUP, G.NEEDS_ASSISTANCE]


@pytest.mark.sumo
def test_ops_filters_cars_by_group(client: TestClient) -> None:
    def ids(query: str) -> set[str]:
        r = client.get(f"/api/vehicles/state{query}", headers=OP)
        assert r.status_code == 200, r.text
        return {c["vehicle_id"] for c in r.json()}

    every = client.get("/api/vehicles/state", headers=OP).json()
    assert len(every) == 4 and all(c["groups"] for c in every)  # each car is in a group
    me = sign_in(client, "Fay")
    rid = book(client, me, (0.2, 0.2), (0.8, 0.8))
    drive_until(client, rid, "en_route", 60)
    vid = client.get(f"/api/rides/{rid}", headers=me).json()["vehicle_id"]
    # (cars of earlier tests' rides may be busy too: only this one's groups are known)
    assert vid in ids("?status=to_pickup") and vid not in ids("?status=idle")
    both = ids("?status=idle&status=to_pickup")  # any of several
    assert both == ids("?status=idle") | ids("?status=to_pickup") and vid in both
    assert vid not in ids("?status=with_rider") | ids("?status=charging")
    drive_until(client, rid, "arrived", 600)
    assert client.post(f"/api/rides/{rid}/unlock", headers=me).status_code == 200
    assert client.post(f"/api/rides/{rid}/board", headers=me).status_code == 200
    assert vid in ids("?status=with_rider") and vid not in ids("?status=to_pickup")  # aboard
    live = runtime_of(client).live
    with live._lock:
        live.fleet.vehicles[vid].yielding = YieldRecord(
            vid, "ambulance9", TimePoint.from_s(live.now_s), rid, EvApproach.BEHIND
        )
    live.refresh()
    assert vid in ids("?status=pulled_over") and vid not in ids("?status=needs_assistance")
    with live._lock:
        live.fleet.vehicles[vid].yielding = None
    live.refresh()
    assert vid not in ids("?status=pulled_over")
    client.post(f"/api/rides/{rid}/cancel", headers=me)
    # an unknown group is refused, naming the ones there are
    bad = client.get("/api/vehicles/state?status=parked", headers=OP)
    assert bad.status_code == 422
    assert "needs_assistance" in json.dumps(bad.json()["detail"])
    assert client.get("/api/vehicles/state?status=idle").status_code == 401
    spec = client.get("/openapi.json").json()["paths"]["/api/vehicles/state"]["get"]
    (param,) = [p for p in spec["parameters"] if p["name"] == "status"]
    assert "422" in spec["responses"] and "charging" in json.dumps(param["schema"])


@pytest.mark.sumo
def test_open_trips_and_car_screen_for_operators(client: TestClient) -> None:
    me = sign_in(client, "Quinn")
    rid = client.post(
        "/api/rides", json=ride_body(client, (0.5, 0.2), (0.5, 0.9)), headers=me
    ).json()["id"]
    trips = client.get("/api/trips/open", headers=OP).json()
    assert [t["id"] for t in trips if t["id"] == rid] == [rid] and trips[0]["rider"] == "app"
    drive_until(client, rid, "en_route", 60)
    vid = client.get(f"/api/rides/{rid}", headers=me).json()["vehicle_id"]
    screen = client.get(f"/api/vehicles/{vid}/screen", headers=OP).json()
    assert screen["ride"]["id"] == rid and screen["status"] == "to_pickup"
    client.post(f"/api/rides/{rid}/cancel", headers=me)
    assert rid not in [t["id"] for t in client.get("/api/trips/open", headers=OP).json()]


@pytest.mark.sumo
def test_support_tickets(client: TestClient) -> None:
    a, b = sign_in(client, "Ann"), sign_in(client, "Bob")
    made = client.post("/api/tickets", json={"text": "  The seat is wet  "}, headers=a)
    assert made.status_code == 201 and made.json()["text"] == "The seat is wet"
    assert client.post("/api/tickets", json={"text": ""}, headers=a).status_code == 422
    assert [t["id"] for t in client.get("/api/tickets", headers=b).json()] == []
    assert [t["id"] for t in client.get("/api/tickets", headers=a).json()] == [made.json()["id"]]
    assert made.json()["id"] in [t["id"] for t in client.get("/api/tickets", headers=OP).json()]
    tid = made.json()["id"]
    assert client.post(f"/api/tickets/{tid}/close", headers=b).status_code == 404
    closed = client.post(f"/api/tickets/{tid}/close", headers=OP)
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    assert client.post("/api/tickets/99999/close", headers=OP).status_code == 404


@pytest.mark.sumo
def test_pages_map_and_docs_are_served(client: TestClient) -> None:
    for path, needle in [
        ("/", 'id="map"'),
        ("/car/taxi000", 'id="greeting"'),
        ("/ops", 'id="op-token"'),
        ("/static/common.js", "class RoadMap"),
        ("/docs", "swagger"),
    ]:
        r = client.get(path)
        assert r.status_code == 200 and needle in r.text, path
    docs = client.get("/docs").text
    assert "//" not in docs.replace("://testserver", "")  # every asset from this server
    for asset in re.findall(r"['\"](/docs/static/[^'\"]+)['\"]", docs):
        assert client.get(asset).status_code == 200, asset
    assert "/docs/static/swagger-ui-bundle.js" in docs
    assert "redoc.standalone.js" in client.get("/redoc").text
    page = client.get("/")
    assert "default-src 'self'" in page.headers["content-security-policy"]  # no CDN, offline
    assert "http" not in page.text  # nothing loaded from elsewhere
    spec = client.get("/openapi.json").json()
    assert {"/api/rides", "/api/rides/{ride_id}/start", "/api/vehicles", "/api/kpis"} <= set(
        spec["paths"]
    )
    raw = client.get("/api/map", headers={"Accept-Encoding": "gzip"})
    assert raw.headers["content-encoding"] == "gzip"
    road_map = raw.json()
    runtime = runtime_of(client)
    assert len(road_map["roads"]) == len(runtime.live.map.drivable_edges)
    b = road_map["bounds"]
    for road in road_map["roads"][:50]:
        for lat, lon in road["line"]:
            assert b["south"] <= lat <= b["north"] and b["west"] <= lon <= b["east"]
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["city"].startswith("grid")


# --- restart recovery and determinism (no HTTP) -------------------------------------------


def test_close_paths_follow_the_trip_life_cycle() -> None:
    for state in S:
        if state.terminal:
            continue
        path = close_via(state)
        assert path[-1].terminal
        current = state
        for nxt in path:
            assert nxt in ALLOWED[current]
            current = nxt
    assert set(CLOSE_VIA) == {s for s in S if not s.terminal}
    # a rider already on the way is never "cancelled", nor "completed" (they were not
    # delivered: issue 13 found restarts inflating completions): the ride was interrupted
    assert close_via(S.DRIVING) == (S.INTERRUPTED,)
    assert close_via(S.STARTED) == (S.INTERRUPTED,)


def test_recover_open_rides_closes_each_once(tmp_path: Path) -> None:
    from robotaxi.core import RideRequest

    store = Store.open(f"sqlite:///{tmp_path / 'r.sqlite'}")
    try:
        rider, _ = store.create_rider("Zoe")
        states = {
            "waiting": [S.REQUESTED],
            "coming": [S.REQUESTED, S.ASSIGNED, S.EN_ROUTE],
            "riding": [
                S.REQUESTED,
                S.ASSIGNED,
                S.EN_ROUTE,
                S.ARRIVED,
                S.BOARDED,
                S.STARTED,
                S.DRIVING,
            ],
            "done": [S.REQUESTED, S.ASSIGNED, S.EN_ROUTE, S.ARRIVED, S.CANCELLED],
            "silent": [],
        }
        for k, (rid, path) in enumerate(states.items()):
            request = RideRequest(rid, rider.id, "Zoe", TimePoint.from_s(k), 0, 0, 500, 500)
            store.add_ride(NewRide(request), registered=True)
            store.record(
                events=[
                    TripEvent(rid, i, TimePoint.from_s(k + i), s, "taxi001" if i else None)
                    for i, s in enumerate(path)
                ]
            )
        closed = recover_open_rides(store, pricer=tariff_pricer(Tariff()))
        assert sorted(r.id for r in closed) == ["coming", "riding", "silent", "waiting"]
        # charged as they closed: cancelled before a car waited is free; a ride interrupted
        # with no distance on record costs nothing; a ride that ended before is not repriced
        fares = {rid: store.ride(rid).fare for rid in states}  # type: ignore[union-attr]
        assert {rid: (f.cents, f.rule) for rid, f in fares.items() if f is not None} == {
            "waiting": (0, "cancel_free"), "coming": (0, "cancel_free"),
            "silent": (0, "cancel_free"), "riding": (0, "interrupted_distance"),
        }  # fmt: skip
        for rid in ("waiting", "coming", "silent"):
            ride = store.ride(rid)
            assert ride is not None and ride.state == S.CANCELLED
            assert ride.close_reason is not None and ride.close_reason.startswith(RESTART_REASON)
            assert fold_state(store.events(rid)) == S.CANCELLED
        riding = store.events("riding")
        assert [e.state for e in riding][-2:] == [S.DRIVING, S.INTERRUPTED]
        assert store.ride("riding").state == S.INTERRUPTED  # type: ignore[union-attr]
        assert riding[-1].time == riding[-2].time  # closed at its last known instant
        assert [e.seq for e in riding] == list(range(len(riding)))
        assert "while the ride was driving" in (store.ride("riding").close_reason or "")  # type: ignore[union-attr]
        assert len(store.events("done")) == 5 and store.ride("done").close_reason is None  # type: ignore[union-attr]
        count = store.event_count()
        assert recover_open_rides(store) == [] and store.event_count() == count
    finally:
        store.close()
