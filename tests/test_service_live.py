"""The live city behind the service: determinism, pacing, routes, what a car sees."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from clocks import ManualClock
from robotaxi.config import RunConfig, load_config
from robotaxi.core import AgentKind, RideRequest, TripEvent
from robotaxi.fleet.manager import RideActionError
from robotaxi.sim.live import LiveService, LiveServiceError, LiveUpdate

pytestmark = pytest.mark.sumo


def config(map_cache: Path, **extra: object) -> RunConfig:
    overrides: dict[str, object] = {
        "map.cache_dir": str(map_cache),
        "fleet.size": 3,
        "hours": 0.5,
        "world.emergency_per_hour": 0.0,
    }
    overrides.update(extra)
    return load_config(None, overrides)


def state_of(live: LiveService, trip_id: str) -> str:
    view = live.trip(trip_id)
    return "" if view is None else view.state.value


def state_events(live: LiveService, trip_id: str) -> tuple[TripEvent, ...]:
    view = live.trip(trip_id)
    return () if view is None else view.events


def test_same_seed_same_events(tmp_path: Path, map_cache: Path) -> None:
    def run(folder: str) -> list[tuple[str, int, int, str, str | None]]:
        events: list[TripEvent] = []
        live = LiveService(
            config(map_cache), tmp_path / folder, speed=100, riders_per_hour=60,
            background_traffic=False, sink=lambda _r, e, _v: events.extend(e),
        )  # fmt: skip
        with live:
            for _ in range(600):
                live.step()
        return [(e.trip_id, e.seq, e.time.time_us, e.state.value, e.vehicle_id) for e in events]

    first, second = run("a"), run("b")
    assert len(first) > 10 and first == second
    # synthetic riders are named apart from app rides and from other server runs
    assert all(trip_id.startswith("sim-r") for trip_id, *_ in first)


def _wait_for(done, seconds: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    """Poll (the clock thread runs flat out on a manual clock) until `done()` or give up."""
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert done()


def test_clock_keeps_its_speed_and_publishes_updates(tmp_path: Path, map_cache: Path) -> None:
    updates: list[LiveUpdate] = []
    clock = ManualClock()
    live = LiveService(
        config(map_cache), tmp_path, speed=40, riders_per_hour=0, background_traffic=False,
        clock=clock,
    )  # fmt: skip
    with live:
        unsubscribe = live.subscribe(updates.append)
        live.run_clock()
        _wait_for(lambda: len(updates) >= 80)
        unsubscribe()
        seen = len(updates)
        after = live.now_s
        _wait_for(lambda: live.now_s >= after + 5)  # ticks go on after unsubscribing
        pacing = live.pacing()
        live.stop()
        assert live.running is False
    # on the clock it was given: 40 simulated seconds per wall second, never behind
    assert pacing.real_time_factor == pytest.approx(40, rel=1e-6)
    assert pacing.behind_s == 0.0
    assert all(w == pytest.approx(1 / 40) for w in clock.waits[:50])
    assert seen >= 80 and len(updates) == seen  # one per tick, none after unsubscribing
    assert [u.version for u in updates] == sorted({u.version for u in updates})


def test_a_clock_that_cannot_keep_up_reports_it(tmp_path: Path, map_cache: Path) -> None:
    clock = ManualClock()
    live = LiveService(
        config(map_cache), tmp_path, speed=1000, riders_per_hour=0, background_traffic=False,
        clock=clock,
    )  # fmt: skip
    with live:
        slow_step = live.step

        def step() -> LiveUpdate:
            clock.advance(0.01)  # 10 ms per 1 s step: at most 100× real time
            return slow_step()

        live.step = step  # type: ignore[method-assign]
        live.run_clock()
        _wait_for(lambda: live.now_s >= 60)
        pacing = live.pacing()
        live.stop()
    assert pacing.real_time_factor is not None and pacing.real_time_factor < 110
    assert pacing.behind_s > 0.5  # every step counted, none skipped
    assert pacing.sim_time_s >= 60


def test_routes_nearby_and_rider_rules(tmp_path: Path, map_cache: Path) -> None:
    live = LiveService(config(map_cache), tmp_path, speed=10, riders_per_hour=0)
    with live:
        live.step()
        view = live.request_ride("ride-x", "rider-1", "Mo", (500.0, 500.0), (2500.0, 2400.0))
        assert view.state.value == "requested" and view.start_blocked_reason
        with pytest.raises(RideActionError):
            live.request_ride("ride-x", "rider-1", "Mo", (500.0, 500.0), (2500.0, 2400.0))
        assert live.step_until(lambda: state_of(live, "ride-x") == "en_route", 60)
        car = live.trip("ride-x").vehicle_id  # type: ignore[union-attr]
        assert car is not None
        route = live.route_xy(car)
        pickup = np.array(live.trip("ride-x").pickup_curb_xy)  # type: ignore[union-attr]
        v = live.vehicle(car)
        assert v is not None and route.shape[1] == 2 and len(route) >= 2
        # the route starts where the car is and ends beside the pick-up curb
        assert math.dist(route[0], (v.x, v.y)) < 15
        assert math.dist(route[-1], pickup) < 3
        assert live.step_until(lambda: state_of(live, "ride-x") == "arrived", 1500)
        assert live.trip("ride-x").greeting == "Hey there, Mo!"  # type: ignore[union-attr]
        # with background traffic on, something is around within a few hundred metres
        live.step_until(lambda: False, 120)
        around = live.nearby(car, 400.0)
        distances = [math.dist((a.x, a.y), (v.x, v.y)) for a in around]
        v = live.vehicle(car)
        assert v is not None
        distances = [math.dist((a.x, a.y), (v.x, v.y)) for a in around]
        assert around and all(d <= 400.0 for d in distances) and distances == sorted(distances)
        assert car not in {a.agent_id for a in around}
        assert {a.kind for a in around} <= {
            AgentKind.CAR,
            AgentKind.ROBOTAXI,
            AgentKind.EMERGENCY,
            AgentKind.PEDESTRIAN,
        }
        assert live.nearby("no-such-car", 50.0) == ()
    with pytest.raises(LiveServiceError):
        live.step()


def test_quote_matches_the_dispatched_eta(tmp_path: Path, map_cache: Path) -> None:
    live = LiveService(
        config(map_cache), tmp_path, speed=10, riders_per_hour=0, background_traffic=False
    )
    with live:
        live.step()
        q = live.quote((800.0, 700.0), (2200.0, 2300.0))
        assert q.free_cars == 3 and q.pickup_eta_s is not None and not q.same_curb
        live.request_ride("ride-q", "r", "Ed", (800.0, 700.0), (2200.0, 2300.0))
        assert live.step_until(lambda: state_of(live, "ride-q") == "assigned", 30)
        assigned = next(e for e in state_events(live, "ride-q") if e.state.value == "assigned")
        # dispatch picks the same car and the same ETA the quote promised (same graph, same time)
        assert assigned.vehicle_id == q.vehicle_id
        assert float(assigned.data["eta_s"]) == pytest.approx(q.pickup_eta_s, abs=20)
        same = live.quote((800.0, 700.0), (801.0, 700.0))
        assert same.same_curb and same.trip_m == 0.0


def test_no_new_rides_after_the_service_window(tmp_path: Path, map_cache: Path) -> None:
    live = LiveService(
        config(map_cache, hours=0.01), tmp_path, riders_per_hour=0, background_traffic=False
    )
    with live:
        live.step()
        live.request_ride("early", "r", "Al", (500.0, 500.0), (2500.0, 2500.0))
        while live.now_s < 36.0:
            live.step()
        with pytest.raises(LiveServiceError, match="has ended"):
            live.request_ride("late", "r2", "Bo", (500.0, 500.0), (2500.0, 2500.0))
        live.step()  # trips under way still move on after the window
        assert state_of(live, "early") in {"assigned", "en_route", "arrived"}
        assert not live.ended


def test_a_failed_write_is_kept_and_retried_in_order(tmp_path: Path, map_cache: Path) -> None:
    written: list[TripEvent] = []
    failing = [True]

    def sink(
        _rides: Sequence[RideRequest], events: Sequence[TripEvent], _vehicle: Sequence[object]
    ) -> None:
        if failing[0]:
            raise RuntimeError("disk full")
        written.extend(events)

    live = LiveService(
        config(map_cache), tmp_path, riders_per_hour=0, background_traffic=False, sink=sink
    )
    with live:
        live.step()
        with pytest.raises(RuntimeError, match="disk full"):  # a rider's action fails loudly
            live.request_ride("a", "r", "Di", (500.0, 500.0), (2500.0, 2500.0))
        for _ in range(30):  # ticks log the failure and keep going
            live.step()
        failing[0] = False
        live.step()
        produced = list(state_events(live, "a"))
    assert len(produced) >= 3 and written == produced  # each once, in order


def test_published_snapshot_equals_a_fresh_view_of_every_trip(
    tmp_path: Path, map_cache: Path
) -> None:
    # Readers get trips from the snapshot, rebuilt only where something can have changed;
    # brute force: after every tick and action, rebuild every trip and compare.
    live = LiveService(
        config(map_cache), tmp_path, speed=10, riders_per_hour=120, background_traffic=False
    )

    def check() -> None:
        with live._lock:
            snapshot = live.snapshot()
            fresh = {t: live._trip_view(t) for t in live.fleet.trips}
            vehicles = [v.vehicle_id for v in live.fleet.vehicles.values()]
            assert snapshot.time_s == live.world.time.time_s
        assert snapshot.trips == fresh
        assert list(snapshot.vehicles) == vehicles
        assert live.now_s == snapshot.time_s

    with live:
        check()
        live.step()
        live.request_ride("a", "r1", "Al", (500.0, 500.0), (2500.0, 2400.0))
        live.request_ride("b", "r2", "Bo", (2400.0, 600.0), (600.0, 2300.0))
        check()
        for k in range(400):
            live.step()
            check()
            if state_of(live, "a") == "arrived":
                live.unlock("a")
                live.board("a")
                check()
                live.buckle("a", True)
                check()
                live.start_ride("a")
                check()
            if k == 50 and state_of(live, "b") not in ("cancelled", "completed"):
                live.cancel("b")
                check()
        versions = live.snapshot().version
    assert state_of(live, "b") == "cancelled"
    assert state_of(live, "a") in ("driving", "arrived_at_destination", "completed")
    assert len(live.snapshot().trips) > 2 and versions > 400
