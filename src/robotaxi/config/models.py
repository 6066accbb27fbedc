"""Typed, validated configuration. Units are in the field names or descriptions."""

from __future__ import annotations

import copy
import re
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from robotaxi.config.charging import EnergyConfig
from robotaxi.core.errors import ConfigError, RobotaxiError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MapConfig(_Model):
    city: str = Field(
        "grid",
        description="named city: grid, sf-mission, sf (all of San Francisco), sf-ne (its "
        "north-east, no signals); or a path to a file",
    )
    data_dir: Path = Field(
        Path("../shared/data"), description="third-party data folder (SF maps, demand)"
    )
    cache_dir: Path = Field(Path(".cache/maps"), description="where built networks are cached")
    solid_centre_lines: tuple[str, ...] = Field(
        (),
        description="edges whose centre line is marked solid beyond what the network says "
        "(road works, a scenario): cars cross it to pass a blocker only with an operator's "
        "leave",
    )


# meso's ticks: 5 of SUMO's 1-s steps. On the whole city's 07:00 peak (1,000 cars, background
# 0.176, rebalancing off in both) the fleet's run took 10.0 s of stepping CPU against 12.5 s
# with a tick a step, with the same service (wait p50 90.7 / 89.1 s, p95 233.5 / 235.2 s,
# pick-up ETA error p50 -10.0 / -10.6 s); meso moves cars segment by segment (~100 m) anyway.
# Ticks of 10 s (batches still every 15 s on average) were measured and not taken: the whole
# day (`bench_fleet.py --city-scale day --traffic-model meso --repeat 2`, 2026-12-07 14:21)
# cost 2.14x the background's stepping CPU against 2.26x, but riders who gave up waiting rose
# from 187 to 389 (served 96.24 % against 97.15 %, wait p95 230.7 against 216.5 s; not looked
# into further: a car at the kerb is seen up to a tick later, which alone explains a few s)
MESO_TICK_STEPS = 5


class WorldConfig(_Model):
    step_s: float = Field(1.0, gt=0, le=5, description="simulation step length, s")
    tick_steps: int = Field(
        1,
        ge=1,
        le=10,
        description="SUMO steps per tick: the fleet reads the world and decides once per tick "
        "(every step_s × tick_steps s). Above 1 only in meso, whose cars move street segment "
        "by segment; micro's pull-overs and our own stack act every step. Meso's default is "
        f"{MESO_TICK_STEPS}",
    )
    traffic_model: Literal["micro", "meso"] = Field(
        "micro",
        description="SUMO's microscopic model (lanes, signals, kerbside pull-overs, autonomous "
        "cars) or its mesoscopic queue model (whole-city days, far faster; no lanes or lateral "
        "positions: robotaxis leave SUMO at the kerb, no cars our own stack drives, "
        "background cars do not pull over for ambulances)",
    )
    background_demand: Literal["random", "planbayarea"] = Field(
        "random",
        description="background traffic: random trips at a density (randomTrips), or car "
        "trips between San Francisco's districts and the Bay Area from Plan Bay Area 2015",
    )
    background_vehicles_per_hour_per_km2: float = Field(
        150.0, ge=0, description="background trips generated per hour per km² of map area"
    )
    background_scale: float = Field(
        1.0, ge=0, description="Plan Bay Area background: share of the modelled car trips run"
    )
    emergency_per_hour: float = Field(3.0, ge=0, description="ambulances crossing per hour")
    clear_way_for_emergency: bool = Field(
        True,
        description="make background cars ahead of an ambulance pull over (our logic; micro "
        "only: off in meso, where cars have no kerb)",
    )
    clear_way_range_m: float = Field(60.0, gt=0, description="how far ahead cars clear the way")
    emergency_preemption: bool = Field(
        True,
        description="signals with emergency pre-emption give an ambulance with its siren on "
        "the green on its approach (and the cross streets red); micro only (meso's signals "
        "are a delay from their green split)",
    )
    preemption_range_m: float = Field(
        250.0, gt=0, description="how far before a pre-emption signal an ambulance calls it"
    )
    teleport_time_s: float = Field(300.0, description="SUMO time-to-teleport for jammed cars")
    junction_blocker_s: float = Field(
        60.0,
        description="micro: a car standing inside a junction this long (s) no longer blocks "
        "its foes (SUMO's --ignore-junction-blocker; -1: it always does): a car waiting in a "
        "junction for a way out that its foes cannot clear while it stands there otherwise "
        "stays until time-to-teleport",
    )
    route_around_jams: bool = Field(
        True,
        description="robotaxis route by the travel times SUMO measured over the last minutes "
        "(not the speed limits), and a robotaxi held in a queue looks for another way",
    )
    stuck_reroute_s: float = Field(
        90.0, gt=0, description="how long a robotaxi crawls in traffic before it reroutes, s"
    )

    @property
    def tick_s(self) -> float:
        """Simulated seconds per tick: how often the fleet reads the world and decides."""
        return self.step_s * self.tick_steps

    @model_validator(mode="after")
    def _ticks_of_steps_need_meso(self) -> WorldConfig:
        if self.tick_steps > 1 and self.traffic_model != "meso":
            raise ValueError(
                f"tick_steps {self.tick_steps} needs the mesoscopic traffic model (in micro, "
                "kerbside pull-overs and our own stack act every step): use traffic_model "
                "meso, or tick_steps 1"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _meso_defaults(cls, data: Any) -> Any:
        """In meso, cars have no kerb to pull over to: clearing the way for ambulances is
        off there, and asking for it is refused. A meso tick is MESO_TICK_STEPS steps unless
        set."""
        if not isinstance(data, dict) or data.get("traffic_model") != "meso":
            return data
        data = {"tick_steps": MESO_TICK_STEPS, **data}
        if data.get("clear_way_for_emergency") is True:
            raise ValueError(
                "clear_way_for_emergency needs the microscopic traffic model (in meso, cars "
                "have no kerb to pull over to): use traffic_model micro, or set it false"
            )
        return {**data, "clear_way_for_emergency": False}


class DemandConfig(_Model):
    market_share: float = Field(
        0.3, gt=0, le=1, description="share of the city's TNC trips our fleet serves"
    )
    requests_per_hour: float = Field(
        120.0, ge=0, description="synthetic demand rate (grid city, maps outside San Francisco)"
    )
    distance_decay_per_km: float = Field(
        0.25, ge=0, description="destination weight ∝ drop-offs × exp(-decay × distance)"
    )
    min_trip_m: float = Field(400.0, ge=0, description="shorter requests are resampled")
    patience_mean_s: float = Field(600.0, gt=0, description="mean rider patience, s")


class DispatchConfig(_Model):
    policy: Literal["nearest", "batch"] = "batch"
    batch_interval_s: float = Field(15.0, ge=1, le=60, description="batch assignment period")
    max_pickup_eta_s: float = Field(900.0, gt=0, description="no assignment above this ETA")
    soon_free_s: float = Field(
        120.0, ge=0, description="cars finishing a drop-off within this time count as free"
    )
    rebalance: bool = True
    rebalance_interval_s: float = Field(120.0, gt=0)
    rebalance_cell_m: float = Field(
        1000.0, gt=0, description="demand zones are pooled into square cells this wide, m"
    )
    rebalance_cover_s: float = Field(
        3600.0,
        gt=0,
        description="a cell wants as many idle cars as the requests it expects within this "
        "time; idle cars beyond that stay where they are",
    )
    rebalance_max_share: float = Field(
        0.02,
        gt=0,
        le=1,
        description="at most this share of the idle cars moves in one rebalancing round, "
        "the shortest moves first",
    )


class FleetConfig(_Model):
    size: int = Field(20, ge=1, description="number of robotaxis")
    vehicle_length_m: float = 4.68  # Jaguar I-PACE
    vehicle_width_m: float = 2.01
    max_speed_mps: float = 25.0
    no_show_wait_s: float = Field(180.0, gt=0, description="car leaves after this wait")
    seatbelt_grace_s: float = Field(
        30.0,
        gt=0,
        description="a rider who undoes the seat belt mid-ride is asked to fasten it; if it "
        "stays open this long, the car pulls over at the next safe kerb",
    )
    app_no_show_wait_s: float = Field(
        600.0, gt=0, description="the wait for a real rider of the app (sim s), who may be slow"
    )
    boarding_s: tuple[float, float] = (20.0, 60.0)
    buckle_up_s: tuple[float, float] = Field(
        (3.0, 30.0), description="rider presses Start ride after this many seconds"
    )
    alighting_s: tuple[float, float] = (15.0, 40.0)
    no_show_probability: float = Field(0.02, ge=0, le=1)
    ev_yield_range_m: float = Field(
        150.0, gt=0, description="pull over when a siren approaches within this distance, m"
    )
    # California Vehicle Code 21806: on the immediate approach of an emergency vehicle every
    # driver, in either direction, pulls to the right-hand curb and stops (divided highways
    # aside). 11 m covers the far lane of a four-lane undivided street.
    ev_yield_lateral_m: float = Field(
        11.0, gt=0, description="how far to the side an approaching siren still counts, m"
    )
    assist_after_s: float = Field(
        120.0,
        gt=0,
        description="a robotaxi on its way that has stood still this long (not at a stop, "
        "not pulled over for an ambulance) asks remote assistance for context, sim s",
    )


class RunConfig(_Model):
    """Everything one `robotaxi simulate` run needs."""

    map: MapConfig = MapConfig()
    world: WorldConfig = WorldConfig()
    demand: DemandConfig = DemandConfig()
    dispatch: DispatchConfig = DispatchConfig()
    fleet: FleetConfig = FleetConfig()
    energy: EnergyConfig = EnergyConfig()
    start: str = Field("tue 08:00", description="day and time the service starts")
    hours: float = Field(1.0, gt=0, le=24, description="service duration, h")
    seed: int = 7

    @field_validator("start")
    @classmethod
    def _check_start(cls, value: str) -> str:
        parse_start(value)
        return value

    @property
    def start_day_hour(self) -> tuple[int, float]:
        return parse_start(self.start)


def parse_start(text: str) -> tuple[int, float]:
    """'tue 08:00' → (1, 8.0): day of week (0 = Monday) and hour of day."""
    parts = text.strip().lower().split()
    if len(parts) != 2 or parts[0][:3] not in DAYS:
        raise ConfigError(
            f"start {text!r} is not of the form 'DAY HH:MM' (e.g. 'tue 08:00'); "
            f"DAY is one of {', '.join(DAYS)}"
        )
    try:
        hh, mm = (int(p) for p in parts[1].split(":"))
    except ValueError:
        raise ConfigError(f"start time {parts[1]!r} is not HH:MM (e.g. 08:00)") from None
    if not (0 <= hh < 24 and 0 <= mm < 60):
        raise ConfigError(f"start time {parts[1]!r} is past 24 hours: use 00:00 to 23:59")
    return DAYS.index(parts[0][:3]), hh + mm / 60


def _with_city_settings(raw: dict[str, Any], settings_dir: Path) -> dict[str, Any]:
    map_part = raw.get("map") if isinstance(raw.get("map"), dict) else {}
    world_part = raw.get("world") if isinstance(raw.get("world"), dict) else {}
    city = str((map_part or {}).get("city", MapConfig().city))
    model = str((world_part or {}).get("traffic_model", WorldConfig().traffic_model))
    entry = city_settings(city, model, settings_dir)
    settings = (entry or {}).get("settings")
    return _merge_under(settings, raw) if isinstance(settings, dict) else raw


def read_yaml_mapping(
    path: Path | Traversable, what: str, error: type[RobotaxiError] = ConfigError
) -> dict[str, Any]:
    """The mapping a YAML file holds; `error` with one line naming the file as `what` (e.g.
    "config file") when it cannot be read, is not YAML or holds something else."""
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{what} {path} not found: check the path") from None
    except yaml.YAMLError as exc:
        raise error(f"{what} {path} is not valid YAML ({yaml_problem(exc)})") from None
    if not isinstance(loaded, dict):
        raise error(f"{what} {path} must hold a mapping at the top level")
    return loaded


def yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error in one line: what and where."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return problem


# Tracked per-city settings (`cities/<city>.yaml`, package data), written by `robotaxi
# calibrate --write-settings`: per traffic model, settings (e.g. world.background_scale) that
# `load_config` merges *under* the user's YAML and command line whenever that city is run,
# and the calibration table they came from.
CITY_SETTINGS_DIR = Path(__file__).with_name("cities")
_CITY_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def city_settings_file(city: str, settings_dir: Path = CITY_SETTINGS_DIR) -> Path | None:
    """The tracked settings file of a named city (None for a path or an unsafe name)."""
    return settings_dir / f"{city}.yaml" if _CITY_NAME.match(city) else None


def _read_city_file(city: str, settings_dir: Path) -> dict[str, Any]:
    path = city_settings_file(city, settings_dir)
    if path is None or not path.is_file():
        return {}
    return read_yaml_mapping(path, "city settings")


def city_settings(
    city: str,
    traffic_model: str | None = None,
    settings_dir: Path = CITY_SETTINGS_DIR,
) -> dict[str, Any] | None:
    """What the city's settings file holds for one traffic model: {"settings": {...},
    "calibration": {...}} (None when the city has no file or no entry). Without a model, or
    when that model was never calibrated, the entry of the model listed first in the file
    (the one calibrated by search) stands in; its `calibration.traffic_model` says which."""
    models = _read_city_file(city, settings_dir).get("traffic_models") or {}
    if not isinstance(models, dict) or not models:
        return None
    entry = models.get(traffic_model) if traffic_model else None
    if entry is None:
        entry = next(iter(models.values()))
    return copy.deepcopy(entry) if isinstance(entry, dict) else None


def write_city_settings(
    city: str,
    traffic_model: str,
    settings: dict[str, Any],
    calibration: dict[str, Any],
    settings_dir: Path = CITY_SETTINGS_DIR,
) -> Path:
    """Store one traffic model's settings and calibration table in the city's file (other
    models' entries are kept); written to a temporary name and renamed into place."""
    path = city_settings_file(city, settings_dir)
    if path is None:
        raise ConfigError(f"{city!r} is not a named city: only named cities keep settings")
    data = _read_city_file(city, settings_dir)
    models = data.get("traffic_models") if isinstance(data.get("traffic_models"), dict) else {}
    models = dict(models or {})
    models[traffic_model] = {"settings": settings, "calibration": calibration}
    header = (
        f"# {city}: settings merged under your YAML and command line whenever this city is run\n"
        "# (per traffic model). Written by `robotaxi calibrate --write-settings`; the\n"
        "# calibration table says how each value was found.\n"
    )
    text = header + yaml.safe_dump(
        {"city": city, "traffic_models": models}, sort_keys=False, allow_unicode=True
    )
    settings_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def _merge_under(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` with `base`'s keys filled in where `over` has none (nested mappings merged)."""
    merged = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge_under(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(
    path: Path | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    city_settings_dir: Path | None = CITY_SETTINGS_DIR,
) -> RunConfig:
    """Load a RunConfig from YAML (optional) and apply dotted overrides ({'fleet.size': 60}).

    The city's tracked settings (`city_settings`) for the chosen traffic model go under both:
    anything the YAML or an override sets wins. `city_settings_dir=None` leaves them out."""
    raw: dict[str, Any] = {}
    if path is not None:
        raw = read_yaml_mapping(Path(path), "config file")
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    if city_settings_dir is not None:
        raw = _with_city_settings(raw, city_settings_dir)
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"invalid setting {where}: {first['msg']}") from None
