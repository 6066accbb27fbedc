"""The live service stores its cars' vehicle events (pulling over for an ambulance) durably.

Against the real app and the grid city, stepped by the test: mid-ride, an ambulance is sent
up behind the autonomous car, which pulls over for it and drives on. Every vehicle event the
fleet emitted is in the SQLite store under the service's run id (the id of its trips), still
there after the service has shut down, and the operators' endpoint lists it, newest last.
The writer commits vehicle events in the same transaction as the trip events queued with
them, so a failed commit loses neither and its retry stores each once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from robotaxi.core import TimePoint, TripEvent, TripState, VehicleEvent, VehicleEventKind
from robotaxi.fleet.manager import FleetTickResult
from robotaxi.service.runtime import ServiceRuntime, StoreWriter
from robotaxi.store.errors import StoreError
from robotaxi.store.store import Store
from test_service_autonomy import (  # the ambulance scene of the autonomy tests
    AMBULANCE,
    CAR,
    OPERATOR,
    quiet_client,  # noqa: F401 - a fixture
    ride_underway,
    send_ambulance_behind,
)
from test_service_runtime import FlakyStore, request, store  # noqa: F401 - store: a fixture

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
OPS = {"Authorization": f"Bearer {OPERATOR}"}
YIELD_KINDS = ["ev_in_range", "ev_pulled_over", "ev_resumed"]


def as_rows(events: Sequence[VehicleEvent]) -> list[tuple[str, int, str, dict[str, Any]]]:
    return [(e.vehicle_id, e.time.time_us, e.kind, dict(e.data)) for e in events]


@pytest.mark.sumo
def test_an_ambulance_yield_is_stored_survives_shutdown_and_is_listed_for_operators(
    quiet_client: TestClient,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = quiet_client
    runtime: ServiceRuntime = cast(FastAPI, client.app).state.runtime
    live = runtime.live
    # what the fleet emits, seen where it leaves the fleet (the tick runs unchanged)
    emitted: list[VehicleEvent] = []
    fleet_tick = live.fleet.tick

    def tick_and_note(*args: Any, **kwargs: Any) -> FleetTickResult:
        result = fleet_tick(*args, **kwargs)
        emitted.extend(result.vehicle_events)
        return result

    monkeypatch.setattr(live.fleet, "tick", tick_and_note)

    live.step()
    ride_id, me, _ = ride_underway(client, live, runtime, "Ada")
    assert not emitted, "a vehicle event before any ambulance"
    send_ambulance_behind(live)
    assert live.step_until(lambda: any(y.vehicle_id == CAR for y in live.fleet.yields), 300), (
        "the car never finished yielding to the ambulance"
    )
    live.step()  # one more tick: nothing is left behind in the writer's queue

    # the fleet's own record of the yield: in range -> stopped at the kerb -> resumed
    (record,) = [y for y in live.fleet.yields if y.vehicle_id == CAR]
    assert record.ev_id == AMBULANCE and record.trip_id == ride_id
    assert record.stopped_at is not None and record.resumed_at is not None
    ours = [e for e in emitted if e.vehicle_id == CAR]
    assert [e.kind for e in ours] == YIELD_KINDS
    assert [e.time for e in ours] == [record.in_range_at, record.stopped_at, record.resumed_at]

    # operators read them from the store: only with the operator token
    assert client.get("/api/vehicle-events").status_code == 401
    assert client.get("/api/vehicle-events", headers=me).status_code == 403
    listed = client.get("/api/vehicle-events", headers=OPS)
    assert listed.status_code == 200, listed.text
    # the rider unlocking the car at the pick-up is in the log too; these are the ambulance's
    everything = ambulance_events(listed.json())
    assert [(e["vehicle_id"], e["time_s"], e["kind"], e["data"]) for e in everything] == [
        (e.vehicle_id, e.time.time_s, e.kind, dict(e.data)) for e in emitted
    ]
    assert all(e["run_id"] == runtime.run_id and e["this_run"] for e in everything)
    of_car = ambulance_events(
        client.get("/api/vehicle-events", params={"vehicle_id": CAR}, headers=OPS).json()
    )
    assert [e["kind"] for e in of_car] == YIELD_KINDS
    assert [e["time_s"] for e in of_car] == [
        t.time_s for t in (record.in_range_at, record.stopped_at, record.resumed_at)
    ]
    assert all(e["data"] == {"ev": AMBULANCE, "approach": record.approach, "trip": ride_id}
               for e in of_car)  # fmt: skip
    latest = client.get("/api/vehicle-events", params={"vehicle_id": CAR, "limit": 1}, headers=OPS)
    assert [e["kind"] for e in latest.json()] == ["ev_resumed"]  # newest last
    nobody = client.get("/api/vehicle-events", params={"vehicle_id": "no-such-car"}, headers=OPS)
    assert nobody.json() == []

    # stop the service as a server shutdown does; the rows are on disk for a new process
    client.__exit__(None, None, None)
    assert not live.running
    reopened = Store.open(runtime.settings.resolved_database_url)
    try:
        logged = reopened.vehicle_event_log()
        kept = [entry.event for entry in logged if entry.event.kind.value.startswith("ev_")]
        assert as_rows(kept) == as_rows(emitted)
        assert {entry.run_id for entry in logged} == {runtime.run_id}
        of_car = [e for e in reopened.vehicle_events(CAR) if e.kind.value.startswith("ev_")]
        assert as_rows(of_car) == as_rows(ours)
        # the same run as the trip they interrupted, whose events are all there too
        ride = reopened.ride(ride_id)
        assert ride is not None and ride.run_id == runtime.run_id and ride.vehicle_id == CAR
        states = [e.state for e in reopened.events(ride_id)]
        assert states[:3] == [TripState.REQUESTED, TripState.ASSIGNED, TripState.EN_ROUTE]
        assert TripState.DRIVING in states
    finally:
        reopened.close()


def test_vehicle_events_share_the_trip_events_commit_and_its_retry(
    store: Store,  # noqa: F811
) -> None:
    run = store.start_run({})
    writer = StoreWriter(FlakyStore(store, fail=1), run.id, retry_s=0.05)  # type: ignore[arg-type]
    ride = request("sim-1", "sim-r", t_s=4.0)
    trip = TripEvent("sim-1", 0, TimePoint.from_s(4.0), TripState.REQUESTED, None)
    pulled = VehicleEvent(
        "taxi001", TimePoint.from_s(5.0), VehicleEventKind.EV_PULLED_OVER, {"ev": "a1"}
    )
    writer.put_events([ride], [trip], [pulled])
    with pytest.raises(StoreError, match="disk full"):
        writer.sync()
    # the failed commit wrote neither the trip event nor the vehicle event
    assert store.events("sim-1") == [] and store.vehicle_events() == []
    writer.sync()  # the retry lands both, in one commit, under the writer's run
    assert writer.commits == 1
    writer.close()
    assert store.events("sim-1") == [trip]
    assert as_rows(store.vehicle_events()) == as_rows([pulled])
    assert [e.run_id for e in store.vehicle_event_log()] == [run.id]
    # replaying a batch that did land stores nothing twice
    store.record(rides=[ride], events=[trip], vehicle_events=[pulled], run_id=run.id)
    assert len(store.vehicle_event_log()) == 1 and store.events("sim-1") == [trip]


def ambulance_events(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The vehicle events about ambulances (in range, pulled over, resumed)."""
    return [e for e in rows if str(e["kind"]).startswith("ev_")]
