"""The frozen values the live service hands out (snapshot, trip and car views, updates, quotes,
pacing) and its error."""

from __future__ import annotations

from dataclasses import dataclass, field

from robotaxi.core import RobotaxiError, TripEvent, TripState
from robotaxi.fleet.manager import AVAILABLE, CurbStage, VehicleStatus
from robotaxi.sim.autonomous import AutonomyView

S = TripState


class LiveServiceError(RobotaxiError):
    """The live simulation is not running, or has ended its service window."""


@dataclass(frozen=True, slots=True)
class LiveUpdate:
    """What one tick or one rider action changed: sent to subscribers."""

    time_s: float
    events: tuple[TripEvent, ...]
    version: int


@dataclass(frozen=True, slots=True)
class VehicleView:
    """One robotaxi at one instant (m, rad, m/s; map frame)."""

    vehicle_id: str
    status: str
    x: float
    y: float
    heading: float
    speed: float
    stopped: bool
    trip_id: str | None
    next_trip_id: str | None
    stage: CurbStage
    yielding_for: str | None  # the emergency vehicle it is pulled over for

    @property
    def available(self) -> bool:
        return (
            VehicleStatus(self.status) in AVAILABLE
            and self.trip_id is None
            and self.next_trip_id is None
            and self.yielding_for is None
        )


@dataclass(frozen=True, slots=True)
class TripView:
    """One trip as the rider app and the in-car screen show it (m, s since the sim start)."""

    trip_id: str
    rider_id: str
    rider_name: str
    controlled: bool
    state: TripState
    vehicle_id: str | None
    requested_s: float
    pickup_curb_xy: tuple[float, float]
    dropoff_curb_xy: tuple[float, float]
    pickup_walk_m: float
    dropoff_walk_m: float
    on_board: bool
    buckled: bool
    unlocked: bool  # the rider unlocked the doors at the pick-up (from the app)
    signalled_s: float | None  # when the car last honked and flashed for its rider
    eta_s: float | None  # to the pick-up before arrival, to the drop-off while driving
    greeting: str | None
    vehicle_xy: tuple[float, float] | None
    yielding_for: str | None
    events: tuple[TripEvent, ...]
    assisted: bool = False  # the car asked remote assistance about the way ahead (open)

    @property
    def start_blocked_reason(self) -> str | None:
        """Why Start ride is refused now, or None when it is allowed."""
        if self.state != S.BOARDED:
            if self.state in (S.REQUESTED, S.ASSIGNED, S.EN_ROUTE):
                return "the car has not arrived yet"
            if self.state == S.ARRIVED:
                return "get in the car first" if self.unlocked else "unlock the car first"
            return f"the ride is {self.state.value}"
        if not self.buckled:
            return "fasten your seat belt first"
        return None


@dataclass(frozen=True, slots=True)
class Quote:
    """A price-free quote: how soon a car can be there and how long the ride takes."""

    pickup_eta_s: float | None  # None when no car is free now
    vehicle_id: str | None
    free_cars: int
    trip_s: float
    trip_m: float
    pickup_curb_xy: tuple[float, float]
    dropoff_curb_xy: tuple[float, float]
    pickup_walk_m: float
    dropoff_walk_m: float
    same_curb: bool


# below this share of its speed the live clock is "falling behind" (timing noise of a busy
# machine stays above it; a clock that cannot keep up at all falls well below)
KEEP_UP_SHARE = 0.8


@dataclass(frozen=True, slots=True)
class Pacing:
    """How the clock keeps up: target speed and what was achieved over the last seconds."""

    sim_time_s: float
    speed: float
    real_time_factor: float | None  # sim seconds per wall second, None before enough ticks
    behind_s: float  # wall seconds the clock fell behind its schedule, summed since start
    running: bool
    ended: bool

    @property
    def keeping_up(self) -> bool:
        """Whether the clock achieves at least `KEEP_UP_SHARE` of its speed (over the last
        seconds); a live city that cannot keep up says so to riders, cars and operators."""
        rtf = self.real_time_factor
        return not self.running or self.ended or rtf is None or rtf >= KEEP_UP_SHARE * self.speed

    @property
    def falling_behind_note(self) -> str | None:
        """For operators and the log: what is wrong and what to do, or None."""
        if self.keeping_up or self.real_time_factor is None:
            return None
        return (
            f"the simulation runs at {self.real_time_factor:g}x real time instead of "
            f"{self.speed:g}x: the machine is too busy; restart with a lower --speed or "
            "a smaller fleet"
        )


@dataclass(frozen=True, slots=True)
class LiveSnapshot:
    """The city at one instant, published after every tick and rider action.

    Readers (status polls, live streams) take the current snapshot without any lock: it is
    never changed once published, so everything in it belongs to the same instant.
    """

    version: int
    time_s: float
    vehicles: dict[str, VehicleView]
    # the open trips, and those ended within the last `ENDED_KEEP_S` (older ones: the store)
    trips: dict[str, TripView]
    # cars driven by the autonomy stack: what each one's stack sees and does (empty if none)
    autonomy: dict[str, AutonomyView] = field(default_factory=dict)

    def open_trips(self) -> list[TripView]:
        return [t for t in self.trips.values() if not t.state.terminal]


EMPTY_SNAPSHOT = LiveSnapshot(version=0, time_s=0.0, vehicles={}, trips={})

__all__ = [
    "EMPTY_SNAPSHOT",
    "LiveServiceError",
    "LiveSnapshot",
    "LiveUpdate",
    "Pacing",
    "Quote",
    "TripView",
    "VehicleView",
]
