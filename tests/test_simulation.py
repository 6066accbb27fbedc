"""The one runner (`sim.simulation.Simulation`) and `simulate`'s set-up of it, on FakeWorld:
the fleet, dispatch and trip life cycle run in well under a second, without SUMO."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from fakecity import mini_city, mini_service
from robotaxi.config import load_config
from robotaxi.core import RideRequest, TimePoint, TripEvent, TripState, VehicleEvent
from robotaxi.fleet.trips import ALLOWED
from robotaxi.metrics.fleet_kpis import fleet_kpis
from robotaxi.sim.callbacks import EventBatcher, TrailRecorder
from robotaxi.sim.runner import ServiceHistory
from robotaxi.sim.simulation import Callback, RequestQueue, Simulation, Tick
from robotaxi.world.fake import FakeWorld

S = TripState
LIFE_CYCLE = re.compile(
    r"requested( assigned( en_route)?)* assigned en_route arrived boarded started driving"
    r" arrived_at_destination completed"
)


def _config(**extra: object):
    overrides: dict[str, object] = {
        "map.city": "grid", "fleet.size": 8, "hours": 0.5, "seed": 7,
        "world.emergency_per_hour": 6.0, "demand.requests_per_hour": 60.0,
        "world.background_vehicles_per_hour_per_km2": 300.0,
    }  # fmt: skip
    overrides.update(extra)
    return load_config(overrides=overrides)


def _run(
    tmp_path: Path, *, sink=None, progress=None, callbacks: Sequence[Callback] = (), **extra
) -> ServiceHistory:
    config = _config(**extra)
    return mini_service(
        config, tmp_path, event_sink=sink, progress=progress, callbacks=callbacks
    ).run()


class Counter(Callback):
    """Counts the runner's calls; checks on the way what each call may rely on."""

    name = "counter"

    def __init__(self) -> None:
        self.started = self.ended = 0
        self.times: list[TimePoint] = []

    def on_start(self, sim: Simulation) -> None:
        self.started += 1
        assert sim.started and sim.fleet is not None and len(sim.fleet.vehicles) == 8

    def on_tick(self, sim: Simulation, tick: Tick) -> None:
        self.times.append(tick.time)
        assert tick.index == len(self.times) - 1

    def on_end(self, sim: Simulation) -> None:
        self.ended += 1
        sim.world.vehicle_count()  # the world is still open


@dataclass(frozen=True)
class WatchedRun:
    history: ServiceHistory
    progress: list[tuple[float, float, str]]
    counter: Counter
    trails: TrailRecorder


@pytest.fixture(scope="module")
def watched_run(tmp_path_factory: pytest.TempPathFactory) -> WatchedRun:
    """The default half hour, run once with every observer attached (the progress bar, a
    counting callback, a trail recorder); the tests below each read one of them."""
    seen: list[tuple[float, float, str]] = []
    counter = Counter()
    recorder = TrailRecorder((0.0, 0.0, 800.0, 800.0), every_s=1.0, max_points=64)
    history = _run(
        tmp_path_factory.mktemp("watched"),
        progress=lambda done, total, status: seen.append((done, total, status)),
        callbacks=[counter, recorder],
    )
    return WatchedRun(history, seen, counter, recorder)


def test_a_service_runs_on_fake_world_through_the_whole_trip_life_cycle(
    watched_run: WatchedRun,
) -> None:
    history = watched_run.history
    kpis = fleet_kpis(history)
    assert kpis["requests"] >= 15
    completed = [t for t in history.trips.values() if t.state == S.COMPLETED]
    assert len(completed) >= 0.9 * len(history.trips)
    for trip in completed:
        states = " ".join(e.state.value for e in trip.events)
        assert LIFE_CYCLE.fullmatch(states), states
        for a, b in zip(trip.events, trip.events[1:], strict=False):
            assert b.state in ALLOWED[a.state]
            assert a.time <= b.time
    # the run drains: it goes past the service window only to finish the trips under way
    assert history.simulated_s >= history.service_s
    assert all(t.state.terminal for t in history.trips.values())
    # ambulances crossed and the world recorded them
    assert history.emergency and all(e.travel_s for e in history.emergency)
    assert sum(v.km_occupied for v in history.vehicles) > 0


def test_the_same_seed_gives_the_same_event_log_and_another_seed_another(tmp_path: Path) -> None:
    def log(seed: int, folder: str) -> list[tuple[object, ...]]:
        rows: list[tuple[object, ...]] = []

        def sink(
            rides: Sequence[RideRequest],
            events: Sequence[TripEvent],
            vehicle: Sequence[VehicleEvent],
        ) -> None:
            rows.extend((r.request_id, r.time, r.pickup_x, r.pickup_y) for r in rides)
            rows.extend((e.trip_id, e.seq, e.time, e.state, e.vehicle_id, e.cause) for e in events)
            rows.extend((v.vehicle_id, v.time, v.kind) for v in vehicle)

        _run(tmp_path / folder, sink=sink, seed=seed)
        return rows

    first = log(11, "a")
    assert first and first == log(11, "b")
    assert first != log(12, "c")


def test_the_sink_gets_every_event_the_fleet_made_in_order(tmp_path: Path) -> None:
    calls: list[int] = []
    events: list[TripEvent] = []

    def sink(rides, trip_events, vehicle_events) -> None:  # type: ignore[no-untyped-def]
        calls.append(len(trip_events))
        events.extend(trip_events)

    history = _run(tmp_path, sink=sink, **{"demand.requests_per_hour": 240.0})
    expected = sorted((e.time, e.trip_id, e.seq) for t in history.trips.values() for e in t.events)
    assert sorted((e.time, e.trip_id, e.seq) for e in events) == expected
    assert len(calls) >= 2  # batched (500 events a flush), with the rest at the end
    assert all(n >= 500 for n in calls[:-1])


def test_progress_reports_every_simulated_minute_and_the_end(watched_run: WatchedRun) -> None:
    seen = watched_run.progress
    done = [d for d, _, _ in seen]
    assert done == sorted(done) and done[-1] == seen[-1][1] == 1800.0
    # the first tick, then every minute; while trips under way finish, the bar stays full
    assert [d for d in done if d < 1800.0] == [1.0] + [60.0 * k for k in range(1, 30)]
    assert re.fullmatch(r"\d+ requests, \d+ completed, \d+ vehicles", seen[-1][2])


def test_callbacks_see_every_tick_once_and_close_before_the_world(watched_run: WatchedRun) -> None:
    counter, history = watched_run.counter, watched_run.history
    assert counter.started == counter.ended == 1
    assert [t.time_us for t in counter.times] == [
        k * 1_000_000 for k in range(1, len(counter.times) + 1)
    ]
    assert counter.times[-1].time_s == pytest.approx(history.simulated_s)


def test_trails_stay_bounded_and_cover_the_whole_run(watched_run: WatchedRun) -> None:
    recorder, history = watched_run.trails, watched_run.history
    trails = recorder.trails()
    assert trails and all(len(t) <= 64 for t in trails.values())
    assert recorder.every_s >= 32.0  # thinned again and again over ~2,000 ticks
    assert sum(vid.startswith("taxi") for vid in trails) == 8
    for vid, trail in trails.items():
        if not vid.startswith("taxi"):
            continue  # an ambulance's trail covers its run only
        assert trail[0, 0] == 1.0 and trail[-1, 0] >= history.simulated_s - 2 * recorder.every_s
        assert (trail[1:, 0] > trail[:-1, 0]).all()


def test_a_world_without_a_fleet_hands_nothing_to_the_sink() -> None:
    got: list[int] = []
    batcher = EventBatcher(lambda r, e, v: got.append(len(e)), flush_events=3)
    road_map, graph = mini_city()
    world = FakeWorld(
        road_map, graph, _config().world, _config().fleet, seed=1, end_s=60.0, background=False
    )
    sim = Simulation(world, graph, callbacks=[batcher])
    with sim:
        tick = sim.step()
        assert tick.result.events == [] and batcher.held == 0  # no fleet: nothing to hand on
    assert got == []


def test_request_queue_hands_out_requests_when_due_in_time_order() -> None:
    def request(k: int, t: float) -> RideRequest:
        return RideRequest(f"r{k}", "x", "X", TimePoint.from_s(t), 0, 0, 1, 1)

    queue = RequestQueue([request(1, 5.0), request(0, 1.0), request(2, 9.0)])
    assert queue.due(0.5) == ()
    assert [r.request_id for r in queue.due(5.0)] == ["r0", "r1"]
    queue.add(request(3, 6.0))
    queue.add(request(4, 2.0))  # already due: handed out at the next call
    assert [r.request_id for r in queue.due(6.0)] == ["r4", "r3"]
    assert queue.remaining == 1
    assert [r.request_id for r in queue.due(100.0)] == ["r2"]
    assert len(queue) == 0


@pytest.mark.parametrize("with_fleet", [True, False])
def test_traffic_alone_reads_no_travel_times_and_a_fleet_reads_them_every_300_s(
    tmp_path: Path, with_fleet: bool
) -> None:
    """The routing graph's travel times are the fleet's: a background-only run (the fleet
    benchmark's baseline) does not read them, a run with a fleet every 300 simulated s."""
    reads: list[int] = []

    class Counting(FakeWorld):
        def edge_travel_times(self, edges: Sequence[str]) -> dict[str, float]:
            reads.append(len(edges))
            return super().edge_travel_times(edges)

    config = _config()
    mini_service(config, tmp_path, world=Counting, with_fleet=with_fleet).run()
    if with_fleet:  # (and more while the last rides finish)
        assert len(reads) >= int(config.hours * 3600 // 300)
    else:
        assert reads == []
