"""The grid: cells (one `simulate` run each) from command-line lists or a YAML sweep file.

A cell is a set of `simulate` settings: dotted `RunConfig` keys (`fleet.size`,
`dispatch.batch_interval_s`, …) plus the run option `background`. Its id is a hash of those
settings, so the same run asked for twice, in any order or spelling, is one cell.
Where files live on this machine (`map.data_dir`, `map.cache_dir`) is not part of a cell:
the sweep hands those to every worker as absolute paths.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from robotaxi.sweep.errors import GridError

# the names a user writes (CLI option, YAML key, results column) -> RunConfig's dotted key
FRIENDLY_KEYS: dict[str, str] = {
    "city": "map.city",
    "fleet": "fleet.size",
    "market_share": "demand.market_share",
    "requests_per_hour": "demand.requests_per_hour",
    "policy": "dispatch.policy",
    "start": "start",
    "hours": "hours",
    "seed": "seed",
    "ev_per_hour": "world.emergency_per_hour",
    "traffic": "world.background_vehicles_per_hour_per_km2",
    "traffic_model": "world.traffic_model",
}
COLUMN_OF = {dotted: name for name, dotted in FRIENDLY_KEYS.items()}
_INT_KEYS = {"fleet.size", "seed"}
_FLOAT_KEYS = {
    "demand.market_share", "demand.requests_per_hour", "hours",
    "world.emergency_per_hour", "world.background_vehicles_per_hour_per_km2",
}  # fmt: skip
# simulate's --no-background: a run option, not a RunConfig setting
RUN_OPTIONS = ("background",)
# where things are on one machine: never part of a cell (or its hash)
ENVIRONMENT_KEYS = ("map.data_dir", "map.cache_dir")
# keys of a YAML sweep file that are not settings
SWEEP_FILE_KEYS = ("seeds", "seed_list", "cells", "settings", "target", "fleet_search")


@dataclass(frozen=True)
class Cell:
    """One `simulate` run: its settings, sorted by key (dotted RunConfig keys, `background`)."""

    settings: tuple[tuple[str, Any], ...]

    @property
    def cell_id(self) -> str:
        """12 hex digits of the SHA-256 of the canonical JSON of the settings."""
        canonical = json.dumps(dict(self.settings), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.settings)

    def config_overrides(self) -> dict[str, Any]:
        """The dotted RunConfig overrides (the run options left out)."""
        return {k: v for k, v in self.settings if k not in RUN_OPTIONS}

    @property
    def background(self) -> bool:
        return bool(self.as_dict().get("background", True))

    def columns(self) -> dict[str, Any]:
        """The settings under their results-table names (`fleet`, not `fleet.size`)."""
        return {COLUMN_OF.get(k, k): v for k, v in self.settings}

    def label(self, keys: Iterable[str] | None = None) -> str:
        """`fleet=20 seed=1`: the given results-table columns (all when None)."""
        columns = self.columns()
        shown = list(columns) if keys is None else [k for k in keys if k in columns]
        return " ".join(f"{k}={columns[k]}" for k in shown)

    @staticmethod
    def of(settings: Mapping[str, Any]) -> Cell:
        return Cell(tuple(sorted(settings.items())))


@dataclass(frozen=True)
class SweepSpec:
    """The cells of a sweep, in run order, and the columns that vary between them."""

    cells: tuple[Cell, ...]
    varying: tuple[str, ...] = ()
    target: str | None = None
    fleet_search: tuple[int, int] | None = None
    fixed: dict[str, Any] = field(default_factory=dict)  # columns every cell shares


def dotted_key(name: str) -> str:
    """`fleet` -> `fleet.size`; `market-share` -> `demand.market_share`; dotted keys as given."""
    name = name.strip()
    if name in RUN_OPTIONS or "." in name:
        return name
    return FRIENDLY_KEYS.get(name.replace("-", "_"), name)


def coerce(key: str, value: Any) -> Any:
    """A value as its setting's type, so `--hours 1` and `hours: 1.0` make the same cell."""
    if isinstance(value, str) and (key in _INT_KEYS or key in _FLOAT_KEYS):
        try:
            value = float(value)
        except ValueError:
            raise GridError(
                f"{COLUMN_OF.get(key, key)}: {value!r} is not a number; give numbers separated "
                "by commas, e.g. 20,40,60"
            ) from None
    if key in _INT_KEYS:
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
            raise GridError(f"{COLUMN_OF.get(key, key)}: {value!r} is not a whole number")
        return int(value)
    if key in _FLOAT_KEYS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise GridError(f"{COLUMN_OF.get(key, key)}: {value!r} is not a number")
        return float(value)
    if key == "background" and not isinstance(value, bool):
        raise GridError(f"background: {value!r} is not true or false")
    return value


def split_list(text: str, what: str) -> list[str]:
    """`"20,40, 60"` -> ["20", "40", "60"]; an empty item is an error, not a silent skip."""
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or any(not item for item in items):
        raise GridError(f"{what}: {text!r} has an empty value; separate values with commas")
    return items


def parse_setting_values(text: str, what: str) -> list[Any]:
    """`--set KEY=V1,V2` values: each read as YAML (so 0.5 is a number and true a bool)."""
    values = []
    for item in split_list(text, what):
        try:
            values.append(yaml.safe_load(item))
        except yaml.YAMLError:
            values.append(item)
    return values


def seeds_of(count: int | None, listed: Sequence[Any] | None) -> list[int]:
    """`--seeds N` is 0 … N−1, `--seed-list` explicit seeds; neither: seed 0."""
    if count is not None and listed is not None:
        raise GridError("give --seeds N or --seed-list, not both")
    if listed is not None:
        if not listed:
            raise GridError("--seed-list is empty: give seeds separated by commas, e.g. 0,1,2")
        return [coerce("seed", s) for s in listed]
    if count is not None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise GridError(f"seeds: {count!r} is not a positive whole number of seeds")
        return list(range(count))
    return [0]


def read_sweep_file(path: Path) -> dict[str, Any]:
    """A YAML sweep file as a mapping (settings, lists of values, seeds, cells, target)."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise GridError(f"sweep file {path} does not exist: check the --config path") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise GridError(f"sweep file {path} is not valid YAML{at}: fix it and rerun") from None
    if raw is None:
        raise GridError(f"sweep file {path} is empty: give settings and lists of values")
    if not isinstance(raw, dict):
        raise GridError(f"sweep file {path} must be a mapping of settings to values or lists")
    return raw


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def build_spec(
    file: Mapping[str, Any] | None = None,
    axes: Mapping[str, Sequence[Any]] | None = None,
    *,
    seeds: int | None = None,
    seed_list: Sequence[Any] | None = None,
    target: str | None = None,
    fleet_search: str | None = None,
) -> SweepSpec:
    """The cells of a sweep: the file's settings, overridden by the command line's `axes`.

    Every setting takes one value or a list of values; the grid is their cross product, times
    the seeds. A file's `cells:` list names cells explicitly instead (each over the rest of
    the settings, times the seeds). Raises `GridError` on an empty or malformed grid."""
    file = dict(file or {})
    values: dict[str, list[Any]] = {}

    def put(name: str, value: Any) -> None:
        key = dotted_key(name)
        if key in ENVIRONMENT_KEYS:
            raise GridError(
                f"{name} says where files are, not what to run: give it as --data-dir or "
                "--map-cache, not as a grid value"
            )
        listed = list(value) if isinstance(value, list | tuple) else [value]
        if not listed:
            raise GridError(f"{name} has no values: give at least one")
        values[key] = [coerce(key, v) for v in listed]

    for name, value in _flatten(file.pop("settings", None) or {}).items():
        put(name, value)
    explicit = file.pop("cells", None)
    file_seeds, file_seed_list = file.pop("seeds", None), file.pop("seed_list", None)
    target = target if target is not None else file.pop("target", None)
    fleet_search = fleet_search if fleet_search is not None else file.pop("fleet_search", None)
    file.pop("target", None)
    file.pop("fleet_search", None)
    for name, value in file.items():
        if isinstance(value, Mapping):
            raise GridError(
                f"{name}: a mapping is not a value; put nested settings under `settings:`"
            )
        put(str(name), value)
    for name, value in (axes or {}).items():
        put(name, value)
    if seeds is None and seed_list is None:
        seeds, seed_list = file_seeds, file_seed_list
    seed_values = seeds_of(seeds, seed_list) if "seed" not in values else values.pop("seed")

    cells: list[Cell] = []
    if explicit is not None:
        if not isinstance(explicit, list) or not explicit:
            raise GridError("cells: give a non-empty list of mappings, one per cell")
        fixed = {k: v[0] for k, v in values.items() if len(v) == 1}
        listed = sorted(k for k, v in values.items() if len(v) > 1)
        if listed:
            raise GridError(
                f"with an explicit cells: list, {', '.join(listed)} must have one value each "
                "(or go into the cells)"
            )
        for entry in explicit:
            if not isinstance(entry, Mapping) or not entry:
                raise GridError(f"cells: {entry!r} is not a mapping of settings to values")
            settings = dict(fixed)
            for name, value in _flatten(entry).items():
                key = dotted_key(name)
                settings[key] = coerce(key, value)
            own_seed = "seed" in settings
            for seed in [settings["seed"]] if own_seed else seed_values:
                cells.append(Cell.of({**settings, "seed": seed}))
    else:
        keys = list(values)
        for combo in itertools.product(*(values[k] for k in keys)):
            for seed in seed_values:
                cells.append(Cell.of({**dict(zip(keys, combo, strict=True)), "seed": seed}))
    unique = list({cell.cell_id: cell for cell in cells}.values())
    if not unique:
        raise GridError("the grid has no cells: give values, e.g. --fleet 20,40 --seeds 2")
    columns = [c.columns() for c in unique]
    names = list(dict.fromkeys(k for c in columns for k in c))
    varying = tuple(n for n in names if len({json.dumps(c.get(n)) for c in columns}) > 1)
    fixed_columns = {n: columns[0].get(n) for n in names if n not in varying}
    return SweepSpec(
        cells=tuple(unique), varying=varying, target=target,
        fleet_search=parse_fleet_search(fleet_search) if fleet_search is not None else None,
        fixed=fixed_columns,
    )  # fmt: skip


def parse_fleet_search(text: Any) -> tuple[int, int]:
    """`"10:200"` -> (10, 200)."""
    parts = str(text).split(":")
    try:
        lo, hi = (int(p) for p in parts)
    except ValueError:
        raise GridError(
            f"--fleet-search {text!r}: give the range as LO:HI whole numbers, e.g. 10:200"
        ) from None
    if not 1 <= lo < hi:
        raise GridError(f"--fleet-search {text!r}: need 1 <= LO < HI")
    return lo, hi
