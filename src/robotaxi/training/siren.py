"""Training and evaluation of the siren classifier (`robotaxi siren train` / `eval`).

Data:
- synthetic street scenes from the roof-array simulator (`sim.sensors.microphones`):
  random US siren voices at 15–400 m, moving, over street background at 55–80 dB SPL;
- the TRAIN part of the real recordings in ../shared/data/audio (`real_split`), clean and
  mixed with synthetic street background.

The fixed train/test split of the real clips: clips that are cuts of one recording
(identical peak-frequency tracks, `SAME_RECORDING`) form one group; groups (and negative
files) are ranked by the SHA-1 of their first file name and every third from rank 0 is
TEST, the rest TRAIN. No test clip, nor a cut of the same recording, is ever trained on.
Everything is deterministic for a seed: the same seed writes the same model file.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from robotaxi.autonomy.perception.siren import (
    MODEL_PATH,
    SirenDetector,
    SirenModel,
    load_model,
)
from robotaxi.autonomy.perception.siren_features import (
    FEATURE_NAMES,
    HOP_S,
    SAMPLE_RATE_HZ,
    WINDOW_S,
    StreamingFrontEnd,
)
from robotaxi.core.errors import DataNotFoundError
from robotaxi.core.stats import percentile
from robotaxi.core.types import FloatArray, Pose
from robotaxi.sim.sensors.microphones import (
    SYNTH_MIX,
    EmergencySource,
    MicArrayConfig,
    SirenPattern,
    StreetBackground,
    db_spl_to_pa,
    load_clip_16k,
    random_voice,
    render_sources,
    snr_db_at,
)
from robotaxi.training.siren_data import SAME_RECORDING

Progress = Callable[[str, int, int], None]  # (task, done, total)

DEFAULT_DATA_DIR = Path("../shared/data")
N_TREES = 150
SYNTH_CLIPS_PER_FAMILY = 24
TREE_DEPTH = 4
CLIP_S = 3.0  # the real clips' length; negatives are cut to it for clip-level scores


def _no_progress(task: str, done: int, total: int) -> None:
    return None


# --- the real recordings ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RealSplit:
    """File paths of the real recordings on each side of the fixed split."""

    train_positive: tuple[Path, ...]
    test_positive: tuple[Path, ...]
    train_negative: tuple[Path, ...]
    test_negative: tuple[Path, ...]


def _rank_split(groups: Sequence[tuple[str, ...]]) -> tuple[list[str], list[str]]:
    ranked = sorted(groups, key=lambda g: hashlib.sha1(g[0].encode()).hexdigest())
    train = [name for i, g in enumerate(ranked) if i % 3 != 0 for name in g]
    test = [name for i, g in enumerate(ranked) if i % 3 == 0 for name in g]
    return sorted(train), sorted(test)


def real_split(data_dir: Path = DEFAULT_DATA_DIR) -> RealSplit:
    """The fixed train/test split of ../shared/data/audio (see the module docstring)."""
    pos_dir, neg_dir = (
        Path(data_dir) / "audio" / "ambulance",
        Path(data_dir) / "audio" / "negatives",
    )
    if not pos_dir.is_dir() or not neg_dir.is_dir():
        raise DataNotFoundError(
            f"{Path(data_dir) / 'audio'} with ambulance/ and negatives/ is missing "
            "(give --data-dir pointing at shared/data)"
        )
    positives = sorted(p.name for p in pos_dir.glob("*.wav"))
    grouped = {name for g in SAME_RECORDING for name in g}
    groups = [tuple(sorted(g)) for g in SAME_RECORDING if all(n in positives for n in g)]
    groups += [(name,) for name in positives if name not in grouped]
    pos_train, pos_test = _rank_split([tuple(sorted(g, key=_natural)) for g in groups])
    negatives = sorted(p.name for p in neg_dir.glob("*.wav"))
    neg_train, neg_test = _rank_split([(n,) for n in negatives])
    return RealSplit(
        tuple(pos_dir / n for n in pos_train),
        tuple(pos_dir / n for n in pos_test),
        tuple(neg_dir / n for n in neg_train),
        tuple(neg_dir / n for n in neg_test),
    )


def _natural(name: str) -> tuple[str, int]:
    stem = name.rsplit(".", 1)[0]
    head = stem.rstrip("0123456789")
    tail = stem[len(head) :]
    return head, int(tail) if tail else -1


def _mono(x: FloatArray) -> FloatArray:
    return x.mean(axis=0, keepdims=True)


def _cut(x: FloatArray, seconds: float) -> list[FloatArray]:
    n = round(seconds * SAMPLE_RATE_HZ)
    return [x[:, i : i + n] for i in range(0, x.shape[1] - n + 1, n)]


# --- synthetic scenes -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scene:
    """A synthetic recording: signal mics×n, the siren's onset at the array (s, or None),
    per-window labels (1 siren, 0 none, -1 too faint to call) and truths for evaluation."""

    signal: FloatArray
    onset_s: float | None
    labels: npt.NDArray[np.int64]
    true_bearing_rad: FloatArray  # per window, vehicle frame (nan without siren)
    distance_m: FloatArray  # per window (nan without siren)


def window_times(n_samples: int) -> FloatArray:
    """End times of the windows the front end produces for n samples."""
    hop = round(HOP_S * SAMPLE_RATE_HZ)
    first = round(WINDOW_S * SAMPLE_RATE_HZ)
    return np.arange(first, n_samples + 1, hop) / SAMPLE_RATE_HZ


def synth_scene(
    rng: np.random.Generator,
    *,
    config: MicArrayConfig,
    clips: list[FloatArray],
    duration_s: float = 4.0,
    siren: bool = True,
    distance_m: float | None = None,
    pattern: SirenPattern | None = None,
    background_db: float | None = None,
    onset_s: float | None = None,
    start: tuple[float, float] | None = None,
    velocity: tuple[float, float] | None = None,
    ego_heading: float = 0.0,
    event_rate_per_min: float | None = None,
    randomise_mix: bool = False,
    bed_mix: dict[str, float] | None = None,
) -> Scene:
    """One scene at the array (ego at the origin, heading `ego_heading`, at rest).

    `bed_mix` fixes the synthetic components' shares (`SYNTH_MIX` keys) of the street bed;
    `clips` are the recorded part (its share is `config.recorded_share`)."""
    fs = SAMPLE_RATE_HZ
    n = round(duration_s * fs)
    level = float(rng.uniform(55, 80)) if background_db is None else background_db
    cfg = config.model_copy(
        update={
            "background_level_db_spl": level,
            "event_rate_per_min": (
                float(rng.uniform(1, 8)) if event_rate_per_min is None else event_rate_per_min
            ),
            "siren_level_db_spl_at_1m": float(rng.uniform(112, 124)),
        }
    )
    # domain randomisation: half the scenes get a random mix of the synthetic components
    mix = dict(zip(SYNTH_MIX, rng.dirichlet(np.full(len(SYNTH_MIX), 0.7)), strict=True))
    bg = StreetBackground(
        cfg,
        seed=int(rng.integers(1 << 31)),
        clips=clips,
        mix=bed_mix
        if bed_mix is not None
        else (mix if randomise_mix and rng.random() < 0.5 else None),
    ).render(n)
    times = window_times(n)
    labels = np.zeros(len(times), dtype=np.int64)
    bearing = np.full(len(times), np.nan)
    dist = np.full(len(times), np.nan)
    ego = Pose(0.0, 0.0, ego_heading)
    if not siren:
        return Scene(bg, None, labels, bearing, dist)
    d0 = (
        float(math.exp(rng.uniform(math.log(15), math.log(400))))
        if distance_m is None
        else (distance_m)
    )
    if start is None:
        az = rng.uniform(-math.pi, math.pi)
        start = (d0 * math.cos(az), d0 * math.sin(az))
    if velocity is None:
        speed, heading = rng.uniform(0, 18), rng.uniform(-math.pi, math.pi)
        velocity = (speed * math.cos(heading), speed * math.sin(heading))
    on = float(rng.uniform(0.0, 2.0)) if onset_s is None else onset_s
    voice = random_voice(rng, pattern)
    src = EmergencySource(
        "siren", start[0], start[1], velocity[0], velocity[1], voice=voice, siren_on_since_s=on
    )
    sig = render_sources([src], ego, 0.0, n, cfg)
    c = cfg.speed_of_sound_mps
    arrival = on + math.hypot(*start) / c
    # per-window truth: geometry at the window centre, and the in-band SNR of the siren
    sig_band = _band_power(sig[0])
    bg_band = _band_power(bg[0])
    for i, t_end in enumerate(times):
        t_mid = t_end - WINDOW_S / 2
        sx, sy = start[0] + velocity[0] * t_mid, start[1] + velocity[1] * t_mid
        dist[i] = math.hypot(sx, sy)
        bearing[i] = math.remainder(math.atan2(sy, sx) - ego_heading, 2 * math.pi)
        covered = t_end - max(arrival, t_end - WINDOW_S)
        if covered <= 0.0:
            labels[i] = 0
            bearing[i] = dist[i] = np.nan
            continue
        a, b = round((t_end - WINDOW_S) * fs), round(t_end * fs)
        snr = 10 * math.log10((sig_band[a:b].mean() + 1e-30) / (bg_band[a:b].mean() + 1e-30))
        labels[i] = 1 if (covered >= 0.3 and snr >= -12.0) else -1
    return Scene(sig + bg, arrival, labels, bearing, dist)


def _band_power(x: FloatArray) -> FloatArray:
    """Instantaneous power in the siren band (400–2100 Hz), for labels only."""
    import scipy.signal

    sos = scipy.signal.butter(4, [400, 2100], "band", fs=SAMPLE_RATE_HZ, output="sos")
    return scipy.signal.sosfilt(sos, x) ** 2


def _features(x: FloatArray) -> FloatArray:
    fe = StreamingFrontEnd(x.shape[0])
    return np.array([w.features for w in fe.push(x)]).reshape(-1, len(FEATURE_NAMES))


# --- training ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrainingSet:
    features: FloatArray
    labels: npt.NDArray[np.int64]
    source: list[str]


def build_training_set(
    *,
    seed: int = 0,
    n_siren_scenes: int = 400,
    n_quiet_scenes: int = 500,
    data_dir: Path | None = DEFAULT_DATA_DIR,
    progress: Progress = _no_progress,
) -> TrainingSet:
    """Feature rows with labels from synthetic scenes and the TRAIN real clips."""
    rng = np.random.default_rng(seed)
    split = None
    if data_dir is not None and (Path(data_dir) / "audio").is_dir():
        split = real_split(data_dir)
    neg_clips = [] if split is None else [_unit(load_clip_16k(p)) for p in split.train_negative]
    config = MicArrayConfig(negatives_dir=None, seed=seed)
    mono_config = MicArrayConfig(negatives_dir=None, seed=seed, mic_positions_m=((0.0, 0.0, 1.6),))
    feats: list[FloatArray] = []
    labels: list[npt.NDArray[np.int64]] = []
    source: list[str] = []

    def add(f: FloatArray, y: npt.NDArray[np.int64], name: str) -> None:
        keep = y >= 0
        feats.append(f[keep])
        labels.append(y[keep])
        source.extend([name] * int(keep.sum()))

    total = n_siren_scenes + n_quiet_scenes
    for i in range(total):
        siren = i < n_siren_scenes
        # siren-free scenes are busier than streets usually are: the hard negatives (horns,
        # beepers, brake squeal, car music) come often enough to be learnt
        events = None if siren else float(rng.uniform(2, 30))
        # the three patterns equally often (streets hear wail and yelp more, but hi-lo is the
        # hardest to tell from music and beepers and needs its share of examples)
        pattern = list(SirenPattern)[i % len(SirenPattern)]
        scene = synth_scene(
            rng,
            config=config,
            clips=neg_clips,
            siren=siren,
            pattern=pattern,
            event_rate_per_min=events,
            randomise_mix=True,
        )
        # recordings come with one or two channels: train on those statistics too
        channels = scene.signal[:1] if rng.random() < 0.4 else scene.signal
        add(_features(channels), scene.labels, "synthetic")
        progress("synthetic scenes", i + 1, total)
    if split is not None:
        real = [(p, 1) for p in split.train_positive] + [(p, 0) for p in split.train_negative]
        for k, (path, label) in enumerate(real):
            clip = _mono(load_clip_16k(path))
            pieces = _cut(clip, CLIP_S) if label == 0 else [clip]
            for piece in pieces:
                piece = piece / max(float(np.sqrt(np.mean(piece**2))), 1e-9)
                f = _features(piece)
                add(f, np.full(len(f), label), f"real:{path.name}")
                for _ in range(2):  # the same clip in street noise at a random SNR
                    snr = rng.uniform(-6, 20)
                    noise_db = float(rng.uniform(55, 80))
                    bg = StreetBackground(
                        mono_config.model_copy(update={"background_level_db_spl": noise_db}),
                        seed=int(rng.integers(1 << 31)),
                        clips=neg_clips,
                    ).render(piece.shape[1])
                    mix = piece * db_spl_to_pa(noise_db) * 10 ** (snr / 20) + bg
                    f = _features(mix)
                    add(f, np.full(len(f), label), f"real+noise:{path.name}")
            progress("real clips", k + 1, len(real))
    return TrainingSet(np.concatenate(feats), np.concatenate(labels), source)


def _unit(x: FloatArray) -> FloatArray:
    m = x.mean(axis=0)
    m = m - m.mean()
    return m / max(float(np.sqrt(np.mean(m * m))), 1e-9)


def _test_negative_clips(data_dir: Path | None) -> list[FloatArray]:
    """The recorded siren-free TEST clips (never trained on), unit-scaled; none without data."""
    if data_dir is None or not (Path(data_dir) / "audio").is_dir():
        return []
    return [_unit(load_clip_16k(p)) for p in real_split(data_dir).test_negative]


def fit_model(
    data: TrainingSet,
    *,
    seed: int = 0,
    trees: int = N_TREES,
    depth: int = TREE_DEPTH,
    info: dict[str, Any] | None = None,
) -> SirenModel:
    """Fit scikit-learn's HistGradientBoostingClassifier and copy its trees into arrays.

    Deterministic for `seed` (no subsampling, no early stopping)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    clf = HistGradientBoostingClassifier(
        max_iter=trees,
        max_depth=depth,
        learning_rate=0.1,
        l2_regularization=1.0,
        early_stopping=False,
        random_state=seed,
    )
    # one thread: OpenMP's spinning workers crawl on a shared machine, and the fit is small
    with threadpool_limits(limits=1):
        clf.fit(data.features, data.labels)
    predictors = [p[0].nodes for p in clf._predictors]  # one tree per boosting round
    n_nodes = max(len(nodes) for nodes in predictors)
    shape = (len(predictors), n_nodes)
    feature = np.zeros(shape, dtype=np.int64)
    threshold = np.zeros(shape)
    left = np.tile(np.arange(n_nodes), (len(predictors), 1))
    right = left.copy()
    value = np.zeros(shape)
    for t, nodes in enumerate(predictors):
        n = len(nodes)
        split = ~nodes["is_leaf"].astype(bool)
        feature[t, :n] = np.where(split, nodes["feature_idx"], 0)
        threshold[t, :n] = np.where(split, nodes["num_threshold"], 0.0)
        left[t, :n] = np.where(split, nodes["left"], np.arange(n))
        right[t, :n] = np.where(split, nodes["right"], np.arange(n))
        value[t, :n] = np.where(split, 0.0, nodes["value"])
    model = SirenModel(
        feature_names=FEATURE_NAMES,
        baseline=float(np.ravel(clf._baseline_prediction)[0]),
        feature=feature,
        threshold=threshold,
        left=left,
        right=right,
        value=value,
        depth=int(max(nodes["depth"].max() for nodes in predictors)),
        info=info,
    )
    # the JSON round-trip must not change the answers
    check = SirenModel.from_json(model.to_json())
    sample = data.features[:: max(1, len(data.features) // 2000)]
    if np.max(np.abs(check.probability(sample) - clf.predict_proba(sample)[:, 1])) > 1e-4:
        raise RuntimeError("exported siren trees disagree with scikit-learn")
    return check


def _smoothed(probs: FloatArray, k: int) -> FloatArray:
    """The detector's smoothed probability: the mean of the last k (fewer at the start)."""
    smoothed = np.convolve(probs, np.ones(k) / k)[: len(probs)]
    smoothed[: k - 1] = np.cumsum(probs[: k - 1]) / np.arange(1, min(k, len(probs) + 1))[: k - 1]
    return smoothed


def hysteresis(probs: FloatArray, k: int, on: float, off: float) -> npt.NDArray[np.bool_]:
    """The detector's decision rule (mean of the last k, on/off thresholds) over a sequence."""
    smoothed = _smoothed(probs, k)
    out = np.zeros(len(probs), dtype=bool)
    state = False
    for i, s in enumerate(smoothed):
        state = s >= off if state else s >= on
        out[i] = state
    return out


def tune_decision(
    model: SirenModel,
    *,
    seed: int,
    clips: list[FloatArray],
    minutes: float = 60.0,
    n_scenes: int = 240,
    progress: Progress = _no_progress,
) -> tuple[SirenModel, dict[str, Any]]:
    """Choose smoothing length and on/off thresholds on TRAIN-side validation audio.

    Validation: `minutes` of siren-free street (train negatives only, fresh seeds) and
    `n_scenes` siren scenes (the three patterns in turn, 15–300 m, onset at 1 s). Among
    rules with validation recall ≥ 0.95 and median latency ≤ 0.8 s (when any qualifies),
    the one with the fewest false alarms wins, then the lower 95th-percentile latency.
    An hour at least: false alarms are rare events, and 20 minutes once chose a rule that
    raised ten an hour on the benchmark's audio.
    """
    rng = np.random.default_rng([seed, 1])
    config = MicArrayConfig(negatives_dir=None)
    quiet: list[FloatArray] = []
    chunks = [60.0] * int(minutes) + ([minutes % 1 * 60.0] if minutes % 1 else [])
    for minute, seconds in enumerate(chunks):
        cfg = config.model_copy(
            update={
                "background_level_db_spl": float(rng.uniform(55, 80)),
                "event_rate_per_min": float(rng.uniform(1, 8)),
            }
        )
        x = StreetBackground(cfg, seed=int(rng.integers(1 << 31)), clips=clips).render(
            round(seconds * SAMPLE_RATE_HZ)
        )
        quiet.append(model.probability(_features(x if minute % 3 else x[:1])))
        progress("validation: siren-free minutes", minute + 1, len(chunks))
    scenes: list[tuple[FloatArray, FloatArray, float]] = []
    for i in range(n_scenes):
        d = float(math.exp(rng.uniform(math.log(15), math.log(300))))
        pattern = list(SirenPattern)[i % len(SirenPattern)]
        sc = synth_scene(
            rng,
            config=config,
            clips=clips,
            distance_m=d,
            onset_s=1.0,
            pattern=pattern,
            duration_s=4.0 + d / 343.0,
        )
        probs = model.probability(_features(sc.signal))
        scenes.append((probs, window_times(sc.signal.shape[1]), sc.onset_s or 0.0))
        progress("validation: siren scenes", i + 1, n_scenes)
    model, report = choose_decision(
        model, quiet, [(f, t, o) for f, t, o in scenes], probabilities=True
    )
    return model, {**report, "validation_minutes": minutes}


LATENCY_TARGET_S = 1.0  # the benchmark's latency p95 target within CLAIMED_RANGE_M
CLAIMED_RANGE_M = 150.0


def choose_decision(
    model: SirenModel,
    quiet: Sequence[FloatArray],
    scenes: Sequence[tuple[FloatArray, FloatArray, float]],
    *,
    probabilities: bool = False,
    scene_info: Sequence[tuple[str, float]] | None = None,
) -> tuple[SirenModel, dict[str, Any]]:
    """The decision rule (smoothing length, on/off thresholds) for `model` on validation
    streams: `quiet` siren-free streams and `scenes` (stream, window end times, onset), as
    feature rows (or as the model's probabilities with `probabilities`).

    A rule qualifies when validation recall is ≥ 0.95, median latency ≤ 0.6 s and 95th-
    percentile latency ≤ 1.2 s over every scene (15–300 m), and — with `scene_info`
    (pattern, distance per scene) — also the benchmark's own latency target: p95 ≤ 1 s for
    each siren pattern over the scenes within 150 m, and recall ≥ 0.95 beyond 150 m (the
    range is not given up for it). Rules meeting all of it rank first, then those meeting
    the first part only. Among them the fewest false alarms win, then the widest margin:
    the on threshold's distance above the highest smoothed probability of the siren-free
    streams (a sound nobody trained on scores higher than the validation audio, so the rule
    keeps room for it), then the lower 95th-percentile latency."""

    def prob(x: FloatArray) -> FloatArray:
        if probabilities or len(x) == 0:
            return np.asarray(x, dtype=np.float64).reshape(-1)
        return np.asarray(model.probability(x), dtype=np.float64).reshape(-1)

    quiet_p = [prob(q) for q in quiet]
    scene_p = [(prob(f), t, o) for f, t, o in scenes]
    if scene_info is not None and len(scene_info) != len(scene_p):
        raise ValueError("scene_info must describe every scene")
    near = [i for i, (_, d) in enumerate(scene_info or []) if d <= CLAIMED_RANGE_M]
    far = [i for i, (_, d) in enumerate(scene_info or []) if d > CLAIMED_RANGE_M]
    patterns = sorted({p for p, _ in scene_info or []})
    best: tuple[Any, ...] | None = None
    for k in (1, 2, 3, 4, 5, 6):
        smooth_quiet = max((float(_smoothed(p, k).max()) for p in quiet_p if len(p)), default=0)
        for on in np.arange(0.5, 0.99, 0.025):
            on = round(float(on), 3)
            off = round(max(0.2, on - 0.3), 3)
            alarms = sum(
                int(np.sum(np.diff(np.r_[False, hysteresis(p, k, on, off)].astype(int)) == 1))
                for p in quiet_p
                if len(p)
            )
            margin = on - smooth_quiet
            lat: list[float | None] = []
            for probs, times, onset in scene_p:
                hit: FloatArray = (
                    times[hysteresis(probs, k, on, off) & (times > onset)]
                    if len(probs)
                    else np.zeros(0)
                )
                lat.append(float(hit[0] - onset) if len(hit) and hit[0] - onset <= 3.0 else None)
            found = [v for v in lat if v is not None]
            recall = len(found) / len(scene_p) if scene_p else 0.0
            p95 = percentile(found, 95)
            if p95 is None:  # no scene detected: ranks last
                p95 = math.inf
            median = float(np.median(found)) if found else math.inf
            base = recall >= 0.95 and median <= 0.6 and p95 <= 1.2
            near_p95: dict[str, float] = {}
            for pattern in patterns:
                vals = [
                    lat[i] for i in near if scene_info is not None and scene_info[i][0] == pattern
                ]
                q = percentile([v for v in vals if v is not None], 95)
                near_p95[pattern] = math.inf if q is None else q
            far_hits = [lat[i] is not None for i in far]
            far_recall = float(np.mean(far_hits)) if far_hits else 1.0
            target = scene_info is None or (
                all(v <= LATENCY_TARGET_S for v in near_p95.values()) and far_recall >= 0.95
            )
            tier = 0 if base and target else 1 if base else 2
            worst = max(near_p95.values(), default=p95)
            key = (tier, alarms, -round(margin, 3), worst, p95, -recall)
            if best is None or key < best[0]:
                best = (key, k, on, off, recall, p95, near_p95, far_recall)
    if best is None:
        raise RuntimeError("no decision rule was evaluated")
    key, k, on, off, recall, p95, near_p95, far_recall = best
    report: dict[str, Any] = {
        "smooth_windows": k,
        "on_threshold": on,
        "off_threshold": off,
        "validation_streams": {"siren_free": len(quiet_p), "siren": len(scene_p)},
        "validation_false_alarms": key[1],
        "validation_margin": -key[2],
        "validation_recall": round(recall, 4),
        "validation_latency_p95_s": round(p95, 3) if math.isfinite(p95) else None,
        "qualifies": {0: "all", 1: "recall and latency to 300 m only", 2: "none"}[key[0]],
    }
    if scene_info is not None:
        report["validation_latency_p95_s_within_150m_by_pattern"] = {
            p: round(v, 3) if math.isfinite(v) else None for p, v in near_p95.items()
        }
        report["validation_recall_beyond_150m"] = round(far_recall, 4)
        report["validation_scenes_within_150m"] = len(near)
    return model.with_decision(k, on, off), report


def train(
    *,
    seed: int = 0,
    out: Path = MODEL_PATH,
    data_dir: Path | None = DEFAULT_DATA_DIR,
    n_siren_scenes: int = 400,
    n_quiet_scenes: int = 500,
    validation_minutes: float = 30.0,
    validation_scenes: int = 240,
    n_trees: int = N_TREES,
    clips_per_family: int = SYNTH_CLIPS_PER_FAMILY,
    progress: Progress = _no_progress,
) -> SirenModel:
    """Train on everything: synthetic siren and street scenes with every negative class
    mixed in, every real and synthetic negative clip, every real ambulance clip; choose the
    decision rule on validation audio; write the model file (deterministic for `seed`)."""
    from robotaxi.training import siren_loco

    data = siren_loco.prepare_training(
        data_dir,
        seed=seed,
        n_siren_scenes=n_siren_scenes,
        n_quiet_scenes=n_quiet_scenes,
        validation_minutes=validation_minutes,
        validation_scenes=validation_scenes,
        clips_per_family=clips_per_family,
        progress=progress,
    )
    model = siren_loco.fit_shipped(data, seed=seed, trees=n_trees)
    model.save(out)
    return model


# --- evaluation -------------------------------------------------------------------------


def _roc_auc(scores: FloatArray, labels: FloatArray) -> float | None:
    pos, neg = scores[labels == 1], scores[labels == 0]
    if len(pos) == 0 or len(neg) == 0:
        return None
    # probability that a random positive outranks a random negative (ties count half)
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def _prf(tp: int, fp: int, fn: int) -> dict[str, float | None]:
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = (
        2 * precision * recall / (precision + recall)
        if precision is not None and recall is not None and precision + recall > 0
        else None
    )
    return {"precision": precision, "recall": recall, "f1": f1}


def evaluate_real(
    data_dir: Path = DEFAULT_DATA_DIR,
    *,
    model: SirenModel | None = None,
    progress: Progress = _no_progress,
) -> dict[str, Any]:
    """Clip-level scores on the TEST real recordings (negatives cut into 3 s clips).

    A clip is detected when the detector's `detected` flag rises anywhere in it; its score
    for ROC AUC is the highest smoothed probability.
    """
    model = model or load_model()
    split = real_split(data_dir)
    items: list[tuple[str, FloatArray, int]] = []
    for p in split.test_positive:
        items.append((p.name, load_clip_16k(p), 1))
    for p in split.test_negative:
        for k, piece in enumerate(_cut(load_clip_16k(p), CLIP_S)):
            items.append((f"{p.name}#{k}", piece, 0))
    rows = []
    win_scores, win_labels = [], []
    for i, (name, x, label) in enumerate(items):
        windows = SirenDetector(x.shape[0], model=model).push(x)
        detected = any(w.detected for w in windows)
        score = max((w.smoothed for w in windows), default=0.0)
        first = next((w.time_s for w in windows if w.detected), None)
        rows.append(
            {"clip": name, "label": label, "detected": detected, "score": score, "first_s": first}
        )
        win_scores += [w.probability for w in windows]
        win_labels += [label] * len(windows)
        progress("real test clips", i + 1, len(items))
    lab = np.array([r["label"] for r in rows])
    det = np.array([r["detected"] for r in rows])
    tp = int(((lab == 1) & det).sum())
    fp = int(((lab == 0) & det).sum())
    fn = int(((lab == 1) & ~det).sum())
    return {
        "test_positive_clips": len(split.test_positive),
        "test_negative_clips": int((lab == 0).sum()),
        "test_negative_files": [p.name for p in split.test_negative],
        "train_positive_clips": len(split.train_positive),
        "train_negative_files": [p.name for p in split.train_negative],
        **_prf(tp, fp, fn),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "roc_auc_clip": _roc_auc(np.array([r["score"] for r in rows]), lab),
        "roc_auc_window": _roc_auc(np.array(win_scores), np.array(win_labels)),
        "clips": rows,
    }


def evaluate_synthetic(
    *,
    seed: int = 12345,
    distances_m: Sequence[float] = (20, 40, 60, 80, 100, 125, 150, 175, 200, 250, 300),
    background_db: Sequence[float] = (60.0, 68.0, 76.0),
    patterns: Sequence[SirenPattern] = tuple(SirenPattern),
    trials: int = 8,
    model: SirenModel | None = None,
    data_dir: Path | None = DEFAULT_DATA_DIR,
    progress: Progress = _no_progress,
    claimed_range_m: float = 150.0,
    latency_target_s: float = 1.0,
) -> dict[str, Any]:
    """Street scenes across distance × background level (SNR) × pattern.

    Each trial: 1 s of street, then a siren switched on at a random azimuth and given
    distance, driving in a random direction at 0–15 m/s, heard for 3 s. Recall counts
    trials whose `detected` flag rises within those 3 s; latency is from the siren's
    arrival at the array to that rise; bearing errors are over detected windows.
    The recorded street clips are the TEST negatives only (never trained on).
    """
    model = model or load_model()
    rng = np.random.default_rng(seed)
    config = MicArrayConfig(negatives_dir=None)
    clips = _test_negative_clips(data_dir)
    cells: list[dict[str, Any]] = []
    bearing_errors: list[float] = []
    latencies: list[float] = []
    total = len(distances_m) * len(background_db) * len(patterns) * trials
    done = 0
    for level in background_db:
        for pattern in patterns:
            for d in distances_m:
                hits = 0
                cell_lat: list[float] = []
                cell_err: list[float] = []
                for _ in range(trials):
                    scene = synth_scene(
                        rng,
                        config=config,
                        clips=clips,
                        duration_s=4.0 + d / 343.0,
                        distance_m=float(d),
                        pattern=pattern,
                        background_db=level,
                        onset_s=1.0,
                        velocity=_random_velocity(rng, 15.0),
                        ego_heading=float(rng.uniform(-math.pi, math.pi)),
                    )
                    windows = SirenDetector(config.n_mics, model=model).push(scene.signal)
                    onset = scene.onset_s or 0.0
                    first = next(
                        (w.time_s for w in windows if w.detected and w.time_s > onset), None
                    )
                    if first is not None and first - onset <= 3.0:
                        hits += 1
                        cell_lat.append(first - onset)
                    for w, truth in zip(windows, scene.true_bearing_rad, strict=True):
                        if w.detected and w.bearing_rad is not None and not np.isnan(truth):
                            err = abs(math.remainder(w.bearing_rad - truth, 2 * math.pi))
                            cell_err.append(math.degrees(err))
                    done += 1
                    progress("synthetic street scenes", done, total)
                cells.append(
                    {
                        "background_db_spl": level,
                        "pattern": pattern.value,
                        "distance_m": d,
                        "snr_db": round(
                            snr_db_at(
                                d, config.model_copy(update={"background_level_db_spl": level})
                            ),
                            1,
                        ),
                        "recall": hits / trials,
                        "latencies_s": [round(v, 4) for v in cell_lat],
                        "latency_median_s": _median(cell_lat),
                        "bearing_median_deg": _median(cell_err),
                    }
                )
                latencies += cell_lat
                bearing_errors += cell_err
    ranges = {}
    pattern_or_all: list[SirenPattern | None] = [*patterns, None]
    for level in background_db:
        for which in pattern_or_all:
            sel = [
                c
                for c in cells
                if c["background_db_spl"] == level and (which is None or c["pattern"] == which)
            ]
            by_d: dict[float, list[float]] = {}
            for c in sel:
                by_d.setdefault(c["distance_m"], []).append(c["recall"])
            reach = 0.0
            for d in sorted(by_d):
                if np.mean(by_d[d]) >= 0.95:
                    reach = d
                else:
                    break
            key = f"{level:g}dB/{which.value if which else 'all'}"
            ranges[key] = reach
    return {
        "trials_per_cell": trials,
        "cells": cells,
        "range_at_95_recall_m": ranges,
        "bearing_error_deg": {
            "median": _median(bearing_errors),
            "p90": percentile(bearing_errors, 90),
            "windows": len(bearing_errors),
        },
        "latency_s": latency_report(
            cells,
            ranges,
            trials,
            patterns,
            claimed_range_m=claimed_range_m,
            target_s=latency_target_s,
        ),
    }


def latency_report(
    cells: Sequence[dict[str, Any]],
    ranges: dict[str, float],
    trials: int,
    patterns: Sequence[SirenPattern],
    *,
    claimed_range_m: float = 150.0,
    target_s: float = 1.0,
) -> dict[str, Any]:
    """Latency statistics of `evaluate_synthetic`'s cells (a pure function of them).

    Latency where detection is claimed: the cells within the claimed range (the issue's
    150 m) and within their background level's measured range at 95 % recall (all patterns
    pooled); misses there are counted by the recall, not here. Beside it: the same out to
    the measured ranges, per background level, and over every cell.
    """
    every = [v for c in cells for v in c["latencies_s"]]
    near = [
        c["latency_median_s"]
        for c in cells
        if c["distance_m"] <= 150 and c["latency_median_s"] is not None
    ]

    def level_range(c: dict[str, Any]) -> float:
        return float(ranges[f"{c['background_db_spl']:g}dB/all"])

    claimed_cells = [c for c in cells if c["distance_m"] <= min(claimed_range_m, level_range(c))]
    measured_cells = [c for c in cells if c["distance_m"] <= level_range(c)]
    levels = sorted({c["background_db_spl"] for c in cells})
    return {
        "median": _median(every),
        "p95": percentile(every, 95),
        "median_within_150m": _median(near),
        "definition": (
            "from the siren's sound reaching the array (switch-on + distance / c) to "
            "the first window whose `detected` flag is set, over the detected trials"
        ),
        "within_claimed_range": {
            "cells": (
                f"distance ≤ {claimed_range_m:g} m (the claimed range) and ≤ the "
                "background level's measured range at 95 % recall"
            ),
            **_latency_summary(claimed_cells, trials, patterns),
            "p95_by_level": {
                f"{lv:g}dB": percentile(
                    [
                        v
                        for c in claimed_cells
                        if c["background_db_spl"] == lv
                        for v in c["latencies_s"]
                    ],
                    95,
                )
                for lv in levels
            },
        },
        "within_measured_range": {
            "cells": "distance ≤ the background level's measured range at 95 % recall",
            **_latency_summary(measured_cells, trials, patterns),
        },
        "target_s": target_s,
        "range_m_with_p95_within_target": latency_reach(cells, target_s),
    }


def _random_velocity(rng: np.random.Generator, max_speed: float) -> tuple[float, float]:
    speed, heading = rng.uniform(0, max_speed), rng.uniform(-math.pi, math.pi)
    return speed * math.cos(heading), speed * math.sin(heading)


def _median(values: Sequence[float]) -> float | None:
    return float(np.median(values)) if len(values) else None


def latency_reach(cells: Sequence[dict[str, Any]], target_s: float) -> dict[str, float]:
    """Per background level ("68dB"), the largest distance D such that the p95 latency of
    that level's detected trials at distances ≤ D is within `target_s` (0 when not even the
    nearest cell's is). `cells` carry background_db_spl, distance_m and latencies_s."""
    out = {}
    for level in sorted({c["background_db_spl"] for c in cells}):
        mine = [c for c in cells if c["background_db_spl"] == level]
        reach = 0.0
        for d in sorted({c["distance_m"] for c in mine}):
            p95 = percentile(
                [v for c in mine if c["distance_m"] <= d for v in c["latencies_s"]], 95
            )
            if p95 is None or p95 > target_s:
                break
            reach = float(d)
        out[f"{level:g}dB"] = reach
    return out


def _latency_summary(
    cells: list[dict[str, Any]], trials: int, patterns: Sequence[SirenPattern]
) -> dict[str, Any]:
    values = [v for c in cells for v in c["latencies_s"]]
    return {
        "trials": len(values),
        "missed_trials": sum(trials - len(c["latencies_s"]) for c in cells),
        "median": _median(values),
        "p95": percentile(values, 95),
        "max": max(values) if values else None,
        "p95_by_pattern": {
            str(p.value): percentile(
                [v for c in cells if c["pattern"] == p for v in c["latencies_s"]], 95
            )
            for p in patterns
        },
    }


def evaluate_false_alarms(
    *,
    hours: float = 1.0,
    seed: int = 777,
    model: SirenModel | None = None,
    data_dir: Path | None = DEFAULT_DATA_DIR,
    progress: Progress = _no_progress,
) -> dict[str, Any]:
    """Siren-free street audio at the 4-mic array: false alarms (rising edges of
    `detected`) per hour, and the detector's compute time per window.

    The audio is minute after minute of `StreetBackground` with a random level
    (55–80 dB SPL), event rate (1–8 per minute) and seed; its recorded part comes from the
    TEST negative clips only, looped with random gains (±6 dB) and offsets.
    """
    model = model or load_model()
    rng = np.random.default_rng(seed)
    config = MicArrayConfig(negatives_dir=None)
    clips = _test_negative_clips(data_dir)
    detector = SirenDetector(config.n_mics, model=model)
    minutes = max(1, round(hours * 60))
    hop = round(HOP_S * SAMPLE_RATE_HZ)
    alarms = 0
    was = False
    times: list[float] = []
    cpu_times: list[float] = []
    alarm_times: list[float] = []
    for minute in range(minutes):
        cfg = config.model_copy(
            update={
                "background_level_db_spl": float(rng.uniform(55, 80)),
                "event_rate_per_min": float(rng.uniform(1, 8)),
            }
        )
        audio = StreetBackground(cfg, seed=int(rng.integers(1 << 31)), clips=clips).render(
            60 * SAMPLE_RATE_HZ
        )
        for k in range(0, audio.shape[1], hop):
            t0, c0 = time.perf_counter(), time.thread_time()
            out = detector.push(audio[:, k : k + hop])
            elapsed, cpu = time.perf_counter() - t0, time.thread_time() - c0
            for w in out:
                times.append(elapsed)
                cpu_times.append(cpu)
                if w.detected and not was:
                    alarms += 1
                    alarm_times.append(minute * 60 + w.time_s % 60)
                was = w.detected
        progress("siren-free minutes", minute + 1, minutes)
    ms = np.array(times) * 1e3
    cpu_ms = np.array(cpu_times) * 1e3
    return {
        "hours": minutes / 60,
        "false_alarms": alarms,
        "false_alarms_per_hour": alarms / (minutes / 60),
        "windows": len(times),
        "false_alarm_times_s": alarm_times[:50],
        "recorded_clips": [p.name for p in real_split(data_dir).test_negative]
        if clips and data_dir is not None
        else [],
        # wall clock of one push (one window), and this thread's CPU time for it: on a
        # machine shared with other jobs the wall clock's tail is mostly their interference
        "compute_ms_per_window": {
            "median": float(np.median(ms)),
            "p99": percentile(ms, 99),
            "max": float(ms.max()),
        },
        "cpu_ms_per_window": {
            "median": float(np.median(cpu_ms)),
            "p99": percentile(cpu_ms, 99),
            "max": float(cpu_ms.max()),
        },
    }


def evaluate_approach(
    *,
    trials: int = 30,
    seed: int = 4242,
    model: SirenModel | None = None,
    progress: Progress = _no_progress,
) -> dict[str, Any]:
    """Approaching/receding calls on scenes where a siren drives along a street past the
    car (lateral offset 4–20 m, 8–18 m/s) from 150 m away to 150 m beyond: accuracy of the
    windows with a call, and the share of detected windows that have one."""
    model = model or load_model()
    rng = np.random.default_rng(seed)
    config = MicArrayConfig(negatives_dir=None)
    right = calls = detected = 0
    for i in range(trials):
        speed = float(rng.uniform(8, 18))
        offset = float(rng.uniform(4, 20)) * (1 if rng.random() < 0.5 else -1)
        duration = 300.0 / speed
        start = (150.0, offset)
        scene = synth_scene(
            rng,
            config=config,
            clips=[],
            duration_s=duration,
            start=start,
            velocity=(-speed, 0.0),
            onset_s=-5.0,
            background_db=65.0,
        )
        windows = SirenDetector(config.n_mics, model=model).push(scene.signal)
        times = window_times(scene.signal.shape[1])
        for w, t in zip(windows, times, strict=True):
            if not w.detected:
                continue
            detected += 1
            if w.approaching is None:
                continue
            calls += 1
            x_now = start[0] - speed * (t - 0.25)
            truly_approaching = x_now > 0
            right += int(w.approaching == truly_approaching)
        progress("pass-by scenes", i + 1, trials)
    return {
        "trials": trials,
        "accuracy": right / calls if calls else None,
        "call_rate": calls / detected if detected else None,
    }
