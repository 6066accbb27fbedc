"""The live clock's pacing rules, on a manual clock: no sleeping, no wall-time assertions."""

from __future__ import annotations

import pytest

from clocks import ManualClock
from robotaxi.sim.live_views import Pacing
from robotaxi.sim.pacing import Pacer


def _run(pacer: Pacer, clock: ManualClock, steps: int, cost_s: float, **kw) -> list[float]:
    """Run `steps` steps, each taking `cost_s` of the clock's time; returns the sim times."""
    sim = [0.0]

    def step() -> float:
        clock.advance(cost_s)
        sim.append(sim[-1] + pacer.step_s)
        if len(sim) > steps:
            pacer.stop()
        return sim[-1]

    pacer.run(step, **kw)
    return sim[1:]


def test_a_clock_that_keeps_up_runs_at_its_speed_and_is_never_behind() -> None:
    clock = ManualClock()
    pacer = Pacer(1.0, 40.0, clock)
    times = _run(pacer, clock, 400, cost_s=0.004)  # 4 ms of a 25 ms slot
    assert times == [float(k) for k in range(1, 401)]
    assert pacer.real_time_factor == pytest.approx(40.0, rel=1e-9)
    assert pacer.behind_s == 0.0
    # it waited out the rest of every slot
    assert all(w == pytest.approx(0.021) for w in clock.waits[1:-1])


def test_a_clock_that_cannot_keep_up_runs_flat_out_and_counts_the_shortfall() -> None:
    clock = ManualClock()
    pacer = Pacer(1.0, 1000.0, clock)  # a 1 ms slot
    times = _run(pacer, clock, 300, cost_s=0.01)  # 10 ms a step: at most 100× real time
    assert len(times) == 300 and times[-1] == 300.0  # every step taken, none skipped
    assert pacer.real_time_factor == pytest.approx(100.0, rel=1e-6)
    # every step ends 9 ms after its slot, and each starts a fresh schedule (no bursts)
    assert pacer.behind_s == pytest.approx(300 * 0.009, rel=1e-6)


def test_a_failing_step_is_reported_and_retried_on_a_fresh_schedule() -> None:
    clock = ManualClock()
    pacer = Pacer(1.0, 10.0, clock, retry_s=1.0)
    calls: list[int] = []
    errors: list[Exception] = []

    def step() -> float:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("tick failed")
        if len(calls) == 6:
            pacer.stop()
        return float(len(calls))

    pacer.run(step, on_error=errors.append)
    assert len(calls) == 6 and pacer.failures == 1
    assert [str(e) for e in errors] == ["tick failed"]
    assert 1.0 in clock.waits and pacer.behind_s == 0.0


def test_an_ended_service_idles_until_stopped() -> None:
    clock = ManualClock()
    pacer = Pacer(1.0, 10.0, clock)
    steps: list[int] = []
    idles = [0]

    def ended() -> bool:
        idles[0] += 1
        if idles[0] == 5:
            pacer.stop()
        return True

    pacer.run(lambda: float(steps.append(1) or 0), ended=ended)
    assert steps == [] and clock.waits == [0.5] * 5


def _pacing(pacer: Pacer, speed: float) -> Pacing:
    rtf = pacer.real_time_factor
    return Pacing(
        sim_time_s=0.0,
        speed=speed,
        real_time_factor=None if rtf is None else round(rtf, 2),
        behind_s=pacer.behind_s,
        running=True,
        ended=False,
    )


def test_a_clock_that_cannot_keep_its_speed_says_so_and_what_to_do() -> None:
    clock = ManualClock()
    slow = Pacer(1.0, 1000.0, clock)
    _run(slow, clock, 300, cost_s=0.01)  # 100x of the 1000x asked
    pacing = _pacing(slow, 1000.0)
    assert not pacing.keeping_up
    assert pacing.falling_behind_note == (
        "the simulation runs at 100x real time instead of 1000x: the machine is too busy; "
        "restart with a lower --speed or a smaller fleet"
    )
    # at its speed, or at the start (no measurement yet), all is well
    fine = Pacer(1.0, 40.0, clock)
    assert _pacing(fine, 40.0).keeping_up and _pacing(fine, 40.0).falling_behind_note is None
    _run(fine, clock, 400, cost_s=0.004)
    assert _pacing(fine, 40.0).keeping_up
