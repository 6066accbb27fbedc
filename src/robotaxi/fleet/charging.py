"""Where and when the robotaxis charge: depots with first-come-first-served charger queues,
the car's charging curve, the charging policy, and `FleetCharging`, the one object the
fleet manager drives each tick (batteries, queues, sessions and the records the energy
KPIs read).

Charging curve (a 2019 Jaguar I-PACE on a DC fast charger): the car takes at most
`vehicle_max_kw` (100 kW), so a 150 kW charger gives it 100 kW; Jaguar quotes 0–80 % in
about 40 minutes on a 100 kW charger, and the curve gives 40.7 (67.8 kWh at 100 kW).
Above `taper_start_soc` (80 %) the power falls linearly to `taper_end_kw` (15 kW) at a
full battery (80–90 % takes 6.6 min, 90–100 % 16 min): a line through the shape of
published charge curves, which fall well below half power in the last fifth, chosen so
that a charge over any span of time has a closed form (`ChargingCurve.charge_kwh` is
exact whatever the tick length).

Policy (`ChargingPolicy`): an idle car goes to charge when it falls below
`charge_below_soc`, or when it could no longer take even a short ride and still reach a
depot with its reserve; in low-demand hours it also goes below `opportunistic_below_soc`,
but only to a depot with a charger free for it (an optional charge never queues). It
charges to `target_soc`, or to `low_demand_target_soc` in low-demand hours. It heads to
the nearest depot by the distance function it is given, or to one with a free charger at
most `max_detour_m` farther away.
"""

from __future__ import annotations

import enum
import itertools
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robotaxi.config.charging import DepotConfig, EnergyConfig, depots_for_map
from robotaxi.core import RobotaxiError
from robotaxi.core.types import FloatArray, IntArray
from robotaxi.fleet.demand import DemandModel
from robotaxi.fleet.energy import (
    BoolArray,
    ConsumptionModel,
    Draw,
    EmptyBattery,
    FleetBatteries,
    can_accept,
    can_accept_pairs,
    initial_soc_kwh,
)
from robotaxi.fleet.energy_kpis import energy_kpis
from robotaxi.map import RoadMap

# (N×2 points, M×2 points) → N×M distances (m)
DistanceFn = Callable[[FloatArray, FloatArray], FloatArray]

SHORTEST_USEFUL_RIDE_M = 2000.0  # a car that cannot take a ride this long goes to charge
DEFAULT_CIRCUITY = 1.4  # road km per straight-line km: US city networks average ~1.2–1.3


class ChargingError(RobotaxiError):
    """The charging bookkeeping was asked something impossible (a car charged twice, a car
    arriving at a depot it was not sent to)."""


def crow_fly_distance(circuity: float = DEFAULT_CIRCUITY) -> DistanceFn:
    """A distance function: straight-line metres × `circuity`. Road distance in US cities
    averages 1.2–1.3× the straight line (Giacomin & Levinson, 2015); 1.4 leaves a margin
    for one-way streets. A road-network distance can be passed instead."""
    return CrowFlyDistance(circuity)


@dataclass(frozen=True, slots=True)
class CrowFlyDistance:
    """`crow_fly_distance`'s function: callable as a `DistanceFn`, and it can bound the
    distance from anywhere in a box to the nearest of some points (`farthest_nearest_m`)."""

    circuity: float

    def __call__(self, a: FloatArray, b: FloatArray) -> FloatArray:
        a2, b2 = np.atleast_2d(a), np.atleast_2d(b)
        d: FloatArray = np.hypot(a2[:, None, 0] - b2[None, :, 0], a2[:, None, 1] - b2[None, :, 1])
        return d * self.circuity

    def farthest_nearest_m(
        self, lo: tuple[float, float], hi: tuple[float, float], b: FloatArray
    ) -> float:
        """An upper bound (m) on the distance from any point of the box `lo`–`hi` (x, y) to
        the nearest of the M×2 points `b`, at least what this function gives for any such
        point: each point's distance is at most the farthest corner's, and a hair of slack
        covers rounding."""
        farthest = min(
            math.hypot(max(abs(lo[0] - x), abs(hi[0] - x)), max(abs(lo[1] - y), abs(hi[1] - y)))
            for x, y in np.atleast_2d(b).tolist()
        )
        return farthest * self.circuity * (1.0 + 1e-9) + 1e-6


# --- depots and queues ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Depot:
    """A charging depot in the map frame (m): `chargers` DC fast chargers of `charger_kw`."""

    depot_id: str
    x: float
    y: float
    chargers: int
    charger_kw: float

    @property
    def xy(self) -> tuple[float, float]:
        return (self.x, self.y)


def depots_from_config(configs: Sequence[DepotConfig], xy: FloatArray) -> tuple[Depot, ...]:
    """Depots from their configs and N×2 map-frame positions (`config.charging.depots_for_map`)."""
    return tuple(
        Depot(c.name, float(p[0]), float(p[1]), c.chargers, c.charger_kw)
        for c, p in zip(configs, np.atleast_2d(xy), strict=True)
    )


class ChargerQueue:
    """One depot's chargers and the line in front of them: first come, first served.

    A car that arrives takes a free charger, or waits behind the cars that arrived before
    it (cars arriving in the same tick in the order `arrive` is called)."""

    def __init__(self, depot: Depot) -> None:
        self.depot = depot
        self.plugged: dict[str, float] = {}  # vehicle → when it took its charger (s)
        self.waiting: deque[tuple[str, float]] = deque()  # (vehicle, arrived at s)

    @property
    def free(self) -> int:
        return self.depot.chargers - len(self.plugged)

    def __contains__(self, vehicle_id: object) -> bool:
        return vehicle_id in self.plugged or any(v == vehicle_id for v, _ in self.waiting)

    def arrive(self, vehicle_id: str, now_s: float) -> list[str]:
        """A car joins the line; returns the cars that took a charger now (it, if one was
        free and nobody was waiting)."""
        if vehicle_id in self:
            raise ChargingError(f"{vehicle_id} is already at depot {self.depot.depot_id}")
        self.waiting.append((vehicle_id, now_s))
        return self._fill(now_s)

    def leave(self, vehicle_id: str, now_s: float) -> list[str]:
        """A car unplugs or gives up its place; returns the cars that took a charger now."""
        if vehicle_id in self.plugged:
            del self.plugged[vehicle_id]
        else:
            kept = [(v, t) for v, t in self.waiting if v != vehicle_id]
            if len(kept) == len(self.waiting):
                raise ChargingError(f"{vehicle_id} is not at depot {self.depot.depot_id}")
            self.waiting = deque(kept)
        return self._fill(now_s)

    def _fill(self, now_s: float) -> list[str]:
        started = []
        while self.waiting and self.free > 0:
            vehicle_id, _ = self.waiting.popleft()
            self.plugged[vehicle_id] = now_s
            started.append(vehicle_id)
        return started


# --- the charging curve -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChargingCurve:
    """Power into the battery (kW) as a function of its charge: min(charger, car), the car's
    limit flat at `vehicle_max_kw` up to `taper_start_soc`, then falling linearly to
    `taper_end_kw` at `capacity_kwh`."""

    capacity_kwh: float = 84.7
    vehicle_max_kw: float = 100.0
    taper_start_soc: float = 0.8
    taper_end_kw: float = 15.0

    @property
    def _taper_start_kwh(self) -> float:
        return self.taper_start_soc * self.capacity_kwh

    @property
    def _slope(self) -> float:
        """d(car's power limit)/d(charge) above the taper start, kW per kWh (≤ 0)."""
        return (self.taper_end_kw - self.vehicle_max_kw) / (
            self.capacity_kwh - self._taper_start_kwh
        )

    def _car_limit_kw(self, soc_kwh: float) -> float:
        over = max(soc_kwh - self._taper_start_kwh, 0.0)
        return self.vehicle_max_kw + self._slope * over

    def _knee_kwh(self, charger_kw: float) -> float:
        """Below this charge the power is flat; above it, it follows the car's taper."""
        if charger_kw >= self.vehicle_max_kw:
            return self._taper_start_kwh
        if charger_kw <= self.taper_end_kw or self._slope == 0:
            return self.capacity_kwh
        return self._taper_start_kwh + (charger_kw - self.vehicle_max_kw) / self._slope

    def power_kw(self, soc_kwh: float, charger_kw: float) -> float:
        """Power into the battery at `soc_kwh` on a charger of `charger_kw` (0 when full)."""
        if soc_kwh >= self.capacity_kwh:
            return 0.0
        return min(charger_kw, self._car_limit_kw(soc_kwh))

    def charge_kwh(
        self, soc_kwh: float, duration_s: float, charger_kw: float, target_kwh: float
    ) -> float:
        """The charge (kWh) after `duration_s` on the charger from `soc_kwh`, stopping at
        `target_kwh` (and the capacity). Exact: charging for a + b seconds equals charging
        for a, then for b."""
        target = min(target_kwh, self.capacity_kwh)
        if soc_kwh >= target or duration_s <= 0 or charger_kw <= 0:
            return soc_kwh
        hours = duration_s / 3600.0
        knee = self._knee_kwh(charger_kw)
        energy = soc_kwh
        if energy < knee:
            flat_kw = min(charger_kw, self.vehicle_max_kw)
            end = min(knee, target)
            flat_h = (end - energy) / flat_kw
            if hours <= flat_h:
                return energy + flat_kw * hours
            hours -= flat_h
            energy = end
            if energy >= target:
                return target
        # on the taper dP/dt = slope × P, so P(t) = P0 × exp(slope × t)
        slope = self._slope
        power = self._car_limit_kw(energy) * math.exp(slope * hours)
        after = self._taper_start_kwh + (power - self.vehicle_max_kw) / slope
        return min(after, target)

    def duration_s(self, soc_kwh: float, target_kwh: float, charger_kw: float) -> float:
        """Seconds on a `charger_kw` charger from `soc_kwh` to `target_kwh` (0 if there)."""
        target = min(target_kwh, self.capacity_kwh)
        if soc_kwh >= target:
            return 0.0
        if charger_kw <= 0:
            return math.inf
        knee = self._knee_kwh(charger_kw)
        hours = 0.0
        energy = soc_kwh
        if energy < knee:
            end = min(knee, target)
            hours += (end - energy) / min(charger_kw, self.vehicle_max_kw)
            energy = end
        if energy < target:
            hours += math.log(self._car_limit_kw(target) / self._car_limit_kw(energy)) / self._slope
        return hours * 3600.0

    @classmethod
    def from_config(cls, config: EnergyConfig) -> ChargingCurve:
        c = config.charging
        return cls(config.battery_usable_kwh, c.vehicle_max_kw, c.taper_start_soc, c.taper_end_kw)


# --- the policy -------------------------------------------------------------------------


class ChargeReason(enum.StrEnum):
    LOW = "low"  # below the threshold, or too low for a short ride: must charge
    OPPORTUNISTIC = "opportunistic"  # a low-demand hour, and a charger is free


def low_demand_hours_from_profile(hourly_requests: Sequence[float], share: float) -> frozenset[int]:
    """Clock hours whose expected requests are at most `share` of the busiest hour's, from
    a 24-value profile (e.g. the demand model's expected pick-ups summed per hour)."""
    rates = np.asarray(hourly_requests, dtype=float)
    if rates.shape != (24,):
        raise ChargingError(f"an hourly demand profile has 24 values, got {rates.shape}")
    peak = float(rates.max())
    if peak <= 0:
        return frozenset(range(24))
    return frozenset(int(h) for h in np.flatnonzero(rates <= share * peak))


@dataclass(frozen=True)
class ChargingPolicy:
    """When an idle car should go to charge, to which depot, and up to what charge."""

    capacity_kwh: float = 84.7
    charge_below_soc: float = 0.25
    opportunistic_below_soc: float = 0.6
    target_soc: float = 0.8
    low_demand_target_soc: float = 0.9
    low_demand_hours: frozenset[int] = frozenset({1, 2, 3, 4, 5, 6})
    max_detour_m: float = 2000.0
    reserve_kwh: float = 8.5
    model: ConsumptionModel = field(default_factory=ConsumptionModel)
    shortest_ride_m: float = SHORTEST_USEFUL_RIDE_M

    @classmethod
    def from_config(
        cls, config: EnergyConfig, hourly_requests: Sequence[float] | None = None
    ) -> ChargingPolicy:
        """With `hourly_requests` (24 values), low-demand hours come from the demand
        profile (`low_demand_share`); without, from `low_demand_hours`."""
        c = config.charging
        hours = (
            low_demand_hours_from_profile(hourly_requests, c.low_demand_share)
            if hourly_requests is not None
            else frozenset(c.low_demand_hours)
        )
        return cls(
            capacity_kwh=config.battery_usable_kwh,
            charge_below_soc=c.charge_below_soc,
            opportunistic_below_soc=c.opportunistic_below_soc,
            target_soc=c.target_soc,
            low_demand_target_soc=c.low_demand_target_soc,
            low_demand_hours=hours,
            max_detour_m=c.max_detour_m,
            reserve_kwh=config.reserve_kwh,
            model=ConsumptionModel.from_config(config),
        )

    def is_low_demand(self, clock_hour: float) -> bool:
        return int(clock_hour % 24) in self.low_demand_hours

    def reason_to_charge(
        self, soc_kwh: float, clock_hour: float, to_depot_m: float
    ) -> ChargeReason | None:
        """Why an idle car at `soc_kwh`, `to_depot_m` from its nearest depot, should go to
        charge at `clock_hour` (0–24), or None if it should stay in service."""
        return self.reasons_to_charge(np.array([soc_kwh]), clock_hour, np.array([to_depot_m]))[0]

    def reasons_to_charge(
        self, soc_kwh: FloatArray, clock_hour: float, to_depot_m: FloatArray
    ) -> list[ChargeReason | None]:
        """`reason_to_charge` for many cars at once (a fleet's idle cars every tick). Low:
        under the threshold, or unable to take the shortest ride and still reach a depot
        with the reserve; opportunistic: in a low-demand hour, under its threshold."""
        low, opportunistic = self.charge_masks(soc_kwh, clock_hour, to_depot_m)
        return [
            ChargeReason.LOW if lo else ChargeReason.OPPORTUNISTIC if op else None
            for lo, op in zip(low.tolist(), opportunistic.tolist(), strict=True)
        ]

    def charge_masks(
        self, soc_kwh: FloatArray, clock_hour: float, to_depot_m: FloatArray
    ) -> tuple[BoolArray, BoolArray]:
        """`reasons_to_charge` as two masks, LOW and OPPORTUNISTIC (a car may be in both; LOW
        is its reason then): what `FleetCharging.plan` reads, with no per-car objects."""
        soc = np.asarray(soc_kwh, dtype=float)
        n = len(soc)
        low = (soc < self.charge_below_soc * self.capacity_kwh) | ~can_accept_pairs(
            soc, np.zeros(n), np.full(n, self.shortest_ride_m), to_depot_m, self.reserve_kwh,
            model=self.model,
        )  # fmt: skip
        opportunistic = self.is_low_demand(clock_hour) & (
            soc < self.opportunistic_below_soc * self.capacity_kwh
        )
        return low, np.asarray(opportunistic, dtype=bool)

    def target_kwh(self, clock_hour: float) -> float:
        share = self.low_demand_target_soc if self.is_low_demand(clock_hour) else self.target_soc
        return share * self.capacity_kwh

    def choose_depot(
        self, distances_m: FloatArray, free_chargers: Sequence[int], reason: ChargeReason
    ) -> int | None:
        """Index of the depot to go to: the nearest one with a free charger if it is at most
        `max_detour_m` farther than the nearest depot, else the nearest (and queue) — or,
        for an opportunistic charge, None (an optional charge never queues)."""
        dist = np.asarray(distances_m, dtype=float)
        if dist.size == 0 or not np.isfinite(dist).any():
            return None
        nearest = int(np.argmin(dist))
        free = np.asarray(free_chargers) > 0
        candidates = np.flatnonzero(free & (dist <= dist[nearest] + self.max_detour_m))
        if candidates.size:
            return int(candidates[np.argmin(dist[candidates])])
        return None if reason == ChargeReason.OPPORTUNISTIC else nearest


# --- records ----------------------------------------------------------------------------


class ChargeStage(enum.StrEnum):
    NONE = ""  # in service
    TO_DEPOT = "to_depot"
    QUEUED = "queued"
    PLUGGED = "plugged"  # holds a charger (plugging in, or charging)


@dataclass
class ChargingSession:
    """One visit to a depot, from the decision to go until the car leaves (times in s
    since the start; None until it happened)."""

    vehicle_id: str
    depot_id: str
    reason: ChargeReason
    decided_s: float
    target_kwh: float
    soc_decided_kwh: float
    arrived_s: float | None = None
    plugged_s: float | None = None
    left_s: float | None = None  # when it left its charger or gave up its place in line
    soc_plugged_kwh: float | None = None
    soc_left_kwh: float | None = None
    kwh_into_battery: float = 0.0
    kwh_from_grid: float = 0.0
    cancelled: bool = False

    @property
    def stage(self) -> ChargeStage:
        if self.left_s is not None or self.cancelled:
            return ChargeStage.NONE
        if self.plugged_s is not None:
            return ChargeStage.PLUGGED
        return ChargeStage.QUEUED if self.arrived_s is not None else ChargeStage.TO_DEPOT


@dataclass(frozen=True, slots=True)
class FleetSample:
    """How many cars were in each state at `time_s` (s since the start)."""

    time_s: float
    available: int
    to_depot: int
    queued: int
    charging: int


@dataclass(frozen=True, slots=True)
class ChargeOrder:
    """Send `vehicle_id` to charge at `depot` (the manager drives it to a curb there)."""

    vehicle_id: str
    depot: Depot
    reason: ChargeReason
    target_kwh: float


# --- the fleet's charging ---------------------------------------------------------------


def fleet_charging_for_map(
    config: EnergyConfig,
    road_map: RoadMap,
    *,
    demand: DemandModel | None,
    day: int,
    start_hour: float,
    seed: int,
) -> FleetCharging | None:
    """The fleet's charging on a loaded map (None when `config.enabled` is off): the depots
    placed on it (`depots_for_map`: configured depots must lie on the map) and the
    low-demand hours from the demand's expected requests by clock hour."""
    if not config.enabled:
        return None
    project = road_map.projection.lonlat_to_xy
    configs, xy = depots_for_map(config.charging, project, road_map.bounds)
    hourly = None
    if demand is not None:
        hourly = [float(np.sum(demand.expected_pickups(day, h)[1])) for h in range(24)]
        if max(hourly) - min(hourly) < 1e-9:
            hourly = None  # flat (synthetic) demand: the configured low-demand hours
    return FleetCharging(
        config,
        depots_from_config(configs, xy),
        start_hour=start_hour,
        seed=seed,
        hourly_requests=hourly,
    )


class FleetCharging:
    """Batteries, depots, queues and the charging policy of one fleet: the one object the
    fleet manager calls (see each method for when)."""

    def __init__(
        self,
        config: EnergyConfig,
        depots: Sequence[Depot],
        *,
        distance_fn: DistanceFn | None = None,
        start_hour: float = 0.0,
        seed: int = 0,
        hourly_requests: Sequence[float] | None = None,
        sample_every_s: float = 60.0,
    ) -> None:
        if not depots:
            raise ChargingError("a fleet with batteries needs at least one charging depot")
        self.config = config
        self.depots = tuple(depots)
        self.depot_xy = np.array([d.xy for d in self.depots], dtype=float)
        self.distance_fn = distance_fn or crow_fly_distance()
        self.start_hour = start_hour
        self.seed = seed
        self.sample_every_s = sample_every_s
        self.model = ConsumptionModel.from_config(config)
        self.batteries = FleetBatteries.from_config(config)
        self.curve = ChargingCurve.from_config(config)
        self.policy = ChargingPolicy.from_config(config, hourly_requests)
        self.queues = {d.depot_id: ChargerQueue(d) for d in self.depots}
        self.sessions: list[ChargingSession] = []
        self.samples: list[FleetSample] = []
        self._open: dict[str, ChargingSession] = {}
        self._last_sample_s = -math.inf

    # set-up

    def add_car(self, vehicle_id: str, soc_kwh: float | None = None) -> None:
        """A car joins the fleet: at `soc_kwh`, or drawn from the seed and its id."""
        if soc_kwh is None:
            soc_kwh = initial_soc_kwh([vehicle_id], self.config, self.seed)[vehicle_id]
        self.batteries.add(vehicle_id, soc_kwh)

    # every tick

    def consume(
        self,
        vehicle_id: str,
        distance_m: float,
        duration_s: float,
        *,
        parked: bool,
        now_s: float,
        trip_id: str | None = None,
    ) -> EmptyBattery | None:
        """Every tick, per car: it covered `distance_m` (odometer delta) in `duration_s`;
        `parked`: it stood at a curb all the tick. A car on a charger draws from the grid,
        not its battery. Returns a record if the car just ran empty (its ride is lost)."""
        session = self._open.get(vehicle_id)
        if session is not None and session.stage == ChargeStage.PLUGGED:
            return None
        return self.batteries.consume(
            vehicle_id, distance_m, duration_s, parked=parked, now_s=now_s, trip_id=trip_id
        )

    def consume_many(
        self, draws: Iterable[Draw], duration_s: float, now_s: float
    ) -> list[EmptyBattery]:
        """`consume` for every car of a tick at once (each draw: car, metres, parked, trip)."""
        plugged = [
            v for v, s in self._open.items() if s.stage == ChargeStage.PLUGGED
        ]  # on the grid, not the battery
        if plugged:
            skip = set(plugged)
            draws = [d for d in draws if d[0] not in skip]
        return self.batteries.consume_many(draws, duration_s, now_s)

    def consume_slots(
        self,
        slots: IntArray,
        distance_m: FloatArray,
        parked: BoolArray,
        trip_of: Callable[[int], str | None],
        duration_s: float,
        now_s: float,
    ) -> list[EmptyBattery]:
        """`consume_many` as arrays (`FleetBatteries.consume_slots`): the cars in `slots`
        (`FleetBatteries.slot`), except those on a charger, which draw from the grid."""
        plugged = [
            self.batteries.slot(v) for v, s in self._open.items() if s.stage == ChargeStage.PLUGGED
        ]
        if plugged:
            # (a mask over the slots: `np.isin` sorts both)
            on_grid = np.zeros(max(max(plugged), int(slots.max(initial=0))) + 1, dtype=bool)
            on_grid[plugged] = True
            keep = np.flatnonzero(~on_grid[slots])
            return self.batteries.consume_slots(
                slots[keep], distance_m[keep], parked[keep],
                lambda k: trip_of(int(keep[k])), duration_s, now_s,
            )  # fmt: skip
        return self.batteries.consume_slots(slots, distance_m, parked, trip_of, duration_s, now_s)

    def step(self, now_s: float, duration_s: float) -> list[str]:
        """Every tick, after `consume`: charge the plugged cars over the tick that ended at
        `now_s`. Returns the cars that reached their target and unplugged (in service again,
        parked at their depot); the next cars in line take their chargers."""
        done: list[str] = []
        start_s = now_s - duration_s
        for queue in self.queues.values():
            for vehicle_id, plugged_s in list(queue.plugged.items()):
                session = self._open[vehicle_id]
                car = self.batteries.cars[vehicle_id]
                begin = max(start_s, plugged_s + self.config.charging.plug_s)
                before = car.soc_kwh
                after = self.curve.charge_kwh(
                    before, now_s - begin, queue.depot.charger_kw, session.target_kwh
                )
                self.batteries.charge(vehicle_id, after - before)
                added = car.soc_kwh - before
                session.kwh_into_battery += added
                session.kwh_from_grid += added / self.config.charging.dc_efficiency
                if car.soc_kwh >= session.target_kwh - 1e-9:
                    done.append(vehicle_id)
        for vehicle_id in done:
            self._end(vehicle_id, now_s)
        return done

    def sample_due(self, now_s: float) -> bool:
        """True when `sample` would keep a sample now."""
        return now_s - self._last_sample_s >= self.sample_every_s

    def sample(self, now_s: float, available: int) -> None:
        """Every tick (kept once per `sample_every_s`): how many cars the manager counts as
        available for riders; the charging states are counted here."""
        if now_s - self._last_sample_s < self.sample_every_s:
            return
        self._last_sample_s = now_s
        stages = [s.stage for s in self._open.values()]
        self.samples.append(
            FleetSample(
                now_s,
                available,
                stages.count(ChargeStage.TO_DEPOT),
                stages.count(ChargeStage.QUEUED),
                stages.count(ChargeStage.PLUGGED),
            )
        )

    # decisions

    def clock_hour(self, now_s: float) -> float:
        return (self.start_hour + now_s / 3600.0) % 24

    def stage(self, vehicle_id: str) -> ChargeStage:
        session = self._open.get(vehicle_id)
        return ChargeStage.NONE if session is None else session.stage

    def busy(self, vehicle_id: str) -> bool:
        """True while a car is on its way to, waiting at or plugged in at a depot."""
        return vehicle_id in self._open

    def nearest_depot_m(self, xy: FloatArray) -> FloatArray:
        """Distance (m) from each of N×2 points to its nearest depot, by the distance fn."""
        return np.asarray(self.distance_fn(np.atleast_2d(xy), self.depot_xy)).min(axis=1)

    def feasible(
        self,
        vehicle_ids: Sequence[str],
        car: IntArray,
        request: IntArray,
        pickup_m: FloatArray,
        trip_m: FloatArray,
        dropoff_xy: FloatArray,
    ) -> BoolArray:
        """At dispatch: for K car–request pairs (`car`, `request`: indices into the C
        `vehicle_ids` and the R requests), may that car take that request and finish it with
        its reserve (`can_accept_pairs`)? From the K pick-up route metres, the R ride metres
        and the R×2 drop-off points. A car busy charging accepts nothing."""
        request = np.asarray(request, dtype=np.int64)
        # only the cars of the pairs are looked up (a batch names every free car of the fleet,
        # its pairs a few of them)
        used, car = np.unique(np.asarray(car, dtype=np.int64), return_inverse=True)
        used_ids = [vehicle_ids[i] for i in used.tolist()]
        to_depot = self.nearest_depot_m(dropoff_xy) if len(dropoff_xy) else np.zeros(0, dtype=float)
        ok = can_accept_pairs(
            self.batteries.soc_kwh(used_ids)[car],
            np.asarray(pickup_m, dtype=float),
            np.asarray(trip_m, dtype=float)[request],
            to_depot[request],
            self.config.reserve_kwh,
            model=self.model,
        )
        busy = np.array([v in self._open for v in used_ids], dtype=bool)
        return ok & ~busy[car]

    def plan(self, now_s: float, idle: Mapping[str, tuple[float, float]]) -> list[ChargeOrder]:
        """Each decision round (the fleet's: every batch interval, before dispatch): which
        of the `idle` cars (id → map-frame position; cars with no rider and no trip) go to
        charge, and where. Cars that must charge choose first, lowest charge first; an
        opportunistic charge only goes where a charger is free for it."""
        ids = list(idle)
        if not ids:
            return []
        # (per-car Python only for the few cars that may want to charge: a round looks at
        # every idle car of the fleet, hundreds of them, and most want nothing)
        xy = np.fromiter(
            itertools.chain.from_iterable(idle.values()), dtype=float, count=2 * len(ids)
        ).reshape(len(ids), 2)
        if self._open:
            keep = [i for i, v in enumerate(ids) if v not in self._open]
            if len(keep) < len(ids):
                ids, xy = [ids[i] for i in keep], xy[keep]
                if not ids:
                    return []
        hour = self.clock_hour(now_s)
        soc = self.batteries.soc_kwh(ids)
        free = self._free_chargers()
        any_free = max(free, default=0) > 0
        may = self._may_want(soc, xy, hour, optional=any_free)
        if may is not None:
            if not may.size:
                return []
            ids, xy, soc = [ids[i] for i in may.tolist()], xy[may], soc[may]
        dist = np.asarray(self.distance_fn(xy, self.depot_xy), dtype=float)
        low, opportunistic = self.policy.charge_masks(soc, hour, dist.min(axis=1))
        must = np.flatnonzero(low).tolist()
        optional = np.flatnonzero(opportunistic & ~low).tolist()
        if not (must or optional):
            return []
        soc_of = soc.tolist()
        orders = []
        # cars that must charge choose first, then the others; each lowest charge first
        for reason, rows in ((ChargeReason.LOW, must), (ChargeReason.OPPORTUNISTIC, optional)):
            for i in sorted(rows, key=lambda i: (soc_of[i], ids[i])):
                if reason == ChargeReason.OPPORTUNISTIC and not any_free:
                    break  # an optional charge never queues: none can go (`choose_depot`)
                k = self.policy.choose_depot(dist[i], free, reason)
                if k is None:
                    continue
                free[k] -= 1
                any_free = max(free) > 0
                depot = self.depots[k]
                target = self.policy.target_kwh(hour)
                vehicle_id = ids[i]
                car = self.batteries.cars[vehicle_id]
                session = ChargingSession(
                    vehicle_id, depot.depot_id, reason, now_s, max(target, car.soc_kwh), car.soc_kwh
                )
                self.sessions.append(session)
                self._open[vehicle_id] = session
                orders.append(ChargeOrder(vehicle_id, depot, reason, session.target_kwh))
        return orders

    def _may_want(
        self, soc_kwh: FloatArray, xy: FloatArray, hour: float, *, optional: bool = True
    ) -> IntArray | None:
        """The rows of the idle cars at `soc_kwh` and points `xy` that may have a reason to
        charge at `hour` (`ChargingPolicy.charge_masks`) that `plan` acts on, found without
        their distances to the depots (an opportunistic one only with `optional`: a charger
        is free); None: every row may (the distance function gives no bound, or a car above
        the thresholds may be too far from a depot for a short ride). A car above the
        thresholds wants to charge only if it is too far from a depot for its charge; if the
        lowest such charge suffices for the farthest any of the cars can be, none does."""
        if not isinstance(self.distance_fn, CrowFlyDistance):
            return None
        policy = self.policy
        threshold = policy.charge_below_soc * policy.capacity_kwh
        if optional and policy.is_low_demand(hour):
            threshold = max(threshold, policy.opportunistic_below_soc * policy.capacity_kwh)
        under = soc_kwh < threshold
        if under.all():
            return None
        x, y = xy[:, 0], xy[:, 1]  # (a column at a time: reducing N×2 over axis 0 is slow)
        lo, hi = (float(x.min()), float(y.min())), (float(x.max()), float(y.max()))
        farthest_m = self.distance_fn.farthest_nearest_m(lo, hi, self.depot_xy)
        lowest = float(np.min(soc_kwh[~under]))
        if not can_accept(
            lowest, 0.0, policy.shortest_ride_m, farthest_m, policy.reserve_kwh, model=policy.model
        ):
            return None
        rows: IntArray = np.flatnonzero(under)
        return rows

    def _free_chargers(self) -> list[int]:
        """Chargers per depot not taken, nor promised to a car waiting or on its way."""
        heading: dict[str, int] = {}
        for s in self._open.values():
            if s.stage == ChargeStage.TO_DEPOT:
                heading[s.depot_id] = heading.get(s.depot_id, 0) + 1
        return [
            self.queues[d.depot_id].free
            - len(self.queues[d.depot_id].waiting)
            - heading.get(d.depot_id, 0)
            for d in self.depots
        ]

    # the car's side

    def arrived(self, vehicle_id: str, now_s: float) -> ChargeStage:
        """When a car sent by `plan` reaches its depot's curb: it takes a free charger or
        joins the line. Returns its stage (PLUGGED or QUEUED)."""
        session = self._open.get(vehicle_id)
        if session is None or session.stage != ChargeStage.TO_DEPOT:
            raise ChargingError(f"{vehicle_id} arrived at a depot it was not sent to")
        session.arrived_s = now_s
        self._plug(self.queues[session.depot_id].arrive(vehicle_id, now_s), now_s)
        return session.stage

    def cancel(self, vehicle_id: str, now_s: float) -> None:
        """The manager takes a car back before it is charged (it could not reach the depot,
        or riders need it): it leaves the line or its charger, keeping what it charged."""
        session = self._open.get(vehicle_id)
        if session is None:
            return
        session.cancelled = True
        if session.arrived_s is not None:
            session.left_s = now_s
            session.soc_left_kwh = self.batteries.cars[vehicle_id].soc_kwh
        del self._open[vehicle_id]
        queue = self.queues[session.depot_id]
        if vehicle_id in queue:
            self._plug(queue.leave(vehicle_id, now_s), now_s)

    def _end(self, vehicle_id: str, now_s: float) -> None:
        session = self._open.pop(vehicle_id)
        session.left_s = now_s
        session.soc_left_kwh = self.batteries.cars[vehicle_id].soc_kwh
        self._plug(self.queues[session.depot_id].leave(vehicle_id, now_s), now_s)

    def _plug(self, vehicle_ids: Iterable[str], now_s: float) -> None:
        for vehicle_id in vehicle_ids:
            session = self._open[vehicle_id]
            session.plugged_s = now_s
            session.soc_plugged_kwh = self.batteries.cars[vehicle_id].soc_kwh

    # reports

    def kpis(self, rides: int, end_s: float | None = None) -> dict[str, Any]:
        """The `energy` KPI record (`energy_kpis`) over everything so far."""
        return energy_kpis(
            self.batteries.cars.values(),
            self.sessions,
            self.samples,
            self.batteries.empties,
            rides=rides,
            start_hour=self.start_hour,
            end_s=end_s,
        )


__all__ = [
    "DEFAULT_CIRCUITY",
    "SHORTEST_USEFUL_RIDE_M",
    "ChargeOrder",
    "ChargeReason",
    "ChargeStage",
    "ChargerQueue",
    "ChargingCurve",
    "ChargingError",
    "ChargingPolicy",
    "ChargingSession",
    "CrowFlyDistance",
    "Depot",
    "DistanceFn",
    "FleetCharging",
    "FleetSample",
    "crow_fly_distance",
    "depots_from_config",
    "fleet_charging_for_map",
    "low_demand_hours_from_profile",
]
