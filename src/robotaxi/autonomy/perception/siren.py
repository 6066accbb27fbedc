"""Streaming siren detector: probability, bearing and approach per 0.1 s, and per-tick evidence.

`SirenDetector.push(chunk)` takes the roof array's samples (mics×n, any chunking) and
returns one `SirenWindow` per completed 0.5 s window (every 0.1 s): the classifier's
probability, a smoothed probability with on/off hysteresis (`detected`), the GCC-PHAT
bearing when there are several microphones (computed for detected or likely windows only,
probability ≥ BEARING_MIN_PROBABILITY, unless `every_bearing`), and whether the siren is
approaching (level trend, and the Doppler drop of a pass-by). Causal: a window ending at t
reads nothing later. Per window the cost is well under 2 ms on one core
(benchmarks/bench_siren.py).

`siren_evidence(windows, ego)` folds one tick's windows into a `SirenEvidence`, the pure
input the behaviour planner can use for the yield-to-emergency decision.

The classifier is a small gradient-boosted tree ensemble over
`siren_features.FEATURE_NAMES`, stored as plain JSON arrays next to this module
(`siren_model.json`, written by `robotaxi siren train`; no pickle) and evaluated with numpy.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from robotaxi.autonomy.perception.siren_features import (
    FEATURE_NAMES,
    FRAME_HOP,
    SAMPLE_RATE_HZ,
    TONAL_DB,
    BearingEstimator,
    StreamingFrontEnd,
    WindowFrontEnd,
    autocorrelation,
    median_of,
)
from robotaxi.config.sensors import MicArrayConfig
from robotaxi.core.errors import ConfigError, DataNotFoundError
from robotaxi.core.time import TimePoint
from robotaxi.core.types import FloatArray, Pose

MODEL_PATH = Path(__file__).with_name("siren_model.json")
MODEL_FORMAT = "robotaxi-siren-gbt-v1"
LEVEL_TREND_WINDOWS = 20  # 2 s of windows for the level slope
APPROACH_DB_PER_S = 0.4  # |level slope| above this decides approaching/receding
PASS_BY_DOPPLER_PER_S = -0.008  # a faster relative frequency drop means it is passing us
DOPPLER_EVERY = 5
# below this classifier probability (and while not detected) a window gets no bearing
BEARING_MIN_PROBABILITY = 0.2


# --- the model --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SirenModel:
    """Gradient-boosted trees → logistic probability; then smoothing and hysteresis.

    Tree t's node n tests `features[feature[t, n]] <= threshold[t, n]` and goes to
    `left[t, n]` or `right[t, n]`; a leaf points to itself on both sides and holds
    `value[t, n]`. The logit is `baseline` plus one leaf value per tree.

    `envelope_lo`/`envelope_hi` (optional, per feature) bound what sirens look like: the
    range of the training sirens' windows, widened by a margin (chosen with the decision rule
    on validation audio: too tight a margin zeroes a siren's first windows, whose features are
    not yet settled, and delays detection). A window outside it on any
    feature has probability 0, however the trees score it — trees extrapolate freely into
    the parts of feature space no training sound reached, and a sound nobody trained on
    lands there; a siren does not.
    """

    feature_names: tuple[str, ...]
    baseline: float
    feature: npt.NDArray[np.int64]  # T×N
    threshold: FloatArray  # T×N
    left: npt.NDArray[np.int64]  # T×N
    right: npt.NDArray[np.int64]  # T×N
    value: FloatArray  # T×N
    depth: int
    smooth_windows: int = 3
    on_threshold: float = 0.7
    off_threshold: float = 0.4
    info: dict[str, Any] | None = None
    envelope_lo: FloatArray | None = None
    envelope_hi: FloatArray | None = None
    # the trees flattened, children as flat indices: a walk is a few gathers (hot path)
    _flat: tuple[npt.NDArray[Any], ...] = dataclasses.field(
        init=False, repr=False, compare=False, default=()
    )

    def __post_init__(self) -> None:
        n_trees, n_nodes = self.feature.shape
        offset = (np.arange(n_trees) * n_nodes)[:, None]
        flat = (
            self.feature.ravel(),
            self.threshold.ravel(),
            (self.left + offset).ravel(),
            (self.right + offset).ravel(),
            self.value.ravel(),
            offset.ravel(),
        )
        object.__setattr__(self, "_flat", flat)

    def probability(self, features: FloatArray) -> FloatArray:
        """Siren probability of feature rows (n×F → n; F → a 0-d array)."""
        feature, threshold, left, right, value, roots = self._flat
        x = np.asarray(features, dtype=np.float64)
        if x.ndim == 1:  # the streaming case: one row, no row offsets to broadcast
            node = roots
            for _ in range(self.depth):
                node = np.where(x[feature[node]] <= threshold[node], left[node], right[node])
            if (
                self.envelope_lo is not None
                and self.envelope_hi is not None
                and not bool(np.all((x >= self.envelope_lo) & (x <= self.envelope_hi)))
            ):
                return np.asarray(0.0)
            one = min(max(self.baseline + float(value[node].sum()), -40.0), 40.0)
            return np.asarray(1.0 / (1.0 + math.exp(-one)))
        rows = np.atleast_2d(x)
        node = np.broadcast_to(roots, (rows.shape[0], len(roots)))
        row_base = (np.arange(rows.shape[0]) * rows.shape[1])[:, None]
        flat_rows = rows.ravel()
        for _ in range(self.depth):
            go_left = flat_rows[row_base + feature[node]] <= threshold[node]
            node = np.where(go_left, left[node], right[node])
        logit = self.baseline + value[node].sum(axis=1)
        p = 1.0 / (1.0 + np.exp(-np.clip(logit, -40.0, 40.0)))
        if self.envelope_lo is not None and self.envelope_hi is not None:
            inside = np.all((rows >= self.envelope_lo) & (rows <= self.envelope_hi), axis=1)
            p = np.where(inside, p, 0.0)
        return p if x.ndim == 2 else p[0]

    def with_envelope(self, lo: FloatArray | None, hi: FloatArray | None) -> SirenModel:
        return dataclasses.replace(self, envelope_lo=lo, envelope_hi=hi)

    def with_decision(self, smooth_windows: int, on: float, off: float) -> SirenModel:
        return dataclasses.replace(
            self, smooth_windows=smooth_windows, on_threshold=on, off_threshold=off
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format": MODEL_FORMAT,
            "feature_names": list(self.feature_names),
            "baseline": self.baseline,
            "depth": self.depth,
            "trees": {
                "feature": self.feature.tolist(),
                "threshold": self.threshold.tolist(),  # exact: features sit on thresholds
                "left": self.left.tolist(),
                "right": self.right.tolist(),
                "value": np.round(self.value, 7).tolist(),
            },
            "decision": {
                "smooth_windows": self.smooth_windows,
                "on_threshold": self.on_threshold,
                "off_threshold": self.off_threshold,
            },
            "info": self.info or {},
            **(
                {
                    "envelope": {
                        "lo": self.envelope_lo.tolist(),
                        "hi": self.envelope_hi.tolist(),
                    }
                }
                if self.envelope_lo is not None and self.envelope_hi is not None
                else {}
            ),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SirenModel:
        if data.get("format") != MODEL_FORMAT:
            raise ConfigError("siren model file has an unknown format; run `robotaxi siren train`")
        names = tuple(data["feature_names"])
        unknown = [n for n in names if n not in FEATURE_NAMES]
        if unknown:
            raise ConfigError(
                f"siren model uses features this code does not compute ({unknown[0]}, …); "
                "run `robotaxi siren train`"
            )
        trees = data["trees"]
        decision = data.get("decision", {})
        # a model of an earlier feature set (a subset, each computed as today) reads its
        # features from today's vector: remap its indices
        where = np.array([FEATURE_NAMES.index(n) for n in names], dtype=np.int64)
        lo = hi = None
        if "envelope" in data:  # per feature of the file's list: unbounded where absent
            lo = np.full(len(FEATURE_NAMES), -np.inf)
            hi = np.full(len(FEATURE_NAMES), np.inf)
            lo[where] = np.asarray(data["envelope"]["lo"], dtype=np.float64)
            hi[where] = np.asarray(data["envelope"]["hi"], dtype=np.float64)
        return cls(
            feature_names=FEATURE_NAMES,
            baseline=float(data["baseline"]),
            feature=where[np.asarray(trees["feature"], dtype=np.int64)],
            threshold=np.asarray(trees["threshold"], dtype=np.float64),
            left=np.asarray(trees["left"], dtype=np.int64),
            right=np.asarray(trees["right"], dtype=np.int64),
            value=np.asarray(trees["value"], dtype=np.float64),
            depth=int(data["depth"]),
            smooth_windows=int(decision.get("smooth_windows", 3)),
            on_threshold=float(decision.get("on_threshold", 0.7)),
            off_threshold=float(decision.get("off_threshold", 0.4)),
            info=data.get("info"),
            envelope_lo=lo,
            envelope_hi=hi,
        )

    def save(self, path: Path = MODEL_PATH) -> None:
        Path(path).write_text(json.dumps(self.to_json(), separators=(",", ":")) + "\n")


def load_model(path: Path | None = None) -> SirenModel:
    """The shipped model (or one at `path`); JSON only, no pickle."""
    return _load_model_cached(str(path or MODEL_PATH))


@lru_cache(maxsize=4)
def _load_model_cached(path: str) -> SirenModel:
    file = Path(path)
    if not file.is_file():
        raise DataNotFoundError(f"siren model {file} is missing; run `robotaxi siren train`")
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"siren model {file} is unreadable ({exc})") from None
    return SirenModel.from_json(data)


# --- per-window output ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SirenWindow:
    """The detector's output for the 0.5 s window ending at `time_s` (stream time)."""

    time_s: float
    probability: float  # classifier output for this window
    smoothed: float  # mean of the last `smooth_windows` probabilities
    detected: bool  # smoothed probability with on/off hysteresis
    # vehicle frame, CCW from forward; None for one microphone, and for a window that is
    # neither detected nor has probability ≥ BEARING_MIN_PROBABILITY (no GCC-PHAT spent)
    bearing_rad: float | None
    bearing_strength: float  # 0–1, how well the array's delays agree on it
    level_db: float  # tonal peak level (dB re input units²)
    level_trend_db_per_s: float | None  # slope over the last 2 s of siren windows
    doppler_rate_per_s: float | None  # relative frequency change per s vs one period ago
    approaching: bool | None  # None: cannot tell yet
    frequency_hz: float  # median tracked peak frequency in the window


def default_mic_xy(n_channels: int) -> FloatArray | None:
    """Geometry assumed for an n-channel recording: the roof array for 4 channels, else a
    left-to-right line 0.2 m apart (bearing then a lateral angle, front/back ambiguous)."""
    if n_channels < 2:
        return None
    if n_channels == MicArrayConfig().n_mics:
        return MicArrayConfig().mic_xy()[:, :2]
    y = (np.arange(n_channels) - (n_channels - 1) / 2.0) * -0.2
    return np.stack([np.zeros(n_channels), y], axis=1)


class SirenDetector:
    """Causal streaming detector over an n-channel 16 kHz stream."""

    def __init__(
        self,
        n_channels: int,
        *,
        model: SirenModel | None = None,
        mic_xy: FloatArray | None = None,
        speed_of_sound_mps: float = 343.0,
        every_bearing: bool = False,
    ) -> None:
        """`every_bearing`: compute the bearing for every window (offline analysis), not
        only for the detected or likely ones (probability ≥ BEARING_MIN_PROBABILITY)."""
        self.model = model or load_model()
        self.every_bearing = every_bearing
        self.n_channels = n_channels
        self.front_end = StreamingFrontEnd(n_channels)
        geometry = mic_xy if mic_xy is not None else default_mic_xy(n_channels)
        if geometry is not None and len(geometry) != n_channels:
            raise ConfigError(
                f"{len(geometry)} microphone positions given for {n_channels} channels"
            )
        self.bearing = None if geometry is None else BearingEstimator(geometry, speed_of_sound_mps)
        self._probs: deque[float] = deque(maxlen=self.model.smooth_windows)
        self._levels: deque[tuple[float, float, bool]] = deque(maxlen=LEVEL_TREND_WINDOWS)
        self._detected = False
        self._windows_seen = 0
        self._doppler: float | None = None
        self._doppler_tried = False

    def push(self, chunk: FloatArray) -> list[SirenWindow]:
        """Feed samples (mics×n or n for one channel); returns the windows they completed."""
        return [self._window(w) for w in self.front_end.iter_push(chunk)]

    def _window(self, w: WindowFrontEnd) -> SirenWindow:
        model = self.model
        p = float(model.probability(w.features))
        self._probs.append(p)
        smoothed = sum(self._probs) / len(self._probs)
        if self._detected:
            self._detected = smoothed >= model.off_threshold
        else:
            self._detected = smoothed >= model.on_threshold
        tonal = w.track.prominence_db > TONAL_DB
        bearing, strength = (None, 0.0)
        # GCC-PHAT only where a bearing can be used: street noise alone never needs one
        if self.bearing is not None and (
            self.every_bearing or self._detected or p >= BEARING_MIN_PROBABILITY
        ):
            bearing, strength = self.bearing.bearing(w.spectra, w.track.peak_bin, tonal)
        self._levels.append((w.time_s, w.level_db, smoothed >= 0.5))
        trend = _level_trend(self._levels)
        # a slow quantity: computed on a siren's first window, then refreshed every
        # DOPPLER_EVERY windows while it is heard — also when no period was found yet (a
        # retry every window would put its cost, the largest here, into every window)
        self._windows_seen += 1
        if smoothed < 0.5:
            self._doppler = None
            self._doppler_tried = False
        elif not self._doppler_tried or self._windows_seen % DOPPLER_EVERY == 0:
            self._doppler = _doppler_rate(w.peak_track_hz, w.tonal_track)
            self._doppler_tried = True
        doppler = self._doppler
        # the level trend decides; the Doppler drop of a pass-by (which starts just before
        # the closest point) only confirms "receding" once the level falls too
        approaching: bool | None = None
        if trend is not None and trend >= APPROACH_DB_PER_S:
            approaching = True
        elif trend is not None and (
            trend <= -APPROACH_DB_PER_S
            or (trend < 0 and doppler is not None and doppler < PASS_BY_DOPPLER_PER_S)
        ):
            approaching = False
        freq = median_of(w.track.freq_hz[tonal]) if tonal.any() else 0.0
        return SirenWindow(
            time_s=w.time_s,
            probability=p,
            smoothed=smoothed,
            detected=self._detected,
            bearing_rad=bearing,
            bearing_strength=strength,
            level_db=w.level_db,
            level_trend_db_per_s=trend,
            doppler_rate_per_s=doppler,
            approaching=approaching,
            frequency_hz=freq,
        )


def detect(
    signal: FloatArray, *, model: SirenModel | None = None, mic_xy: FloatArray | None = None
) -> list[SirenWindow]:
    """Run the detector over a whole recording (channels×samples or samples) at once."""
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    return SirenDetector(x.shape[0], model=model, mic_xy=mic_xy).push(x)


def _level_trend(levels: deque[tuple[float, float, bool]]) -> float | None:
    """dB/s slope of the tonal level over the recent siren windows (least squares)."""
    # ≤ 20 points every 0.1 s: plain Python beats building arrays for them
    pts = [(t, lv) for t, lv, siren in levels if siren]
    n = len(pts)
    if n < LEVEL_TREND_WINDOWS // 2:
        return None
    t_mean = sum(t for t, _ in pts) / n
    lv_mean = sum(lv for _, lv in pts) / n
    num = sum((t - t_mean) * (lv - lv_mean) for t, lv in pts)
    den = sum((t - t_mean) ** 2 for t, _ in pts)
    return num / max(den, 1e-9)


def _doppler_rate(freq: FloatArray, tonal: npt.NDArray[np.bool_]) -> float | None:
    """Relative change per second of the siren's pitch against the same point one pattern
    period earlier. A siren repeats its sweep, so that ratio is the change of the Doppler
    factor 1 + v_r/c: about zero while it drives steadily toward or away from us, clearly
    negative while it passes. None when no period is found in the last 8 s."""
    n = len(freq)
    if n < 300 or np.count_nonzero(tonal[-100:]) < 60:
        return None
    x = np.where(tonal, freq, median_of(freq[tonal]))
    ac = autocorrelation(x - x.sum() / n)
    if ac[0] <= 1e-9:
        return None
    lags = np.arange(15, n - 100)
    ac_n = ac[lags] / ac[0] * n / (n - lags)
    # the first strong peak is the pattern period (later ones are its multiples)
    strong = np.flatnonzero(ac_n > 0.7)
    if len(strong) == 0:
        return None
    start = strong[0]
    stop = start
    while stop + 1 < len(ac_n) and ac_n[stop + 1] >= ac_n[stop]:
        stop += 1
    lag = int(lags[stop])
    now, before = x[-100:], x[-100 - lag : -lag]
    ok = tonal[-100:] & tonal[-100 - lag : -lag]
    if np.count_nonzero(ok) < 50:
        return None
    ratio = median_of(now[ok] / before[ok])
    return (ratio - 1.0) / (lag * FRAME_HOP / SAMPLE_RATE_HZ)


# --- evidence for the planner -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SirenEvidence:
    """What the microphones say about sirens at one tick, for the behaviour planner.

    `bearing_map_rad` is the map-frame direction the siren is heard from (CCW from +x),
    `bearing_vehicle_rad` the same relative to the car's heading; None without a siren or
    without an array. `detected_for_s` counts the continuous detection up to `time`.
    """

    time: TimePoint
    probability: float
    detected: bool
    bearing_vehicle_rad: float | None
    bearing_map_rad: float | None
    approaching: bool | None
    level_trend_db_per_s: float | None
    detected_for_s: float

    @classmethod
    def silent(cls, time: TimePoint) -> SirenEvidence:
        return cls(time, 0.0, False, None, None, None, None, 0.0)


def siren_evidence(
    windows: Sequence[SirenWindow],
    ego: Pose,
    time: TimePoint,
    previous: SirenEvidence | None = None,
) -> SirenEvidence:
    """Fold the windows one tick produced into evidence (pure; `previous` carries duration).

    The bearing is the circular mean of the tick's detected windows weighted by their
    bearing strength; the approach flag is the latest one that is not None.
    """
    if not windows:
        return previous if previous is not None else SirenEvidence.silent(time)
    last = windows[-1]
    detected = last.detected
    hits = [w for w in windows if w.detected and w.bearing_rad is not None]
    bearing_vehicle = None
    if hits:
        weights = np.array([max(w.bearing_strength, 1e-3) for w in hits])
        angles = np.array([w.bearing_rad for w in hits], dtype=np.float64)
        bearing_vehicle = float(
            math.atan2(np.dot(weights, np.sin(angles)), np.dot(weights, np.cos(angles)))
        )
    bearing_map = None
    if bearing_vehicle is not None:
        bearing_map = math.remainder(bearing_vehicle + ego.heading, 2 * math.pi)
    approaching = next(
        (w.approaching for w in reversed(windows) if w.approaching is not None), None
    )
    trend = next(
        (w.level_trend_db_per_s for w in reversed(windows) if w.level_trend_db_per_s is not None),
        None,
    )
    if detected and previous is not None and previous.detected:
        detected_for = previous.detected_for_s + (time - previous.time)
    elif detected:
        first = next((w for w in windows if w.detected), last)
        detected_for = max(last.time_s - first.time_s, 0.0)
    else:
        detected_for = 0.0
    return SirenEvidence(
        time=time,
        probability=max(w.smoothed for w in windows),
        detected=detected,
        bearing_vehicle_rad=bearing_vehicle,
        bearing_map_rad=bearing_map,
        approaching=approaching if detected else None,
        level_trend_db_per_s=trend,
        detected_for_s=detected_for,
    )
