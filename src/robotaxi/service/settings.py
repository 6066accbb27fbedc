"""The service's settings: one typed object, built by the CLI (nothing reads the environment)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from robotaxi.config import RunConfig, load_config
from robotaxi.fleet.fares import Tariff

MAX_FLEET = 2000
# the simulated city's settings `ServiceSettings` also takes by their short names (as the CLI
# and older callers give them), with where they live in the `RunConfig`
RUN_SHORTHANDS = {
    "city": "map.city",
    "map_data_dir": "map.data_dir",
    "map_cache_dir": "map.cache_dir",
    "fleet": "fleet.size",
    "no_show_wait_s": "fleet.app_no_show_wait_s",
    "hours": "hours",
    "seed": "seed",
    "start": "start",
    "ev_per_hour": "world.emergency_per_hour",
    "background_per_hour_per_km2": "world.background_vehicles_per_hour_per_km2",
}
# a live service runs a day with 30 cars unless told otherwise (`simulate`: 1 h, 20 cars)
SERVE_DEFAULTS = {"fleet.size": 30, "hours": 24.0}


def serve_run_config(**overrides: Any) -> RunConfig:
    """The simulated city of a live service: `RunConfig` with the service's defaults and the
    given dotted overrides (`{"fleet.size": 5}`); raises `ConfigError` naming a bad one."""
    return load_config(None, {**SERVE_DEFAULTS, **overrides})


class ServiceSettings(BaseModel):
    """Everything `robotaxi serve` needs: the simulated city (`run`, the same `RunConfig` as
    `robotaxi simulate`) and the service's own settings. Units in the names or descriptions.

    The city's most used settings may also be given by short name (`city`, `fleet`, `hours`,
    `seed`, `start`, `ev_per_hour`, `background_per_hour_per_km2`, `map_data_dir`,
    `map_cache_dir`, `no_show_wait_s`): they are applied to `run`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    run: RunConfig = Field(
        default_factory=serve_run_config, description="the simulated city, as for simulate"
    )
    autonomous: int = Field(
        0, ge=0, description="fleet cars driven by the autonomy stack (the rest by SUMO)"
    )
    autonomy_hearing: bool = Field(
        True, description="autonomous cars have roof microphones and the siren detector"
    )
    autonomy_city_blocks: bool = Field(
        True, description="city blocks hide what is behind them from autonomous cars' cameras"
    )
    speed: float = Field(4.0, gt=0, le=1000, description="simulation seconds per wall second")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    data_dir: Path = Field(
        Path("runs/serve"), description="the service's own files: database, SUMO work files"
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default sqlite:///<data_dir>/robotaxi.sqlite"
    )
    operator_token: SecretStr | None = Field(
        None, description="bearer token of the operations view; random per start when unset"
    )
    background_traffic: bool = Field(True, description="SUMO background cars and ambulances")
    riders_per_hour: float = Field(
        6.0, ge=0, description="synthetic riders from the demand model sharing the fleet"
    )
    tick_in_background: bool = Field(
        True, description="step the simulation in a thread; False leaves stepping to the caller"
    )
    rides_per_window: int = Field(5, ge=1, description="ride creations allowed per rider ...")
    rate_window_s: float = Field(60.0, gt=0, description="... within this many wall seconds")
    signups_per_window: int = Field(
        10, ge=1, description="sign-ups allowed per client address within rate_window_s"
    )
    tickets_per_window: int = Field(
        5, ge=1, description="new support tickets allowed per rider within rate_window_s"
    )
    find_car_per_window: int = Field(
        3, ge=1, description="'find my car' honks allowed per ride within rate_window_s"
    )
    max_body_bytes: int = Field(16_384, ge=256, description="larger request bodies get 413")
    min_trip_m: float = Field(
        100.0, ge=0, description="drop-off must be at least this far (straight line) from pick-up"
    )
    max_walk_m: float = Field(
        250.0, gt=0, description="a point counts as in the service area within this of a curb"
    )
    rider_patience_s: float = Field(
        1800.0, gt=0, description="an app ride not picked up within this (sim s) is cancelled"
    )
    espeak_ng: str | None = Field(
        None,
        description="espeak-ng executable for spoken greetings; default: found on PATH; "
        "'' turns them off (the in-car page then uses the browser's voice)",
    )
    tariff: Tariff = Field(
        default_factory=Tariff,
        description="what riders pay, integer cents: base, per mile, per minute, minimum, "
        "cancellation fee after a free wait; default San Francisco's taxi meter rate",
    )
    fare_slow_factor: float = Field(
        1.5,
        ge=1.0,
        le=5.0,
        description="a quote's fare range: the planned ride time up to this many times it",
    )
    stream_max_s: float = Field(
        300.0, gt=0, description="a live stream ends after this (wall s); clients reconnect"
    )

    @model_validator(mode="before")
    @classmethod
    def _run_shorthands(cls, data: Any) -> Any:
        """Fold the city's settings given by short name into `run`."""
        if not isinstance(data, dict) or not RUN_SHORTHANDS.keys() & data.keys():
            return data
        data = dict(data)
        overrides = {
            RUN_SHORTHANDS[key]: data.pop(key)
            for key in list(data)
            if key in RUN_SHORTHANDS and data[key] is not None
        }
        for key in RUN_SHORTHANDS.keys() & data.keys():
            data.pop(key)  # given as None: the default
        base = data.get("run")
        if isinstance(base, RunConfig):
            raw = base.model_dump()
            for dotted, value in overrides.items():
                node = raw
                *parents, leaf = dotted.split(".")
                for part in parents:
                    node = node[part]
                node[leaf] = value
            data["run"] = RunConfig.model_validate(raw)
        else:
            data["run"] = serve_run_config(**overrides)
        return data

    @model_validator(mode="after")
    def _autonomous_within_fleet(self) -> ServiceSettings:
        fleet = self.run.fleet.size
        if fleet > MAX_FLEET:
            raise ValueError(f"--fleet {fleet} is more than the service runs ({MAX_FLEET})")
        if self.autonomous > fleet:
            raise ValueError(f"--autonomous {self.autonomous} is more cars than --fleet {fleet}")
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'robotaxi.sqlite').resolve()}"

    def run_config(self) -> RunConfig:
        """The simulation's configuration, validated like any other run's."""
        return self.run
