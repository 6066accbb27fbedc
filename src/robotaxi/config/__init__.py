"""One validated pydantic model per component, a root model, YAML loading with overrides."""

from robotaxi.config.charging import ChargingConfig, DepotConfig, EnergyConfig
from robotaxi.config.models import (
    CITY_SETTINGS_DIR,
    DemandConfig,
    DispatchConfig,
    FleetConfig,
    MapConfig,
    RunConfig,
    WorldConfig,
    city_settings,
    load_config,
    parse_start,
    write_city_settings,
)

__all__ = [
    "CITY_SETTINGS_DIR",
    "ChargingConfig",
    "DemandConfig",
    "DepotConfig",
    "DispatchConfig",
    "EnergyConfig",
    "FleetConfig",
    "MapConfig",
    "RunConfig",
    "WorldConfig",
    "city_settings",
    "load_config",
    "parse_start",
    "write_city_settings",
]
