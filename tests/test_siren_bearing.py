"""GCC-PHAT bearing of a synthetic siren at known angles, and the simulator's acoustics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robotaxi.autonomy.perception.siren_features import (
    TONAL_DB,
    BearingEstimator,
    StreamingFrontEnd,
)
from robotaxi.core.types import Pose
from robotaxi.sim.sensors.microphones import (
    EmergencySource,
    MicArrayConfig,
    SirenPattern,
    SirenVoice,
    StreetBackground,
    render_sources,
    voice_for,
)

FS = 16_000
CONFIG = MicArrayConfig(negatives_dir=None, event_rate_per_min=0.0, background_level_db_spl=66.0)


def _bearings(signal: np.ndarray, config: MicArrayConfig) -> np.ndarray:
    est = BearingEstimator(config.mic_xy())
    out = []
    for w in StreamingFrontEnd(config.n_mics).push(signal):
        b, _ = est.bearing(w.spectra, w.track.peak_bin, w.track.prominence_db > TONAL_DB)
        out.append(b)
    return np.array(out)


def _angle_error_deg(a: np.ndarray, b: float) -> np.ndarray:
    return np.degrees(np.abs(np.remainder(a - b + np.pi, 2 * np.pi) - np.pi))


@pytest.mark.parametrize("pattern", list(SirenPattern))
@pytest.mark.parametrize("angle_deg", [-150, -90, -20, 0, 45, 110, 180])
def test_bearing_of_a_siren_at_a_known_angle(pattern, angle_deg):
    heading = 0.7  # the car turned: bearings are in its own frame
    rel = math.radians(angle_deg)
    d = 60.0
    ego = Pose(10.0, -5.0, heading)
    src = EmergencySource(
        "amb",
        ego.x + d * math.cos(heading + rel),
        ego.y + d * math.sin(heading + rel),
        voice=voice_for("amb", 3, pattern),
    )
    n = 2 * FS
    x = render_sources([src], ego, 0.0, n, CONFIG)
    x += StreetBackground(CONFIG, seed=angle_deg + 500).render(n)
    err = _angle_error_deg(_bearings(x, CONFIG), rel)
    assert np.median(err) <= 5.0, f"median error {np.median(err):.1f}°"


def test_doppler_and_inverse_distance():
    steady = SirenVoice(SirenPattern.WAIL, 1000.0, 1000.0, period_s=1.0, harmonics=(1.0,))
    config = CONFIG.model_copy(update={"ground_reflection": 0.0})
    ego = Pose(0.0, 0.0, 0.0)
    # 20 m/s straight toward the car: f' = f / (1 − v/c)
    toward = EmergencySource("a", 200.0, 0.0, vx=-20.0, voice=steady)
    x = render_sources([toward], ego, 0.0, FS, config)[0]
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    f_heard = np.argmax(spectrum) * FS / len(x)
    assert f_heard == pytest.approx(1000.0 / (1 - 20.0 / 343.0), abs=2.0)
    # 1/r (air absorption aside): twice as far, half the pressure
    near = render_sources([EmergencySource("a", 20.0, 0.0, voice=steady)], ego, 0.0, FS, config)
    far = render_sources([EmergencySource("a", 40.0, 0.0, voice=steady)], ego, 0.0, FS, config)
    ratio = np.sqrt(np.mean(near[0] ** 2) / np.mean(far[0] ** 2))
    assert ratio == pytest.approx(
        2.0 * 10 ** (config.air_absorption_db_per_km * 0.02 / 20), rel=0.02
    )


def test_ticks_join_without_a_phase_jump():
    voice = voice_for("amb", 1, SirenPattern.YELP)
    ego = Pose(0.0, 0.0, 0.0)
    v = (-12.0, 3.0)
    whole = render_sources(
        [EmergencySource("a", 80.0, 10.0, *v, voice=voice)], ego, 0.0, FS, CONFIG
    )
    ticks = []
    for k in range(10):  # 0.1 s ticks; the world reports the source where it is now
        t = k * 0.1
        src = EmergencySource("a", 80.0 + v[0] * t, 10.0 + v[1] * t, *v, voice=voice)
        ticks.append(render_sources([src], ego, t, FS // 10, CONFIG))
    assert np.allclose(np.concatenate(ticks, axis=1), whole, atol=1e-6 * np.abs(whole).max())
