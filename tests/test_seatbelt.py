"""The seat belt mid-ride (issue 13 defect: a rider could unfasten it with no reaction and
nothing logged): undoing it is an event, fastening it again within the grace time lets the
ride go on, leaving it open makes the car pull over at the next safe kerb."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fakecity import mini_city
from robotaxi.config import load_config
from robotaxi.core import RideRequest, TripEvent, VehicleEvent, VehicleEventKind
from robotaxi.sim.live import LiveService
from robotaxi.world.fake import FakeWorld

GRACE_S = 20.0


def _ride_under_way(tmp_path: Path, logged: list[VehicleEvent]) -> tuple[LiveService, str]:
    config = load_config(
        overrides={
            "map.city": "grid", "fleet.size": 2, "hours": 1.0, "seed": 4,
            "world.emergency_per_hour": 0.0, "fleet.seatbelt_grace_s": GRACE_S,
        }
    )  # fmt: skip

    def sink(
        rides: Sequence[RideRequest], events: Sequence[TripEvent], vehicle: Sequence[VehicleEvent]
    ) -> None:
        logged.extend(vehicle)

    live = LiveService(
        config, tmp_path, riders_per_hour=0.0, background_traffic=False, sink=sink,
        world=FakeWorld, city=mini_city(),
    )  # fmt: skip
    live.start()  # the caller closes it
    curbs = live.map.curbs
    view = live.request_ride(
        "r1", "rider-1", "Kevin", tuple(curbs.xy[3]), tuple(curbs.xy[len(curbs) - 5])
    )
    trip_id = view.trip_id
    assert live.step_until(lambda: live.trip(trip_id).state.value == "arrived", 900)
    live.unlock(trip_id)
    live.board(trip_id)
    live.buckle(trip_id, True)
    live.start_ride(trip_id)
    assert live.step_until(lambda: live.trip(trip_id).state.value == "driving", 60)
    live.step_until(lambda: False, 30)  # under way for half a minute
    return live, trip_id


def belt_events(logged: list[VehicleEvent]) -> list[VehicleEventKind]:
    """The seat-belt events among the car's (unlocking the doors is one too)."""
    return [e.kind for e in logged if e.kind.value.startswith("seatbelt_")]


def test_a_belt_left_open_makes_the_car_pull_over(tmp_path: Path) -> None:
    logged: list[VehicleEvent] = []
    live, trip_id = _ride_under_way(tmp_path, logged)
    try:
        open_at = live.now_s
        live.buckle(trip_id, False)
        assert belt_events(logged) == [VehicleEventKind.SEATBELT_UNFASTENED]
        assert live.trip(trip_id).buckled is False and live.trip(trip_id).on_board
        assert live.step_until(lambda: live.trip(trip_id).state.value == "pulled_over", 120)
        assert live.now_s - open_at >= GRACE_S
        assert live.step_until(lambda: live.trip(trip_id).state.value == "completed", 300)
        trip = live.fleet.trips[trip_id]
    finally:
        live.stop()
    pulled = [e for e in trip.events if e.state.value == "pulled_over"]
    assert len(pulled) == 1 and pulled[0].cause == "seatbelt"
    assert "arrived_at_destination" not in [e.state.value for e in trip.events]


def test_a_belt_fastened_again_in_time_lets_the_ride_go_on(tmp_path: Path) -> None:
    logged: list[VehicleEvent] = []
    live, trip_id = _ride_under_way(tmp_path, logged)
    try:
        live.buckle(trip_id, False)
        live.step_until(lambda: False, GRACE_S / 2)
        live.buckle(trip_id, True)
        assert live.step_until(lambda: live.trip(trip_id).state.value == "completed", 900)
        states = [e.state.value for e in live.fleet.trips[trip_id].events]
    finally:
        live.stop()
    assert belt_events(logged) == [
        VehicleEventKind.SEATBELT_UNFASTENED,
        VehicleEventKind.SEATBELT_FASTENED,
    ]
    assert "pulled_over" not in states and "arrived_at_destination" in states
