"""A robotaxi's battery: what it draws driving and standing, and whether it can take a trip.

The car is a 2019 Jaguar I-PACE (Waymo's fleet car). Figures, with where they come from:

- **Battery**: 90 kWh gross, 84.7 kWh usable (Jaguar's specification; the usable figure
  is the one that matters and the one we track).
- **Driving**: 0.276 kWh/km. The EPA label of the 2019 I-PACE reads 80 MPGe city, 72
  highway, 76 combined (fueleconomy.gov); at 33.705 kWh per gallon-equivalent that is
  0.262 kWh/km city and 0.276 kWh/km combined, measured at the plug (charging losses
  included) and with the label's 5-cycle adjustment, which covers air conditioning and
  the idling in the city cycle. We take the combined figure rather than the city one as
  a margin for San Francisco's hills, and count it as drawn from the battery, which
  overstates battery use by the charging losses (~10 %): a conservative choice for a
  model whose job is to keep cars from running empty.
- **Autonomy**: 1.2 kW, all the time the car is in service, driving or not: the driving
  computer, its sensors (lidars, radars, cameras) and their cooling, none of which the
  EPA figure contains. Published estimates of that load run from a few hundred W (one
  automotive computer: NVIDIA announced DRIVE PX Pegasus at 500 W) to a few kW for a full
  research sensor suite (Lin et al., ASPLOS 2018; Gawron et al., Environ. Sci. Technol.
  2018, who find sensing and computing add roughly 3–20 % to a car's energy use); 1.2 kW
  is a middle estimate, not a measurement.
- **Standing**: 0.6 kW more while the car waits at a curb or in a charger queue: cabin
  climate and electronics. The EPA cycle's stops are in the per-km figure, a car parked
  for ten minutes is not. San Francisco's mild climate (10–20 °C most of the year) needs
  little heating or cooling; a cold or hot city would need 1–3 kW.

  So a car standing draws 1.8 kW, a car driving at the city's ~5 m/s about 0.34 kWh/km:
  `drive_kwh_per_km + autonomy_kw / speed`, a speed-dependent rate.

Why our own model and not SUMO's battery device: **cost** — SUMO's device needs each
vehicle type's physical parameters (mass, drag and rolling coefficients, front area,
efficiencies; we have no calibrated set for the I-PACE), integrates every equipped car
every step, and its state would have to be read back through libsumo for every car every
tick; its charging stations are lanes in an additional file, so depots would be tied to a
network. It would also rule out SUMO's mesoscopic mode for large runs: SUMO's tracker
records the battery device as unsupported under --mesosim (eclipse-sumo/sumo#13843,
2023) and meso vehicles consuming no battery charge (#17153, 2025), the latter marked
fixed in May 2026; we have not checked whether the SUMO 1.28 we pin has that fix.
**Accuracy** — the device integrates speed, acceleration and grade step by step, finer
than a per-km average, but only as good as parameters we would have to guess; and
dispatch needs a *prediction* of a trip's energy before the trip is driven, which the
device cannot give, so we would need this model anyway. Using one model both to predict
(`can_accept`) and to account (`FleetBatteries.consume`) is what lets dispatch promise
that a car never takes a trip it cannot finish. The price is accuracy per ride (no
grades, no acceleration profile): the EPA figure is an average, perhaps ±15 % on a given
ride, which the reserve absorbs.

Units: energy kWh, power kW, distance m (km where the name says so), time s.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from robotaxi.config.charging import EnergyConfig
from robotaxi.core import DispatchError
from robotaxi.core.types import BoolArray, FloatArray, IntArray

Number = TypeVar("Number", float, FloatArray)
# one car's draw over a tick: car, metres driven, parked all the tick, its trip (or None)
Draw = tuple[str, float, bool, str | None]

GROSS_BATTERY_KWH = 90.0  # Jaguar I-PACE, 2019: the pack's rating
USABLE_BATTERY_KWH = 84.7  # the share the car lets you use
EPA_CITY_KWH_PER_KM = 33.705 / 80 / 1.609344  # 80 MPGe city: 0.262
EPA_COMBINED_KWH_PER_KM = 33.705 / 76 / 1.609344  # 76 MPGe combined: 0.276


@dataclass(frozen=True, slots=True)
class ConsumptionModel:
    """What a car draws: `drive_kwh_per_km` per km, `autonomy_kw` all the time, and
    `parked_kw` more while it stands at a curb. Planning (dispatch) turns a route's metres
    into time at `planning_speed_mps` and allows `planning_curb_s` at curbs per ride."""

    drive_kwh_per_km: float = round(EPA_COMBINED_KWH_PER_KM, 3)
    autonomy_kw: float = 1.2
    parked_kw: float = 0.6
    planning_speed_mps: float = 4.0
    planning_curb_s: float = 900.0

    @classmethod
    def from_config(cls, config: EnergyConfig) -> ConsumptionModel:
        return cls(
            drive_kwh_per_km=config.drive_kwh_per_km,
            autonomy_kw=config.autonomy_kw,
            parked_kw=config.parked_kw,
            planning_speed_mps=config.planning_speed_mps,
            planning_curb_s=config.planning_curb_s,
        )

    def use_kwh(self, distance_m: float, duration_s: float, *, parked: bool) -> float:
        """Energy (kWh) drawn over `duration_s` in which the car covered `distance_m`;
        `parked`: it stood at a curb (or in a queue) all that time."""
        power_kw = self.autonomy_kw + (self.parked_kw if parked else 0.0)
        return distance_m / 1000.0 * self.drive_kwh_per_km + duration_s / 3600.0 * power_kw

    def plan_kwh(self, distance_m: Number) -> Number:
        """Energy (kWh) dispatch plans for driving a route of `distance_m` (scalar or array):
        the per-km figure plus the autonomy draw over the time at `planning_speed_mps`."""
        per_m = self.drive_kwh_per_km / 1000.0 + self.autonomy_kw / 3600.0 / self.planning_speed_mps
        return distance_m * per_m

    @property
    def curb_kwh(self) -> float:
        """Energy (kWh) a ride may cost standing at curbs: waiting, boarding, alighting."""
        return self.planning_curb_s / 3600.0 * (self.autonomy_kw + self.parked_kw)


def can_accept(
    soc_kwh: float,
    pickup_m: float,
    trip_m: float,
    to_nearest_depot_m: float,
    reserve_kwh: float,
    *,
    model: ConsumptionModel = ConsumptionModel(),
) -> bool:
    """True if a car holding `soc_kwh` can drive `pickup_m` to the rider, `trip_m` with
    them, then `to_nearest_depot_m` from the drop-off to a charger, standing at curbs for
    the planned time, and still hold `reserve_kwh` there.

    Distances are route metres (an upper bound is fine: see `route_m_upper_bound`). An
    unknown (NaN) or unreachable (inf) distance refuses the trip.
    """
    return bool(_spare_kwh(soc_kwh, pickup_m + trip_m + to_nearest_depot_m, model) >= reserve_kwh)


def _spare_kwh(soc_kwh: Number, route_m: Number, model: ConsumptionModel) -> Number:
    """What a car holding `soc_kwh` keeps after driving `route_m` of a ride (its curb time
    included), by dispatch's plan; NaN where a figure is unknown or infinite."""
    with np.errstate(invalid="ignore"):  # inf - inf where soc is inf: refused like NaN
        return soc_kwh - (model.plan_kwh(route_m) + model.curb_kwh)


def can_accept_many(
    soc_kwh: FloatArray,
    pickup_m: FloatArray,
    trip_m: FloatArray,
    to_nearest_depot_m: FloatArray,
    reserve_kwh: float,
    *,
    model: ConsumptionModel = ConsumptionModel(),
) -> BoolArray:
    """`can_accept` for C cars × R requests at once: `soc_kwh` (C,), `pickup_m` (C, R) route
    metres from each car to each pick-up, `trip_m` and `to_nearest_depot_m` (R,) per
    request. Returns a C×R mask; the batch dispatcher sets the ETA of False pairs to inf."""
    soc = np.asarray(soc_kwh, dtype=float)
    pickup = np.asarray(pickup_m, dtype=float)
    trip = np.asarray(trip_m, dtype=float)
    depot = np.asarray(to_nearest_depot_m, dtype=float)
    if soc.ndim != 1 or trip.ndim != 1 or depot.ndim != 1 or trip.shape != depot.shape:
        raise DispatchError(
            f"can_accept_many wants soc (C,), trip and depot distances (R,); got {soc.shape}, "
            f"{trip.shape}, {depot.shape}"
        )
    if pickup.shape != (soc.size, trip.size):
        raise DispatchError(
            f"pick-up distances must be cars × requests {(soc.size, trip.size)}, got {pickup.shape}"
        )
    ok: BoolArray = _spare_kwh(soc[:, None], pickup + (trip + depot)[None, :], model) >= reserve_kwh
    return ok


def can_accept_pairs(
    soc_kwh: FloatArray,
    pickup_m: FloatArray,
    trip_m: FloatArray,
    to_nearest_depot_m: FloatArray,
    reserve_kwh: float,
    *,
    model: ConsumptionModel = ConsumptionModel(),
) -> BoolArray:
    """`can_accept` for K car–request pairs at once (every argument has one value a pair):
    what a dispatcher that looks only at candidate pairs asks."""
    route_m = np.asarray(pickup_m, dtype=float) + trip_m + to_nearest_depot_m
    ok: BoolArray = _spare_kwh(np.asarray(soc_kwh, dtype=float), route_m, model) >= reserve_kwh
    return ok


def route_m_upper_bound(eta_s: Number, max_speed_mps: float) -> Number:
    """An upper bound (m) on the length of the fastest route that takes `eta_s`: no edge is
    driven faster than `max_speed_mps` (the map's highest speed limit), so a route's
    length is at most its time × that speed. For dispatch's ETA matrix, in metres."""
    return eta_s * max_speed_mps


# --- the fleet's batteries --------------------------------------------------------------


class _Columns:
    """The fleet's battery figures that change every tick, one slot per car: state of charge,
    kWh drawn and km driven (kWh). `FleetBatteries.consume_slots` updates a thousand cars
    with a few array operations; each `CarBattery` reads and writes its own slot."""

    __slots__ = ("km", "n", "soc", "used")

    def __init__(self) -> None:
        self.soc = np.zeros(0)
        self.used = np.zeros(0)
        self.km = np.zeros(0)
        self.n = 0

    def add(self, soc: float, used: float, km: float) -> int:
        if self.n == len(self.soc):  # grow by doubling: slots stay where they are
            size = max(16, 2 * self.n)
            for name in ("soc", "used", "km"):
                column = np.zeros(size)
                column[: self.n] = getattr(self, name)[: self.n]
                setattr(self, name, column)
        k = self.n
        self.soc[k], self.used[k], self.km[k] = soc, used, km
        self.n += 1
        return k


class CarBattery:
    """One car's battery and what it drew and took in so far (kWh, km). Its state of charge,
    kWh used and km live in its fleet's columns (`FleetBatteries`), so that a tick's draws
    are array operations; read and written here like plain attributes."""

    __slots__ = ("_cols", "_k", "capacity_kwh", "empty_since_s", "kwh_charged", "vehicle_id")

    def __init__(
        self,
        vehicle_id: str,
        capacity_kwh: float,
        soc_kwh: float,
        km: float = 0.0,
        kwh_used: float = 0.0,
        kwh_charged: float = 0.0,  # into the battery (the grid gave kwh_charged / dc_efficiency)
        empty_since_s: float | None = None,  # when it ran empty; None: it never did
        *,
        columns: _Columns | None = None,
    ) -> None:
        self.vehicle_id = vehicle_id
        self.capacity_kwh = capacity_kwh
        self.kwh_charged = kwh_charged
        self.empty_since_s = empty_since_s
        self._cols = columns if columns is not None else _Columns()
        self._k = self._cols.add(soc_kwh, kwh_used, km)

    @property
    def soc_kwh(self) -> float:
        return float(self._cols.soc[self._k])

    @soc_kwh.setter
    def soc_kwh(self, value: float) -> None:
        self._cols.soc[self._k] = value

    @property
    def kwh_used(self) -> float:
        return float(self._cols.used[self._k])

    @kwh_used.setter
    def kwh_used(self, value: float) -> None:
        self._cols.used[self._k] = value

    @property
    def km(self) -> float:
        return float(self._cols.km[self._k])

    @km.setter
    def km(self, value: float) -> None:
        self._cols.km[self._k] = value

    @property
    def soc(self) -> float:
        """State of charge, 0–1."""
        return self.soc_kwh / self.capacity_kwh

    def _values(self) -> tuple[object, ...]:
        return (
            self.vehicle_id, self.capacity_kwh, self.soc_kwh, self.km, self.kwh_used,
            self.kwh_charged, self.empty_since_s,
        )  # fmt: skip

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CarBattery):
            return NotImplemented
        return self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]  # mutable, as the dataclass it replaced

    def __repr__(self) -> str:
        names = ("vehicle_id", "capacity_kwh", "soc_kwh", "km", "kwh_used", "kwh_charged",
                 "empty_since_s")  # fmt: skip
        body = ", ".join(f"{n}={v!r}" for n, v in zip(names, self._values(), strict=True))
        return f"CarBattery({body})"


@dataclass(frozen=True, slots=True)
class EmptyBattery:
    """A car's battery ran empty (at `time_s`, s since the start), with the trip it was on:
    the ride is lost. Dispatch's reserve exists so that there are none."""

    vehicle_id: str
    time_s: float
    trip_id: str | None


def initial_soc_kwh(
    vehicle_ids: Iterable[str], config: EnergyConfig, seed: int
) -> dict[str, float]:
    """Each car's state of charge (kWh) at the start, uniform in `config.initial_soc`; a
    function of the seed and the car's id only (adding a car changes no other car's)."""
    low, high = config.initial_soc
    out = {}
    for vid in vehicle_ids:
        rng = np.random.default_rng([seed, 0xBA77, zlib.crc32(vid.encode())])
        out[vid] = float(rng.uniform(low, high)) * config.battery_usable_kwh
    return out


@dataclass
class FleetBatteries:
    """Every car's battery, discharged by `consume` each tick and filled by `charge`."""

    model: ConsumptionModel = field(default_factory=ConsumptionModel)
    capacity_kwh: float = USABLE_BATTERY_KWH
    cars: dict[str, CarBattery] = field(default_factory=dict)
    empties: list[EmptyBattery] = field(default_factory=list)
    _cols: _Columns = field(default_factory=_Columns, init=False, repr=False, compare=False)
    _by_slot: list[CarBattery] = field(default_factory=list, init=False, repr=False, compare=False)

    @classmethod
    def from_config(cls, config: EnergyConfig) -> FleetBatteries:
        return cls(ConsumptionModel.from_config(config), config.battery_usable_kwh)

    def add(self, vehicle_id: str, soc_kwh: float) -> CarBattery:
        car = CarBattery(
            vehicle_id, self.capacity_kwh, min(max(soc_kwh, 0.0), self.capacity_kwh),
            columns=self._cols,
        )  # fmt: skip
        self.cars[vehicle_id] = car
        self._by_slot.append(car)
        return car

    def slot(self, vehicle_id: str) -> int:
        """The car's slot in the columns `consume_slots` works on."""
        return self.cars[vehicle_id]._k

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
        """Draw what covering `distance_m` in `duration_s` costs (`parked`: standing at a
        curb or in a queue). Returns the `EmptyBattery` record the first time the car runs
        empty, else None; an empty car stays at 0 kWh."""
        car = self.cars[vehicle_id]
        kwh = self.model.use_kwh(max(distance_m, 0.0), max(duration_s, 0.0), parked=parked)
        car.km += max(distance_m, 0.0) / 1000.0
        car.kwh_used += min(kwh, car.soc_kwh)
        car.soc_kwh -= kwh
        if car.soc_kwh > 0:
            return None
        car.soc_kwh = 0.0
        if car.empty_since_s is not None:
            return None
        car.empty_since_s = now_s
        record = EmptyBattery(vehicle_id, now_s, trip_id)
        self.empties.append(record)
        return record

    def consume_many(
        self, draws: Iterable[Draw], duration_s: float, now_s: float
    ) -> list[EmptyBattery]:
        """`consume` for many cars over one tick of `duration_s` (each draw: car, metres,
        parked, trip; each car at most once): the same arithmetic, bit for bit.
        Returns the records of the cars that just ran empty."""
        draws = list(draws)
        slots = np.array([self.cars[d[0]]._k for d in draws], dtype=np.int64)
        metres = np.array([d[1] for d in draws], dtype=float)
        parked = np.array([d[2] for d in draws], dtype=bool)
        return self.consume_slots(slots, metres, parked, lambda k: draws[k][3], duration_s, now_s)

    def consume_slots(
        self,
        slots: IntArray,
        distance_m: FloatArray,
        parked: BoolArray,
        trip_of: Callable[[int], str | None],
        duration_s: float,
        now_s: float,
    ) -> list[EmptyBattery]:
        """`consume` for the cars in `slots` (`slot`, each at most once) over one tick of
        `duration_s`: `distance_m` and `parked` per car; `trip_of(k)` is the trip of the
        k-th car (asked only of a car that runs empty). A thousand cars in a few array
        operations, each element the same arithmetic as `consume`'s, bit for bit. Returns
        the records of the cars that just ran empty, in the order of `slots`."""
        model, cols = self.model, self._cols
        # exactly `ConsumptionModel.use_kwh`'s expression, term by term
        parked_kwh = max(duration_s, 0.0) / 3600.0 * (model.autonomy_kw + model.parked_kw)
        driving_kwh = max(duration_s, 0.0) / 3600.0 * (model.autonomy_kw + 0.0)
        metres = np.where(distance_m > 0.0, distance_m, 0.0)
        kwh = metres / 1000.0 * model.drive_kwh_per_km + np.where(parked, parked_kwh, driving_kwh)
        cols.km[slots] += metres / 1000.0
        soc = cols.soc[slots]
        cols.used[slots] += np.where(kwh < soc, kwh, soc)
        soc -= kwh
        empty = ~(soc > 0)
        if not empty.any():
            cols.soc[slots] = soc
            return []
        soc[empty] = 0.0
        cols.soc[slots] = soc
        out = []
        for k in np.flatnonzero(empty).tolist():
            car = self._by_slot[int(slots[k])]
            if car.empty_since_s is None:
                car.empty_since_s = now_s
                out.append(EmptyBattery(car.vehicle_id, now_s, trip_of(k)))
        self.empties.extend(out)
        return out

    def charge(self, vehicle_id: str, kwh: float) -> None:
        """Put `kwh` into a car's battery (capped at its capacity)."""
        car = self.cars[vehicle_id]
        added = min(max(kwh, 0.0), car.capacity_kwh - car.soc_kwh)
        car.soc_kwh += added
        car.kwh_charged += added
        if car.soc_kwh > 0:
            car.empty_since_s = None

    def soc_kwh(self, vehicle_ids: Sequence[str]) -> FloatArray:
        """The cars' states of charge (kWh), in the order given: for `can_accept_many`."""
        cars = self.cars
        slots = np.fromiter((cars[v]._k for v in vehicle_ids), np.int64, len(vehicle_ids))
        return self._cols.soc[slots]  # (fancy indexing: a copy)

    def soc_by_car(self) -> Mapping[str, float]:
        return {v: c.soc_kwh for v, c in self.cars.items()}


__all__ = [
    "EPA_CITY_KWH_PER_KM",
    "EPA_COMBINED_KWH_PER_KM",
    "GROSS_BATTERY_KWH",
    "USABLE_BATTERY_KWH",
    "CarBattery",
    "ConsumptionModel",
    "Draw",
    "EmptyBattery",
    "FleetBatteries",
    "can_accept",
    "can_accept_many",
    "can_accept_pairs",
    "initial_soc_kwh",
    "route_m_upper_bound",
]
