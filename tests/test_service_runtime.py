"""The service's plumbing under load: group commits and one wake-up per update for streams."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from robotaxi.core import RideRequest, TimePoint, TripEvent, TripState
from robotaxi.service.runtime import LiveWaiters, StoreWriter
from robotaxi.sim.live import LiveUpdate
from robotaxi.store.errors import StoreError
from robotaxi.store.records import NewRide
from robotaxi.store.store import Store

S = TripState


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.open(f"sqlite:///{tmp_path / 'w.sqlite'}")
    yield store
    store.close()


def request(ride_id: str, rider_id: str, t_s: float = 0.0) -> RideRequest:
    return RideRequest(ride_id, rider_id, "Ann", TimePoint.from_s(t_s), 0, 0, 500, 500)


def test_concurrent_bookings_share_commits_and_all_land(store: Store) -> None:
    rider, _ = store.create_rider("Ann")
    run = store.start_run({})
    writer = StoreWriter(store, run.id)
    n = 40
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def book(k: int) -> None:
        try:
            barrier.wait()
            rid = f"ride-{k}"
            writer.add_ride(NewRide(request(rid, rider.id, k), pickup_walk_m=1.5))
            # the ride is committed before add_ride returns: its first event may follow
            writer.put_events([], [TripEvent(rid, 0, TimePoint.from_s(k), S.REQUESTED, None)])
            writer.sync()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=book, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    assert errors == []
    rides = store.rides_of_rider(rider.id)
    assert sorted(r.id for r in rides) == sorted(f"ride-{k}" for k in range(n))
    assert all(r.run_id == run.id and r.pickup_walk_m == 1.5 for r in rides)
    assert store.event_count() == n
    # grouped: 40 bookings (80 waits) took fewer commits than one per write
    assert writer.commits < 2 * n


class FlakyStore:
    """A store whose next `fail` writes raise, as a full disk would."""

    def __init__(self, store: Store, fail: int) -> None:
        self.store = store
        self.fail = fail

    def record(self, **kwargs: Any) -> int:
        if self.fail > 0:
            self.fail -= 1
            raise StoreError("disk full")
        return self.store.record(**kwargs)


def test_failed_events_are_retried_in_order_and_a_failed_booking_is_refused(
    store: Store,
) -> None:
    rider, _ = store.create_rider("Bo")
    run = store.start_run({})
    flaky = FlakyStore(store, fail=1)
    writer = StoreWriter(flaky, run.id, retry_s=0.05)  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="disk full"):
        writer.add_ride(NewRide(request("lost", rider.id)))
    writer.add_ride(NewRide(request("kept", rider.id)))
    events = [TripEvent("kept", i, TimePoint.from_s(i), s, None) for i, s in enumerate(
        [S.REQUESTED, S.CANCELLED]
    )]  # fmt: skip
    flaky.fail = 1
    writer.put_events([], events[:1])
    with pytest.raises(StoreError, match="disk full"):  # the caller hears of it...
        writer.sync()
    writer.put_events([], events[1:])
    writer.sync()  # ...and the retry lands it, in order, once
    writer.close()
    assert store.ride("lost") is None
    assert store.events("kept") == events
    assert store.ride("kept").state == S.CANCELLED  # type: ignore[union-attr]


def test_closing_commits_what_is_queued(store: Store) -> None:
    rider, _ = store.create_rider("Cy")
    run = store.start_run({})
    writer = StoreWriter(store, run.id)
    writer.add_ride(NewRide(request("r", rider.id)))
    writer.put_events([], [TripEvent("r", 0, TimePoint.from_s(0), S.REQUESTED, None)])
    writer.close()
    assert store.events("r") and store.ride("r") is not None
    with pytest.raises(StoreError, match="shutting down"):
        writer.add_ride(NewRide(request("late", rider.id)))


def test_one_update_wakes_every_stream_with_one_cross_thread_call() -> None:
    waiters = LiveWaiters()
    calls: list[object] = []

    async def main() -> int:
        loop = asyncio.get_running_loop()
        original = loop.call_soon_threadsafe

        def counted(callback: Any, *args: Any) -> Any:
            calls.append(callback)
            return original(callback, *args)

        loop.call_soon_threadsafe = counted  # type: ignore[method-assign,assignment]
        events = [waiters.next_update() for _ in range(200)]
        assert len({id(e) for e in events}) == 1  # all wait on the loop's current event

        def publish(n: int) -> None:
            for k in range(n):
                waiters.on_update(LiveUpdate(float(k), (), k))

        thread = threading.Thread(target=publish, args=(5,))
        thread.start()
        thread.join()
        woken = await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), 2.0)
        after = waiters.next_update()
        assert not after.is_set()  # a fresh event for the next update
        return len(woken)

    assert asyncio.run(main()) == 200
    # five updates before the loop ran: coalesced into one wake-up, not 5 × 200
    assert len(calls) == 1


def test_sink_order_is_the_order_of_the_log(store: Store) -> None:
    rider, _ = store.create_rider("Di")
    run = store.start_run({})
    writer = StoreWriter(store, run.id)
    writer.add_ride(NewRide(request("x", rider.id)))
    path: Sequence[TripState] = [S.REQUESTED, S.ASSIGNED, S.EN_ROUTE, S.ARRIVED, S.CANCELLED]
    for i, s in enumerate(path):
        writer.put_events([], [TripEvent("x", i, TimePoint.from_s(i), s, "taxi001" if i else None)])
    writer.sync()
    writer.close()
    assert [e.state for e in store.events("x")] == list(path)
