"""Safe stop: after repeated motion-planning failures, stop where we are until planning has
succeeded for a while again."""

from __future__ import annotations

from dataclasses import dataclass, replace

from robotaxi.autonomy.planning.behaviour.config import BehaviourConfig
from robotaxi.autonomy.planning.behaviour.policy import Behaviour, Draft, Tick


@dataclass(slots=True)
class SafeStopLatch:
    """Failed plans in a row, successful plans in a row, and the rear-axle arc length (m)
    of the safe stop under way (None: none)."""

    failures: int = 0
    ok_streak: int = 0
    stop_s: float | None = None


class SafeStopPolicy:
    """`safe_stop` after `safe_stop_after_failures` failed plans in a row, at the point a
    comfortable stop reaches; released after `safe_stop_release_ticks` good plans in a row."""

    def __init__(self, config: BehaviourConfig) -> None:
        self.config = config
        self.latch = SafeStopLatch()

    def apply(self, tick: Tick, draft: Draft) -> Draft:
        cfg, latch = self.config, self.latch
        ok = tick.last_plan_ok
        latch.failures = 0 if ok else latch.failures + 1
        latch.ok_streak = latch.ok_streak + 1 if ok else 0
        if latch.failures >= cfg.safe_stop_after_failures and latch.stop_s is None:
            v = tick.speed
            latch.stop_s = tick.s_ego + v * v / (2 * cfg.comfortable_decel_mps2)
        if latch.stop_s is not None and latch.ok_streak >= cfg.safe_stop_release_ticks:
            latch.stop_s = None
        if latch.stop_s is not None:
            draft = draft.with_stop(Behaviour.SAFE_STOP, latch.stop_s)
        return replace(draft, safe_stopping=latch.stop_s is not None)
