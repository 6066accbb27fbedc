"""Real-time pacing: the live clock that steps a simulation at `speed` × real time.

`Pacer.run` calls a step function on a schedule of `step_s / speed` wall seconds per step.
It never skips a step (riders would see cars jump): when a step takes longer than its
slot, the clock runs flat out, counts the shortfall in `behind_s` and starts a fresh
schedule rather than bursting to catch up. The achieved real-time factor is measured over
the last `window_s` wall seconds. Wall time comes from an injected `Clock`, so the pacing
rules are tested without sleeping (`SystemClock` in the service).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

RTF_WINDOW_WALL_S = 10.0


class Clock(Protocol):
    """Wall time for the pacer."""

    def now(self) -> float:
        """Monotonic wall time (s)."""
        ...

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        """Wait up to `seconds`, or until `stop` is set; True if it is set."""
        ...


class SystemClock:
    """The machine's monotonic clock."""

    def now(self) -> float:
        return time.monotonic()

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        return stop.wait(max(seconds, 0.0))


class Pacer:
    """Steps at `speed` × real time (see the module docstring)."""

    def __init__(
        self,
        step_s: float,
        speed: float,
        clock: Clock,
        *,
        window_s: float = RTF_WINDOW_WALL_S,
        retry_s: float = 1.0,
    ) -> None:
        self.step_s = step_s
        self.speed = speed
        self.clock = clock
        self.window_s = window_s
        self.retry_s = retry_s
        self.behind_s = 0.0  # wall seconds the clock fell behind its schedule, in all
        self.failures = 0
        self._samples: deque[tuple[float, float]] = deque()  # (wall s, sim s)
        self._stop = threading.Event()

    def stop(self) -> None:
        """End `run` (from another thread): at once if it is waiting, else after its step."""
        self._stop.set()

    @property
    def step_wall_s(self) -> float:
        return self.step_s / self.speed

    def run(
        self,
        step: Callable[[], float],
        *,
        ended: Callable[[], bool] = lambda: False,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        """Call `step()` (which returns the sim time after it) on schedule until the clock
        is stopped. While `ended()`, idle. A step that raises is reported to `on_error`
        and retried after `retry_s`, on a fresh schedule."""
        clock, stop = self.clock, self._stop
        stop.clear()
        schedule = clock.now()
        while True:
            if ended():
                if clock.wait(0.5, stop):
                    return
                schedule = clock.now()
                continue
            try:
                sim_s = step()
            except Exception as exc:  # a broken tick must be visible and not stop the clock
                self.failures += 1
                if on_error is not None:
                    on_error(exc)
                if clock.wait(self.retry_s, stop):
                    return
                schedule = clock.now()
                continue
            wall = clock.now()
            self._sample(wall, sim_s)
            schedule += self.step_wall_s
            delay = schedule - wall
            if delay > 0:
                if clock.wait(delay, stop):
                    return
            else:
                if -delay > self.step_wall_s:
                    # behind: run flat out, count the shortfall, start a fresh schedule
                    self.behind_s += -delay
                    schedule = wall
                if clock.wait(0.0, stop):
                    return

    def _sample(self, wall: float, sim_s: float) -> None:
        samples = self._samples
        samples.append((wall, sim_s))
        while samples and wall - samples[0][0] > self.window_s:
            samples.popleft()

    @property
    def real_time_factor(self) -> float | None:
        """Sim seconds per wall second over the last `window_s`, None before two steps."""
        samples = list(self._samples)
        if len(samples) < 2 or samples[-1][0] <= samples[0][0]:
            return None
        return (samples[-1][1] - samples[0][1]) / (samples[-1][0] - samples[0][0])
