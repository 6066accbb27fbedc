"""The car's sensor hardware and the simulated scene around it: the camera rig and its error
model, the roof microphone array and its acoustic scene (units in the field names).

Here, not beside the simulation, because the brain needs the array's geometry too (the
siren detector's bearing), and config is what every layer may read.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from robotaxi.core.types import FloatArray

SAMPLE_RATE_HZ = 16_000


class CameraSpec(BaseModel):
    """One camera: where it looks (relative to the car's heading) and how far it sees."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    camera_id: str
    yaw_offset_rad: float = Field(
        default=0.0, description="optical axis relative to the heading, rad"
    )
    fov_rad: float = Field(
        default=2 * math.pi, gt=0, le=2 * math.pi, description="field of view, rad"
    )
    min_range_m: float = Field(default=0.0, ge=0, description="nearer objects are not seen, m")
    max_range_m: float = Field(default=100.0, gt=0, description="farther objects are not seen, m")
    position_std_m: float = Field(default=0.15, ge=0, description="position noise at zero range, m")
    position_std_per_m: float = Field(
        default=0.004, ge=0, description="added position noise per metre of range, m/m"
    )


def _default_cameras() -> tuple[CameraSpec, ...]:
    return (
        CameraSpec(camera_id="roof_360", fov_rad=2 * math.pi, min_range_m=3.5, max_range_m=120.0),
        CameraSpec(
            camera_id="side_left",
            yaw_offset_rad=math.pi / 2,
            fov_rad=math.radians(170.0),
            max_range_m=40.0,
            position_std_m=0.1,
            position_std_per_m=0.006,
        ),
        CameraSpec(
            camera_id="side_right",
            yaw_offset_rad=-math.pi / 2,
            fov_rad=math.radians(170.0),
            max_range_m=40.0,
            position_std_m=0.1,
            position_std_per_m=0.006,
        ),
    )


class CameraConfig(BaseModel):
    """The camera rig and its error model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cameras: tuple[CameraSpec, ...] = Field(default_factory=_default_cameras)
    heading_std_rad: float = Field(default=0.05, ge=0, description="heading noise, rad")
    speed_std_mps: float = Field(default=0.3, ge=0, description="speed noise, m/s")
    miss_probability: float = Field(
        default=0.03, ge=0, le=1, description="chance a visible object is not reported in a frame"
    )
    false_positives_per_frame: float = Field(
        default=0.02, ge=0, description="mean number of phantom objects per camera per frame"
    )
    min_visible_fraction: float = Field(
        default=0.4,
        gt=0,
        le=1,
        description="share of an object's centre+corners that must be in sight",
    )
    occlusion: bool = Field(
        default=True, description="hide objects behind other footprints / polygons"
    )


class MicArrayConfig(BaseModel):
    """The roof array and the acoustic scene around it. Units in the field names."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mic_positions_m: tuple[tuple[float, float, float], ...] = Field(
        ((0.3, 0.3, 1.6), (0.3, -0.3, 1.6), (-0.3, 0.3, 1.6), (-0.3, -0.3, 1.6)),
        description="microphones in the vehicle frame (x forward, y left, z up), m: a 0.6 m square"
        " at the roof centre",
    )
    sample_rate_hz: int = Field(SAMPLE_RATE_HZ, description="output sample rate, Hz")
    speed_of_sound_mps: float = Field(343.0, gt=300, lt=360)
    source_height_m: float = Field(1.8, description="siren speaker height above the road, m")
    siren_level_db_spl_at_1m: float = Field(
        118.0, description="siren level 1 m from the speaker (off-axis, after grille), dB SPL"
    )
    air_absorption_db_per_km: float = Field(5.0, ge=0, description="≈ at 1 kHz, 20 °C, 60 % RH")
    ground_reflection: float = Field(
        0.7, ge=0, le=1, description="pressure reflection coefficient of the road (image source)"
    )
    background_level_db_spl: float = Field(
        68.0, description="street background level at the roof (busy SF street ≈ 65–72), dB SPL"
    )
    recorded_share: float = Field(
        0.35, ge=0, le=1, description="share of background power from the recorded clips"
    )
    event_rate_per_min: float = Field(
        2.0, ge=0, description="horns, beepers, squeal, car music: mean events per minute"
    )
    mic_self_noise_db_spl: float = Field(30.0, description="independent noise per microphone")
    negatives_dir: Path | None = Field(
        Path("../shared/data/audio/negatives"),
        description="recorded siren-free street clips; None or missing → synthetic only",
    )
    negative_files: tuple[str, ...] | None = Field(
        None, description="only these file names of negatives_dir (None: all .wav files)"
    )
    seed: int = 0

    @property
    def n_mics(self) -> int:
        return len(self.mic_positions_m)

    def mic_xy(self) -> FloatArray:
        """Microphone positions, n_mics×3, vehicle frame (m)."""
        return np.asarray(self.mic_positions_m, dtype=np.float64)
