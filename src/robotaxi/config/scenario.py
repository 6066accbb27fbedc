"""Driving scenarios: declarative YAML files, validated here.

The built-in suite ships inside the package (`robotaxi/scenarios/*.yaml`, read through
`importlib.resources`, so an installed wheel finds it from any directory); any other file is
given by its path.

A scenario puts the autonomous car on a route of a city, adds scripted road users (cars,
vans, buses, trucks and cyclists that SUMO drives, ambulances with sirens, pedestrians
crossing), lanes closed by road works, solid centre lines, a remote-assistance operator,
and optional background traffic, and states what counts as passing. Lengths in m, times in
s, speeds in m/s.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from robotaxi.config.models import read_yaml_mapping
from robotaxi.core.errors import ScenarioError


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EgoSpec(_Model):
    route: tuple[str, ...] = Field(min_length=1, description="edges the car drives, in order")
    start_pos_m: float = Field(0.0, ge=0, description="start, m along the first edge")
    start_lane: int = Field(0, ge=0, description="lane index on the first edge, 0 = rightmost")
    start_speed_mps: float = Field(0.0, ge=0)
    start_at_curb: bool = Field(False, description="start parked at the kerb (pull-out)")
    stop_at_m: float | None = Field(None, description="curbside stop, m along the route")
    stop_dwell_s: float = Field(10.0, ge=0, description="wait at the curbside stop, s")
    end_lane: int | None = None


# road users SUMO drives for a scenario (their vTypes: `robotaxi.sim.drive.SCENARIO_VTYPES`)
VehicleType = Literal["car", "ambulance", "bicycle", "van", "bus", "truck"]


class VehicleSpec(_Model):
    id: str
    type: VehicleType = "car"
    route: tuple[str, ...] = Field(min_length=1)
    depart_s: float = Field(0.0, ge=0)
    pos_m: float = Field(0.0, ge=0)
    lane: int = Field(0, ge=0)
    speed_mps: float = Field(0.0, ge=0)
    max_speed_mps: float | None = Field(None, gt=0, description="cap, e.g. a slow leader")
    stop_at_m: float | None = Field(None, description="SUMO stops it here (m on its last edge)")
    stop_s: float = Field(0.0, ge=0, description="for this long")


class PedestrianSpec(_Model):
    id: str
    cross_at_m: float = Field(ge=0, description="where it crosses, m along the ego's route")
    start_s: float = Field(ge=0, description="when it steps off the kerb")
    speed_mps: float = Field(1.3, gt=0)
    from_side: Literal["right", "left"] = "right"
    start_offset_m: float | None = Field(
        None,
        description="where they step out from, m left (+) or right (−) of the route's centre "
        "line, e.g. in front of a parked van (default: the pavement on `from_side`)",
    )


class LaneClosureSpec(_Model):
    """A stretch of one lane closed by road works: a fenced works area that fills the lane
    (what the cameras see, an obstacle that never moves). m along `edge`'s lane `lane`."""

    edge: str
    lane: int = Field(0, ge=0, description="lane index, 0 = rightmost")
    from_m: float = Field(ge=0, description="the closure starts here, m along the lane")
    to_m: float = Field(gt=0, description="… and ends here, m")
    width_m: float | None = Field(
        None,
        gt=0,
        description="the works take this much of the lane, from its right edge (a trench by "
        "the kerb and its cones), m; None: the whole lane",
    )

    @model_validator(mode="after")
    def _ordered(self) -> LaneClosureSpec:
        if self.to_m <= self.from_m + 1.0:
            raise ValueError(f"to_m {self.to_m} must lie at least 1 m past from_m {self.from_m}")
        return self


class OperatorSpec(_Model):
    """A remote-assistance operator for the scenario's car: the car asks for help once it
    has stood still `assist_after_s` (not at a stop), and the operator answers `answer`
    `answer_after_s` after the request opens. The car checks the answer and acts on it with
    its own safety checks (never remote driving)."""

    assist_after_s: float = Field(
        20.0, gt=0, description="the car asks for help after standing still this long, s"
    )
    answer: Literal["pass_opposite", "lane_closed", "wait"] = Field(
        "pass_opposite",
        description="'pass_opposite': you may pass the blocker using the opposite lane when "
        "clear (across a solid centre line); 'lane_closed': the lane you are in is closed "
        "ahead, use another lane of this street (the car moves over in a gap and keeps to "
        "that lane to the street's end); 'wait': it will clear",
    )
    answer_after_s: float = Field(
        10.0, ge=0, description="the operator answers this long after the request opens, s"
    )


class PassSpec(_Model):
    min_progress_m: float = Field(30.0, ge=0, description="at least this far along the route")
    ev_yield: bool = Field(False, description="must pull over for the ambulance and resume")
    reach_stop: bool = Field(False, description="must stop at the curbside stop")
    assistance_resolved: bool = Field(
        False,
        description="must ask for help, take the operator's answer and drive on (the "
        "request closes), never having crossed a solid centre line before the answer",
    )
    min_score: float = Field(0.5, ge=0, le=1)


# everyday sounds a scenario can place in the street (`sim.sensors.sound_synth` makes them)
SoundKind = Literal[
    "music", "chord", "car_stereo", "birdsong", "crowd", "applause", "keyboard", "beeper", "squeal"
]


class SoundSpec(_Model):
    """A siren-free sound in the scene, heard by the roof microphones (not by the cameras):
    music from a car alongside, birds in a park, a crowd at a corner. Placed either fixed in
    the world (`xy_m`, the network's metric frame) or riding along with the car (`offset_m`,
    the car's frame: x forward, y left). Spreads as 1/r from its level at 1 m."""

    kind: SoundKind
    xy_m: tuple[float, float] | None = Field(None, description="fixed position in the world, m")
    offset_m: tuple[float, float] | None = Field(
        None, description="position relative to the car (x forward, y left), moving with it, m"
    )
    level_db_spl_at_1m: float = Field(85.0, ge=0, le=130, description="level 1 m away, dB SPL")
    start_s: float = Field(0.0, ge=0, description="it starts sounding here, s")
    duration_s: float | None = Field(None, gt=0, description="for this long (None: to the end)")
    seed: int = Field(0, description="which take of the sound (deterministic per seed)")

    @model_validator(mode="after")
    def _placed_once(self) -> SoundSpec:
        if (self.xy_m is None) == (self.offset_m is None):
            raise ValueError("give exactly one of xy_m (fixed) and offset_m (with the car)")
        return self


class SensorsSpec(_Model):
    """What the car senses with beyond its cameras, and what hides things from them.

    On by default, as on a real car: its microphones are always listening and buildings
    always hide what is behind them. A scenario turns either off explicitly (e.g. to measure
    what the cameras alone would do)."""

    microphones: bool = Field(
        True, description="roof microphones + siren detector feed the EV-yield decision"
    )
    background_db_spl: float = Field(
        68.0, ge=0, le=120, description="street background level at the roof, dB SPL"
    )
    audio_range_m: float = Field(
        600.0, gt=0, description="sirens farther than this are not rendered (inaudible), m"
    )
    city_blocks: bool = Field(
        True, description="the blocks between streets hide what is behind them from cameras"
    )
    block_sound_loss_db: float = Field(
        6.0, ge=0, description="extra loss of a siren heard through a block (diffraction), dB"
    )
    sounds: tuple[SoundSpec, ...] = Field(
        (), description="siren-free sounds in the scene beyond the street background"
    )


class ScenarioSpec(_Model):
    name: str
    description: str = ""
    city: str = "grid"
    seed: int = 1
    duration_s: float = Field(60.0, gt=0, le=600)
    dt_s: float = Field(0.1, gt=0, le=0.5)
    background_per_hour_per_km2: float = Field(0.0, ge=0)
    ego: EgoSpec
    vehicles: tuple[VehicleSpec, ...] = ()
    pedestrians: tuple[PedestrianSpec, ...] = ()
    lane_closures: tuple[LaneClosureSpec, ...] = ()
    solid_centre_lines: tuple[str, ...] = Field(
        (),
        description="edges whose centre line to the other direction is solid: the car "
        "crosses it to pass a blocker only with an operator's leave",
    )
    operator: OperatorSpec | None = Field(
        None, description="a remote-assistance operator who answers the car's requests"
    )
    sensors: SensorsSpec = SensorsSpec()
    passing: PassSpec = Field(PassSpec(), alias="pass")


def builtin_scenarios() -> Traversable:
    """The folder of the scenarios shipped with the package (package data)."""
    return files("robotaxi") / "scenarios"


def scenario_names(directory: Traversable | None = None) -> list[str]:
    """Names of the scenarios in `directory` (default: the built-in suite), sorted."""
    folder = builtin_scenarios() if directory is None else directory
    return sorted(
        entry.name.removesuffix(".yaml")
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml") and entry.is_file()
    )


def load_scenario(name_or_path: str, directory: Traversable | None = None) -> ScenarioSpec:
    """A scenario by name (a built-in one, or one in `directory`) or by path to a YAML file."""
    given = Path(name_or_path)
    path: Traversable = given
    if not given.suffix:
        folder = builtin_scenarios() if directory is None else directory
        path = folder / f"{name_or_path}.yaml"
        if not path.is_file():
            known = ", ".join(scenario_names(folder)) or "none"
            raise ScenarioError(f"unknown scenario {name_or_path!r}: known ones are {known}")
    elif not path.is_file():
        raise ScenarioError(f"scenario file {path} not found: check the path")
    raw = read_yaml_mapping(path, "scenario file", ScenarioError)
    try:
        return ScenarioSpec.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ScenarioError(f"scenario {path.name}: field {where}: {first['msg']}") from None
