"""The per-window fast path computes what the plain formulas do: brute-force comparisons.

The streaming front end keeps the overlapping frames of earlier hops, uses strided views,
one-row tree walks, power-of-two FFT autocorrelations, a coarse-to-fine bearing search and
skips GCC-PHAT where no bearing is needed; each is checked here against the direct way.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from robotaxi.autonomy.perception.siren import (
    BEARING_MIN_PROBABILITY,
    SirenDetector,
    detect,
    load_model,
)
from robotaxi.autonomy.perception.siren_features import (
    BAND,
    BIN_HZ,
    FRAME_HOP,
    FRAMES_PER_WINDOW,
    N_FFT,
    SPECTRA_BINS,
    TONAL_DB,
    BearingEstimator,
    StreamingFrontEnd,
    autocorrelation,
    frame_track,
    median_of,
)
from robotaxi.sim.sensors.microphones import MicArrayConfig, SirenPattern
from robotaxi.training.siren import synth_scene

FS = 16_000
CONFIG = MicArrayConfig(negatives_dir=None)


@pytest.fixture(scope="module")
def scene():
    rng = np.random.default_rng(11)
    return synth_scene(
        rng,
        config=CONFIG,
        clips=[],
        duration_s=3.0,
        distance_m=70.0,
        pattern=SirenPattern.YELP,
        background_db=68.0,
        onset_s=1.0,
    )


def _stft(x: np.ndarray, end_sample: int, n_frames: int) -> np.ndarray:
    """Frames ending at `end_sample` (the last frame's end), zero history before 0."""
    padded = np.concatenate([np.zeros((x.shape[0], N_FFT)), x], axis=1)
    window = np.hanning(N_FFT + 1)[:-1]
    frames = []
    for i in range(n_frames):
        end = end_sample - (n_frames - 1 - i) * FRAME_HOP + N_FFT
        frames.append(np.fft.rfft(padded[:, end - N_FFT : end] * window, axis=-1))
    return np.stack(frames, axis=1)


def test_window_spectra_are_the_direct_stft_of_the_last_half_second(scene):
    x = scene.signal
    for w in StreamingFrontEnd(x.shape[0]).push(x)[::7]:
        end = round(w.time_s * FS)
        direct = _stft(x, end, FRAMES_PER_WINDOW)
        np.testing.assert_allclose(w.spectra, direct[:, :, SPECTRA_BINS], rtol=0, atol=1e-9)


def test_frame_track_matches_the_plain_formulas(scene):
    spec = _stft(scene.signal, 2 * FS, 30)
    power = np.mean(np.abs(spec) ** 2, axis=0)
    tr = frame_track(power)
    band = power[:, BAND] + 1e-20
    log_band = 10 * np.log10(band)
    np.testing.assert_array_equal(tr.peak_bin, np.argmax(band, axis=1) + BAND.start)
    np.testing.assert_allclose(
        tr.prominence_db, log_band.max(axis=1) - np.median(log_band, axis=1), atol=1e-9
    )
    flat = np.exp(np.mean(np.log(band), axis=1)) / np.mean(band, axis=1)
    np.testing.assert_allclose(tr.flatness, flat, rtol=1e-12)
    total = power[:, 7:].sum(axis=1) + 1e-20
    np.testing.assert_allclose(tr.band_fraction, band.sum(axis=1) / total, rtol=1e-12)
    # the interpolated peak lies within half a bin of the peak bin
    assert np.all(np.abs(tr.freq_hz / BIN_HZ - tr.peak_bin) <= 0.5 + 1e-9)


def test_median_and_autocorrelation_against_numpy():
    rng = np.random.default_rng(3)
    for n in (1, 2, 7, 44, 150, 800):
        x = rng.standard_normal(n)
        assert median_of(x) == np.median(x)
        direct = np.correlate(x, x, mode="full")[n - 1 :]
        np.testing.assert_allclose(autocorrelation(x), direct, atol=1e-9)


def test_one_row_tree_walk_equals_the_batch_walk():
    model = load_model()
    rng = np.random.default_rng(5)
    rows = rng.standard_normal((300, len(model.feature_names))) * 3.0
    batch = model.probability(rows)
    one = np.array([float(model.probability(r)) for r in rows])
    np.testing.assert_allclose(one, batch, rtol=0, atol=1e-12)


def _exhaustive_bearing(est: BearingEstimator, spectra, peak_bin, tonal) -> float:
    """The full 360-direction SRP with complex arithmetic, the direct way."""
    frames = np.flatnonzero(tonal) if tonal.sum() >= 5 else np.arange(len(peak_bin))
    bins = np.clip(peak_bin[frames, None] + np.array([-1, 0, 1]), SPECTRA_BINS.start, None)
    bins = np.minimum(bins, SPECTRA_BINS.stop - 1) - SPECTRA_BINS.start
    n_bins = est.steering.shape[0]
    cross = np.zeros((len(est.pairs), n_bins), complex)
    for p, (i, j) in enumerate(est.pairs):
        for f, row in zip(frames, bins, strict=True):
            for b in row:
                cross[p, b] += spectra[i, f, b] * np.conj(spectra[j, f, b])
    mag = np.abs(cross)
    used = mag > 1e-12 * (mag.max() + 1e-20)
    weighted = np.where(used, cross / np.where(used, mag, 1.0), 0.0)
    srp = np.einsum("pk,kpa->a", weighted, est.steering).real
    return float(est.angles[int(np.argmax(srp))])


def test_coarse_to_fine_bearing_equals_the_exhaustive_search(scene):
    est = BearingEstimator(CONFIG.mic_xy())
    checked = 0
    for w in StreamingFrontEnd(CONFIG.n_mics).push(scene.signal)[::3]:
        tonal = w.track.prominence_db > TONAL_DB
        fast, strength = est.bearing(w.spectra, w.track.peak_bin, tonal)
        if strength < 0.5:  # ambiguous windows (street only) may pick another equal lobe
            continue
        slow = _exhaustive_bearing(est, w.spectra, w.track.peak_bin, tonal)
        assert abs(math.remainder(fast - slow, 2 * math.pi)) < 1e-9
        checked += 1
    assert checked >= 5


def test_bearing_only_where_it_can_be_used(scene):
    gated = detect(scene.signal)
    full = SirenDetector(CONFIG.n_mics, every_bearing=True).push(scene.signal)
    assert all(w.bearing_rad is not None for w in full)
    for g, f in zip(gated, full, strict=True):
        assert (g.probability, g.smoothed, g.detected) == (f.probability, f.smoothed, f.detected)
        if g.detected or g.probability >= BEARING_MIN_PROBABILITY:
            assert g.bearing_rad == f.bearing_rad
        else:
            assert g.bearing_rad is None and g.bearing_strength == 0.0
    # the street before the siren needs no bearing; the detected siren always has one
    assert any(g.bearing_rad is None for g in gated if g.time_s < 1.0)
    assert any(g.detected for g in gated)
    assert all(g.bearing_rad is not None for g in gated if g.detected)
