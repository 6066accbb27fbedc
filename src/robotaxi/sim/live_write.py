"""The live service's write path: queues what happened, hands it to the event sink in batches in
the order it happened, and passes each update on to the subscribers."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from robotaxi.core import RideRequest, TripEvent, VehicleEvent
from robotaxi.sim.live_views import LiveUpdate

# the live service's logger: its messages keep the name they had before the write path moved
log = logging.getLogger("robotaxi.sim.live")

# (new simulated ride requests, trip events, the cars' vehicle events) since the last call:
# the service's event log
EventSink = Callable[[Sequence[RideRequest], Sequence[TripEvent], Sequence[VehicleEvent]], None]
# rides, trip events and vehicle events for one sink call
_Batch = tuple[list[RideRequest], list[TripEvent], list[VehicleEvent]]


class EventLog:
    """Batches rides and events for the sink, counts versions and calls the subscribers.

    Lock order: the service's lock (given here; it also guards the subscribers), then
    `_sink_lock` (the writer's turn), then `_queue_lock` (held only briefly).
    """

    def __init__(self, sink: EventSink | None, service_lock: threading.RLock) -> None:
        self.sink = sink
        self._lock = service_lock
        self.version = 0
        self._subscribers: dict[int, Callable[[LiveUpdate], None]] = {}
        self._next_sub = 0
        self._unsaved_rides: list[RideRequest] = []
        self._unsaved_events: list[TripEvent] = []
        self._unsaved_vehicle_events: list[VehicleEvent] = []
        self._sink_lock = threading.Lock()
        self._queue_lock = threading.Lock()

    def record(
        self,
        time_s: float,
        rides: Sequence[RideRequest],
        events: Sequence[TripEvent],
        vehicle_events: Sequence[VehicleEvent] = (),
    ) -> LiveUpdate:
        """Queue what happened at `time_s` for the sink (call under the service's lock)."""
        with self._queue_lock:
            self._unsaved_rides.extend(rides)
            self._unsaved_events.extend(events)
            self._unsaved_vehicle_events.extend(vehicle_events)
        self.version += 1
        return LiveUpdate(time_s, tuple(events), self.version)

    def take_batch(self) -> _Batch | None:
        """Everything queued, with the writer's turn taken (call under the service's lock).

        Taking the sink lock while still holding the service's lock keeps writes in the order
        things happened; the write itself then runs after the service's lock is released, so
        readers never wait for the disk.
        """
        queues = (self._unsaved_rides, self._unsaved_events, self._unsaved_vehicle_events)
        with self._queue_lock:
            if self.sink is None or not any(queues):
                for queue in queues:
                    queue.clear()
                return None
            batch = (list(queues[0]), list(queues[1]), list(queues[2]))
            for queue in queues:
                queue.clear()
        self._sink_lock.acquire()
        return batch

    def write(self, batch: _Batch | None, *, strict: bool) -> None:
        """Hand a batch to the sink and release the writer's turn; keep it queued on failure."""
        if batch is None:
            return
        try:
            if self.sink is not None:
                self.sink(*batch)
        except Exception:
            # queued again in front: the next write retries it (the store skips duplicates)
            with self._queue_lock:
                self._unsaved_rides[:0] = batch[0]
                self._unsaved_events[:0] = batch[1]
                self._unsaved_vehicle_events[:0] = batch[2]
            if strict:
                raise
            log.exception(
                "writing %d trip and %d vehicle events failed; retrying",
                len(batch[1]),
                len(batch[2]),
            )
        finally:
            self._sink_lock.release()

    def publish(self, update: LiveUpdate) -> None:
        """Hand `update` to every subscriber (call without the service's lock)."""
        with self._lock:
            callbacks = list(self._subscribers.values())
        for callback in callbacks:
            try:
                callback(update)
            except Exception:
                log.exception("a live-update subscriber failed")

    def subscribe(self, callback: Callable[[LiveUpdate], None]) -> Callable[[], None]:
        """Call `callback` after every `publish`; returns the function that unsubscribes."""
        with self._lock:
            key = self._next_sub
            self._next_sub += 1
            self._subscribers[key] = callback

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers.pop(key, None)

        return unsubscribe

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)
