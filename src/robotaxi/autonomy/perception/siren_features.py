"""Causal features of a siren's swept tone, and GCC-PHAT bearing, over a streamed array signal.

The stream is cut into STFT frames of 1024 samples (64 ms) every 160 samples (10 ms); a
*window* is the last 0.5 s (44 frames) and one is produced every 0.1 s (10 new frames).
Frames are computed in fixed batches of one hop, so the result does not depend on how the
caller chops the stream, and a window ending at time t reads no sample after t.

Per frame (power averaged over the microphones) the extractor tracks the strongest peak in
400–2100 Hz (a siren's fundamental; parabolic interpolation between bins) and measures its
prominence over the band median, its contrast to neighbouring bins, its second harmonic and
what sounds at half its frequency.
Per window it summarises how tonal, continuous and swept that track is (`FEATURE_NAMES`),
plus, over the last 1.5 s, the track's periodicity, its jumps (hi-lo) and its vibrato.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import as_strided

from robotaxi.core.errors import ConfigError
from robotaxi.core.types import FloatArray

ComplexArray = npt.NDArray[np.complex128]

SAMPLE_RATE_HZ = 16_000
N_FFT = 1024
FRAME_HOP = 160  # samples, 10 ms
WINDOW_S = 0.5
HOP_S = 0.1
HOP_SAMPLES = round(HOP_S * SAMPLE_RATE_HZ)  # 1600
WINDOW_SAMPLES = round(WINDOW_S * SAMPLE_RATE_HZ)  # 8000
FRAMES_PER_HOP = HOP_SAMPLES // FRAME_HOP  # 10
FRAMES_PER_WINDOW = (WINDOW_SAMPLES - N_FFT) // FRAME_HOP + 1  # 44
LONG_FRAMES = 150  # 1.5 s of peak track for periodicity and jumps
HISTORY_FRAMES = 800  # 8 s of peak track for the Doppler comparison
BIN_HZ = SAMPLE_RATE_HZ / N_FFT
BAND_LO_HZ, BAND_HI_HZ = 400.0, 2100.0
BAND = slice(int(BAND_LO_HZ / BIN_HZ), int(BAND_HI_HZ / BIN_HZ) + 1)
SPECTRA_BINS = slice(BAND.start - 1, BAND.stop + 1)  # kept per window for the bearing
TONAL_DB = 10.0  # a frame is "tonal" when its peak stands this far above the band median
# (the largest of ~110 noise bins already stands ≈ 9 dB above their median in one channel)
CONTINUITY_HZ = 70.0  # per 10 ms frame: a yelp sweeps ≈ 50 Hz in one frame
# frames 64 ms long overlap by 85 %: noise peaks persist over neighbours, so smoothness is
# judged on frames 60 ms apart, where a siren's track is still nearly straight
SMOOTH_LAG = 6
SMOOTH_HZ = 40.0
_WINDOW_FN = np.hanning(N_FFT + 1)[:-1]
_EPS = 1e-20
_NEIGHBOURS = np.array([-1, 0, 1])
_SIDE_OFFSETS = np.concatenate([np.arange(-8, -2), np.arange(3, 9)])
_HARMONIC_OFFSETS = np.arange(-2, 3)
_HARMONICS = np.array([1.0, 2.0, 3.0])
_N_BAND = BAND.stop - BAND.start
_HIGH = slice(round(2500 / BIN_HZ), round(7500 / BIN_HZ))
ONSET_DB = 6.0  # a rise of the broadband level within 30 ms that counts as an onset
ONSET_LAG = 3
_MIDDLE = [(_N_BAND - 1) // 2, _N_BAND // 2]
VIBRATO_SWING = (0.006, 0.08)  # relative pitch swing between two reversals that is vibrato
VIBRATO_HALF_PERIOD = (5, 13)  # frames between two reversals: a 4–10 Hz oscillation
VIBRATO_STEP = 0.12  # per frame, relative: a larger change breaks the pitch line
VIBRATO_MEDIAN = 5  # frames of the running median the reversals are found on
VIBRATO_RUN = 4  # swings in a row: an oscillation, not a bump or an echo
BEARING_COARSE_STEP = 4  # directions (1° each) between the coarse search's candidates
_ITEM = np.dtype(np.float64).itemsize
_HOP_STRIDE = FRAME_HOP * _ITEM

FEATURE_NAMES: tuple[str, ...] = (
    "prominence_median_db",
    "prominence_p25_db",
    "contrast_median_db",
    "tonal_fraction",
    "continuity_fraction",
    "smooth_fraction",
    "sweep_rate_log",
    "span_log",
    "curvature_log",
    "harmonic_median_db",
    "flatness_median",
    "band_fraction_median",
    "long_continuity_fraction",
    "long_span_log",
    "long_jumps_per_s",
    "long_periodicity",
    "long_tonal_fraction",
    "two_tone_share",
    "long_smooth_fraction",
    "subharmonic_median_db",
    "long_same_pitch_gap_s",
    "frequency_log",
    # what else sounds: a siren is one tone (and its harmonics), sustained and steady in
    # level; music has several tones at once, birds sing above 2 kHz in short notes, clicks
    # and claps are onsets
    "dominance_median_db",
    "high_fraction_median",
    "onset_fraction",
    "broadband_iqr_db",
    "long_longest_run_fraction",
    # notes: a melody holds several pitches in turn, a hi-lo two, a wail or yelp none
    "long_pitch_levels",
    "long_steady_fraction",
    # a voice, a violin or a bird warbles around its note (a vibrato: a regular 4–10 Hz
    # swing of 1–6 %); a siren's tone glides one way for a quarter of its cycle or more
    "vibrato_swings_per_s",
)
N_FEATURES = len(FEATURE_NAMES)


@dataclass(frozen=True, slots=True)
class FrameTrack:
    """Per-frame peak track, arrays of length F (oldest first)."""

    freq_hz: FloatArray  # interpolated peak frequency
    prominence_db: FloatArray  # peak over the band median
    contrast_db: FloatArray  # peak over bins 3–8 away
    harmonic_db: FloatArray  # power near 2·f over the band median
    subharmonic_db: FloatArray  # power near f/2 over the band median: an overtone's voice
    flatness: FloatArray  # spectral flatness of the band (0 tone … 1 white)
    band_fraction: FloatArray  # band power / power above 100 Hz
    level_db: FloatArray  # tone + 2nd + 3rd harmonic power, dB re 1 (input units²)
    dominance_db: FloatArray  # peak over the strongest band bin off the tone and harmonics
    high_fraction: FloatArray  # power 2.5–7.5 kHz / power above 100 Hz
    broadband_db: FloatArray  # power above 100 Hz, dB re 1
    peak_bin: npt.NDArray[np.int64]  # FFT bin of the peak


def frame_track(power: FloatArray) -> FrameTrack:
    """Peak-track quantities of power spectra `power` (F×513, averaged over microphones)."""
    band = power[:, BAND] + _EPS
    log_band = 10.0 * np.log10(band)
    k = np.argmax(band, axis=1)
    rows = np.arange(len(k))
    n_band = band.shape[1]
    km = _clip(k, 1, n_band - 2)
    # the two neighbours and the peak in one gather: columns km-1, km, km+1
    abc = log_band[rows[:, None], km[:, None] + _NEIGHBOURS]
    a, b, c = abc[:, 0], abc[:, 1], abc[:, 2]
    denom = a - 2 * b + c
    delta = np.where(np.abs(denom) > 1e-9, 0.5 * (a - c) / np.where(denom == 0, 1, denom), 0.0)
    delta = _clip(delta, -0.5, 0.5)
    freq = (BAND.start + km + delta) * BIN_HZ
    # the median of an even count is the mean of the two middle values (as np.median)
    middle = np.partition(log_band, _MIDDLE, axis=1)[:, _MIDDLE]
    median = (middle[:, 0] + middle[:, 1]) / 2.0
    peak = log_band[rows, k]
    # contrast: peak over the mean of bins 3..8 away on both sides (a tone is narrow)
    side = _clip(k[:, None] + _SIDE_OFFSETS, 0, n_band - 1)
    contrast = peak - 10.0 * np.log10(band[rows[:, None], side].sum(axis=1) / side.shape[1])
    # second harmonic: strongest bin within ±2 bins of twice the peak frequency
    k2 = _clip(np.rint(freq * 2 / BIN_HZ).astype(np.int64), 2, power.shape[1] - 3)
    around = power[rows[:, None], k2[:, None] + _HARMONIC_OFFSETS]
    harmonic = 10.0 * np.log10(around.max(axis=1) + _EPS) - median
    # half the peak frequency: a siren's fundamental is its lowest tone (nothing below it),
    # while a tracked overtone of music, a horn or a voice has its fundamental there
    k_half = _clip(np.rint(freq * 0.5 / BIN_HZ).astype(np.int64), 2, power.shape[1] - 3)
    below = power[rows[:, None], k_half[:, None] + _HARMONIC_OFFSETS]
    subharmonic = 10.0 * np.log10(below.max(axis=1) + _EPS) - median
    band_sum = band.sum(axis=1)
    flatness = np.exp(np.log(band).sum(axis=1) / n_band) / (band_sum / n_band)
    total = power[:, 7:].sum(axis=1) + _EPS  # above ≈ 100 Hz
    band_fraction = band_sum / total
    # level for the approach trend: the tone and its 2nd and 3rd harmonics (±1 bin) together,
    # so the road reflection's interference notch at one frequency does not read as distance
    kh = _clip(np.rint(freq[:, None] * _HARMONICS / BIN_HZ).astype(np.int64), 1, power.shape[1] - 2)
    per_harmonic = power[rows[:, None, None], kh[:, :, None] + _NEIGHBOURS].sum(axis=2)
    tone = per_harmonic[:, 0] + per_harmonic[:, 1] + per_harmonic[:, 2]
    level = 10.0 * np.log10(tone + _EPS)
    # the strongest band bin away (≥ 4 bins) from the tone and its 2nd and 3rd harmonics:
    # a chord's other notes, a voice's other harmonics (at 1.5·f), a second bird
    kb = (kh[:, 0:1] - BAND.start, kh[:, 1:2] - BAND.start, kh[:, 2:3] - BAND.start)
    cols = np.arange(n_band)[None, :]
    off_tone = (np.abs(cols - kb[0]) > 3) & (np.abs(cols - kb[1]) > 3) & (np.abs(cols - kb[2]) > 3)
    other = np.where(off_tone, log_band, -200.0).max(axis=1)
    high = power[:, _HIGH].sum(axis=1)
    return FrameTrack(
        freq,
        peak - median,
        contrast,
        harmonic,
        subharmonic,
        flatness,
        band_fraction,
        level,
        peak - other,
        high / total,
        10.0 * np.log10(total),
        k + BAND.start,
    )


def window_features(track: FrameTrack, long_freq: FloatArray, long_prom: FloatArray) -> FloatArray:
    """The feature vector (`FEATURE_NAMES`) of one window.

    `track` covers the window's frames; `long_freq`/`long_prom` the last ≤1.5 s of the
    peak track ending with the same frame.
    """
    # hot path (every 0.1 s): boolean shares by count_nonzero, medians from one sort —
    # numpy's reductions cost more in call overhead than in work on arrays this small
    f, prom = track.freq_hz, track.prominence_db
    tonal = prom > TONAL_DB
    n_tonal = np.count_nonzero(tonal)
    df = np.abs(np.diff(f))
    cont = tonal[1:] & tonal[:-1] & (df < CONTINUITY_HZ)
    n_cont = np.count_nonzero(cont)
    continuity = n_cont / len(cont) if len(cont) else 0.0
    sweep = _quantile(np.sort(df[cont]), 0.5) / (FRAME_HOP / SAMPLE_RATE_HZ) if n_cont else 0.0
    span = _spread(f[tonal])
    if n_cont >= 3:
        d2 = np.abs(np.diff(f, 2))[cont[1:] & cont[:-1]]
        curvature = _quantile(np.sort(d2), 0.5) if len(d2) else 0.0
    else:
        curvature = 100.0
    l_tonal = long_prom > TONAL_DB
    n_long = len(long_freq)
    n_l_tonal = int(np.count_nonzero(l_tonal))
    smooth_ok = _smooth_ok(long_freq, l_tonal)
    l_df = np.abs(np.diff(long_freq))
    l_both = l_tonal[1:] & l_tonal[:-1]
    l_cont = l_both & (l_df < CONTINUITY_HZ)
    long_cont = np.count_nonzero(l_cont) / len(l_cont) if len(l_cont) else 0.0
    lt = long_freq[l_tonal]
    long_span = _spread(lt)
    # hi-lo: clean jumps between two steady tones
    jumps = l_both & (l_df >= 100.0) & (l_df < 700.0)
    long_s = max(n_long * FRAME_HOP / SAMPLE_RATE_HZ, 1e-3)
    jumps_per_s = np.count_nonzero(jumps) / long_s
    periodicity = _periodicity(long_freq, l_tonal, lt, n_l_tonal)
    two_tone = _two_tone_share(lt)
    # one sort for the six per-frame medians (np.median costs more in overhead than work)
    per_frame = np.sort(
        np.stack(
            [
                prom,
                track.contrast_db,
                track.harmonic_db,
                track.flatness,
                track.band_fraction,
                track.subharmonic_db,
                track.dominance_db,
                track.high_fraction,
                track.broadband_db,
            ]
        ),
        axis=1,
    )
    bb = track.broadband_db
    onsets = np.count_nonzero(bb[ONSET_LAG:] - bb[:-ONSET_LAG] > ONSET_DB) / max(
        len(bb) - ONSET_LAG, 1
    )
    return np.array(
        [
            _quantile(per_frame[0], 0.5),
            _quantile(per_frame[0], 0.25),
            _quantile(per_frame[1], 0.5),
            n_tonal / len(tonal),
            continuity,
            _share_of_last(smooth_ok, len(f)),
            math.log1p(sweep),
            math.log1p(span),
            math.log1p(curvature),
            _quantile(per_frame[2], 0.5),
            _quantile(per_frame[3], 0.5),
            _quantile(per_frame[4], 0.5),
            long_cont,
            math.log1p(long_span),
            jumps_per_s,
            periodicity,
            n_l_tonal / n_long if n_long else 0.0,
            two_tone,
            _share_of_last(smooth_ok, n_long),
            _quantile(per_frame[5], 0.5),
            _same_pitch_gap_s(long_freq, l_tonal),
            # where the tone is: sirens sound at 0.5–1.8 kHz, brake squeal mostly above
            math.log(median_of(f[tonal])) if n_tonal else 0.0,
            _quantile(per_frame[6], 0.5),
            _quantile(per_frame[7], 0.5),
            onsets,
            _quantile(per_frame[8], 0.75) - _quantile(per_frame[8], 0.25),
            _longest_run(l_tonal) / n_long if n_long else 0.0,
            _pitch_levels(lt),
            _steady_fraction(long_freq, l_tonal),
            _vibrato_swings_per_s(long_freq, l_tonal),
        ]
    )


def _clip(x: npt.NDArray[Any], lo: float, hi: float) -> npt.NDArray[Any]:
    """np.clip without its per-call overhead (which exceeds the work on these sizes)."""
    return np.minimum(np.maximum(x, lo), hi)


def _quantile(sorted_values: FloatArray, q: float) -> float:
    """Linear-interpolated quantile of an already sorted 1-D array (as np.quantile)."""
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo))


def median_of(values: FloatArray) -> float:
    """np.median of a non-empty 1-D array, bit for bit, without its overhead."""
    n = len(values)
    v = np.sort(values)
    if n % 2:
        return float(v[n // 2])
    return float((v[n // 2 - 1] + v[n // 2]) / 2.0)


def _spread(values: FloatArray) -> float:
    """90th minus 10th percentile (0 for fewer than 4 values)."""
    if len(values) < 4:
        return 0.0
    v = np.sort(values)
    return _quantile(v, 0.9) - _quantile(v, 0.1)


def _smooth_ok(freq: FloatArray, tonal: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_] | None:
    """Frames (from the (2L)-th on) on a straight local track: tonal at t, t−L, t−2L and
    |f(t) − 2f(t−L) + f(t−2L)| < SMOOTH_HZ with L = 60 ms (noise peaks land anywhere).
    None when the track is shorter than 2L + 1 frames."""
    lag = SMOOTH_LAG
    if len(freq) < 2 * lag + 1:
        return None
    a, b, c = freq[2 * lag :], freq[lag:-lag], freq[: -2 * lag]
    return (
        tonal[2 * lag :] & tonal[lag:-lag] & tonal[: -2 * lag] & (np.abs(a - 2 * b + c) < SMOOTH_HZ)
    )


def _share_of_last(ok: npt.NDArray[np.bool_] | None, n_last: int) -> float:
    if ok is None:
        return 0.0
    tail = ok[-n_last:]
    return np.count_nonzero(tail) / len(tail)


def _smooth_fraction(freq: FloatArray, tonal: npt.NDArray[np.bool_], n_last: int) -> float:
    """Share of the last `n_last` frames on a straight local track (see `_smooth_ok`)."""
    return _share_of_last(_smooth_ok(freq, tonal), n_last)


def _same_pitch_gap_s(freq: FloatArray, tonal: npt.NDArray[np.bool_]) -> float:
    """Longest silence (s) between two tonal runs (≥ 50 ms each) on the same pitch (±3 %):
    a reversing beeper's or a horn's on and off. A siren's tone never stops; gaps shorter
    than 80 ms (noise masking a faint tone) do not count."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], tonal.astype(np.int8), [0]])))
    starts, ends = edges[::2], edges[1::2]  # runs [start, end)
    long_runs = ends - starts >= 5
    starts, ends = starts[long_runs], ends[long_runs]
    best = 0
    for i in range(len(starts) - 1):
        gap = int(starts[i + 1] - ends[i])
        if gap < 8 or gap <= best:
            continue
        before = median_of(freq[ends[i] - 5 : ends[i]])
        after = median_of(freq[starts[i + 1] : starts[i + 1] + 5])
        if abs(after - before) < 0.03 * before:
            best = gap
    return best * FRAME_HOP / SAMPLE_RATE_HZ


def _pitch_levels(freq: FloatArray) -> float:
    """How many pitches (±3 %) each hold ≥ 12 % of the tonal frames (0 for < 30 frames)."""
    if len(freq) < 30:
        return 0.0
    bins = np.maximum(np.floor(np.log(freq / BAND_LO_HZ) / 0.03).astype(int) + 2, 0)
    counts = np.bincount(bins)
    merged = counts + np.concatenate([counts[1:], [0]])
    levels = 0
    for _ in range(6):
        top = int(np.argmax(merged))
        if merged[top] < 0.12 * len(freq):
            break
        levels += 1
        merged[max(top - 2, 0) : top + 3] = 0
    return float(levels)


def _steady_fraction(freq: FloatArray, tonal: npt.NDArray[np.bool_]) -> float:
    """Share of frames tonal now and 60 ms ago within 1 % of the same pitch (a held note)."""
    lag = SMOOTH_LAG
    if len(freq) <= lag:
        return 0.0
    both = tonal[lag:] & tonal[:-lag]
    steady = both & (np.abs(freq[lag:] - freq[:-lag]) < 0.01 * freq[lag:])
    return np.count_nonzero(steady) / len(both)


def _vibrato_swings_per_s(freq: FloatArray, tonal: npt.NDArray[np.bool_]) -> float:
    """Pitch swings per second that belong to a vibrato: VIBRATO_RUN or more in a row, each
    between two reversals of the tonal track VIBRATO_HALF_PERIOD frames apart and spanning
    VIBRATO_SWING of the pitch. The track is a 5-frame running median, so a one- or
    two-frame jump of the tracked peak to an echo or a harmonic (common in recorded sirens)
    makes no reversal. A wail reverses once per cycle, a yelp's swings are 30 % and more, a
    hi-lo steps: a siren scores 0."""
    n = len(freq)
    k = VIBRATO_MEDIAN
    if n < 3 * k:
        return 0.0
    smooth = np.sort(as_strided(freq, (n - k + 1, k), (freq.strides[0],) * 2), axis=1)[:, k // 2]
    tsum = np.cumsum(tonal)
    whole = (tsum[k - 1 :] - np.concatenate([[0], tsum[:-k]])) == k
    d = np.diff(smooth)
    ok = whole[1:] & whole[:-1] & (np.abs(d) < VIBRATO_STEP * smooth[1:])
    idx = np.flatnonzero(ok & (d != 0))
    if len(idx) < VIBRATO_RUN + 2:
        return 0.0
    stretch = np.cumsum(~ok)[idx]  # one id per unbroken stretch of the pitch line
    rising = d[idx] > 0
    turn = (stretch[1:] == stretch[:-1]) & (rising[1:] != rising[:-1])
    at = idx[1:][turn]  # the smoothed track's extrema
    if len(at) < VIBRATO_RUN + 1:
        return 0.0
    same = stretch[1:][turn]
    value = smooth[at]
    swing = np.abs(np.diff(value)) / value[1:]
    spacing = np.diff(at)
    lo, hi = VIBRATO_SWING
    shortest, longest = VIBRATO_HALF_PERIOD
    small = (
        (same[1:] == same[:-1])
        & (swing > lo)
        & (swing < hi)
        & (spacing >= shortest)
        & (spacing <= longest)
    )
    edges = np.flatnonzero(np.diff(np.concatenate([[0], small.astype(np.int8), [0]])))
    runs = edges[1::2] - edges[::2]
    count = int(runs[runs >= VIBRATO_RUN].sum())
    return count / (n * FRAME_HOP / SAMPLE_RATE_HZ)


def _longest_run(flags: npt.NDArray[np.bool_]) -> int:
    """Length of the longest run of True."""
    if not flags.any():
        return 0
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(np.int8), [0]])))
    return int((edges[1::2] - edges[::2]).max())


def _two_tone_share(freq: FloatArray) -> float:
    """Share of tonal frames on the two most frequent pitches (±2 %) when those are a
    hi-lo's interval apart (ratio 1.15–1.6); 0 otherwise (one tone, or many notes)."""
    if len(freq) < 30:
        return 0.0
    bins = np.maximum(np.floor(np.log(freq / BAND_LO_HZ) / 0.02).astype(int) + 2, 0)
    counts = np.bincount(bins)
    # merge neighbouring bins so a tone on a bin edge counts once
    merged = counts + np.concatenate([counts[1:], [0]])
    first = int(np.argmax(merged))
    rest = merged.copy()
    rest[max(first - 2, 0) : first + 3] = 0
    second = int(np.argmax(rest))
    ratio = math.exp(abs(first - second) * 0.02)
    if not 1.15 <= ratio <= 1.6 or rest[second] < 0.2 * merged[first]:
        return 0.0
    return float((merged[first] + merged[second]) / len(freq))


def _periodicity(
    freq: FloatArray,
    tonal: npt.NDArray[np.bool_],
    tonal_freq: FloatArray | None = None,
    n_tonal: int | None = None,
) -> float:
    """Peak normalised autocorrelation of the tonal peak track at lags 0.15–1.2 s."""
    n = len(freq)
    if n_tonal is None:
        n_tonal = int(np.count_nonzero(tonal))
    if n < 60 or n_tonal < 0.5 * n:
        return 0.0
    if tonal_freq is None:
        tonal_freq = freq[tonal]
    x = np.where(tonal, freq, median_of(tonal_freq))
    x = x - x.sum() / n
    energy = float(np.dot(x, x))
    if energy <= 1e-9:
        return 0.0
    # 2n points, as when the shipped model was trained: the feature stays bit-identical
    ac = autocorrelation(x, 2 * n)
    lags = np.arange(15, min(120, n - 20))
    if len(lags) == 0:
        return 0.0
    # unbiased, normalised by the overlap length
    ac_n = ac[lags] / energy * n / (n - lags)
    return min(max(float(ac_n.max()), -1.0), 1.0)


def autocorrelation(x: FloatArray, size: int | None = None) -> FloatArray:
    """Linear autocorrelation at lags 0…n−1 by an FFT of `size` ≥ 2n − 1 points (default:
    the power of two ≥ 2n)."""
    n = len(x)
    if size is None:
        size = 1 << (2 * n - 1).bit_length()
    spec = np.fft.rfft(x, size)
    return np.fft.irfft(spec * np.conj(spec), size)[:n]


# --- bearing ----------------------------------------------------------------------------


class BearingEstimator:
    """SRP over GCC-PHAT: the azimuth whose pairwise delays best fit the array's GCCs.

    `mic_xy` is n×2 or n×3 (vehicle frame, m); bearings are radians counter-clockwise from
    the car's forward axis, toward where the sound comes from (far-field, horizontal).
    With microphones on one line (two, say) only half a circle about the line's normal is
    searched: front and back are ambiguous.
    """

    def __init__(self, mic_xy: FloatArray, speed_of_sound_mps: float = 343.0) -> None:
        mic_xy = np.asarray(mic_xy, dtype=np.float64)[:, :2]
        if mic_xy.shape[0] < 2:
            raise ConfigError("bearing needs at least two microphones")
        self.n_mics = mic_xy.shape[0]
        self.pairs = [(i, j) for i in range(self.n_mics) for j in range(i + 1, self.n_mics)]
        centred = mic_xy - mic_xy.mean(axis=0)
        _, sv, vt = np.linalg.svd(centred)
        self.collinear = bool(sv[1] < 1e-3 * sv[0])
        self.angles: FloatArray
        if self.collinear:  # a line hears front and back alike: half a circle about its normal
            normal = math.atan2(vt[0, 0], -vt[0, 1])
            self.angles = np.asarray(
                np.linspace(-np.pi / 2, np.pi / 2, 181) + normal, dtype=np.float64
            )
        else:
            self.angles = np.linspace(-np.pi, np.pi, 360, endpoint=False)
        u = np.stack([np.cos(self.angles), np.sin(self.angles)], axis=1)  # A×2
        tdoa = np.stack(
            [-(u @ (mic_xy[i] - mic_xy[j])) / speed_of_sound_mps for i, j in self.pairs]
        )  # P×A: t_i − t_j for a far source in each direction
        # the GCC of every pair, read at every direction's delays, is a sum of these phasors
        # over the used bins: e^{jωτ}, tabulated once for the bins the siren can occupy
        omega = 2 * np.pi * np.arange(SPECTRA_BINS.start, SPECTRA_BINS.stop) * BIN_HZ
        self.steering = np.exp(1j * omega[:, None, None] * tdoa[None, :, :]).astype(np.complex64)
        self.pi = np.array([p[0] for p in self.pairs])
        self.pj = np.array([p[1] for p in self.pairs])
        # coarse-to-fine search: every BEARING_COARSE_STEP-th direction first, then the fine
        # grid around the best; the main lobe of this array is far wider than the step
        n_angles = len(self.angles)
        self._coarse = np.arange(0, n_angles, BEARING_COARSE_STEP)
        # SRP is a real part: real and imaginary steering as float32, pair-major (P×K×A), so
        # the sum over pairs and bins is one matrix-vector product (no complex einsum)
        pka = self.steering.transpose(1, 0, 2)
        self._re = np.ascontiguousarray(pka.real, dtype=np.float32)
        self._im = np.ascontiguousarray(pka.imag, dtype=np.float32)
        self._re_coarse = np.ascontiguousarray(self._re[:, :, self._coarse])
        self._im_coarse = np.ascontiguousarray(self._im[:, :, self._coarse])
        self._all_pairs = np.arange(len(self.pairs))
        self._fine = np.arange(-BEARING_COARSE_STEP, BEARING_COARSE_STEP + 1)

    def bearing(
        self, spectra: ComplexArray, peak_bin: npt.NDArray[np.int64], tonal: npt.NDArray[np.bool_]
    ) -> tuple[float, float]:
        """(bearing rad, peak strength 0–1) from STFT frames `spectra` (mics×F×bins, the
        bins `SPECTRA_BINS`) and the peak track (absolute FFT bins).

        Only the tracked tone (`peak_bin` per frame ±1 bin, frames flagged `tonal` when
        there are enough) enters the cross-spectra: the street's noise and the other tones
        between would pull GCC-PHAT toward their own directions.
        """
        frames = np.flatnonzero(tonal)
        if len(frames) < 5:
            frames = np.arange(len(peak_bin))
        bins = peak_bin[frames, None] + _NEIGHBOURS
        bins = _clip(bins, SPECTRA_BINS.start, SPECTRA_BINS.stop - 1) - SPECTRA_BINS.start
        sel = spectra[:, frames[:, None], bins]  # mics×F'×3
        products = (sel[self.pi] * np.conj(sel[self.pj])).ravel()  # P×F'×3
        # the cross-spectrum of every pair, summed over frames, on the bins that occur only
        flat_bins = bins.ravel()
        occurs = np.zeros(self.steering.shape[0], dtype=bool)
        occurs[flat_bins] = True
        used_bins = np.flatnonzero(occurs)
        n_pairs, n_used = len(self.pairs), len(used_bins)
        compact = np.searchsorted(used_bins, flat_bins)
        where = (self._all_pairs[:, None] * n_used + compact).ravel()
        size = n_pairs * n_used
        cross = (
            np.bincount(where, products.real, size) + 1j * np.bincount(where, products.imag, size)
        ).reshape(n_pairs, n_used)
        mag = np.abs(cross)
        used = mag > 1e-12 * (mag.max() + _EPS)
        scale = np.divide(1.0, mag, out=np.zeros_like(mag), where=used)
        weighted = (cross * scale).ravel()  # PHAT: unit magnitude, 0 where nothing was heard
        w_re = weighted.real.astype(np.float32)
        w_im = weighted.imag.astype(np.float32)
        # SRP: every pair's GCC at each direction's delay, summed over pairs and bins
        n_rows = n_pairs * n_used
        coarse = w_re @ self._re_coarse[:, used_bins].reshape(n_rows, -1)
        coarse -= w_im @ self._im_coarse[:, used_bins].reshape(n_rows, -1)
        centre = int(self._coarse[int(np.argmax(coarse))])
        fine = centre + self._fine
        n_angles = len(self.angles)
        fine = _clip(fine, 0, n_angles - 1) if self.collinear else fine % n_angles
        at = np.ix_(self._all_pairs, used_bins, fine)
        srp = w_re @ self._re[at].reshape(n_rows, -1) - w_im @ self._im[at].reshape(n_rows, -1)
        k = int(np.argmax(srp))
        best = int(fine[k])
        # 1 when every used bin of every pair agrees on the chosen delays
        strength = float(srp[k]) / max(float(np.count_nonzero(used)), 1.0)
        return float(self.angles[best]), min(max(strength, 0.0), 1.0)


# --- the streaming front end ------------------------------------------------------------

HOPS_PER_WINDOW = math.ceil(FRAMES_PER_WINDOW / FRAMES_PER_HOP)  # 5
_TRACK_ROWS = tuple(name for name in FrameTrack.__slots__ if name != "peak_bin")


@dataclass(frozen=True, slots=True)
class WindowFrontEnd:
    """What the front end knows at the end of one window."""

    time_s: float  # end of the window (the instant its result is available)
    features: FloatArray  # N_FEATURES
    hop_spectra: tuple[ComplexArray, ...]  # the last hops' STFTs (mics×10×bins), oldest first
    track: FrameTrack  # the window's frames
    level_db: float  # median tonal level (tone and harmonics) in the window, dB re input²
    peak_track_hz: FloatArray  # HISTORY_FRAMES (or fewer) of peak frequency, oldest first
    tonal_track: npt.NDArray[np.bool_]  # same length: frames with a prominent peak

    @property
    def spectra(self) -> ComplexArray:
        """mics×FRAMES_PER_WINDOW×bins: the window's STFT, `SPECTRA_BINS` only. Assembled
        on demand: only a window that needs a bearing pays for the copy."""
        return np.concatenate(self.hop_spectra, axis=1)[:, -FRAMES_PER_WINDOW:]


class StreamingFrontEnd:
    """Turns an array stream (mics×samples chunks of any length) into windows, causally.

    Each 0.1 s hop costs one batch of 10 new STFT frames per microphone; the overlapping
    frames of earlier hops, their peak tracks and spectra are kept, never recomputed.
    """

    def __init__(self, n_channels: int) -> None:
        if n_channels < 1:
            raise ConfigError("the siren detector needs at least one audio channel")
        self.n_channels = n_channels
        self._pending = np.zeros((n_channels, 0))
        self._context = np.zeros((n_channels, N_FFT - FRAME_HOP))
        # per hop (newest last): spectra (mics×10×bins), track rows (7×10), peak bins (10)
        self._hop_spectra: list[ComplexArray] = []
        self._hop_rows: list[FloatArray] = []
        self._hop_bins: list[npt.NDArray[np.int64]] = []
        self._history = np.zeros((2, 0))  # peak frequency and prominence, ≤ HISTORY_FRAMES
        self._samples_done = 0

    def push(self, chunk: FloatArray) -> list[WindowFrontEnd]:
        return list(self.iter_push(chunk))

    def iter_push(self, chunk: FloatArray) -> Iterator[WindowFrontEnd]:
        """As `push`, one window at a time (each computed when asked for)."""
        chunk = np.asarray(chunk, dtype=np.float64)
        if chunk.ndim == 1:
            chunk = chunk[None, :]
        if chunk.shape[0] != self.n_channels:
            raise ConfigError(f"expected {self.n_channels} audio channels, got {chunk.shape[0]}")
        pending = np.concatenate([self._pending, chunk], axis=1) if self._pending.size else chunk
        n_hops = pending.shape[1] // HOP_SAMPLES
        self._pending = pending[:, n_hops * HOP_SAMPLES :].copy()
        for i in range(n_hops):
            window = self._step(pending[:, i * HOP_SAMPLES : (i + 1) * HOP_SAMPLES])
            if window is not None:
                yield window

    def _step(self, hop: FloatArray) -> WindowFrontEnd | None:
        buf = np.concatenate([self._context, hop], axis=1)
        self._context = buf[:, -(N_FFT - FRAME_HOP) :]
        # the hop's 10 overlapping frames as a strided view (ch×10×N): no copy
        frames = as_strided(
            buf, (self.n_channels, FRAMES_PER_HOP, N_FFT), (buf.strides[0], _HOP_STRIDE, _ITEM)
        )
        spec = np.fft.rfft(frames * _WINDOW_FN, axis=-1)
        power = (spec.real**2 + spec.imag**2).sum(axis=0) / self.n_channels  # 10×513
        tr = frame_track(power)
        keep = HOPS_PER_WINDOW
        self._hop_spectra = [*self._hop_spectra[-keep + 1 :], spec[:, :, SPECTRA_BINS].copy()]
        self._hop_rows = [
            *self._hop_rows[-keep + 1 :],
            np.stack([getattr(tr, name) for name in _TRACK_ROWS]),
        ]
        self._hop_bins = [*self._hop_bins[-keep + 1 :], tr.peak_bin]
        self._history = np.concatenate(
            [self._history, np.stack([tr.freq_hz, tr.prominence_db])], axis=1
        )[:, -HISTORY_FRAMES:]
        self._samples_done += HOP_SAMPLES
        if self._samples_done < WINDOW_SAMPLES:
            return None  # the first full window ends at 0.5 s
        rows = np.concatenate(self._hop_rows, axis=1)[:, -FRAMES_PER_WINDOW:]
        peaks = np.concatenate(self._hop_bins)[-FRAMES_PER_WINDOW:]
        win = FrameTrack(
            rows[0],
            rows[1],
            rows[2],
            rows[3],
            rows[4],
            rows[5],
            rows[6],
            rows[7],
            rows[8],
            rows[9],
            rows[10],
            peaks,
        )
        hist = self._history  # a fresh array every hop: views of it stay valid
        feats = window_features(win, hist[0, -LONG_FRAMES:], hist[1, -LONG_FRAMES:])
        tonal = win.prominence_db > TONAL_DB
        level = median_of(win.level_db[tonal]) if tonal.any() else median_of(win.level_db)
        return WindowFrontEnd(
            time_s=self._samples_done / SAMPLE_RATE_HZ,
            features=feats,
            hop_spectra=tuple(self._hop_spectra),
            track=win,
            level_db=level,
            peak_track_hz=hist[0],
            tonal_track=hist[1] > TONAL_DB,
        )
