"""The robotaxis' batteries, energy use and charging depots: `EnergyConfig` (units in the
field names or descriptions), with checks that raise `ConfigError` on impossible settings.

Defaults are a 2019 Jaguar I-PACE (the figures and their sources are in
`robotaxi.fleet.energy`) and four DC fast-charging depots in San Francisco's industrial
districts. Whether a depot lies on the loaded map can only be checked once a map is
loaded: `check_depots_on_map`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from robotaxi.core.errors import ConfigError

# (lon, lat) arrays → (x, y) arrays in the map frame, m: `RoadMap.projection.lonlat_to_xy`
ProjectFn = Callable[
    [npt.NDArray[np.float64], npt.NDArray[np.float64]],
    tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]],
]
Bounds = tuple[float, float, float, float]  # xmin, ymin, xmax, ymax (m), `RoadMap.bounds`


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DepotConfig(_Model):
    """One charging depot: where it is (lon/lat, or x/y in the map frame for a generated
    city), how many DC fast chargers it has and what each can deliver."""

    name: str = Field(description="shown in reports and error messages")
    lon: float | None = Field(None, ge=-180, le=180, description="longitude, degrees (WGS84)")
    lat: float | None = Field(None, ge=-90, le=90, description="latitude, degrees (WGS84)")
    x_m: float | None = Field(None, description="map-frame x, m (instead of lon/lat)")
    y_m: float | None = Field(None, description="map-frame y, m (instead of lon/lat)")
    chargers: int = Field(8, description="DC fast chargers (one car each)")
    charger_kw: float = Field(150.0, description="rated power of each charger, kW")

    @model_validator(mode="after")
    def _check(self) -> DepotConfig:
        if not self.name.strip():
            raise ConfigError("a charging depot has an empty name: give every depot a name")
        has_lonlat = self.lon is not None and self.lat is not None
        has_xy = self.x_m is not None and self.y_m is not None
        if not has_lonlat and not has_xy:
            raise ConfigError(
                f"depot {self.name!r} has no location: give lon and lat (degrees), "
                "or x_m and y_m (map frame)"
            )
        if has_lonlat and has_xy:
            raise ConfigError(
                f"depot {self.name!r} has both lon/lat and x_m/y_m: give one location only"
            )
        if self.chargers < 1:
            raise ConfigError(
                f"depot {self.name!r} has {self.chargers} chargers: give at least 1, "
                "or remove the depot"
            )
        if not self.charger_kw > 0:
            raise ConfigError(
                f"depot {self.name!r} has charger power {self.charger_kw} kW: it must be "
                "positive (DC fast chargers are 50–350 kW)"
            )
        return self


# Approximate to the block: industrial (PDR) land where a fleet depot would be zoned.
SF_DEPOTS: tuple[DepotConfig, ...] = (
    DepotConfig(name="Bayview (Jerrold Ave)", lon=-122.3940, lat=37.7440),
    DepotConfig(name="Dogpatch (Illinois St)", lon=-122.3880, lat=37.7580),
    DepotConfig(name="SoMa south of I-80 (Townsend St)", lon=-122.4035, lat=37.7700),
    DepotConfig(name="Mission northeast (Alabama St)", lon=-122.4120, lat=37.7635),
)


class ChargingConfig(_Model):
    """Depots, the car's charging curve and the charging policy."""

    depots: tuple[DepotConfig, ...] = Field(
        SF_DEPOTS,
        description="charging depots; the defaults are in San Francisco (on a map without "
        "them, e.g. the grid city, as many depots are spread over the map)",
    )
    vehicle_max_kw: float = Field(100.0, description="most DC power the car accepts, kW")
    taper_start_soc: float = Field(
        0.8, description="state of charge above which the car's power tapers off, 0–1"
    )
    taper_end_kw: float = Field(
        15.0, description="power at a full battery, kW (linear taper from taper_start_soc)"
    )
    plug_s: float = Field(
        60.0, description="time a car holds a charger without charging (plug in, unplug), s"
    )
    dc_efficiency: float = Field(
        0.93, description="share of the charger's energy that reaches the battery, 0–1"
    )
    charge_below_soc: float = Field(
        0.25, description="an idle car goes to charge below this state of charge, 0–1"
    )
    opportunistic_below_soc: float = Field(
        0.6,
        description="in low-demand hours an idle car goes below this state of charge, 0–1, "
        "if a charger will be free for it",
    )
    target_soc: float = Field(0.8, description="charge up to this state of charge, 0–1")
    low_demand_target_soc: float = Field(
        0.9, description="charge target in low-demand hours, 0–1 (the taper makes it slow)"
    )
    low_demand_hours: tuple[int, ...] = Field(
        (1, 2, 3, 4, 5, 6),
        description="clock hours (0–23) counted as low demand when the demand model gives "
        "no hourly profile",
    )
    low_demand_share: float = Field(
        0.5,
        description="an hour is low demand if its expected requests are ≤ this share "
        "of the day's peak hour (with an hourly demand profile), 0–1",
    )
    max_detour_m: float = Field(
        2000.0,
        description="a car passes its nearest depot for one with a free charger at most "
        "this much farther away, m (0: always the nearest)",
    )

    @model_validator(mode="after")
    def _check(self) -> ChargingConfig:
        if not self.depots:
            raise ConfigError("no charging depots: give at least one under energy.charging.depots")
        names = [d.name for d in self.depots]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise ConfigError(f"two charging depots are named {dup!r}: give each a unique name")
        if not self.vehicle_max_kw > 0:
            raise ConfigError(
                f"vehicle_max_kw {self.vehicle_max_kw} must be positive (the I-PACE takes 100 kW)"
            )
        if not 0 < self.taper_end_kw <= self.vehicle_max_kw:
            raise ConfigError(
                f"taper_end_kw {self.taper_end_kw} must be above 0 and at most vehicle_max_kw "
                f"({self.vehicle_max_kw})"
            )
        if not 0 < self.taper_start_soc < 1:
            raise ConfigError(
                f"taper_start_soc {self.taper_start_soc} must lie strictly between 0 and 1"
            )
        if self.plug_s < 0:
            raise ConfigError(f"plug_s {self.plug_s} is negative: use 0 or more seconds")
        if not 0 < self.dc_efficiency <= 1:
            raise ConfigError(f"dc_efficiency {self.dc_efficiency} must be within (0, 1]")
        for key in ("charge_below_soc", "opportunistic_below_soc"):
            value = getattr(self, key)
            if not 0 <= value < 1:
                raise ConfigError(f"{key} {value} must be within [0, 1)")
        for key in ("target_soc", "low_demand_target_soc"):
            value = getattr(self, key)
            if not 0 < value <= 1:
                raise ConfigError(f"{key} {value} must be within (0, 1]")
        if self.target_soc <= self.charge_below_soc:
            raise ConfigError(
                f"target_soc {self.target_soc} must be above charge_below_soc "
                f"{self.charge_below_soc}, or a charged car would go straight back to charge"
            )
        if self.opportunistic_below_soc < self.charge_below_soc:
            raise ConfigError(
                f"opportunistic_below_soc {self.opportunistic_below_soc} must be at least "
                f"charge_below_soc {self.charge_below_soc}"
            )
        if self.low_demand_target_soc <= self.opportunistic_below_soc:
            raise ConfigError(
                f"low_demand_target_soc {self.low_demand_target_soc} must be above "
                f"opportunistic_below_soc {self.opportunistic_below_soc}"
            )
        if self.target_soc <= self.opportunistic_below_soc:
            raise ConfigError(
                f"target_soc {self.target_soc} must be above opportunistic_below_soc "
                f"{self.opportunistic_below_soc}, or a car charged in a busy hour would go "
                "straight back to charge when demand drops"
            )
        bad_hours = [h for h in self.low_demand_hours if not 0 <= h <= 23]
        if bad_hours:
            raise ConfigError(f"low_demand_hours {bad_hours} are not clock hours: use 0 to 23")
        if not 0 <= self.low_demand_share <= 1:
            raise ConfigError(f"low_demand_share {self.low_demand_share} must be within [0, 1]")
        if self.max_detour_m < 0:
            raise ConfigError(f"max_detour_m {self.max_detour_m} is negative: use 0 or more")
        return self


class EnergyConfig(_Model):
    """The battery, what the car draws driving and standing, and the dispatch reserve."""

    enabled: bool = Field(True, description="model batteries and charging at all")
    battery_usable_kwh: float = Field(84.7, description="usable battery capacity, kWh")
    drive_kwh_per_km: float = Field(
        0.276, description="traction and cabin energy per km driven (EPA combined), kWh/km"
    )
    autonomy_kw: float = Field(
        1.2, description="computer, sensors and their cooling: drawn all the time, kW"
    )
    parked_kw: float = Field(
        0.6, description="cabin climate and electronics while the car stands at a curb, kW"
    )
    planning_speed_mps: float = Field(
        4.0, description="slowest average speed dispatch plans with (turns metres into time)"
    )
    planning_curb_s: float = Field(
        900.0, description="time a ride may keep the car standing at curbs (wait, board), s"
    )
    reserve_kwh: float = Field(
        8.5, description="energy a car must still hold at the depot after any trip, kWh"
    )
    initial_soc: tuple[float, float] = Field(
        (0.6, 0.95), description="each car starts with a state of charge drawn in this range"
    )
    charging: ChargingConfig = ChargingConfig()

    @model_validator(mode="after")
    def _check(self) -> EnergyConfig:
        if not self.battery_usable_kwh > 0:
            raise ConfigError(
                f"battery_usable_kwh {self.battery_usable_kwh} must be positive "
                "(the I-PACE has 84.7 kWh)"
            )
        if not self.drive_kwh_per_km > 0:
            raise ConfigError(
                f"drive_kwh_per_km {self.drive_kwh_per_km} must be positive (the I-PACE uses "
                "about 0.28 kWh/km)"
            )
        for key in ("autonomy_kw", "parked_kw", "planning_curb_s", "reserve_kwh"):
            value = getattr(self, key)
            if value < 0:
                raise ConfigError(f"{key} {value} is negative: use 0 or more")
        if not self.planning_speed_mps > 0:
            raise ConfigError(
                f"planning_speed_mps {self.planning_speed_mps} must be positive (city average "
                "speeds are 4–8 m/s)"
            )
        low, high = self.initial_soc
        if not 0 <= low <= high <= 1:
            raise ConfigError(
                f"initial_soc {self.initial_soc} must be two shares 0 ≤ low ≤ high ≤ 1"
            )
        if self.reserve_kwh >= self.battery_usable_kwh * self.charging.charge_below_soc:
            raise ConfigError(
                f"reserve_kwh {self.reserve_kwh} must be below the charging threshold "
                f"({self.charging.charge_below_soc:.0%} of {self.battery_usable_kwh} kWh): lower "
                "the reserve or raise charging.charge_below_soc"
            )
        return self


def depot_positions(
    depots: Sequence[DepotConfig], project_fn: ProjectFn
) -> npt.NDArray[np.float64]:
    """N×2 map-frame positions (m) of the depots: x_m/y_m as given, lon/lat projected."""
    xy = np.zeros((len(depots), 2))
    geo = [i for i, d in enumerate(depots) if d.x_m is None]
    for i, d in enumerate(depots):
        if d.x_m is not None and d.y_m is not None:
            xy[i] = (d.x_m, d.y_m)
    if geo:
        lon = np.array([depots[i].lon for i in geo], dtype=float)
        lat = np.array([depots[i].lat for i in geo], dtype=float)
        x, y = project_fn(lon, lat)
        xy[geo, 0] = np.asarray(x, dtype=float)
        xy[geo, 1] = np.asarray(y, dtype=float)
    return xy


def on_map(xy: npt.NDArray[np.float64], bounds: Bounds) -> npt.NDArray[np.bool_]:
    """True for each N×2 point inside the map's bounds (xmin, ymin, xmax, ymax)."""
    xmin, ymin, xmax, ymax = bounds
    pts = np.atleast_2d(xy)
    inside: npt.NDArray[np.bool_] = (
        (pts[:, 0] >= xmin) & (pts[:, 0] <= xmax) & (pts[:, 1] >= ymin) & (pts[:, 1] <= ymax)
    )
    return inside


def check_depots_on_map(
    depots: Sequence[DepotConfig], project_fn: ProjectFn, bounds: Bounds
) -> npt.NDArray[np.float64]:
    """The depots' N×2 map-frame positions (m); raises `ConfigError` naming the first depot
    that lies outside the map's bounds."""
    xy = depot_positions(depots, project_fn)
    inside = on_map(xy, bounds)
    for depot, point, ok in zip(depots, xy, inside, strict=True):
        if not ok:
            where = (
                f"lon {depot.lon}, lat {depot.lat}"
                if depot.lon is not None
                else f"x {depot.x_m} m, y {depot.y_m} m"
            )
            raise ConfigError(
                f"depot {depot.name!r} ({where}) is off the map: it projects to "
                f"({point[0]:.0f}, {point[1]:.0f}) m, outside the map's bounds "
                f"{tuple(round(b) for b in bounds)}; move it onto the map or remove it"
            )
    return xy


def spread_depots(bounds: Bounds, like: Sequence[DepotConfig]) -> tuple[DepotConfig, ...]:
    """As many depots as `like` (with their chargers and power), spread over a map that has
    none of them (the grid city): on a ring at 30 % of the map's half-size around its
    centre, the first one to the east."""
    xmin, ymin, xmax, ymax = bounds
    cx, cy = (xmin + xmax) / 2, (ymin + ymax) / 2
    rx, ry = 0.3 * (xmax - xmin), 0.3 * (ymax - ymin)
    n = len(like)
    out = []
    for k, template in enumerate(like):
        angle = 2 * np.pi * k / n
        x = cx + (rx if n > 1 else 0.0) * float(np.cos(angle))
        y = cy + (ry if n > 1 else 0.0) * float(np.sin(angle))
        out.append(
            DepotConfig(
                name=f"depot {k + 1}",
                x_m=round(x, 1),
                y_m=round(y, 1),
                chargers=template.chargers,
                charger_kw=template.charger_kw,
            )
        )
    return tuple(out)


def depots_for_map(
    charging: ChargingConfig, project_fn: ProjectFn, bounds: Bounds
) -> tuple[tuple[DepotConfig, ...], npt.NDArray[np.float64]]:
    """The depots a run uses on a loaded map, and their N×2 map-frame positions (m).

    Depots the user configured must all lie on the map (`check_depots_on_map`). The
    default San Francisco depots are kept where they lie on the map; on a map that holds
    none of them (the grid city, a small extract) as many are spread over it instead.
    """
    if "depots" in charging.model_fields_set:
        return charging.depots, check_depots_on_map(charging.depots, project_fn, bounds)
    xy = depot_positions(charging.depots, project_fn)
    inside = on_map(xy, bounds)
    if inside.any():
        kept = tuple(d for d, ok in zip(charging.depots, inside, strict=True) if ok)
        return kept, xy[inside]
    spread = spread_depots(bounds, charging.depots)
    return spread, depot_positions(spread, project_fn)


__all__ = [
    "SF_DEPOTS",
    "Bounds",
    "ChargingConfig",
    "DepotConfig",
    "EnergyConfig",
    "ProjectFn",
    "check_depots_on_map",
    "depot_positions",
    "depots_for_map",
    "on_map",
    "spread_depots",
]
