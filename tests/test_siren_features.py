"""The feature extractor recovers a siren's known frequency sweep, and tells tones from noise."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robotaxi.autonomy.perception.siren_features import (
    FEATURE_NAMES,
    FRAME_HOP,
    FRAMES_PER_WINDOW,
    N_FFT,
    SAMPLE_RATE_HZ,
    StreamingFrontEnd,
)
from robotaxi.sim.sensors.microphones import SirenPattern, SirenVoice

FS = SAMPLE_RATE_HZ


def _features(windows, name):
    return np.array([w.features[FEATURE_NAMES.index(name)] for w in windows])


def _tone(voice: SirenVoice, seconds: float, noise: float = 0.05, seed: int = 0) -> np.ndarray:
    t = np.arange(round(seconds * FS)) / FS
    rng = np.random.default_rng(seed)
    return voice.waveform(t) + noise * rng.standard_normal(len(t))


def test_peak_track_follows_a_known_linear_sweep():
    # 700 → 1500 Hz over 2 s and back: a 400 Hz/s sweep
    voice = SirenVoice(SirenPattern.WAIL, 700.0, 1500.0, period_s=4.0, rise_fraction=0.5)
    windows = StreamingFrontEnd(1).push(_tone(voice, 4.0))
    checked = 0
    for w in windows:
        # frame j of the window ends 160·(43 − j) samples before the window's end
        ends = w.time_s - FRAME_HOP * (FRAMES_PER_WINDOW - 1 - np.arange(FRAMES_PER_WINDOW)) / FS
        centres = ends - N_FFT / 2 / FS
        truth = voice.frequency_hz(centres)
        phase = np.mod(centres, 2.0)
        steady = (phase > 0.1) & (phase < 1.9)  # away from the turning points
        err = np.abs(w.track.freq_hz - truth)[steady]
        assert np.median(err) < 5.0, f"window at {w.time_s:.1f} s: median error {np.median(err)}"
        checked += int(steady.sum())
    assert checked > 1000
    # the window feature: median |df/dt| ≈ 400 Hz/s (stored as log1p)
    sweep = np.expm1(_features(windows, "sweep_rate_log"))
    assert np.median(sweep) == pytest.approx(400.0, rel=0.1)
    assert np.all(_features(windows, "tonal_fraction") > 0.95)


def test_yelp_sweeps_fast_and_hi_lo_holds_two_tones():
    yelp = SirenVoice(SirenPattern.YELP, 700.0, 1500.0, period_s=0.25, rise_fraction=0.5)
    w_yelp = StreamingFrontEnd(1).push(_tone(yelp, 3.0))
    # 1600 Hz per 0.25 s = 6400 Hz/s
    assert np.median(np.expm1(_features(w_yelp, "sweep_rate_log"))) == pytest.approx(6400, rel=0.15)
    assert np.median(_features(w_yelp, "long_periodicity")) > 0.8

    hilo = SirenVoice(SirenPattern.HI_LO, 700.0, 930.0, period_s=1.2)
    w_hilo = StreamingFrontEnd(1).push(_tone(hilo, 4.0))
    late = w_hilo[15:]  # once 1.5 s of history holds both tones
    assert np.median(_features(late, "two_tone_share")) > 0.9
    # jumps between the tones: about 2 per 1.2 s period
    assert np.median(_features(late, "long_jumps_per_s")) == pytest.approx(2 / 1.2, rel=0.35)


def test_noise_is_not_tonal():
    rng = np.random.default_rng(3)
    windows = StreamingFrontEnd(1).push(rng.standard_normal(3 * FS))
    assert np.median(_features(windows, "tonal_fraction")) < 0.3
    assert np.median(_features(windows, "smooth_fraction")) < 0.05
    assert len(windows[0].features) == len(FEATURE_NAMES)


def test_windows_come_every_100_ms_from_the_first_full_half_second():
    windows = StreamingFrontEnd(2).push(np.zeros((2, 2 * FS)))
    times = [w.time_s for w in windows]
    assert times[0] == 0.5
    assert np.allclose(np.diff(times), 0.1)
    assert len(times) == 16
    assert all(math.isfinite(v) for w in windows for v in w.features)


def _notes(freqs_hz: list[float], note_s: float, harmonics: int = 5) -> np.ndarray:
    """A melody: one voice, each note a fundamental with decaying harmonics."""
    n = round(note_s * FS)
    t = np.arange(n * len(freqs_hz)) / FS
    f = np.repeat(freqs_hz, n)
    phase = 2 * np.pi * f * t
    return sum(np.sin(k * phase) * 0.6 ** (k - 1) for k in range(1, harmonics + 1))


def test_an_overtone_has_its_fundamental_below_a_siren_has_none():
    # a 300 Hz voice is tracked at its 600 Hz overtone (the band starts at 400 Hz)
    voice = _notes([300.0, 300.0, 300.0], 1.0)
    w_voice = StreamingFrontEnd(1).push(
        voice + 0.05 * np.random.default_rng(1).standard_normal(len(voice))
    )
    assert np.median(np.exp(_features(w_voice, "frequency_log"))) == pytest.approx(600, rel=0.02)
    hilo = SirenVoice(SirenPattern.HI_LO, 700.0, 930.0, period_s=1.2)
    w_siren = StreamingFrontEnd(1).push(_tone(hilo, 3.0))
    voice_sub = np.median(_features(w_voice, "subharmonic_median_db"))
    siren_sub = np.median(_features(w_siren, "subharmonic_median_db"))
    assert voice_sub > 25.0
    assert siren_sub < 8.0


def test_a_beeper_stops_and_restarts_on_one_pitch_a_hi_lo_never_stops():
    t = np.arange(4 * FS) / FS
    beeper = np.sin(2 * np.pi * 1100 * t) * (np.mod(t * 1.25, 1.0) < 0.5)  # 0.4 s on, 0.4 s off
    w_beep = StreamingFrontEnd(1).push(
        beeper + 0.05 * np.random.default_rng(2).standard_normal(len(t))
    )
    gaps = _features(w_beep[15:], "long_same_pitch_gap_s")
    # the silence between beeps, less the 64 ms frames smearing each edge
    assert np.median(gaps) == pytest.approx(0.4, abs=0.1)
    hilo = SirenVoice(SirenPattern.HI_LO, 700.0, 930.0, period_s=1.2)
    w_siren = StreamingFrontEnd(1).push(_tone(hilo, 4.0))
    assert np.all(_features(w_siren, "long_same_pitch_gap_s") == 0.0)
    # where the tone is: log of its median frequency
    assert np.median(np.exp(_features(w_beep[15:], "frequency_log"))) == pytest.approx(
        1100, rel=0.02
    )


def _sung(f0_hz: float, seconds: float, vibrato_hz: float, depth: float) -> np.ndarray:
    """A held note with vibrato (relative depth) and three harmonics, in faint noise."""
    t = np.arange(round(seconds * FS)) / FS
    f = f0_hz * (1 + depth * np.sin(2 * np.pi * vibrato_hz * t))
    phase = 2 * np.pi * np.cumsum(f) / FS
    tone = np.sin(phase) + 0.5 * np.sin(2 * phase) + 0.25 * np.sin(3 * phase)
    return tone + 0.02 * np.random.default_rng(3).standard_normal(len(t))


@pytest.mark.parametrize("pattern", list(SirenPattern))
def test_a_siren_does_not_warble(pattern):
    lo, hi, period = {
        SirenPattern.WAIL: (700.0, 1500.0, 4.0),
        SirenPattern.YELP: (700.0, 1500.0, 0.3),
        SirenPattern.HI_LO: (700.0, 950.0, 1.2),
    }[pattern]
    voice = SirenVoice(pattern, lo, hi, period_s=period, rise_fraction=0.5)
    for noise in (0.05, 0.5):
        windows = StreamingFrontEnd(1).push(_tone(voice, 4.0, noise=noise))
        assert np.all(_features(windows, "vibrato_swings_per_s") == 0.0), (pattern, noise)


def test_vibrato_counts_the_swings_of_a_sung_note():
    # 6 Hz vibrato of ±1.5 %: 12 reversals a second, each swing ≈ 3 % of the pitch
    windows = StreamingFrontEnd(1).push(_sung(880.0, 3.0, 6.0, 0.015))
    late = _features(windows, "vibrato_swings_per_s")[-5:]  # 1.5 s of history filled
    assert np.all(late > 6.0)
    assert np.all(late <= 12.0)
    # the same note held still, or with a 1 Hz wobble (no vibrato): no swings
    for rate, depth in ((6.0, 0.0), (1.0, 0.03)):
        still = StreamingFrontEnd(1).push(_sung(880.0, 3.0, rate, depth))
        assert np.all(_features(still, "vibrato_swings_per_s") == 0.0), (rate, depth)


def test_vibrato_ignores_one_frame_jumps_of_the_tracked_peak():
    # a wail whose tracked peak jumps to an echo for 20 ms every 0.1 s (as in recordings)
    voice = SirenVoice(SirenPattern.WAIL, 700.0, 1500.0, period_s=4.0, rise_fraction=0.5)
    t = np.arange(round(3.0 * FS)) / FS
    x = _tone(voice, 3.0)
    glitch = (np.mod(t, 0.1) < 0.02).astype(float)
    x = x + 3.0 * glitch * np.sin(2 * np.pi * 1.04 * voice.frequency_hz(t).cumsum() / FS)
    windows = StreamingFrontEnd(1).push(x)
    assert np.all(_features(windows, "vibrato_swings_per_s") == 0.0)
