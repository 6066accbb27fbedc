"""The streaming detector is causal and chunking-blind, deterministic, and folds into evidence."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from robotaxi.autonomy.perception.siren import (
    SirenDetector,
    SirenEvidence,
    SirenWindow,
    detect,
    load_model,
    siren_evidence,
)
from robotaxi.core.time import TimePoint
from robotaxi.core.types import AgentKind, AgentState, Pose, SirenState
from robotaxi.sim.sensors.microphones import (
    MicArrayConfig,
    MicrophoneArray,
    SirenPattern,
)
from robotaxi.training.siren import synth_scene, train

FS = 16_000
CONFIG = MicArrayConfig(negatives_dir=None)


@pytest.fixture(scope="module")
def scene():
    rng = np.random.default_rng(7)
    return synth_scene(
        rng,
        config=CONFIG,
        clips=[],
        duration_s=4.0,
        distance_m=60.0,
        pattern=SirenPattern.WAIL,
        background_db=66.0,
        onset_s=1.5,
    )


def _as_tuples(windows: list[SirenWindow]) -> list[tuple]:
    return [
        (w.time_s, w.probability, w.smoothed, w.detected, w.bearing_rad, w.approaching)
        for w in windows
    ]


def test_frame_by_frame_stream_equals_offline(scene):
    offline = detect(scene.signal)
    assert any(w.detected for w in offline), "the 60 m siren should be heard"
    rng = np.random.default_rng(0)
    for sizes in ([1600], [160], [997], None):  # simulation ticks, STFT hops, odd cuts, random
        det = SirenDetector(CONFIG.n_mics)
        out, k = [], 0
        while k < scene.signal.shape[1]:
            n = int(rng.integers(1, 5000)) if sizes is None else sizes[0]
            out += det.push(scene.signal[:, k : k + n])
            k += n
        assert _as_tuples(out) == _as_tuples(offline)


def test_never_looks_ahead(scene):
    x = scene.signal
    cut = round(2.35 * FS)
    other = x.copy()
    other[:, cut:] = np.random.default_rng(1).standard_normal((x.shape[0], x.shape[1] - cut))
    a, b = detect(x), detect(other)
    before = [i for i, w in enumerate(a) if w.time_s <= cut / FS]
    assert before and _as_tuples([a[i] for i in before]) == _as_tuples([b[i] for i in before])
    assert _as_tuples(a) != _as_tuples(b)  # and the future does change what comes after


def test_detects_soon_after_onset_and_not_before(scene):
    windows = detect(scene.signal)
    first = next(w.time_s for w in windows if w.detected)
    assert scene.onset_s < first <= scene.onset_s + 1.0
    assert not any(w.detected for w in windows if w.time_s <= scene.onset_s)


def test_microphone_array_is_deterministic_and_streams_per_tick():
    amb = AgentState("amb", AgentKind.EMERGENCY, 80.0, 20.0, math.pi, 12.0, siren=SirenState.ON)

    def run() -> np.ndarray:
        array = MicrophoneArray(CONFIG)
        frames = []
        for k in range(20):
            t = 0.1 * k
            moved = AgentState(
                "amb", AgentKind.EMERGENCY, 80.0 - 12.0 * t, 20.0, math.pi, 12.0, siren=amb.siren
            )
            frames.append(array.hear(Pose(0.0, 0.0, 0.0), [moved], t, 0.1))
        return np.concatenate(frames, axis=1)

    a, b = run(), run()
    assert a.dtype == np.float32 and a.shape == (4, 2 * FS)
    assert np.array_equal(a, b)
    assert _as_tuples(detect(a)) == _as_tuples(detect(b))


def test_siren_off_is_silent_but_for_the_street():
    amb = AgentState("amb", AgentKind.EMERGENCY, 30.0, 0.0, 0.0, 0.0, siren=SirenState.OFF)
    quiet = MicrophoneArray(CONFIG, background=False).hear(Pose(0, 0, 0), [amb], 0.0, 0.1)
    assert not quiet.any()


def test_training_is_deterministic(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    for out in (a, b):
        train(
            seed=3,
            out=out,
            data_dir=None,
            n_siren_scenes=2,
            n_quiet_scenes=1,
            validation_minutes=0.05,
            validation_scenes=1,
            n_trees=20,
            clips_per_family=1,
        )
    assert a.read_bytes() == b.read_bytes()
    assert json.loads(a.read_text())["info"]["seed"] == 3


def test_shipped_model_is_small_json():
    from robotaxi.autonomy.perception.siren import MODEL_PATH

    assert MODEL_PATH.stat().st_size < 1_000_000
    json.loads(MODEL_PATH.read_text())
    assert load_model().smooth_windows >= 1


def _window(t: float, detected: bool, bearing: float | None, approaching=None) -> SirenWindow:
    return SirenWindow(
        time_s=t,
        probability=0.9 if detected else 0.1,
        smoothed=0.9 if detected else 0.1,
        detected=detected,
        bearing_rad=bearing,
        bearing_strength=0.8,
        level_db=-30.0,
        level_trend_db_per_s=1.0 if approaching else None,
        doppler_rate_per_s=None,
        approaching=approaching,
        frequency_hz=900.0,
    )


def test_siren_evidence_is_a_pure_fold_of_the_tick():
    ego = Pose(0.0, 0.0, math.pi / 2)  # facing north
    t = TimePoint.from_s(10.0)
    quiet = siren_evidence([_window(9.9, False, 0.3)], ego, t)
    assert not quiet.detected and quiet.bearing_map_rad is None
    tick = [_window(9.8, True, math.radians(-10)), _window(9.9, True, math.radians(10), True)]
    ev = siren_evidence(tick, ego, t)
    assert ev.detected and ev.approaching is True
    assert ev.bearing_vehicle_rad == pytest.approx(0.0, abs=1e-9)
    assert ev.bearing_map_rad == pytest.approx(math.pi / 2)  # dead ahead = north
    later = siren_evidence(tick, ego, TimePoint.from_s(11.0), previous=ev)
    assert later.detected_for_s == pytest.approx(ev.detected_for_s + 1.0)
    assert siren_evidence([], ego, t) == SirenEvidence.silent(t)
