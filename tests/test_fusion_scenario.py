"""The ambulance hidden by the corner of the block: heard long before it is seen.

`ambulance-hidden-cross-street` driven twice with the same seed and traffic: with the roof
microphones (audio + cameras) and without (cameras only). With audio the car reacts seconds
earlier, stands at the kerb before the ambulance comes in range and passes its EV-yield
criteria; camera-only it reacts only when the lights come into view round the corner.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import SHARED_DATA
from robotaxi.config.scenario import load_scenario
from robotaxi.metrics.scenario_report import scenario_report
from robotaxi.sim.drive import run_scenario

pytestmark = pytest.mark.sumo

NAME = "ambulance-hidden-cross-street"
# long enough for the ambulance to cross (~27 s) and the car to move on (v ≥ 2 m/s)
DURATION_S = 31.0


def _drive(tmp_path: Path, microphones: bool) -> dict[str, Any]:
    spec = load_scenario(NAME).model_copy(update={"duration_s": DURATION_S})
    result = run_scenario(
        spec,
        work_dir=tmp_path / f"mics-{microphones}",
        data_dir=SHARED_DATA,
        microphones=microphones,
    )
    assert result.microphones is microphones and result.city_blocks
    if microphones:
        assert result.record.siren_heard and "hearing" in result.stage_ms
    return scenario_report(result)


def test_audio_reacts_earlier_than_cameras_alone_and_still_yields(tmp_path: Path) -> None:
    spec = load_scenario(NAME)
    assert spec.sensors.microphones and spec.sensors.city_blocks and spec.passing.ev_yield
    fused = _drive(tmp_path, microphones=True)
    camera = _drive(tmp_path, microphones=False)
    for report in (fused, camera):
        assert report["at_fault_collisions"] == 0 and report["sumo_collisions"] == 0
    # audio + cameras: the scenario's EV-yield criteria hold
    ev = fused["ev_yield"]
    assert fused["criteria"]["ev_yield"], ev
    assert ev["pulled_over"] and ev["resumed"] and not ev["blocked_ev"]
    timing, cam = ev["timing"], camera["ev_yield"]["timing"]
    assert timing["microphones"] and not cam["microphones"]
    assert timing["siren_onset_s"] == cam["siren_onset_s"] == pytest.approx(12.0, abs=0.11)
    # heard within 3 s of the onset; seen only when the ambulance is nearly at the corner
    assert timing["heard_s"] - timing["siren_onset_s"] <= 3.0
    assert cam["heard_s"] is None
    assert cam["seen_s"] - cam["siren_onset_s"] >= 10.0
    # the audio run reacts (caution) seconds before the camera-only run reacts (on sight)
    assert timing["reaction_after_onset_s"] <= 4.0
    assert cam["reaction_after_onset_s"] - timing["reaction_after_onset_s"] >= 8.0
    assert timing["first_reaction_s"] < timing["seen_s"]
    # … and stands at the kerb before the ambulance is even in range; camera-only never does
    assert timing["kerb_stop_after_in_range_s"] <= 0.0
    assert cam["stopped_at_kerb_s"] is None
