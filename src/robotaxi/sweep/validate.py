"""Checking every cell against `simulate`'s settings before anything runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from robotaxi.config import RunConfig, load_config
from robotaxi.core.errors import ConfigError
from robotaxi.sweep.errors import GridError
from robotaxi.sweep.spec import FRIENDLY_KEYS, Cell

# the parameters every row names, set or not (their resolved values)
ROW_PARAMETERS = (
    "city", "fleet", "policy", "market_share", "requests_per_hour", "start", "hours", "seed",
)  # fmt: skip


def check_key(key: str) -> None:
    """Raise `GridError` unless `key` is a dotted RunConfig setting (`dispatch.rebalance`)."""
    model: type[BaseModel] = RunConfig
    parts = key.split(".")
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            raise GridError(
                f"unknown setting {key!r}: simulate has no {'.'.join(parts[: i + 1])}; use "
                f"{', '.join(FRIENDLY_KEYS)} or a dotted setting such as dispatch.batch_interval_s"
            )
        annotation = field.annotation
        is_model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        if i < len(parts) - 1:
            if not is_model:
                raise GridError(f"unknown setting {key!r}: {'.'.join(parts[: i + 1])} has no parts")
            model = annotation  # type: ignore[assignment]
        elif is_model:
            raise GridError(f"setting {key!r} is a group: name one of its settings, e.g. {key}.…")


def resolve_cell(cell: Cell, environment: Mapping[str, Any]) -> RunConfig:
    """The cell's full configuration, as `simulate` would build it; `GridError` when invalid."""
    for key in cell.config_overrides():
        check_key(key)
    try:
        config = load_config(None, {**cell.config_overrides(), **environment})
    except ConfigError as exc:
        raise GridError(f"cell {cell.label()}: {exc}") from None
    return config


def row_parameters(config: RunConfig) -> dict[str, Any]:
    """The resolved values of the parameters every row names."""
    return {
        "city": config.map.city, "fleet": config.fleet.size, "policy": config.dispatch.policy,
        "market_share": config.demand.market_share,
        "requests_per_hour": config.demand.requests_per_hour,
        "start": config.start, "hours": config.hours, "seed": config.seed,
    }  # fmt: skip
