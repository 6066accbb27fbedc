"""Junctions: stop before the next stop line when its signal is red, or yellow and a
comfortable stop is still possible."""

from __future__ import annotations

from dataclasses import dataclass, replace

from robotaxi.autonomy.planning.behaviour.config import BehaviourConfig
from robotaxi.autonomy.planning.behaviour.policy import Behaviour, Draft, Tick
from robotaxi.autonomy.vehicle import VehicleParams

# SUMO's signal states (one character per link) that mean stop, and prepare to stop
RED_STATES = ("r", "R", "u")
YELLOW_STATES = ("y", "Y")


@dataclass(slots=True)
class StopLineLatch:
    """The arc length (m) of the stop line we have decided to stop at (None: none). Once
    decided, we keep stopping for it even if braking then needs more than the limit."""

    committed_line_s: float | None = None


class StopLinePolicy:
    """`stop_at_line`: the front bumper `stop_line_margin_m` before the next line whose
    signal is red (braking needs at most `red_max_decel_mps2`, else it is run: already
    committed) or yellow (at most `yellow_max_decel_mps2`). Tells later policies the next
    line ahead and where we stop for it."""

    def __init__(self, config: BehaviourConfig, params: VehicleParams) -> None:
        self.config = config
        self.params = params
        self.latch = StopLineLatch()

    def apply(self, tick: Tick, draft: Draft) -> Draft:
        cfg, p, latch = self.config, self.params, self.latch
        v = tick.speed
        front_s = tick.s_ego + p.rear_axle_to_front_m
        next_line = None
        for line in tick.path.stop_lines:
            if line.s_m - cfg.stop_line_margin_m > front_s - 0.5:
                next_line = line
                break
        line_stop_s = None
        if next_line is not None:
            state = tick.signals.get(next_line.signal_id, "g")
            dist = next_line.s_m - cfg.stop_line_margin_m - front_s
            need = v * v / (2 * max(dist, 0.1))
            red, yellow = state in RED_STATES, state in YELLOW_STATES
            committed = latch.committed_line_s == next_line.s_m
            if (red and (need <= cfg.red_max_decel_mps2 or committed)) or (
                yellow and (need <= cfg.yellow_max_decel_mps2 or committed)
            ):
                line_stop_s = next_line.s_m - cfg.stop_line_margin_m - p.rear_axle_to_front_m
                latch.committed_line_s = next_line.s_m
                draft = draft.with_stop(Behaviour.STOP_AT_LINE, line_stop_s)
            else:
                latch.committed_line_s = None
        return replace(draft, next_line=next_line, line_stop_s=line_stop_s)
