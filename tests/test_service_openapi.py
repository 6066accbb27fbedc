"""The OpenAPI document against the running service: the bearer scheme is declared, and
every status an endpoint declares is one it really answers — each (endpoint, status) pair
is provoked here with a real request to the app on the live grid city.

The table `PROVOKE` holds one request per declared pair; a test checks the table and the
document name the same pairs, so a status declared without a way to provoke it (or an
answer the document forgets) fails here.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from robotaxi.service.app import create_app
from robotaxi.service.speech import GreetingVoice
from test_remote_assistance import block_entrance, route_ahead, unblock
from test_service_api import OP, OPERATOR, drive_until, point, runtime_of, settings_for, sign_in

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
MAX_BODY = 4096
TOO_LARGE = b'{"name": "' + b"x" * MAX_BODY + b'"}'
SIGNUPS = 40  # sign-ups per client address per window in this module
ADDRESSES = itertools.count()
PUBLIC = {
    ("post", "/api/riders"),
    ("get", "/api/vehicles"),
    ("get", "/api/health"),
    ("get", "/api/map"),
    ("get", "/api/places"),  # the city's street names and places: public, like the map
    ("get", "/api/places/reverse"),
    ("get", "/api/places/pickup-spots"),
    ("get", "/api/shared/{token}"),  # a share link: whoever the rider gave it to
}


def _settings(tmp: Path, map_cache: Path) -> Any:
    return settings_for(tmp, map_cache, signups_per_window=SIGNUPS, max_body_bytes=MAX_BODY)


def _document() -> dict[str, Any]:
    """The document as the app serves it (building it needs no simulation)."""
    app = create_app(_settings(Path("/nonexistent"), Path("/nonexistent")))
    return app.openapi()


DOCUMENT = _document()
DECLARED = sorted(
    (method, path, int(code))
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
    for code in operation["responses"]
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, map_cache: Path) -> Iterator[TestClient]:
    app = create_app(_settings(tmp_path_factory.mktemp("openapi"), map_cache))
    with TestClient(app) as c:
        yield c


@dataclass
class Scene:
    """What a provoking request may use: the client, and rides to cancel afterwards."""

    client: TestClient
    monkeypatch: pytest.MonkeyPatch
    booked: list[tuple[dict[str, str], str]] = field(default_factory=list)

    def rider(self) -> dict[str, str]:
        # each from its own client address: the sign-up limit is per address
        return sign_in(self.from_address(f"198.51.100.{next(ADDRESSES) % 250}"), "Open Api")

    def from_address(self, host: str) -> TestClient:
        """A client from another address on the same running app (its lifespan is shared)."""
        return TestClient(self.client.app, client=(host, 50000))

    def body(self) -> dict[str, Any]:
        return {"pickup": point(self.client, 0.2, 0.2), "dropoff": point(self.client, 0.8, 0.7)}

    def ride(self, state: str = "requested") -> tuple[dict[str, str], str]:
        """A new rider's ride, driven to `state` (requested, arrived, boarded, driving)."""
        me = self.rider()
        r = self.client.post("/api/rides", json=self.body(), headers=me)
        assert r.status_code == 201, r.text
        ride_id: str = r.json()["id"]
        self.booked.append((me, ride_id))
        if state == "requested":
            return me, ride_id
        drive_until(self.client, ride_id, "arrived")
        if state == "arrived":
            return me, ride_id
        self.act(me, ride_id, "unlock")
        self.act(me, ride_id, "board")
        if state == "boarded":
            return me, ride_id
        self.act(me, ride_id, "buckle", {"buckled": True})
        self.act(me, ride_id, "start")
        drive_until(self.client, ride_id, state)
        return me, ride_id

    def act(
        self, me: dict[str, str], ride_id: str, action: str, body: Any = None
    ) -> httpx.Response:
        return self.client.post(f"/api/rides/{ride_id}/{action}", json=body, headers=me)

    def cancel_all(self) -> None:
        for me, ride_id in self.booked:
            self.act(me, ride_id, "cancel")  # 409 for rides already over: nothing to do


Provoke = Callable[[Scene], httpx.Response]
NOBODY: dict[str, str] = {}


def _no_token(method: str, path: str, body: Any = None) -> Provoke:
    return lambda s: s.client.request(method, path, json=body)


def _rider_token(method: str, path: str) -> Provoke:
    return lambda s: s.client.request(method, path, headers=s.rider())


def _too_large(path: str) -> Provoke:
    return lambda s: s.client.post(
        path, content=TOO_LARGE, headers={**OP, "Content-Type": "application/json"}
    )


def _not_utf8(path: str) -> Provoke:
    return lambda s: s.client.post(
        path, content=b'{"name": "\xff\xfe"}', headers={**OP, "Content-Type": "application/json"}
    )


def _unknown_query(method: str, path: str) -> Provoke:
    """A query parameter the endpoint does not take (it takes none, or others)."""
    concrete = path.format(
        ride_id="r1", vehicle_id="taxi000", ticket_id=1, request_id="a1", token="t"
    )
    return lambda s: s.client.request(method, f"{concrete}?limt=5", headers=OP)


def _ride_action(action: str, state: str, body: Any = None) -> Provoke:
    def provoke(s: Scene) -> httpx.Response:
        me, ride_id = s.ride(state)
        return s.act(me, ride_id, action, body)

    return provoke


def _someone_elses_ride(action: str, body: Any = None) -> Provoke:
    def provoke(s: Scene) -> httpx.Response:
        _, ride_id = s.ride()
        return s.act(s.rider(), ride_id, action, body)

    return provoke


def _get_ride(suffix: str, state: str = "requested", *, own: bool = True) -> Provoke:
    def provoke(s: Scene) -> httpx.Response:
        me, ride_id = s.ride(state)
        return s.client.get(f"/api/rides/{ride_id}{suffix}", headers=me if own else s.rider())

    return provoke


def _signups_over_the_limit(s: Scene) -> httpx.Response:
    other = s.from_address("203.0.113.7")
    answers = [other.post("/api/riders", json={"name": "Rush"}) for _ in range(SIGNUPS + 1)]
    assert [a.status_code for a in answers[:SIGNUPS]] == [201] * SIGNUPS
    return answers[-1]


def _second_booking(s: Scene) -> httpx.Response:
    me, _ = s.ride()
    return s.client.post("/api/rides", json=s.body(), headers=me)


def _bookings_over_the_limit(s: Scene) -> httpx.Response:
    me, _ = s.ride()  # the first of the window's five; the others answer 409 (one active)
    limit = runtime_of(s.client).settings.rides_per_window
    for _ in range(limit - 1):
        assert s.client.post("/api/rides", json=s.body(), headers=me).status_code == 409
    return s.client.post("/api/rides", json=s.body(), headers=me)


def _booking_after_the_window(s: Scene) -> httpx.Response:
    live = runtime_of(s.client).live
    live.step_until(lambda: live.now_s >= live.end_s, live.end_s + 60)
    return s.client.post("/api/rides", json=s.body(), headers=s.rider())


def _cancel_twice(s: Scene) -> httpx.Response:
    me, ride_id = s.ride()
    assert s.act(me, ride_id, "cancel").status_code == 200
    return s.act(me, ride_id, "cancel")


def _stream_of_an_ended_ride(s: Scene) -> httpx.Response:
    me, ride_id = s.ride()
    s.act(me, ride_id, "cancel")
    return s.client.get(f"/api/rides/{ride_id}/stream", headers=me)


def _greeting_without_espeak(s: Scene) -> httpx.Response:
    me, ride_id = s.ride("arrived")
    s.monkeypatch.setattr(runtime_of(s.client), "voice", GreetingVoice(None, search=False))
    return s.client.get(f"/api/rides/{ride_id}/greeting.wav", headers=me)


def _ticket(s: Scene) -> int:
    r = s.client.post("/api/tickets", json={"text": "the door sticks"}, headers=s.rider())
    assert r.status_code == 201, r.text
    ticket_id: int = r.json()["id"]
    return ticket_id


def _tickets_over_the_limit(s: Scene) -> httpx.Response:
    me = s.rider()
    for _ in range(5):  # the default: five new tickets a minute per rider
        assert s.client.post("/api/tickets", json={"text": "help"}, headers=me).status_code == 201
    return s.client.post("/api/tickets", json={"text": "help"}, headers=me)


def _reply_to_a_closed_ticket(s: Scene) -> httpx.Response:
    ticket_id = _ticket(s)
    assert s.client.post(f"/api/tickets/{ticket_id}/close", headers=OP).status_code == 200
    return s.client.post(f"/api/tickets/{ticket_id}/messages", json={"text": "hi"}, headers=OP)


def _refund(s: Scene, *, waited_s: float = 0.0, cents: int = 100) -> httpx.Response:
    """An operator refunds `cents` of a ride cancelled `waited_s` after the car arrived."""
    me, ride_id = s.ride("arrived" if waited_s else "requested")
    if waited_s:  # past the free wait: a cancellation fee to refund from
        runtime_of(s.client).live.step_until(lambda: False, waited_s)
        assert s.act(me, ride_id, "cancel").status_code == 200
    body = {"cents": cents, "reason": "the car was hard to find"}
    return s.client.post(f"/api/rides/{ride_id}/refund", json=body, headers=OP)


def _operator_only(path: str) -> dict[int, Provoke]:
    return {
        200: lambda s: s.client.get(path, headers=OP),
        401: _no_token("GET", path),
        403: _rider_token("GET", path),
    }


def _assistance_answer(*, after_it_moves: bool) -> Provoke:
    """A car on its way to a pick-up held at the entrance of the pick-up's street (so SUMO's
    own rerouting cannot free it) asks for help; the operator answers "wait" while the
    request is open, or once the street is clear again and the car has driven on."""

    def provoke(s: Scene) -> httpx.Response:
        live = runtime_of(s.client).live
        me = s.rider()
        # a pick-up in a corner no other request uses: no car is parked on its street
        corner = (0.85, 0.15) if after_it_moves else (0.15, 0.85)
        body = {"pickup": point(s.client, *corner), "dropoff": point(s.client, 0.5, 0.5)}
        booked = s.client.post("/api/rides", json=body, headers=me)
        assert booked.status_code == 201, booked.text
        ride_id = booked.json()["id"]
        s.booked.append((me, ride_id))
        drive_until(s.client, ride_id, "en_route")
        car = live.trip(ride_id).vehicle_id
        ahead = route_ahead(car)
        assert car is not None and len(ahead) >= 2, ahead
        tag = f"openapi-{after_it_moves}"
        blockers = block_entrance(live, ahead[-1], tag)
        try:
            assert live.step_until(lambda: live.fleet.assistance.open_for(car) is not None, 400)
            request = live.fleet.assistance.open_for(car)
        finally:
            unblock(blockers)
        if after_it_moves:
            assert live.step_until(lambda: not request.open, 300)
        path = f"/api/assistance/{request.request_id}/answer"
        return s.client.post(path, json={"answer": "wait"}, headers=OP)

    return provoke


RIDE = "/api/rides/{ride_id}"
# (method, path) -> {status: a request that gets that status}
PROVOKE: dict[tuple[str, str], dict[int, Provoke]] = {
    ("post", "/api/riders"): {
        201: lambda s: s.client.post("/api/riders", json={"name": "Ada"}),
        413: _too_large("/api/riders"),
        422: lambda s: s.client.post("/api/riders", json={"name": "Ke\u0000vin"}),
        429: _signups_over_the_limit,
    },
    ("get", "/api/riders/me"): {
        200: _rider_token("GET", "/api/riders/me"),
        401: lambda s: s.client.get("/api/riders/me", headers={"Authorization": "Bearer nope"}),
    },
    ("post", "/api/rides/quote"): {
        200: lambda s: s.client.post("/api/rides/quote", json=s.body(), headers=s.rider()),
        401: lambda s: s.client.post("/api/rides/quote", json=s.body()),
        413: _too_large("/api/rides/quote"),
        422: lambda s: s.client.post(
            "/api/rides/quote",
            json={"pickup": {"lat": True, "lon": 0}, "dropoff": {"lat": 0, "lon": 0}},
            headers=s.rider(),
        ),
    },
    ("post", "/api/rides"): {
        201: lambda s: s.client.post("/api/rides", json=s.body(), headers=s.rider()),
        401: lambda s: s.client.post("/api/rides", json=s.body()),
        409: _second_booking,
        413: _too_large("/api/rides"),
        422: lambda s: s.client.post(
            "/api/rides",
            json={"pickup": {"lat": 0.0, "lon": 0.0}, "dropoff": {"lat": 1.0, "lon": 1.0}},
            headers=s.rider(),
        ),  # outside the service area
        429: _bookings_over_the_limit,
        503: _booking_after_the_window,  # ends the service window: runs last
    },
    ("get", "/api/rides"): {
        200: _rider_token("GET", "/api/rides"),
        401: _no_token("GET", "/api/rides"),
        422: lambda s: s.client.get("/api/rides?limit=0", headers=s.rider()),
    },
    ("get", RIDE): {
        200: _get_ride(""),
        401: _no_token("GET", "/api/rides/r1"),
        404: _get_ride("", own=False),
    },
    ("get", RIDE + "/receipt"): {
        200: _get_ride("/receipt"),
        401: _no_token("GET", "/api/rides/r1/receipt"),
        404: _get_ride("/receipt", own=False),
    },
    ("post", RIDE + "/cancel"): {
        200: _ride_action("cancel", "requested"),
        401: _no_token("POST", "/api/rides/r1/cancel"),
        404: _someone_elses_ride("cancel"),
        409: _cancel_twice,
        413: _too_large("/api/rides/r1/cancel"),
    },
    ("post", RIDE + "/unlock"): {
        200: _ride_action("unlock", "arrived"),
        401: _no_token("POST", "/api/rides/r1/unlock"),
        404: _someone_elses_ride("unlock"),
        409: _ride_action("unlock", "requested"),  # the car is not there yet
        413: _too_large("/api/rides/r1/unlock"),
    },
    ("post", RIDE + "/find-car"): {
        200: _ride_action("find-car", "arrived"),
        401: _no_token("POST", "/api/rides/r1/find-car"),
        404: _someone_elses_ride("find-car"),
        409: _ride_action("find-car", "requested"),
        413: _too_large("/api/rides/r1/find-car"),
        429: lambda s: (
            (ride := s.ride("arrived")),
            [s.act(*ride, "find-car") for _ in range(3)],
            s.act(*ride, "find-car"),
        )[-1],
    },
    ("post", RIDE + "/board"): {
        200: lambda s: (
            (ride := s.ride("arrived")),
            s.act(*ride, "unlock"),
            s.act(*ride, "board"),
        )[-1],
        401: _no_token("POST", "/api/rides/r1/board"),
        404: _someone_elses_ride("board"),
        409: _ride_action("board", "requested"),  # the car is not there yet
        413: _too_large("/api/rides/r1/board"),
    },
    ("post", RIDE + "/buckle"): {
        200: _ride_action("buckle", "boarded", {"buckled": True}),
        401: _no_token("POST", "/api/rides/r1/buckle", {"buckled": True}),
        404: _someone_elses_ride("buckle", {"buckled": True}),
        409: _ride_action("buckle", "requested", {"buckled": True}),  # nobody on board
        413: _too_large("/api/rides/r1/buckle"),
        422: _ride_action("buckle", "boarded", {"buckled": "maybe"}),
    },
    ("post", RIDE + "/start"): {
        200: lambda s: (
            (ride := s.ride("boarded")),
            s.act(*ride, "buckle", {"buckled": True}),
            s.act(*ride, "start"),
        )[-1],
        401: _no_token("POST", "/api/rides/r1/start"),
        404: _someone_elses_ride("start"),
        409: _ride_action("start", "boarded"),  # seat belt open
        413: _too_large("/api/rides/r1/start"),
    },
    ("post", RIDE + "/pull-over"): {
        200: _ride_action("pull-over", "driving"),
        401: _no_token("POST", "/api/rides/r1/pull-over"),
        404: _someone_elses_ride("pull-over"),
        409: _ride_action("pull-over", "requested"),  # not riding yet
        413: _too_large("/api/rides/r1/pull-over"),
    },
    ("get", RIDE + "/greeting.wav"): {
        200: _get_ride("/greeting.wav", "arrived"),
        401: _no_token("GET", "/api/rides/r1/greeting.wav"),
        404: _get_ride("/greeting.wav", own=False),
        409: _get_ride("/greeting.wav"),  # the car has not arrived
        503: _greeting_without_espeak,
    },
    ("get", RIDE + "/stream"): {
        200: _stream_of_an_ended_ride,
        401: _no_token("GET", "/api/rides/r1/stream"),
        404: _get_ride("/stream", own=False),
        422: _get_ride("/stream?max_s=0"),
    },
    ("get", "/api/vehicles"): {200: _no_token("GET", "/api/vehicles")},
    ("get", "/api/vehicles/state"): {
        **_operator_only("/api/vehicles/state"),
        422: lambda s: s.client.get("/api/vehicles/state?status=parked", headers=OP),
    },
    ("get", "/api/vehicles/{vehicle_id}/screen"): {
        200: lambda s: s.client.get("/api/vehicles/taxi000/screen", headers=OP),
        401: _no_token("GET", "/api/vehicles/taxi000/screen"),
        404: lambda s: s.client.get("/api/vehicles/taxi000/screen", headers=s.rider()),
    },
    ("get", "/api/tickets"): {
        200: _rider_token("GET", "/api/tickets"),
        401: _no_token("GET", "/api/tickets"),
    },
    ("post", "/api/tickets"): {
        201: lambda s: s.client.post("/api/tickets", json={"text": "help"}, headers=s.rider()),
        401: _no_token("POST", "/api/tickets", {"text": "help"}),
        404: lambda s: s.client.post(
            "/api/tickets", json={"text": "help", "ride_id": s.ride()[1]}, headers=s.rider()
        ),
        413: _too_large("/api/tickets"),
        422: lambda s: s.client.post("/api/tickets", json={"text": " "}, headers=s.rider()),
        429: _tickets_over_the_limit,
    },
    ("get", "/api/tickets/{ticket_id}"): {
        200: lambda s: s.client.get(f"/api/tickets/{_ticket(s)}", headers=OP),
        401: _no_token("GET", "/api/tickets/1"),
        # another rider's ticket answers as one that does not exist
        404: lambda s: s.client.get(f"/api/tickets/{_ticket(s)}", headers=s.rider()),
        422: lambda s: s.client.get("/api/tickets/first", headers=OP),
    },
    ("post", "/api/tickets/{ticket_id}/messages"): {
        201: lambda s: s.client.post(
            f"/api/tickets/{_ticket(s)}/messages", json={"text": "on our way"}, headers=OP
        ),
        400: lambda s: s.client.post(
            f"/api/tickets/{_ticket(s)}/messages",
            content=b'{"text": "\xff\xfe"}',
            headers={**OP, "Content-Type": "application/json"},
        ),
        401: _no_token("POST", "/api/tickets/1/messages", {"text": "hello"}),
        404: lambda s: s.client.post(
            "/api/tickets/999999/messages", json={"text": "hello"}, headers=OP
        ),
        409: _reply_to_a_closed_ticket,
        413: _too_large("/api/tickets/1/messages"),
        422: lambda s: s.client.post(
            f"/api/tickets/{_ticket(s)}/messages", json={"text": ""}, headers=OP
        ),
    },
    ("post", "/api/tickets/{ticket_id}/close"): {
        200: lambda s: s.client.post(f"/api/tickets/{_ticket(s)}/close", headers=OP),
        401: _no_token("POST", "/api/tickets/1/close"),
        404: lambda s: s.client.post(f"/api/tickets/{_ticket(s)}/close", headers=s.rider()),
        413: _too_large("/api/tickets/1/close"),
        422: lambda s: s.client.post("/api/tickets/first/close", headers=OP),
    },
    ("post", RIDE + "/refund"): {
        200: lambda s: _refund(s, waited_s=130.0),
        401: _no_token("POST", "/api/rides/r1/refund", {"cents": 1, "reason": "x"}),
        403: lambda s: s.client.post(
            "/api/rides/r1/refund", json={"cents": 1, "reason": "x"}, headers=s.rider()
        ),
        404: lambda s: s.client.post(
            "/api/rides/nope/refund", json={"cents": 1, "reason": "x"}, headers=OP
        ),
        409: _refund,  # not ended: nothing charged yet
        413: _too_large("/api/rides/r1/refund"),
        422: lambda s: s.client.post(
            "/api/rides/r1/refund", json={"cents": 0, "reason": "x"}, headers=OP
        ),
    },
    ("get", "/api/health"): {200: _no_token("GET", "/api/health")},
    ("get", "/api/kpis"): _operator_only("/api/kpis"),
    ("get", "/api/kpis/history"): {
        **_operator_only("/api/kpis/history"),
        422: lambda s: s.client.get("/api/kpis/history?since_s=-1", headers=OP),
    },
    ("get", "/api/trips/open"): _operator_only("/api/trips/open"),
    ("get", "/api/yields"): _operator_only("/api/yields"),
    ("get", "/api/assistance"): _operator_only("/api/assistance"),
    ("post", "/api/assistance/{request_id}/answer"): {
        200: _assistance_answer(after_it_moves=False),
        401: _no_token("POST", "/api/assistance/a1/answer", {"answer": "wait"}),
        403: lambda s: s.client.post(
            "/api/assistance/a1/answer", json={"answer": "wait"}, headers=s.rider()
        ),
        404: lambda s: s.client.post(
            "/api/assistance/nope/answer", json={"answer": "wait"}, headers=OP
        ),
        409: _assistance_answer(after_it_moves=True),
        422: lambda s: s.client.post(
            "/api/assistance/a1/answer", json={"answer": "honk"}, headers=OP
        ),
    },
    ("get", "/api/vehicle-events"): {
        **_operator_only("/api/vehicle-events"),
        422: lambda s: s.client.get("/api/vehicle-events?limit=0", headers=OP),
    },
    ("get", "/api/map"): {200: _no_token("GET", "/api/map")},
    ("get", "/api/places"): {
        200: _no_token("GET", "/api/places?q=a"),
        422: lambda s: s.client.get("/api/places?q=%20%20"),  # blank
    },
    ("get", "/api/places/reverse"): {
        200: _no_token("GET", "/api/places/reverse?lat=37.75&lon=-122.42"),
        422: lambda s: s.client.get("/api/places/reverse?lat=91&lon=0"),
    },
    ("get", "/api/places/pickup-spots"): {
        200: lambda s: s.client.get("/api/places/pickup-spots", params=point(s.client, 0.4, 0.4)),
        422: lambda s: s.client.get("/api/places/pickup-spots?lat=91&lon=0"),
    },
    ("post", RIDE + "/share"): {
        201: _ride_action("share", "requested"),
        401: _no_token("POST", "/api/rides/r1/share"),
        404: _someone_elses_ride("share"),
        409: lambda s: ((ride := s.ride()), s.act(*ride, "cancel"), s.act(*ride, "share"))[-1],
        413: _too_large("/api/rides/r1/share"),
    },
    ("delete", RIDE + "/share"): {
        200: lambda s: (
            (ride := s.ride()),
            s.client.delete(f"/api/rides/{ride[1]}/share", headers=ride[0]),
        )[-1],
        401: _no_token("DELETE", "/api/rides/r1/share"),
        404: lambda s: (
            (ride := s.ride()),
            s.client.delete(f"/api/rides/{ride[1]}/share", headers=s.rider()),
        )[-1],
    },
    ("get", "/api/shared/{token}"): {
        200: lambda s: (
            (ride := s.ride()),
            s.client.get("/api/shared/" + s.act(*ride, "share").json()["token"]),
        )[-1],
        404: _no_token("GET", "/api/shared/not-a-link"),
    },
}
NOT_UTF8 = [
    "/api/riders",
    "/api/rides/quote",
    "/api/rides",
    "/api/rides/r1/buckle",
    "/api/rides/r1/refund",
    "/api/tickets",
]
for _path in NOT_UTF8:  # FastAPI cannot read the body: 400 (broken JSON is a 422)
    PROVOKE[("post", _path.replace("r1", "{ride_id}"))][400] = _not_utf8(_path)
_ANSWER = ("post", "/api/assistance/{request_id}/answer")
PROVOKE[_ANSWER][400] = _not_utf8("/api/assistance/a1/answer")
PROVOKE[_ANSWER][413] = _too_large("/api/assistance/a1/answer")
for (_method, _path), _codes in PROVOKE.items():  # every API endpoint refuses unknown queries
    _codes.setdefault(422, _unknown_query(_method.upper(), _path))
ENDS_THE_WINDOW = {("post", "/api/rides", 503)}
CASES = sorted(DECLARED, key=lambda case: case in ENDS_THE_WINDOW)  # stable: table order kept


def test_every_declared_status_has_a_request_that_provokes_it() -> None:
    provoked = {(m, p, code) for (m, p), codes in PROVOKE.items() for code in codes}
    assert provoked == set(DECLARED)
    operations = {(method, path) for method, path, _ in DECLARED}
    # 27 + places (2) + tickets (2) + assistance (2) + unlock, find-car, pick-up spots,
    # share, stop sharing, a shared ride (6)
    assert len(operations) == 40 and len(DECLARED) > 90


@pytest.mark.sumo
@pytest.mark.parametrize(("method", "path", "code"), CASES, ids=lambda v: str(v))
def test_declared_status_is_answered(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, method: str, path: str, code: int
) -> None:
    scene = Scene(client, monkeypatch)
    try:
        answer = PROVOKE[(method, path)][code](scene)
    finally:
        monkeypatch.undo()
        scene.cancel_all()
    assert answer.status_code == code, answer.text
    declared = DOCUMENT["paths"][path][method]["responses"][str(code)]
    for header in declared.get("headers", {}):
        assert header in answer.headers, f"{code} without its {header} header"
    if code >= 400:
        detail = answer.json()["detail"]
        if code == 422:  # FastAPI's validation shape, for ours as for its own
            assert detail and all({"loc", "msg", "type"} <= set(d) for d in detail)
        else:  # ErrorPublic: one sentence saying what to do
            assert set(answer.json()) == {"detail"} and isinstance(detail, str) and detail
            assert declared["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorPublic"
            }


def test_bearer_scheme_is_declared_and_protected_endpoints_use_it() -> None:
    assert DOCUMENT["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": DOCUMENT["components"]["securitySchemes"]["bearer"]["description"],
    }
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if (method, path) in PUBLIC:
                assert "security" not in operation, (method, path)
                assert "401" not in operation["responses"], (method, path)
            else:
                assert operation["security"] == [{"bearer": []}], (method, path)
                assert "401" in operation["responses"], (method, path)


@pytest.mark.sumo
def test_method_not_allowed_names_every_method_of_the_path(client: TestClient) -> None:
    for method, path, allowed in (
        ("OPTIONS", "/api/rides", "GET, HEAD, POST"),
        ("DELETE", "/api/rides", "GET, HEAD, POST"),
        ("PUT", "/api/rides/r1", "GET, HEAD"),
        ("GET", "/api/rides/r1/cancel", "POST"),
        ("PATCH", "/api/tickets", "GET, HEAD, POST"),
    ):
        answer = client.request(method, path, headers=OP)
        assert answer.status_code == 405, (method, path)
        assert answer.headers["allow"] == allowed, (method, path)
        assert answer.json() == {"detail": "Method Not Allowed"}


@pytest.mark.sumo
def test_document_is_served_as_built(client: TestClient) -> None:
    served = client.get("/openapi.json").json()
    assert served == DOCUMENT
    app = cast(FastAPI, client.app)
    assert app.openapi() is app.openapi()  # built once
    assert OPERATOR not in client.get("/openapi.json").text


@pytest.mark.sumo
def test_unknown_query_parameters_are_refused_with_what_is_taken(client: TestClient) -> None:
    answer = client.get("/api/rides?limt=5", headers=sign_in(client, "Typo"))
    assert answer.status_code == 422
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["query", "limt"] and error["type"] == "extra_forbidden"
    assert error["msg"] == "unknown query parameter: this endpoint takes limit"
    taken = client.get("/api/vehicle-events?limit=1&vehicle_id=taxi000", headers=OP)
    assert taken.status_code == 200
    none = client.get("/api/health?verbose=1").json()["detail"][0]["msg"]
    assert none.endswith("takes none")
    # pages are not API endpoints: a link with a query still opens the page
    assert client.get("/?utm_source=mail").status_code == 200
