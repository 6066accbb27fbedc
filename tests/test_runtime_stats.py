"""Timing statistics stay bounded however long a car drives, and their totals stay exact."""

from __future__ import annotations

import numpy as np
import pytest

from robotaxi.autonomy.stack import (
    RECENT_SAMPLES,
    IdmPlanner,
    RuntimeStats,
    StageTimes,
)
from robotaxi.core.errors import ConfigError


def test_ring_buffer_keeps_the_latest_samples_and_exact_totals() -> None:
    capacity = 1_000
    # whole numbers of seconds: every partial sum is exact in floating point
    samples = (np.arange(25 * capacity + 7) % 97).astype(float)
    stats = RuntimeStats(capacity)
    for k, seconds in enumerate(samples):
        stats.add(float(seconds))
        assert len(stats) == min(k + 1, capacity)
    assert len(stats) == capacity
    assert len(stats._buffer) == capacity  # never grew past it
    assert stats.count == len(samples)
    assert stats.total_s == float(samples.sum())
    assert stats.max_s == 96.0
    assert stats.mean_s == float(samples.sum()) / len(samples)
    latest = samples[-capacity:]
    assert np.array_equal(np.asarray(stats), latest)
    assert list(stats) == latest.tolist()
    assert stats[0] == latest[0] and stats[-1] == latest[-1] and stats[-2] == latest[-2]
    with pytest.raises(IndexError):
        stats[capacity]
    with pytest.raises(IndexError):
        stats[-capacity - 1]


def test_a_short_run_reads_as_all_of_its_samples() -> None:
    stats = RuntimeStats()
    assert len(stats) == 0 and not stats and np.isnan(stats.mean_s)
    for seconds in (0.5, 2.0, 0.25):
        stats.add(seconds)
    assert np.array_equal(np.asarray(stats), [0.5, 2.0, 0.25])
    assert float(np.median(stats)) == 0.5
    assert stats[-1] == 0.25
    assert (stats.count, stats.total_s, stats.max_s) == (3, 2.75, 2.0)
    assert np.asarray(stats, dtype=np.float32).dtype == np.float32


def test_default_capacity_bounds_stage_times_and_planner_runtimes() -> None:
    times = StageTimes()
    n = RECENT_SAMPLES + 5_000
    for k in range(n):
        times.add("planning", 0.125 * (k % 10), cpu_seconds=0.25)
        times.add("hearing", 0.5)  # a stage added on first use, wall clock only
    planning = times.by_stage["planning"]
    assert len(planning) == RECENT_SAMPLES and planning.count == n
    assert planning.max_s == 1.125
    assert planning.total_s == 0.5625 * n  # binary fractions: the sum is exact
    cpu = times.cpu_by_stage["planning"]
    assert len(cpu) == RECENT_SAMPLES and cpu.count == n and cpu.total_s == 0.25 * n
    assert len(times.by_stage["hearing"]) == RECENT_SAMPLES
    assert times.by_stage["hearing"].total_s == 0.5 * n
    assert "hearing" not in times.cpu_by_stage
    assert len(times.by_stage["control"]) == 0  # every stage is there from the start
    assert isinstance(IdmPlanner().runtimes_s, RuntimeStats)


def test_capacity_must_hold_a_sample() -> None:
    with pytest.raises(ConfigError, match="capacity"):
        RuntimeStats(0)
