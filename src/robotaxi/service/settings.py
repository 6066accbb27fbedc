"""The service's settings: one typed object, built by the CLI (nothing reads the environment)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from robotaxi.config import RunConfig, load_config


class ServiceSettings(BaseModel):
    """Everything `robotaxi serve` needs. Units in the field names or descriptions."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    city: str = Field("grid", description="grid (built in), sf-mission, sf, or a network file")
    fleet: int = Field(30, ge=1, le=2000, description="number of robotaxis")
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
    hours: float = Field(24.0, gt=0, le=24, description="service window of simulated time, h")
    seed: int = 7
    start: str = Field("tue 08:00", description="day and time the simulated service starts")
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
    map_data_dir: Path = Field(Path("../shared/data"), description="third-party data (SF maps)")
    map_cache_dir: Path = Field(Path(".cache/maps"), description="where built networks are cached")
    background_traffic: bool = Field(True, description="SUMO background cars and ambulances")
    ev_per_hour: float = Field(3.0, ge=0, description="ambulances crossing the city per hour")
    background_per_hour_per_km2: float | None = Field(
        None, ge=0, description="background car trips per hour per km²; default: the world's"
    )
    riders_per_hour: float = Field(
        6.0, ge=0, description="synthetic riders from the demand model sharing the fleet"
    )
    tick_in_background: bool = Field(
        True, description="step the simulation in a thread; False leaves stepping to the caller"
    )
    rides_per_window: int = Field(5, ge=1, description="ride creations allowed per rider ...")
    rate_window_s: float = Field(60.0, gt=0, description="... within this many wall seconds")
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
    no_show_wait_s: float = Field(
        600.0, gt=0, description="the car waits this long (sim s) for an app rider to get in"
    )
    espeak_ng: str | None = Field(
        None,
        description="espeak-ng executable for spoken greetings; default: found on PATH; "
        "'' turns them off (the in-car page then uses the browser's voice)",
    )
    stream_max_s: float = Field(
        300.0, gt=0, description="a live stream ends after this (wall s); clients reconnect"
    )

    @model_validator(mode="after")
    def _autonomous_within_fleet(self) -> ServiceSettings:
        if self.autonomous > self.fleet:
            raise ValueError(
                f"--autonomous {self.autonomous} is more cars than --fleet {self.fleet}"
            )
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'robotaxi.sqlite').resolve()}"

    def run_config(self) -> RunConfig:
        """The simulation's configuration, validated like any other run's."""
        overrides: dict[str, Any] = {
            "map.city": self.city,
            "map.data_dir": str(self.map_data_dir),
            "map.cache_dir": str(self.map_cache_dir),
            "fleet.size": self.fleet,
            "fleet.app_no_show_wait_s": self.no_show_wait_s,
            "hours": self.hours,
            "seed": self.seed,
            "start": self.start,
            "world.emergency_per_hour": self.ev_per_hour,
        }
        if self.background_per_hour_per_km2 is not None:
            overrides["world.background_vehicles_per_hour_per_km2"] = (
                self.background_per_hour_per_km2
            )
        return load_config(None, overrides)
