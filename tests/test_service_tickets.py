"""Support through the API, against the real app, a real SQLite file and the live grid city:
a rider opens a ticket about a ride (its car attached), an operator replies, the rider reads
the reply and closes it — the support reply round trip of issue 13 — and nobody else sees it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from robotaxi.service.app import create_app
from robotaxi.store.records import TicketAuthor, TicketStatus
from test_service_api import OP, book, drive_until, runtime_of, settings_for, sign_in

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.sumo]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, map_cache: Path) -> Iterator[TestClient]:
    app = create_app(settings_for(tmp_path_factory.mktemp("tickets"), map_cache))
    with TestClient(app) as c:
        yield c


def _recent(stamp: str) -> bool:
    return abs(datetime.fromisoformat(stamp) - datetime.now(UTC)) < timedelta(minutes=5)


def test_support_reply_round_trip(client: TestClient) -> None:
    rider = sign_in(client, "Rosa")
    rid = book(client, rider, (0.2, 0.2), (0.8, 0.8))
    drive_until(client, rid, "en_route", 60)
    car = client.get(f"/api/rides/{rid}", headers=rider).json()["vehicle_id"]
    assert car

    # the rider opens a ticket about the ride: it carries rider, ride and car
    opened = client.post(
        "/api/tickets",
        json={"text": "I left my umbrella", "ride_id": rid, "topic": "lost_item"},
        headers=rider,
    )
    assert opened.status_code == 201, opened.text
    ticket = opened.json()
    tid = ticket["id"]
    assert ticket["status"] == "open" and ticket["messages"] == []
    assert (ticket["ride_id"], ticket["vehicle_id"], ticket["topic"]) == (rid, car, "lost_item")
    assert ticket["rider_name"] == "Rosa" and ticket["rider_id"]

    # operators see it, with who and which car, and reply
    listed = {t["id"]: t for t in client.get("/api/tickets", headers=OP).json()}
    assert listed[tid]["rider_name"] == "Rosa" and listed[tid]["vehicle_id"] == car
    reply = client.post(
        f"/api/tickets/{tid}/messages",
        json={"text": "  We found it: it is at the depot.  "},
        headers=OP,
    )
    assert reply.status_code == 201, reply.text
    assert reply.json()["status"] == "answered"

    # the rider reads the reply (one ticket, their list, and their ride's tickets)
    mine = client.get(f"/api/tickets/{tid}", headers=rider).json()
    (answer,) = mine["messages"]
    assert answer["author"] == "operator" and answer["text"] == "We found it: it is at the depot."
    assert answer["status"] == "answered" and _recent(answer["created_at"])
    assert mine["status"] == "answered" and mine["updated_at"] == answer["created_at"]
    assert [t["id"] for t in client.get("/api/tickets", headers=rider).json()] == [tid]
    latest = client.get("/api/tickets", params={"limit": 1}, headers=OP).json()
    assert len(latest) == 1 and client.get("/api/tickets?limit=0", headers=OP).status_code == 422
    of_ride = client.get("/api/tickets", params={"ride_id": rid}, headers=rider).json()
    assert [t["id"] for t in of_ride] == [tid]

    # a follow-up reopens it; the rider closes it; an operator cannot reply to a closed one
    follow = client.post(
        f"/api/tickets/{tid}/messages", json={"text": "Thanks! When can I get it?"}, headers=rider
    )
    assert follow.status_code == 201 and follow.json()["status"] == "open"
    closed = client.post(f"/api/tickets/{tid}/close", headers=rider)
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    again = client.post(f"/api/tickets/{tid}/close", headers=OP)  # no-op: already closed
    assert again.status_code == 200 and len(again.json()["messages"]) == 3
    late = client.post(f"/api/tickets/{tid}/messages", json={"text": "Tomorrow"}, headers=OP)
    assert late.status_code == 409 and "closed" in late.json()["detail"]
    log = [(m["author"], m["text"], m["status"]) for m in again.json()["messages"]]
    assert log == [
        ("operator", "We found it: it is at the depot.", "answered"),
        ("rider", "Thanks! When can I get it?", "open"),
        ("rider", None, "closed"),
    ]

    # the life cycle is stored: it reads back the same from the database
    stored = runtime_of(client).store.ticket(tid)
    assert stored is not None and stored.status is TicketStatus.CLOSED
    assert [m.author for m in stored.messages] == [
        TicketAuthor.OPERATOR, TicketAuthor.RIDER, TicketAuthor.RIDER,
    ]  # fmt: skip
    assert stored.vehicle_id == car and stored.ride_id == rid
    client.post(f"/api/rides/{rid}/cancel", headers=rider)


def test_only_the_tickets_rider_and_operators_see_it(client: TestClient) -> None:
    owner, other = sign_in(client, "Owner"), sign_in(client, "Other")
    tid = client.post("/api/tickets", json={"text": "The seat is wet"}, headers=owner).json()["id"]
    # another rider gets the same 404 as for a ticket that does not exist
    for method, path, body in [
        ("GET", f"/api/tickets/{tid}", None),
        ("POST", f"/api/tickets/{tid}/messages", {"text": "mine now"}),
        ("POST", f"/api/tickets/{tid}/close", None),
    ]:
        r = client.request(method, path, json=body, headers=other)
        assert r.status_code == 404, (path, r.text)
        missing = client.request(method, path.replace(str(tid), "999999"), json=body, headers=other)
        assert missing.status_code == 404
        assert missing.json()["detail"].replace("999999", str(tid)) == r.json()["detail"]
    assert client.get("/api/tickets", headers=other).json() == []
    assert client.get(f"/api/tickets/{tid}", headers=owner).json()["messages"] == []
    assert client.get(f"/api/tickets/{tid}", headers=OP).status_code == 200
    # without a token: 401; a ticket id out of range: 422
    assert client.get(f"/api/tickets/{tid}").status_code == 401
    assert client.get("/api/tickets/0", headers=OP).status_code == 422
    assert client.get(f"/api/tickets/{2**40}", headers=OP).status_code == 422
    # a ticket about someone else's ride is refused, as is an unknown topic
    rid = book(client, owner, (0.3, 0.3), (0.6, 0.6))
    stolen = client.post("/api/tickets", json={"text": "hi", "ride_id": rid}, headers=other)
    assert stolen.status_code == 404
    odd = client.post("/api/tickets", json={"text": "hi", "topic": "refund"}, headers=owner)
    assert odd.status_code == 422
    client.post(f"/api/rides/{rid}/cancel", headers=owner)
