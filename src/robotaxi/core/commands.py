"""Typed commands from the fleet to the world (DESIGN.md, "One tick": `world.apply`).

Each command is a frozen dataclass naming one vehicle; `VehicleCommand` is their union, so
a world dispatches on the type (`match`) and a misspelt kind cannot exist.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class PullOverReason(enum.StrEnum):
    """Why a car is asked to stop at the kerb just ahead."""

    EMERGENCY = "emergency"  # an ambulance comes (CVC 21806): wait, then resume
    RIDER = "rider"  # the rider asked to get out here: the trip ends at this kerb


@dataclass(frozen=True, slots=True)
class DriveTo:
    """End any stop, drive to the kerb of `edge` at `pos` (m along the lane) on lane
    `lane_index`, and park there off the lane until the next command."""

    vehicle_id: str
    edge: str
    pos: float
    lane_index: int


@dataclass(frozen=True, slots=True)
class PullOver:
    """Stop at the kerb just ahead, off the lane, and wait."""

    vehicle_id: str
    reason: PullOverReason = PullOverReason.EMERGENCY


@dataclass(frozen=True, slots=True)
class Resume:
    """End the current stop and merge back into traffic."""

    vehicle_id: str


# --- a car our autonomy stack drives (an "ego"): the world follows our vehicle model ---


@dataclass(frozen=True, slots=True)
class MoveEgo:
    """Put the ego where our vehicle model says it is: `x`, `y` of its front bumper centre
    (m, as SUMO places vehicles), `heading` (rad), `speed` (m/s, so followers react), on
    `lane_id` when known."""

    vehicle_id: str
    x: float
    y: float
    heading: float
    speed: float
    lane_id: str = ""


@dataclass(frozen=True, slots=True)
class ParkEgo:
    """Take the (standing) ego off its lane, at the kerb where it stands, so that traffic
    and ambulances pass; fails inside a junction."""

    vehicle_id: str


@dataclass(frozen=True, slots=True)
class UnparkEgo:
    """Put the parked ego back on its lane (the next `MoveEgo` places it)."""

    vehicle_id: str


@dataclass(frozen=True, slots=True)
class TakeOver:
    """From now on our stack drives this robotaxi: the world only follows `MoveEgo`."""

    vehicle_id: str


@dataclass(frozen=True, slots=True)
class HandBack:
    """The world drives this robotaxi again (e.g. a leg our lane router has no route for)."""

    vehicle_id: str


@dataclass(frozen=True, slots=True)
class AvoidStreet:
    """Keep the current target but take a way there that does not use `edge` (a street a
    remote-assistance operator said is blocked). The world refuses, with the reason, when
    every way to the target crosses `edge` or the car stands on it; the car keeps its route
    then."""

    vehicle_id: str
    edge: str


@dataclass(frozen=True, slots=True)
class PassOpposite:
    """Leave (from a remote-assistance operator) to pass the blocker on `edge` through the
    lane of the other direction, across a solid centre line, once the car itself finds that
    lane clear; good for one pass on that street. The car refuses, with the reason, when it
    cannot use it: no lane for the other direction there, not on its way, or a car our own
    stack does not drive (SUMO's cars take no such leave)."""

    vehicle_id: str
    edge: str


@dataclass(frozen=True, slots=True)
class LaneClosed:
    """(From a remote-assistance operator) the lane the car is in on `edge` is closed ahead
    (works, a blocker): move to another lane of `edge` in its direction of travel that leads
    on along its way, and keep off the closed one to the end of `edge`; the car still waits
    for a safe gap there. The car refuses, with the reason, when it cannot: `edge` has one
    lane its way, no other lane of it leads on along its route, or it is no longer on `edge`
    (or inside a junction)."""

    vehicle_id: str
    edge: str


# what a world says to `PassOpposite` for a car it drives itself
NO_LEAVE_FOR_WORLD_CARS = (
    "this car follows the fleet's routing only and takes no leave to cross the centre line "
    "(answer another way or pull over)"
)


EgoCommand = MoveEgo | ParkEgo | UnparkEgo | TakeOver | HandBack
VehicleCommand = DriveTo | PullOver | Resume | AvoidStreet | PassOpposite | LaneClosed | EgoCommand


@dataclass(frozen=True, slots=True)
class CommandFailure:
    """A command the world could not carry out, and why (the fleet retries)."""

    command: VehicleCommand
    reason: str
