"""What one running service holds: settings, the store, the live city, limits and live waiters.

`ServiceRuntime.open(settings)` opens the store, closes rides a previous process left open
(with a recorded reason), starts the live simulation with the store as its event sink and,
unless told otherwise, its clock thread. `close()` undoes it all.
"""

from __future__ import annotations

import asyncio
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

import numpy as np

from robotaxi.core import RideRequest, TripEvent, TripState
from robotaxi.fleet.trips import ALLOWED
from robotaxi.service.settings import ServiceSettings
from robotaxi.sim.live import LiveService, LiveUpdate
from robotaxi.store.records import Ride, Rider
from robotaxi.store.store import Store
from robotaxi.store.tokens import hash_token

S = TripState
log = logging.getLogger(__name__)

RESTART_REASON = "service restarted"
MAX_CACHED = 100_000
# How a ride left open by a killed server is closed, by the state it was in: a ride not yet
# under way is cancelled; a rider already on the way was let out early (pulled over).
CLOSE_VIA: dict[TripState, tuple[TripState, ...]] = {
    S.REQUESTED: (S.CANCELLED,),
    S.ASSIGNED: (S.CANCELLED,),
    S.EN_ROUTE: (S.CANCELLED,),
    S.ARRIVED: (S.CANCELLED,),
    S.BOARDED: (S.CANCELLED,),
    S.STARTED: (S.DRIVING, S.PULLED_OVER, S.COMPLETED),
    S.DRIVING: (S.PULLED_OVER, S.COMPLETED),
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


def recover_open_rides(store: Store, *, reason: str = RESTART_REASON) -> list[Ride]:
    """Close every ride a previous process left open; returns the rides as they were.

    Each is closed at the time of its last recorded event with `reason`, so nothing is
    lost (the events already stored stay) and nothing is duplicated (it ends exactly once).
    """
    closed = []
    for ride in store.open_rides():
        if ride.last_seq < 0:
            # stored, but killed before its first event: log the request so the fold is legal
            store.record(
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
        store.close_ride(ride.id, reason=why, time=ride.updated_at, via=close_via(state))
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
    """Wakes asyncio tasks (live streams) when the simulation publishes an update."""

    def __init__(self) -> None:
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._lock = threading.Lock()

    def on_update(self, _update: LiveUpdate) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for loop, event in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)

    def add(self, event: asyncio.Event) -> None:
        with self._lock:
            self._waiters.add((asyncio.get_running_loop(), event))

    def remove(self, event: asyncio.Event) -> None:
        with self._lock:
            self._waiters = {w for w in self._waiters if w[1] is not event}


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
    waiters: LiveWaiters
    _booking_locks: dict[str, threading.Lock] = field(default_factory=dict)
    _locks_lock: threading.Lock = field(default_factory=threading.Lock)
    _map_json: bytes | None = None
    _unsubscribe: object = None
    # Riders and the request part of a ride never change once stored, so hot reads (status
    # polls, live streams) are answered from memory; token hashes key the rider cache.
    _riders: dict[str, Rider] = field(default_factory=dict)
    _rides: dict[str, Ride] = field(default_factory=dict)

    @classmethod
    def open(cls, settings: ServiceSettings) -> ServiceRuntime:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        run_config = settings.run_config()
        store = Store.open(settings.resolved_database_url)
        try:
            recovered = recover_open_rides(store)
            if recovered:
                log.info("closed %d rides left open by a previous server", len(recovered))
            config_json = json.loads(run_config.model_dump_json())
            config_json["service"] = {
                "speed": settings.speed,
                "riders_per_hour": settings.riders_per_hour,
            }
            run = store.start_run(config_json)

            def sink(rides: Sequence[RideRequest], events: Sequence[TripEvent]) -> None:
                store.record(rides=rides, events=events, registered=False, run_id=run.id)

            live = LiveService(
                run_config,
                settings.data_dir / "sumo",
                speed=settings.speed,
                riders_per_hour=settings.riders_per_hour,
                background_traffic=settings.background_traffic,
                sink=sink,
                ride_prefix=f"sim{run.id[:8]}",
            )
            live.start()
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
            waiters=LiveWaiters(),
        )
        runtime._unsubscribe = live.subscribe(runtime.waiters.on_update)
        if settings.tick_in_background:
            live.run_clock()
        return runtime

    def close(self) -> None:
        try:
            self.live.stop()
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
        if len(self._riders) >= MAX_CACHED:
            self._riders.clear()
        self._riders[hash_token(token)] = rider

    def cached_ride(self, ride_id: str) -> Ride | None:
        """A ride booked in this run, as stored at booking (its request never changes)."""
        return self._rides.get(ride_id)

    def remember_ride(self, ride: Ride) -> None:
        if len(self._rides) >= MAX_CACHED:
            self._rides.clear()
        self._rides[ride.id] = ride

    def is_operator(self, token: str) -> bool:
        return hmac.compare_digest(token.encode(), self.operator_token.encode())

    @staticmethod
    def new_ride_id() -> str:
        return f"ride-{uuid.uuid4().hex}"

    # --- geography: lat/lon only at the edge ---------------------------------------------

    def to_xy(self, lat: float, lon: float) -> tuple[float, float]:
        x, y = self.live.map.projection.lonlat_to_xy(np.array([lon]), np.array([lat]))
        return float(x[0]), float(y[0])

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
