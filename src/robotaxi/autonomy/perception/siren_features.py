"""Causal features of a siren's swept tone, and GCC-PHAT bearing, over a streamed array signal.

The stream is cut into STFT frames of 1024 samples (64 ms) every 160 samples (10 ms); a
*window* is the last 0.5 s (44 frames) and one is produced every 0.1 s (10 new frames).
Frames are computed in fixed batches of one hop, so the result does not depend on how the
caller chops the stream, and a window ending at time t reads no sample after t.

Per frame (power averaged over the microphones) the extractor tracks the strongest peak in
400–2100 Hz (a siren's fundamental; parabolic interpolation between bins) and measures its
prominence over the band median, its contrast to neighbouring bins and its second harmonic.
Per window it summarises how tonal, continuous and swept that track is (`FEATURE_NAMES`),
plus, over the last 1.5 s, the track's periodicity and its jumps (hi-lo).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from robotaxi.core.errors import ConfigError

FloatArray = npt.NDArray[np.float64]
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
)
N_FEATURES = len(FEATURE_NAMES)


@dataclass(frozen=True, slots=True)
class FrameTrack:
    """Per-frame peak track, arrays of length F (oldest first)."""

    freq_hz: FloatArray  # interpolated peak frequency
    prominence_db: FloatArray  # peak over the band median
    contrast_db: FloatArray  # peak over bins 3–8 away
    harmonic_db: FloatArray  # power near 2·f over the band median
    flatness: FloatArray  # spectral flatness of the band (0 tone … 1 white)
    band_fraction: FloatArray  # band power / power above 100 Hz
    level_db: FloatArray  # tone + 2nd + 3rd harmonic power, dB re 1 (input units²)
    peak_bin: npt.NDArray[np.int64]  # FFT bin of the peak


def frame_track(power: FloatArray) -> FrameTrack:
    """Peak-track quantities of power spectra `power` (F×513, averaged over microphones)."""
    band = power[:, BAND] + _EPS
    log_band = 10.0 * np.log10(band)
    k = np.argmax(band, axis=1)
    rows = np.arange(len(k))
    n_band = band.shape[1]
    km = np.clip(k, 1, n_band - 2)
    a, b, c = log_band[rows, km - 1], log_band[rows, km], log_band[rows, km + 1]
    denom = a - 2 * b + c
    delta = np.where(np.abs(denom) > 1e-9, 0.5 * (a - c) / np.where(denom == 0, 1, denom), 0.0)
    delta = np.clip(delta, -0.5, 0.5)
    freq = (BAND.start + km + delta) * BIN_HZ
    median = np.median(log_band, axis=1)
    peak = log_band[rows, k]
    # contrast: peak over the mean of bins 3..8 away on both sides (a tone is narrow)
    offs = np.concatenate([np.arange(-8, -2), np.arange(3, 9)])
    side = np.clip(k[:, None] + offs[None, :], 0, n_band - 1)
    contrast = peak - 10.0 * np.log10(np.mean(band[rows[:, None], side], axis=1))
    # second harmonic: strongest bin within ±2 bins of twice the peak frequency
    k2 = np.clip(np.rint(freq * 2 / BIN_HZ).astype(int), 2, power.shape[1] - 3)
    around = np.stack([power[rows, k2 + d] for d in range(-2, 3)], axis=1)
    harmonic = 10.0 * np.log10(around.max(axis=1) + _EPS) - median
    flatness = np.exp(np.mean(np.log(band), axis=1)) / np.mean(band, axis=1)
    total = power[:, 7:].sum(axis=1) + _EPS  # above ≈ 100 Hz
    band_fraction = band.sum(axis=1) / total
    # level for the approach trend: the tone and its 2nd and 3rd harmonics (±1 bin) together,
    # so the road reflection's interference notch at one frequency does not read as distance
    tone = np.zeros(len(k))
    for h in (1, 2, 3):
        kh = np.clip(np.rint(freq * h / BIN_HZ).astype(int), 1, power.shape[1] - 2)
        tone += power[rows, kh - 1] + power[rows, kh] + power[rows, kh + 1]
    level = 10.0 * np.log10(tone + _EPS)
    return FrameTrack(
        freq, peak - median, contrast, harmonic, flatness, band_fraction, level, k + BAND.start
    )


def window_features(track: FrameTrack, long_freq: FloatArray, long_prom: FloatArray) -> FloatArray:
    """The feature vector (`FEATURE_NAMES`) of one window.

    `track` covers the window's frames; `long_freq`/`long_prom` the last ≤1.5 s of the
    peak track ending with the same frame.
    """
    f, prom = track.freq_hz, track.prominence_db
    tonal = prom > TONAL_DB
    df = np.abs(np.diff(f))
    both = tonal[1:] & tonal[:-1]
    cont = both & (df < CONTINUITY_HZ)
    continuity = float(cont.mean()) if len(cont) else 0.0
    sweep = _quantile(np.sort(df[cont]), 0.5) / (FRAME_HOP / SAMPLE_RATE_HZ) if cont.any() else 0.0
    ft = f[tonal]
    span = _spread(ft)
    if cont.sum() >= 3:
        d2 = np.abs(np.diff(np.diff(f)))[cont[1:] & cont[:-1]]
        curvature = _quantile(np.sort(d2), 0.5) if len(d2) else 0.0
    else:
        curvature = 100.0
    l_tonal = long_prom > TONAL_DB
    smooth = _smooth_fraction(long_freq, l_tonal, len(f))
    l_df = np.abs(np.diff(long_freq))
    l_both = l_tonal[1:] & l_tonal[:-1]
    l_cont = l_both & (l_df < CONTINUITY_HZ)
    long_cont = float(l_cont.mean()) if len(l_cont) else 0.0
    lt = long_freq[l_tonal]
    long_span = _spread(lt)
    # hi-lo: clean jumps between two steady tones
    jumps = l_both & (l_df >= 100.0) & (l_df < 700.0)
    long_s = max(len(long_freq) * FRAME_HOP / SAMPLE_RATE_HZ, 1e-3)
    jumps_per_s = float(jumps.sum()) / long_s
    periodicity = _periodicity(long_freq, l_tonal)
    two_tone = _two_tone_share(long_freq[l_tonal])
    # one sort for the five per-frame medians (np.median costs more in overhead than work)
    per_frame = np.sort(
        np.stack([prom, track.contrast_db, track.harmonic_db, track.flatness, track.band_fraction]),
        axis=1,
    )
    return np.array(
        [
            _quantile(per_frame[0], 0.5),
            _quantile(per_frame[0], 0.25),
            _quantile(per_frame[1], 0.5),
            float(tonal.mean()),
            continuity,
            smooth,
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
            float(l_tonal.mean()) if len(l_tonal) else 0.0,
            two_tone,
            _smooth_fraction(long_freq, l_tonal, len(long_freq)),
        ]
    )


def _quantile(sorted_values: FloatArray, q: float) -> float:
    """Linear-interpolated quantile of an already sorted 1-D array (as np.quantile)."""
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo))


def _spread(values: FloatArray) -> float:
    """90th minus 10th percentile (0 for fewer than 4 values)."""
    if len(values) < 4:
        return 0.0
    v = np.sort(values)
    return _quantile(v, 0.9) - _quantile(v, 0.1)


def _smooth_fraction(freq: FloatArray, tonal: npt.NDArray[np.bool_], n_last: int) -> float:
    """Share of the last `n_last` frames on a straight local track: tonal at t, t−L, t−2L and
    |f(t) − 2f(t−L) + f(t−2L)| < SMOOTH_HZ with L = 60 ms (noise peaks land anywhere)."""
    lag = SMOOTH_LAG
    if len(freq) < 2 * lag + 1:
        return 0.0
    a, b, c = freq[2 * lag :], freq[lag:-lag], freq[: -2 * lag]
    ok = (
        tonal[2 * lag :] & tonal[lag:-lag] & tonal[: -2 * lag] & (np.abs(a - 2 * b + c) < SMOOTH_HZ)
    )
    return float(ok[-n_last:].mean())


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


def _periodicity(freq: FloatArray, tonal: npt.NDArray[np.bool_]) -> float:
    """Peak normalised autocorrelation of the tonal peak track at lags 0.15–1.2 s."""
    if tonal.mean() < 0.5 or len(freq) < 60:
        return 0.0
    x = np.where(tonal, freq, np.median(freq[tonal]))
    x = x - x.mean()
    energy = float(np.dot(x, x))
    if energy <= 1e-9:
        return 0.0
    n = len(x)
    spec = np.fft.rfft(x, 2 * n)
    ac = np.fft.irfft(spec * np.conj(spec), 2 * n)[:n]
    lags = np.arange(15, min(120, n - 20))
    if len(lags) == 0:
        return 0.0
    # unbiased, normalised by the overlap length
    ac_n = ac[lags] / energy * n / (n - lags)
    return float(np.clip(ac_n.max(), -1.0, 1.0))


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

    def bearing(
        self, spectra: ComplexArray, peak_bin: npt.NDArray[np.int64], tonal: npt.NDArray[np.bool_]
    ) -> tuple[float, float]:
        """(bearing rad, peak strength 0–1) from STFT frames `spectra` (mics×F×bins, the
        bins `SPECTRA_BINS`) and the peak track (absolute FFT bins).

        Only the tracked tone (`peak_bin` per frame ±1 bin, frames flagged `tonal` when
        there are enough) enters the cross-spectra: the street's noise and the other tones
        between would pull GCC-PHAT toward their own directions.
        """
        frames = np.flatnonzero(tonal) if tonal.sum() >= 5 else np.arange(len(peak_bin))
        bins = peak_bin[frames, None] + np.array([-1, 0, 1])[None, :]
        bins = np.clip(bins, SPECTRA_BINS.start, SPECTRA_BINS.stop - 1) - SPECTRA_BINS.start
        sel = spectra[:, frames[:, None], bins]  # mics×F'×3
        products = (sel[self.pi] * np.conj(sel[self.pj])).ravel()  # P×F'×3
        n_pairs, n_bins = len(self.pairs), self.steering.shape[0]
        where = (np.arange(n_pairs)[:, None] * n_bins + bins.ravel()[None, :]).ravel()
        size = n_pairs * n_bins
        cross = (
            np.bincount(where, products.real, size) + 1j * np.bincount(where, products.imag, size)
        ).reshape(n_pairs, n_bins)
        used_bins = np.flatnonzero(np.abs(cross).sum(axis=0) > 0)
        cross = cross[:, used_bins]
        mag = np.abs(cross)
        used = mag > 1e-12 * (mag.max() + _EPS)
        weighted = np.where(used, cross / np.where(used, mag, 1.0), 0.0)  # PHAT
        # SRP: every pair's GCC at each direction's delay, summed over pairs
        srp = np.einsum("pk,kpa->a", weighted, self.steering[used_bins]).real
        best = int(np.argmax(srp))
        # 1 when every used bin of every pair agrees on the chosen delays
        strength = float(srp[best]) / max(float(used.sum()), 1.0)
        return float(self.angles[best]), float(np.clip(strength, 0.0, 1.0))


# --- the streaming front end ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WindowFrontEnd:
    """What the front end knows at the end of one window."""

    time_s: float  # end of the window (the instant its result is available)
    features: FloatArray  # N_FEATURES
    spectra: ComplexArray  # mics×FRAMES_PER_WINDOW×bins: the window's STFT, SPECTRA_BINS only
    track: FrameTrack  # the window's frames
    level_db: float  # median tonal level (tone and harmonics) in the window, dB re input²
    peak_track_hz: FloatArray  # HISTORY_FRAMES (or fewer) of peak frequency, oldest first
    tonal_track: npt.NDArray[np.bool_]  # same length: frames with a prominent peak


class StreamingFrontEnd:
    """Turns an array stream (mics×samples chunks of any length) into windows, causally."""

    def __init__(self, n_channels: int) -> None:
        if n_channels < 1:
            raise ConfigError("the siren detector needs at least one audio channel")
        self.n_channels = n_channels
        self._pending = np.zeros((n_channels, 0))
        self._context = np.zeros((n_channels, N_FFT - FRAME_HOP))
        n_kept = SPECTRA_BINS.stop - SPECTRA_BINS.start
        self._spectra = np.zeros((n_channels, FRAMES_PER_WINDOW, n_kept), complex)
        self._tracks: list[FrameTrack] = []
        self._hist_freq = np.zeros(0)
        self._hist_prom = np.zeros(0)
        self._samples_done = 0

    def push(self, chunk: FloatArray) -> list[WindowFrontEnd]:
        chunk = np.asarray(chunk, dtype=np.float64)
        if chunk.ndim == 1:
            chunk = chunk[None, :]
        if chunk.shape[0] != self.n_channels:
            raise ConfigError(f"expected {self.n_channels} audio channels, got {chunk.shape[0]}")
        self._pending = np.concatenate([self._pending, chunk], axis=1)
        out = []
        while self._pending.shape[1] >= HOP_SAMPLES:
            hop, self._pending = (
                self._pending[:, :HOP_SAMPLES],
                self._pending[:, HOP_SAMPLES:],
            )
            window = self._step(hop)
            if window is not None:
                out.append(window)
        return out

    def _step(self, hop: FloatArray) -> WindowFrontEnd | None:
        buf = np.concatenate([self._context, hop], axis=1)
        self._context = buf[:, -(N_FFT - FRAME_HOP) :]
        starts = np.arange(FRAMES_PER_HOP) * FRAME_HOP
        frames = np.stack([buf[:, s : s + N_FFT] for s in starts], axis=1)  # ch×10×N
        spec = np.fft.rfft(frames * _WINDOW_FN, axis=-1)
        self._spectra = np.concatenate(
            [self._spectra[:, FRAMES_PER_HOP:], spec[:, :, SPECTRA_BINS]], axis=1
        )
        power = np.mean(spec.real**2 + spec.imag**2, axis=0)  # 10×513
        tr = frame_track(power)
        keep = HISTORY_FRAMES
        self._hist_freq = np.concatenate([self._hist_freq, tr.freq_hz])[-keep:]
        self._hist_prom = np.concatenate([self._hist_prom, tr.prominence_db])[-keep:]
        self._tracks.append(tr)
        hops_per_window = math.ceil(FRAMES_PER_WINDOW / FRAMES_PER_HOP)
        self._tracks = self._tracks[-hops_per_window:]
        self._samples_done += HOP_SAMPLES
        if self._samples_done < WINDOW_SAMPLES:
            return None  # the first full window ends at 0.5 s
        win = _concat_tracks(self._tracks, FRAMES_PER_WINDOW)
        feats = window_features(win, self._hist_freq[-LONG_FRAMES:], self._hist_prom[-LONG_FRAMES:])
        tonal = win.prominence_db > TONAL_DB
        level = (
            float(np.median(win.level_db[tonal])) if tonal.any() else float(np.median(win.level_db))
        )
        return WindowFrontEnd(
            time_s=self._samples_done / SAMPLE_RATE_HZ,
            features=feats,
            spectra=self._spectra,
            track=win,
            level_db=level,
            peak_track_hz=self._hist_freq.copy(),
            tonal_track=self._hist_prom > TONAL_DB,
        )


def _concat_tracks(tracks: list[FrameTrack], n: int) -> FrameTrack:
    fields = FrameTrack.__slots__
    return FrameTrack(
        **{name: np.concatenate([getattr(t, name) for t in tracks])[-n:] for name in fields}
    )
