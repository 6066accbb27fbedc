"""What one running service holds: settings, the store, the live city, limits and live waiters.

`ServiceRuntime.open(settings)` opens the store, closes rides a previous process left open
(with a recorded reason), starts the live simulation with the store (through a group-commit
writer) as its event sink (rides, trip events and the cars' vehicle events, such as pulling
over for an ambulance, under this run's id) and, unless told otherwise, its clock thread.
`close()` undoes it all.

The hot paths never wait for the database or the simulation: status reads and live streams
are answered from the snapshot the simulation publishes after every tick and rider action,
and writes are committed in groups by one thread (`StoreWriter`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gzip
import hmac
import json
import logging
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

from robotaxi.core import RideRequest, TripEvent, TripState, VehicleEvent
from robotaxi.fleet.fares import Tariff, charge
from robotaxi.fleet.trips import ALLOWED
from robotaxi.map.places import Gazetteer, PlaceName
from robotaxi.map.walking import WalkingGraph
from robotaxi.service.settings import ServiceSettings
from robotaxi.service.speech import GreetingVoice
from robotaxi.sim.live import LiveService, LiveSnapshot, LiveUpdate
from robotaxi.store.errors import StoreError
from robotaxi.store.records import Fare, NewRide, Pricer, Ride, Rider
from robotaxi.store.store import Store
from robotaxi.store.tokens import hash_token

S = TripState
log = logging.getLogger(__name__)

RESTART_REASON = "service restarted"
MAX_CACHED = 100_000
CAR_ROUTE_REFRESH_S = 5.0  # sim s between two routings of a car coming to its rider
CAR_ROUTE_MAX_POINTS = 200  # enough for the app's map; keeps each update small
K = TypeVar("K")
V = TypeVar("V")
# How a ride left open by a killed server is closed, by the state it was in: a ride not yet
# under way is cancelled; a rider already on the way was let out early (pulled over).
CLOSE_VIA: dict[TripState, tuple[TripState, ...]] = {
    S.REQUESTED: (S.CANCELLED,),
    S.ASSIGNED: (S.CANCELLED,),
    S.EN_ROUTE: (S.CANCELLED,),
    S.ARRIVED: (S.CANCELLED,),
    S.BOARDED: (S.CANCELLED,),
    # a rider on the way was not delivered: the ride was interrupted, not completed
    S.STARTED: (S.INTERRUPTED,),
    S.DRIVING: (S.INTERRUPTED,),
    S.PULLED_OVER: (S.COMPLETED,),
    S.ARRIVED_AT_DESTINATION: (S.COMPLETED,),
}


def close_via(state: TripState) -> tuple[TripState, ...]:
    """The closing path for a ride in `state`, checked against the trip life cycle."""
    path = CLOSE_VIA[state]
    current = state
    for nxt in path:
        if nxt not in ALLOWED[current]:  # pragma: no cover - pinned by a test
            raise ValueError(f"closing path {path} from {state} is not a legal life cycle")
        current = nxt
    return path


def tariff_pricer(tariff: Tariff) -> Pricer:
    """The store's pricer for this tariff: an ended ride's charge by `fleet.fares.charge`."""

    def price(events: Sequence[TripEvent]) -> Fare | None:
        charged = charge(tariff, events)
        if charged is None:
            return None
        return Fare(cents=charged.cents, currency=charged.currency, rule=charged.rule.value)

    return price


def recover_open_rides(
    store: Store, *, reason: str = RESTART_REASON, pricer: Pricer | None = None
) -> list[Ride]:
    """Close every ride a previous process left open, charged by `pricer` when given;
    returns the rides as they were.

    Each is closed at the time of its last recorded event with `reason`, so nothing is
    lost (the events already stored stay) and nothing is duplicated (it ends exactly once).
    """
    closed = []
    for ride in store.open_rides():
        # one transaction per ride: its missing first event and its closing land together
        with store.unit_of_work("closing a ride left open") as uow:
            if ride.last_seq < 0:
                # stored, but killed before its first event: log the request so the fold is legal
                uow.record(
                    events=[
                        TripEvent(ride.id, 0, ride.request.time, S.REQUESTED, None, "rider",
                                  {"rider": ride.request.rider_name,
                                   "rider_id": ride.request.rider_id})
                    ]
                )  # fmt: skip
                state = S.REQUESTED
            else:
                state = ride.state
            why = f"{reason}: the server stopped while the ride was {state.value}"
            uow.close_ride(
                ride.id, reason=why, time=ride.updated_at, via=close_via(state), pricer=pricer
            )
        closed.append(ride)
    return closed


class RateLimiter:
    """At most `limit` events per key within a sliding `window_s` (wall clock)."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str, now: float | None = None) -> float | None:
        """Count one event; None if allowed, else the seconds until the next is allowed."""
        now = time.monotonic() if now is None else now
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and now - hits[0] >= self.window_s:
                hits.popleft()
            if len(hits) >= self.limit:
                return max(self.window_s - (now - hits[0]), 0.0)
            hits.append(now)
            return None


class LiveWaiters:
    """Wakes every live stream when the simulation publishes an update.

    One wake-up per event loop per update, however many streams wait: each stream awaits
    the loop's current `asyncio.Event`, which an update sets and replaces. (Waking each
    stream from the ticking thread would cost a cross-thread call per stream per tick.)
    """

    def __init__(self) -> None:
        self._events: dict[asyncio.AbstractEventLoop, asyncio.Event] = {}
        self._pending: set[asyncio.AbstractEventLoop] = set()
        self._lock = threading.Lock()

    def on_update(self, _update: LiveUpdate) -> None:
        with self._lock:
            for loop in list(self._events):
                if loop.is_closed():
                    del self._events[loop]
                    self._pending.discard(loop)
                elif loop not in self._pending:
                    self._pending.add(loop)
                    loop.call_soon_threadsafe(self._fire, loop)

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            self._pending.discard(loop)
            event = self._events.get(loop)
            self._events[loop] = asyncio.Event()
        if event is not None:
            event.set()

    def next_update(self) -> asyncio.Event:
        """An event set at the next update (take it before reading, so none is missed)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            event = self._events.get(loop)
            if event is None:
                event = self._events[loop] = asyncio.Event()
            return event


# one put_events call: (its seq, simulated rides, trip events, vehicle events)
_EventBatch = tuple[int, list[RideRequest], list[TripEvent], list[VehicleEvent]]


class StoreWriter:
    """Group commit: one thread writes everything queued since its last commit together.

    Per-request transactions would cost one disk sync each, in series; under load many
    bookings and ticks share one commit instead. Callers that must not answer before their
    data is durable (a booking, a rider's action) wait for the commit that covers them.
    Events that fail to commit stay queued and are retried (the store skips replays).
    Vehicle events ride in the same batches, so they land in the same transaction as the
    trip events queued with them.
    """

    def __init__(
        self, store: Store, run_id: str, *, retry_s: float = 1.0, pricer: Pricer | None = None
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.pricer = pricer  # rides that end are charged in the transaction of their end
        self.retry_s = retry_s
        self._cond = threading.Condition()
        self._seq = 0  # items queued so far
        self._committed = 0  # every event item up to this seq is in the database
        self._rides: list[tuple[int, NewRide]] = []
        self._batches: list[_EventBatch] = []
        self._ride_results: dict[int, StoreError | None] = {}
        self._attempts = 0
        self._failed_upto = 0  # the latest failed attempt covered items up to this seq
        self._error: StoreError | None = None
        self._closing = False
        self.commits = 0
        self._thread = threading.Thread(target=self._run, name="robotaxi-writer", daemon=True)
        self._thread.start()

    def add_ride(self, ride: NewRide, timeout_s: float = 30.0) -> None:
        """Store an app ride (registered rider); returns once committed, else StoreError."""
        with self._cond:
            if self._closing:
                raise StoreError("the service is shutting down: no new rides")
            self._seq += 1
            seq = self._seq
            self._rides.append((seq, ride))
            self._cond.notify_all()
            if not self._cond.wait_for(lambda: seq in self._ride_results, timeout_s):
                raise StoreError(f"the database did not commit within {timeout_s:.0f} s")
            error = self._ride_results.pop(seq)
        if error is not None:
            raise error

    def put_events(
        self,
        rides: Sequence[RideRequest],
        events: Sequence[TripEvent],
        vehicle_events: Sequence[VehicleEvent] = (),
    ) -> None:
        """Queue simulated rides, trip events and vehicle events (in the order they
        happened); never waits."""
        with self._cond:
            self._seq += 1
            self._batches.append((self._seq, list(rides), list(events), list(vehicle_events)))
            self._cond.notify_all()

    def sync(self, timeout_s: float = 30.0) -> None:
        """Wait until everything queued before this call is committed; StoreError when the
        commit failed (it stays queued and is retried)."""
        with self._cond:
            target, attempts = self._seq, self._attempts

            def settled() -> bool:
                failed = self._attempts > attempts and self._failed_upto >= target
                return self._committed >= target or failed

            if not self._cond.wait_for(settled, timeout_s):
                raise StoreError(f"the database did not commit within {timeout_s:.0f} s")
            if self._committed < target:
                raise self._error or StoreError("the database write failed")

    def close(self, timeout_s: float = 30.0) -> None:
        """Commit what is queued (one last try) and stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout=timeout_s)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._rides or self._batches or self._closing)
                if self._closing and not (self._rides or self._batches):
                    return
                rides, self._rides = self._rides, []
                batches, self._batches = self._batches, []
                upto = self._seq
            ok = self._flush(rides, batches, upto)
            with self._cond:
                if not ok and self._closing:
                    return  # the last try failed: what is left is logged, not retried
            if not ok:
                time.sleep(self.retry_s)

    def _flush(
        self,
        rides: list[tuple[int, NewRide]],
        batches: list[_EventBatch],
        upto: int,
    ) -> bool:
        results: dict[int, StoreError | None] = {}
        if rides:
            try:
                self.store.record(rides=[r for _, r in rides], registered=True, run_id=self.run_id)
                self.commits += 1
                results = {seq: None for seq, _ in rides}
            except StoreError as exc:
                # the bookings are refused (their trips are never opened): nothing to retry
                results = {seq: exc for seq, _ in rides}
        error: StoreError | None = None
        if batches:
            sim_rides = [r for _, batch_rides, _, _ in batches for r in batch_rides]
            events = [e for _, _, batch_events, _ in batches for e in batch_events]
            vehicle_events = [e for _, _, _, batch_vehicle in batches for e in batch_vehicle]
            try:
                self.store.record(
                    rides=sim_rides,
                    events=events,
                    vehicle_events=vehicle_events,
                    run_id=self.run_id,
                    pricer=self.pricer,
                )
                self.commits += 1
            except StoreError as exc:
                log.error(
                    "writing %d trip and %d vehicle events failed (will retry): %s",
                    len(events),
                    len(vehicle_events),
                    exc,
                )
                error = exc
        with self._cond:
            self._ride_results.update(results)
            self._attempts += 1
            if error is None:
                self._committed = upto
                self._error = None
            else:
                self._batches[:0] = batches  # in front: the order of the log is kept
                self._failed_upto, self._error = upto, error
            self._cond.notify_all()
        return error is None


class BoundedCache(Generic[K, V]):
    """A dict shared by the request threads: one lock for every read and write, and at most
    `limit` entries (full: it starts afresh — entries are cheap to rebuild)."""

    def __init__(self, limit: int = MAX_CACHED) -> None:
        self.limit = limit
        self._items: dict[K, V] = {}
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            return self._items.get(key)

    def put(self, key: K, value: V) -> None:
        with self._lock:
            if len(self._items) >= self.limit and key not in self._items:
                self._items.clear()
            self._items[key] = value

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


@dataclass
class ServiceRuntime:
    settings: ServiceSettings
    store: Store
    live: LiveService
    run_id: str
    operator_token: str
    operator_token_generated: bool
    recovered: list[Ride]
    rate_limiter: RateLimiter
    signup_limiter: RateLimiter  # per client address
    find_car_limiter: RateLimiter  # honk-and-flash per rider and ride
    ticket_limiter: RateLimiter  # new support tickets per rider
    waiters: LiveWaiters
    writer: StoreWriter
    voice: GreetingVoice
    _booking_locks: dict[str, threading.Lock] = field(default_factory=dict)
    _locks_lock: threading.Lock = field(default_factory=threading.Lock)
    _map_json: bytes | None = None
    # vehicle id → (sim s, [[lat, lon], ...]) of its way to a pick-up, refreshed now and then
    _car_routes: dict[str, tuple[float, list[list[float]]]] = field(default_factory=dict)
    _map_gzip: bytes | None = None
    _unsubscribe: object = None
    # Riders and the request part of a ride never change once stored, so hot reads (status
    # polls, live streams) are answered from memory; token hashes key the rider cache.
    _riders: BoundedCache[str, Rider] = field(default_factory=BoundedCache)
    _rides: BoundedCache[str, Ride] = field(default_factory=BoundedCache)
    # each app rider's latest ride of this run (rides of earlier runs were closed at start)
    _latest_ride: BoundedCache[str, str] = field(default_factory=BoundedCache)
    # a ride's JSON body at one snapshot version, shared by its status reads and streams
    _bodies: BoundedCache[str, tuple[int, bytes, TripState]] = field(default_factory=BoundedCache)
    # lat/lon of every car at one snapshot version (one projection call per version; the
    # tuple is replaced whole, so a reader sees one version's or the next's)
    _positions: tuple[int, dict[str, tuple[float, float]]] = (-1, {})
    _curb_latlon: BoundedCache[tuple[float, float], tuple[float, float]] = field(
        default_factory=BoundedCache
    )
    # the geocoder of the live city's map, built once on first use (`gazetteer()`)
    _gazetteer: Gazetteer | None = None
    _gazetteer_lock: threading.Lock = field(default_factory=threading.Lock)
    # the live city's streets to walk along, built once on first use (`walking()`)
    _walking: WalkingGraph | None = None
    _place_names: BoundedCache[tuple[float, float], PlaceName] = field(default_factory=BoundedCache)

    @classmethod
    def open(cls, settings: ServiceSettings) -> ServiceRuntime:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        run_config = settings.run_config()
        store = Store.open(settings.resolved_database_url)
        try:
            pricer = tariff_pricer(settings.tariff)
            recovered = recover_open_rides(store, pricer=pricer)
            if recovered:
                log.info("closed %d rides left open by a previous server", len(recovered))
            config_json = json.loads(run_config.model_dump_json())
            config_json["service"] = {
                "speed": settings.speed,
                "riders_per_hour": settings.riders_per_hour,
                "autonomous": settings.autonomous,
                "autonomy_hearing": settings.autonomy_hearing,
                "autonomy_city_blocks": settings.autonomy_city_blocks,
                # the tariff rides were charged by in this run
                "tariff": dataclasses.asdict(settings.tariff),
                "fare_slow_factor": settings.fare_slow_factor,
            }
            run = store.start_run(config_json)
            writer = StoreWriter(store, run.id, pricer=pricer)

            def sink(
                rides: Sequence[RideRequest],
                events: Sequence[TripEvent],
                vehicle_events: Sequence[VehicleEvent],
            ) -> None:
                writer.put_events(rides, events, vehicle_events)
                if not settings.tick_in_background:
                    # stepped by the caller (tests): the store is current after each step
                    # a failure is logged by the writer, which keeps the events and retries
                    with contextlib.suppress(StoreError):
                        writer.sync()

            live = LiveService(
                run_config,
                settings.data_dir / "sumo",
                speed=settings.speed,
                riders_per_hour=settings.riders_per_hour,
                background_traffic=settings.background_traffic,
                sink=sink,
                ride_prefix=f"sim{run.id[:8]}",
                autonomous=settings.autonomous,
                hearing=settings.autonomy_hearing,
                city_blocks=settings.autonomy_city_blocks,
            )
            try:
                live.start()
            except BaseException:
                writer.close()
                raise
        except BaseException:
            store.close()
            raise
        if settings.operator_token is not None:
            token, generated = settings.operator_token.get_secret_value(), False
        else:
            token, generated = secrets.token_urlsafe(24), True
        runtime = cls(
            settings=settings,
            store=store,
            live=live,
            run_id=run.id,
            operator_token=token,
            operator_token_generated=generated,
            recovered=recovered,
            rate_limiter=RateLimiter(settings.rides_per_window, settings.rate_window_s),
            signup_limiter=RateLimiter(settings.signups_per_window, settings.rate_window_s),
            find_car_limiter=RateLimiter(settings.find_car_per_window, settings.rate_window_s),
            ticket_limiter=RateLimiter(settings.tickets_per_window, settings.rate_window_s),
            waiters=LiveWaiters(),
            writer=writer,
            voice=GreetingVoice(settings.espeak_ng or None, search=settings.espeak_ng is None),
        )
        runtime._unsubscribe = live.subscribe(runtime.waiters.on_update)
        # index the map's street names while the first riders sign in (≈2 s for all of SF)
        threading.Thread(target=runtime.gazetteer, name="robotaxi-places", daemon=True).start()
        if settings.tick_in_background:
            live.run_clock()
        return runtime

    def close(self) -> None:
        try:
            try:
                self.live.stop()
            finally:
                self.writer.close()
            self.store.end_run(self.run_id)
        finally:
            self.store.close()

    def booking_lock(self, rider_id: str) -> threading.Lock:
        """Serialises one rider's bookings (the one-active-ride check); riders never wait
        for each other."""
        with self._locks_lock:
            lock = self._booking_locks.get(rider_id)
            if lock is None:
                lock = self._booking_locks[rider_id] = threading.Lock()
            return lock

    def cached_rider(self, token: str) -> Rider | None:
        return self._riders.get(hash_token(token))

    def rider_for_token(self, token: str) -> Rider | None:
        """The rider of a bearer token (from memory when seen before), or None."""
        rider = self.cached_rider(token)
        if rider is None:
            rider = self.store.rider_by_token(token)
            if rider is not None:
                self.remember_rider(token, rider)
        return rider

    def remember_rider(self, token: str, rider: Rider) -> None:
        self._riders.put(hash_token(token), rider)

    def active_ride(self, rider_id: str) -> str | None:
        """The rider's ride of this run that has not ended, if any (answered from memory:
        rides of earlier runs were all closed when this one started)."""
        ride_id = self._latest_ride.get(rider_id)
        if ride_id is None:
            return None
        view = self.live.trip(ride_id)
        return ride_id if view is not None and not view.state.terminal else None

    def latest_ride(self, rider_id: str) -> Ride | None:
        """The rider's most recent ride (of this run from memory, else from the store)."""
        ride_id = self._latest_ride.get(rider_id)
        ride = None if ride_id is None else self.cached_ride(ride_id)
        if ride is None:
            latest = self.store.rides_of_rider(rider_id, limit=1)
            ride = latest[0] if latest else None
        return ride

    def booked(self, ride: Ride) -> None:
        """A ride was stored and its trip opened: it is now the rider's latest."""
        self.remember_ride(ride)
        if ride.rider_id is not None:
            self._latest_ride.put(ride.rider_id, ride.id)

    def cached_ride(self, ride_id: str) -> Ride | None:
        """A ride booked in this run, as stored at booking (its request never changes)."""
        return self._rides.get(ride_id)

    def remember_ride(self, ride: Ride) -> None:
        self._rides.put(ride.id, ride)

    def ride_body(self, ride_id: str, version: int) -> tuple[bytes, TripState] | None:
        """A ride's JSON body built at snapshot `version`, if it was (`views.live_ride_body`)."""
        cached = self._bodies.get(ride_id)
        if cached is None or cached[0] != version:
            return None
        return cached[1], cached[2]

    def keep_ride_body(self, ride_id: str, version: int, body: bytes, state: TripState) -> None:
        self._bodies.put(ride_id, (version, body, state))

    def is_operator(self, token: str) -> bool:
        return hmac.compare_digest(token.encode(), self.operator_token.encode())

    @staticmethod
    def new_ride_id() -> str:
        return f"ride-{uuid.uuid4().hex}"

    # --- geography: lat/lon only at the edge ---------------------------------------------

    def to_xy(self, lat: float, lon: float) -> tuple[float, float]:
        x, y = self.live.map.projection.lonlat_to_xy(np.array([lon]), np.array([lat]))
        return float(x[0]), float(y[0])

    def vehicle_latlon(self, snapshot: LiveSnapshot, vehicle_id: str) -> tuple[float, float] | None:
        """(lat, lon) of a car in `snapshot`; all cars are projected once per version."""
        version, positions = self._positions
        if version != snapshot.version:
            cars = list(snapshot.vehicles.values())
            coords = self.to_latlon(np.array([[v.x, v.y] for v in cars]).reshape(-1, 2))
            positions = {v.vehicle_id: (c[0], c[1]) for v, c in zip(cars, coords, strict=True)}
            self._positions = (snapshot.version, positions)
        return positions.get(vehicle_id)

    def curb_latlon(self, xy: tuple[float, float]) -> tuple[float, float]:
        """(lat, lon) of a curb spot (there are few: cached)."""
        found = self._curb_latlon.get(xy)
        if found is None:
            (lat, lon), *_ = self.to_latlon(np.array([xy]))
            found = (lat, lon)
            self._curb_latlon.put(xy, found)
        return found

    def car_route(self, vehicle_id: str, now_s: float) -> list[list[float]]:
        """[[lat, lon], ...] of a car's way to its target, routed at most every
        `CAR_ROUTE_REFRESH_S` of sim time (riders watching many cars must not route each
        tick under the simulation's lock)."""
        cached = self._car_routes.get(vehicle_id)
        if cached is not None and 0.0 <= now_s - cached[0] < CAR_ROUTE_REFRESH_S:
            return cached[1]
        xy = self.live.route_xy(vehicle_id)
        if len(xy) > CAR_ROUTE_MAX_POINTS:
            keep = np.unique(np.linspace(0, len(xy) - 1, CAR_ROUTE_MAX_POINTS).round())
            xy = xy[keep.astype(int)]
        route = self.to_latlon(xy) if len(xy) >= 2 else []
        self._car_routes[vehicle_id] = (now_s, route)
        return route

    def to_latlon(self, xy: np.ndarray) -> list[list[float]]:
        """N×2 metres → [[lat, lon], ...] rounded to ~1 cm."""
        pts = np.atleast_2d(np.asarray(xy, dtype=float))
        if pts.size == 0:
            return []
        lon, lat = self.live.map.projection.xy_to_lonlat(pts[:, 0], pts[:, 1])
        return [[round(float(a), 7), round(float(o), 7)] for a, o in zip(lat, lon, strict=True)]

    def inside(self, xy: tuple[float, float]) -> bool:
        mask = self.live.map.inside(
            np.array([xy[0]]), np.array([xy[1]]), max_walk_m=self.settings.max_walk_m
        )
        return bool(np.asarray(mask)[0])

    def area_text(self) -> str:
        bounds = json.loads(self.map_json())["bounds"]
        lat0, lat1, lon0, lon1 = bounds["south"], bounds["north"], bounds["west"], bounds["east"]
        return (
            f"within {self.settings.max_walk_m:.0f} m of a street of the {self.live.map.name} "
            f"city (lat {lat0:.4f} to {lat1:.4f}, lon {lon0:.4f} to {lon1:.4f})"
        )

    def gazetteer(self) -> Gazetteer:
        """The geocoder of the live city: its streets, intersections and places."""
        if self._gazetteer is None:
            with self._gazetteer_lock:
                if self._gazetteer is None:
                    self._gazetteer = Gazetteer.from_map(self.live.map)
        return self._gazetteer

    def gazetteer_ready(self) -> bool:
        """Whether the geocoder is built (its first build takes ≈2 s for all of SF)."""
        return self._gazetteer is not None

    def walking(self) -> WalkingGraph:
        """The live city's streets as a rider walks them (to a pick-up spot)."""
        if self._walking is None:
            with self._gazetteer_lock:
                if self._walking is None:
                    self._walking = WalkingGraph(self.live.map)
        return self._walking

    def place_name(self, xy: tuple[float, float]) -> PlaceName:
        """What a map point is called ("Valencia St & 16th St"); curb spots and ride ends
        repeat, so names are cached."""
        key = (round(xy[0], 1), round(xy[1], 1))
        found = self._place_names.get(key)
        if found is None:
            found = self.gazetteer().reverse(xy)
            self._place_names.put(key, found)
        return found

    def place_label(self, xy: tuple[float, float]) -> str | None:
        return self.place_name(xy).label

    def map_json_gzip(self) -> bytes:
        """`map_json()` gzip-compressed, built once."""
        if self._map_gzip is None:
            self._map_gzip = gzip.compress(self.map_json(), compresslevel=6)
        return self._map_gzip

    def map_json(self) -> bytes:
        """The road network as lat/lon polylines (one per drivable edge), built once."""
        if self._map_json is None:
            road_map = self.live.map
            roads = []
            for edge in road_map.drivable_edges:
                lane = road_map.curb_lane(edge.edge_id)
                roads.append(
                    {"id": edge.edge_id, "name": edge.name, "line": self.to_latlon(lane.centerline)}
                )
            xmin, ymin, xmax, ymax = road_map.bounds
            # the map frame is not aligned with meridians: take the extremes of every point
            corners = self.to_latlon(
                np.array([[xmin, ymin], [xmin, ymax], [xmax, ymin], [xmax, ymax]])
            )
            points = np.array(corners + [p for road in roads for p in road["line"]])
            body = {
                "city": road_map.name,
                "bounds": {
                    "south": float(points[:, 0].min()),
                    "west": float(points[:, 1].min()),
                    "north": float(points[:, 0].max()),
                    "east": float(points[:, 1].max()),
                },
                "roads": roads,
            }
            self._map_json = json.dumps(body, separators=(",", ":")).encode()
        return self._map_json
