"""One validated pydantic model per component, a root model, YAML loading with overrides."""

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
    "DemandConfig",
    "DispatchConfig",
    "FleetConfig",
    "MapConfig",
    "RunConfig",
    "WorldConfig",
    "load_config",
    "parse_start",
]
