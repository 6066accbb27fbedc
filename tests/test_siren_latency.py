"""How the benchmark summarises detection latency: hand-built cells with known answers."""

from __future__ import annotations

import numpy as np

from robotaxi.sim.sensors.microphones import SirenPattern
from robotaxi.training.siren import _latency_summary, latency_reach


def _cell(level: float, d: float, latencies: list[float], pattern: str = "wail") -> dict:
    return {
        "background_db_spl": level,
        "distance_m": d,
        "pattern": pattern,
        "latencies_s": latencies,
    }


def test_reach_is_the_last_distance_whose_pooled_p95_is_within_target():
    cells = [
        _cell(68.0, 20, [0.3] * 20),
        _cell(68.0, 100, [0.4] * 20),
        _cell(68.0, 150, [0.5] * 19 + [3.0]),  # one slow trial in 60: p95 still 0.5
        _cell(68.0, 200, [1.5] * 20),  # pooled with the nearer ones: p95 1.5 > 1
        _cell(68.0, 300, [0.3] * 20),  # fast again, but the reach stopped at 150 m
        _cell(76.0, 20, [1.2] * 20),  # not even the nearest cell meets it
    ]
    assert latency_reach(cells, 1.0) == {"68dB": 150.0, "76dB": 0.0}
    assert latency_reach(cells, 2.0)["68dB"] == 300.0


def test_reach_stops_at_a_cell_with_no_detection():
    cells = [_cell(60.0, 20, [0.4] * 5), _cell(60.0, 40, []), _cell(60.0, 60, [0.4] * 5)]
    # 40 m pools 20 m's trials, so it still passes; an empty level would stop at once
    assert latency_reach(cells, 1.0) == {"60dB": 60.0}
    assert latency_reach([_cell(60.0, 20, [])], 1.0) == {"60dB": 0.0}


def test_summary_counts_misses_and_splits_by_pattern():
    cells = [
        _cell(68.0, 20, [0.2, 0.4, 0.6], "wail"),
        _cell(68.0, 20, [1.0, 2.0], "hi-lo"),
    ]
    s = _latency_summary(cells, trials=3, patterns=[SirenPattern.WAIL, SirenPattern.HI_LO])
    values = [0.2, 0.4, 0.6, 1.0, 2.0]
    assert s["trials"] == 5 and s["missed_trials"] == 1
    assert s["median"] == 0.6 and s["max"] == 2.0
    assert s["p95"] == float(np.percentile(values, 95))
    assert s["p95_by_pattern"]["wail"] == float(np.percentile([0.2, 0.4, 0.6], 95))
    assert s["p95_by_pattern"]["hi-lo"] == float(np.percentile([1.0, 2.0], 95))
