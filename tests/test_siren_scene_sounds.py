"""A scenario's own siren-free sounds (music from a car alongside, birds by a park, a crowd
at a corner) at the roof microphones, and the car driving among them: it never slows nor
pulls over for an ambulance that is not there."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA
from robotaxi.autonomy.planning.behaviour import Behaviour
from robotaxi.config.scenario import ScenarioSpec, SoundSpec, load_scenario
from robotaxi.config.sensors import MicArrayConfig
from robotaxi.core.errors import ScenarioError
from robotaxi.core.types import Pose
from robotaxi.metrics.scenario_report import scenario_report
from robotaxi.sim.drive import idm_planner, run_scenario
from robotaxi.sim.sensors.microphones import MicrophoneArray, SceneSounds, db_spl_to_pa
from test_drive import assert_passes_its_own_criteria

HARD_NEGATIVES = ("music-car-alongside", "birds-by-park", "crowd-at-corner")
EV_REACTIONS = {Behaviour.EV_CAUTION.value, Behaviour.YIELD_TO_EV.value}
CONFIG = MicArrayConfig(negatives_dir=None)
FS = CONFIG.sample_rate_hz


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2)))


def test_a_sound_is_placed_exactly_once(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        SoundSpec(kind="music")
    with pytest.raises(ValueError, match="exactly one"):
        SoundSpec(kind="music", xy_m=(0.0, 0.0), offset_m=(1.0, 0.0))
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: x\nego: {route: [B1B2]}\nsensors: {sounds: [{kind: opera, xy_m: [0, 0]}]}\n"
    )
    with pytest.raises(ScenarioError, match="sounds"):
        load_scenario(str(bad))


def test_the_hard_negative_scenarios_are_siren_free_with_their_sounds_on_microphones() -> None:
    kinds: set[str] = set()
    for name in HARD_NEGATIVES:
        spec = load_scenario(name)
        assert spec.sensors.microphones and spec.sensors.sounds, name
        assert not any(v.type == "ambulance" for v in spec.vehicles), name
        assert not spec.passing.ev_yield
        kinds |= {s.kind for s in spec.sensors.sounds}
    assert {"car_stereo", "music", "birdsong", "crowd"} <= kinds


def test_a_sound_falls_as_one_over_r_and_arrives_later_at_the_far_microphone() -> None:
    spec = SoundSpec(kind="chord", xy_m=(0.0, 0.0), level_db_spl_at_1m=90.0, seed=1)
    scene = SceneSounds([spec], CONFIG)
    n = FS  # 1 s
    near = scene.render(Pose(3.0, 0.0, 0.0), 0, n)
    far = scene.render(Pose(30.0, 0.0, 0.0), 0, n)
    # 1/r over the slant range from the source (1.8 m high) to the roof microphones
    ratio = _rms(near[0]) / _rms(far[0])
    r_near = math.hypot(3.0 + 0.3, 1.8 - 1.6, 0.3)
    r_far = math.hypot(30.0 + 0.3, 1.8 - 1.6, 0.3)
    assert ratio == pytest.approx(r_far / r_near, rel=0.05)
    # the take × the level at 1 m / r
    take = _rms(scene.takes[0][:n])
    assert _rms(near[0]) == pytest.approx(take * db_spl_to_pa(90.0) / r_near, rel=0.05)
    # the source lies behind the car (−x): the rear microphones (x = −0.3) hear it first
    lag = np.argmax(np.correlate(far[0, 4000:12000], far[2, 4000:12000], "full")) - 7999
    assert lag == round(0.6 / CONFIG.speed_of_sound_mps * FS)


def test_a_sound_riding_with_the_car_keeps_its_level_and_a_late_one_starts_on_time() -> None:
    along = SoundSpec(kind="car_stereo", offset_m=(0.0, 3.5), level_db_spl_at_1m=88.0)
    late = SoundSpec(kind="birdsong", xy_m=(0.0, 0.0), start_s=1.0, duration_s=0.5)
    scene = SceneSounds([along], CONFIG)
    here = scene.render(Pose(0.0, 0.0, 0.0), 0, FS)
    there = scene.render(Pose(500.0, -200.0, 1.0), 0, FS)
    assert _rms(here) == pytest.approx(_rms(there), rel=1e-6)
    bird = SceneSounds([late], CONFIG).render(Pose(5.0, 0.0, 0.0), 0, 2 * FS)
    active = np.flatnonzero(np.abs(bird[0]) > 0)
    assert active[0] >= FS and active[-1] < 1.5 * FS + 100


def test_the_array_adds_the_scenes_sounds_deterministically() -> None:
    sounds = (SoundSpec(kind="crowd", xy_m=(10.0, 5.0), level_db_spl_at_1m=92.0, seed=3),)
    quiet = MicrophoneArray(CONFIG, background=False)
    loud = MicrophoneArray(CONFIG, background=False, sounds=sounds)
    again = MicrophoneArray(CONFIG, background=False, sounds=sounds)
    ego = Pose(0.0, 0.0, 0.0)
    assert not np.any(quiet.hear(ego, [], 0.0, 0.1))
    first = loud.hear(ego, [], 0.0, 0.1)
    assert _rms(first) > 0.01
    np.testing.assert_array_equal(first, again.hear(ego, [], 0.0, 0.1))


@pytest.mark.sumo
@pytest.mark.parametrize("name", HARD_NEGATIVES)
def test_no_ev_caution_nor_pull_over_among_music_birds_and_crowds(
    name: str, tmp_path: Path
) -> None:
    """The scenario's drive for test_drive.py too: it passes its own criteria against the IDM
    reference."""
    spec: ScenarioSpec = load_scenario(name)
    result = run_scenario(spec, work_dir=tmp_path / name, data_dir=SHARED_DATA)
    reference = run_scenario(
        spec, work_dir=tmp_path / f"{name}-idm", data_dir=SHARED_DATA, planner=idm_planner()
    )
    assert_passes_its_own_criteria(name, result, reference)
    assert result.microphones
    behaviours = set(result.record.behaviour)
    assert not behaviours & EV_REACTIONS, (name, sum(result.record.siren_heard))
    report = scenario_report(result)
    assert report["passed"], {k: v for k, v in report.items() if k != "metrics"}
    assert "ev_yield" not in report  # no emergency vehicle anywhere, no stop for one


def test_the_cars_sensors_play_the_scenarios_sounds_at_its_microphones() -> None:
    from robotaxi.config.scenario import SensorsSpec
    from robotaxi.sim.sensors import CarSensors

    sounds = (SoundSpec(kind="music", offset_m=(2.0, 3.5)),)
    with_sounds = CarSensors(seed=0, mic_config=CONFIG, spec=SensorsSpec(sounds=sounds))
    without = CarSensors(seed=0, mic_config=CONFIG, spec=SensorsSpec())
    assert with_sounds.mics is not None and with_sounds.mics.scene is not None
    assert without.mics is not None and without.mics.scene is None
