"""The street background's harmonic stacks (engine orders, babble voices) by recurrence.

`_harmonic_sum` replaces K sine evaluations per row by one sine, one cosine and the
Chebyshev recurrence; it must give the same numbers as the brute-force sum, including at
the large phases a minute of engine firing reaches (f0·t ≈ 90 Hz × 60 s → 3.4e4 rad).
"""

from __future__ import annotations

import numpy as np

from robotaxi.sim.sensors.microphones import MicArrayConfig, StreetBackground, _harmonic_sum


def _brute(phase: np.ndarray, weights: np.ndarray) -> np.ndarray:
    k = np.arange(1, weights.shape[1] + 1)
    return np.einsum("rk,rkn->rn", weights, np.sin(k[None, :, None] * phase[:, None, :]))


def test_recurrence_equals_the_sum_of_sines() -> None:
    rng = np.random.default_rng(0)
    for scale in (1.0, 3.4e4):
        phase = np.sort(rng.uniform(0, scale, size=(3, 1600)), axis=1)
        weights = rng.uniform(0.0, 1.0, size=(3, 40))
        weights[1, 25:] = 0.0  # fewer orders on one row (a faster engine)
        np.testing.assert_allclose(_harmonic_sum(phase, weights), _brute(phase, weights), atol=1e-9)
    # one harmonic: just the sine
    phase = rng.uniform(-5, 5, size=(2, 100))
    np.testing.assert_allclose(_harmonic_sum(phase, np.ones((2, 1))), np.sin(phase), atol=1e-15)


def test_background_is_deterministic_and_at_its_level() -> None:
    config = MicArrayConfig(negatives_dir=None, seed=5)
    a, b = StreetBackground(config), StreetBackground(config)
    first = np.concatenate([a.render(1600) for _ in range(30)], axis=1)
    second = np.concatenate([b.render(1600) for _ in range(30)], axis=1)
    np.testing.assert_array_equal(first, second)
    # components are normalised: the bed's RMS sits within a few dB of the configured level
    # (events and slow swells move it about)
    rms_db = 20 * np.log10(np.sqrt(np.mean(first**2)) / 20e-6)
    assert abs(rms_db - config.background_level_db_spl) < 6.0
