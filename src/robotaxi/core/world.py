"""The `World` protocol: what the runner needs of a simulated city (DESIGN.md, "One tick").

`world.SumoWorld` runs the city in Eclipse SUMO; `world.FakeWorld` moves cars along the
routing graph at edge speeds (no lanes, no signals) so that the fleet, the runner and the
service can be tested in milliseconds. The runner (`sim`) talks to either only through this
protocol and the frozen types of `core`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from robotaxi.core.commands import CommandFailure, VehicleCommand
from robotaxi.core.time import TimePoint
from robotaxi.core.types import AgentState, WorldSnapshot


@dataclass
class EmergencyRecord:
    """One ambulance run and its ordinary-car twin on the same route: when each entered and
    left the network (None until it happened), and their travel times (s)."""

    vehicle_id: str
    probe_id: str
    route_m: float
    depart_at: TimePoint | None = None
    arrive_at: TimePoint | None = None
    probe_depart_at: TimePoint | None = None
    probe_arrive_at: TimePoint | None = None

    @property
    def travel_s(self) -> float | None:
        if self.depart_at is None or self.arrive_at is None:
            return None
        return self.arrive_at - self.depart_at

    @property
    def probe_travel_s(self) -> float | None:
        if self.probe_depart_at is None or self.probe_arrive_at is None:
            return None
        return self.probe_arrive_at - self.probe_depart_at


@dataclass
class WorldStats:
    """Running counts a world keeps for the run's report."""

    teleports: int = 0
    robotaxi_teleports: int = 0  # of `teleports`, those of our own cars (must stay 0)
    # why SUMO teleported cars (its statistics at the end: jam, yield, wrong_lane)
    teleports_by_cause: dict[str, int] = field(default_factory=dict)
    # where each robotaxi teleport began: (time s, car, the street it stood on)
    robotaxi_teleport_places: list[tuple[float, str, str]] = field(default_factory=list)
    stuck_reroutes: int = 0  # robotaxis held in a queue that looked for another way
    # robotaxis still held two checks before SUMO would teleport them: their leg ended short
    held_short: int = 0
    # robotaxis held as long on a connector too short to park on that took another way out
    turned_elsewhere: int = 0
    departed: int = 0  # vehicles that entered the network (ours, background, ambulances)
    background_vehicles: int = 0  # background vehicles planned for the run (route files)
    cleared_for_ev: int = 0
    preemptions: int = 0  # signals turned green for an ambulance's approach
    command_failures: int = 0
    failures: list[str] = field(default_factory=list)


class World(Protocol):
    """A simulated city the runner steps, reads once per tick and commands."""

    stats: WorldStats

    @property
    def emergency(self) -> Mapping[str, EmergencyRecord]:
        """Every ambulance run of the world, by the ambulance's id."""
        ...

    @property
    def time(self) -> TimePoint:
        """The simulation time after the last `step`."""
        ...

    def start(self) -> None: ...

    def close(self) -> None:
        """Release the simulation; safe to call twice."""
        ...

    def step(self) -> None:
        """Advance by one step of the world's configured length."""
        ...

    def snapshot(self) -> WorldSnapshot:
        """Ground truth of the robotaxis and active emergency vehicles, read once per tick."""
        ...

    def apply(self, commands: Iterable[VehicleCommand]) -> list[CommandFailure]:
        """Carry out commands at this tick; returns those that failed (the fleet retries)."""
        ...

    def add_robotaxi(self, vehicle_id: str, curb_index: int) -> None:
        """Put a robotaxi in the world, parked at a curb spot (off the lane)."""
        ...

    def vehicle_count(self) -> int:
        """Every vehicle in the world now: robotaxis, background traffic, ambulances."""
        ...

    def edge_travel_times(self, edges: Sequence[str]) -> dict[str, float]:
        """The current travel-time estimate per edge (s), for routing and ETAs."""
        ...

    def vehicles_near(self, vehicle_id: str, radius_m: float) -> tuple[AgentState, ...]:
        """Road users within `radius_m` (m) of a vehicle now, nearest first: what a screen
        shows around a car SUMO drives. Raises `WorldError` if the vehicle is not there."""
        ...
