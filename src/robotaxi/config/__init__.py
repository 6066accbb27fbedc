"""One validated pydantic model per component, a root model, YAML loading with overrides."""

from robotaxi.config.charging import ChargingConfig, DepotConfig, EnergyConfig
from robotaxi.config.models import (
    DemandConfig,
    DispatchConfig,
    FleetConfig,
    MapConfig,
    RunConfig,
    WorldConfig,
    load_config,
    parse_start,
)

__all__ = [
    "ChargingConfig",
    "DemandConfig",
    "DepotConfig",
    "DispatchConfig",
    "EnergyConfig",
    "FleetConfig",
    "MapConfig",
    "RunConfig",
    "WorldConfig",
    "load_config",
    "parse_start",
]
