"""The physics features (`siren_physics`) tell a siren from music, beepers and birds on
hand-made sounds whose answer is known: one tone gliding (wail, yelp) or two alternating
without a gap (hi-lo) against several notes at once (a chord), notes held on a scale (a
melody), a tone that stops and starts (a beeper)."""

from __future__ import annotations

import numpy as np
import pytest

from robotaxi.autonomy.perception.siren import load_model
from robotaxi.autonomy.perception.siren_features import (
    FEATURE_NAMES,
    SAMPLE_RATE_HZ,
    StreamingFrontEnd,
)
from robotaxi.autonomy.perception.siren_physics import PHYSICS_FEATURES, physics_features
from robotaxi.sim.sensors.microphones import SirenPattern, SirenVoice

FS = SAMPLE_RATE_HZ
SECONDS = 8.0


def _late(x: np.ndarray, name: str) -> np.ndarray:
    """The feature over the windows after 6 s (the longest history is full)."""
    windows = StreamingFrontEnd(1).push(x)
    i = PHYSICS_FEATURES.index(name)
    return np.array([physics_features(w)[i] for w in windows if w.time_s >= 6.0])


def _noise(n: int, seed: int = 0) -> np.ndarray:
    return 0.02 * np.random.default_rng(seed).standard_normal(n)


def _siren(pattern: SirenPattern, period_s: float) -> np.ndarray:
    hi = 930.0 if pattern is SirenPattern.HI_LO else 1500.0
    voice = SirenVoice(pattern, 700.0, hi, period_s=period_s, harmonics=(1.0, 0.5, 0.3))
    t = np.arange(round(SECONDS * FS)) / FS
    return voice.waveform(t) + _noise(len(t))


def _notes(freqs_per_note: list[list[float]], note_s: float, gap_s: float = 0.0) -> np.ndarray:
    """Notes in turn (each a set of simultaneous tones with two harmonics), looped."""
    out = []
    k = 0
    total = round(SECONDS * FS)
    while sum(len(o) for o in out) < total:
        tones = freqs_per_note[k % len(freqs_per_note)]
        t = np.arange(round(note_s * FS)) / FS
        note = sum(np.sin(2 * np.pi * f * t) + 0.4 * np.sin(4 * np.pi * f * t) for f in tones)
        out.append(np.asarray(note))
        if gap_s:
            out.append(np.zeros(round(gap_s * FS)))
        k += 1
    x = np.concatenate(out)[:total]
    return x / np.std(x) + _noise(total)


WAIL = _siren(SirenPattern.WAIL, 4.0)
YELP = _siren(SirenPattern.YELP, 0.3)
HI_LO = _siren(SirenPattern.HI_LO, 1.2)
C_MAJOR = [[523.3, 659.3, 784.0], [587.3, 740.0, 880.0], [493.9, 587.3, 784.0]]
CHORDS = _notes(C_MAJOR, 0.8)
SCALE = [523.3, 659.3, 587.3, 784.0, 698.5, 880.0, 523.3, 987.8, 784.0]
MELODY = _notes([[f] for f in SCALE], 0.35)
BEEPER = _notes([[1200.0]], 0.4, gap_s=0.4)


def test_the_physics_features_are_ten_and_not_in_the_shipped_models_vector() -> None:
    assert len(set(PHYSICS_FEATURES)) == 10
    assert not set(PHYSICS_FEATURES) & set(FEATURE_NAMES)
    assert set(load_model().feature_names) <= set(FEATURE_NAMES)


def test_polyphony_counts_the_other_notes_of_a_chord_not_a_sirens_harmonics() -> None:
    for siren in (WAIL, YELP, HI_LO):
        assert np.median(_late(siren, "polyphony_median")) == 0.0
    assert np.median(_late(CHORDS, "polyphony_median")) >= 1.0


def test_held_notes_a_melody_holds_many_pitches_a_hi_lo_two_a_wail_none() -> None:
    assert np.median(_late(WAIL, "held_pitches")) == 0.0
    assert np.median(_late(HI_LO, "held_pitches")) == 2.0
    assert np.median(_late(MELODY, "held_pitches")) >= 4.0
    # steps between held notes: the melody's every note, the wail's never
    assert np.median(_late(WAIL, "note_steps_per_s")) == 0.0
    assert np.median(_late(MELODY, "note_steps_per_s")) >= 1.5


def test_a_siren_glides_and_a_melody_or_a_hi_lo_does_not() -> None:
    assert np.median(_late(WAIL, "glide_share")) > 0.8
    assert np.median(_late(YELP, "glide_share")) > 0.3
    for other in (HI_LO, MELODY, BEEPER):
        assert np.median(_late(other, "glide_share")) < 0.1


def test_a_beeper_stops_and_starts_a_siren_never_does() -> None:
    for siren in (WAIL, YELP, HI_LO):
        assert np.min(_late(siren, "tonal_since_onset")) > 0.95
    assert np.median(_late(BEEPER, "tonal_since_onset")) < 0.7


def test_a_sirens_sweep_sits_in_band_repeats_and_spans_hundreds_of_hz() -> None:
    for siren in (WAIL, YELP):
        assert np.min(_late(siren, "inband_share")) > 0.95
        assert np.median(_late(siren, "slow_periodicity")) > 0.8
        assert np.expm1(np.median(_late(siren, "sweep_extent_log"))) == pytest.approx(
            800.0 * 0.9, rel=0.15
        )
    assert np.median(_late(HI_LO, "slow_periodicity")) > 0.8
    # a steady beeper spans nothing
    assert np.expm1(np.median(_late(BEEPER, "sweep_extent_log"))) < 30.0


def test_vibrato_wobbles_a_sirens_straight_sweep_does_not() -> None:
    t = np.arange(round(SECONDS * FS)) / FS
    f = 800.0 * (1 + 0.02 * np.sin(2 * np.pi * 6.0 * t))  # a singer's 6 Hz vibrato, ±2 %
    sung = np.sin(2 * np.pi * np.cumsum(f) / FS) + _noise(len(t))
    assert np.median(_late(WAIL, "pitch_wobble")) < 0.002
    assert np.median(_late(sung, "pitch_wobble")) > 0.004
