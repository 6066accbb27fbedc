"""lat/lon ↔ map metres. SUMO's x/y are a projected CRS (UTM 10N here) plus a net offset."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pyproj import CRS, Transformer

from robotaxi.core.types import FloatArray


@dataclass(frozen=True)
class Projection:
    """x_map = x_crs + offset_x (and likewise y); the CRS is a pyproj definition string."""

    crs: str
    offset: tuple[float, float]
    _forward: Transformer = field(init=False, repr=False, compare=False)
    _inverse: Transformer = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        crs = CRS.from_user_input(self.crs)
        object.__setattr__(self, "_forward", Transformer.from_crs("EPSG:4326", crs, always_xy=True))
        object.__setattr__(self, "_inverse", Transformer.from_crs(crs, "EPSG:4326", always_xy=True))

    def lonlat_to_xy(self, lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
        x, y = self._forward.transform(np.asarray(lon, float), np.asarray(lat, float))
        return np.asarray(x) + self.offset[0], np.asarray(y) + self.offset[1]

    def xy_to_lonlat(self, x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        lon, lat = self._inverse.transform(
            np.asarray(x, float) - self.offset[0], np.asarray(y, float) - self.offset[1]
        )
        return np.asarray(lon), np.asarray(lat)
