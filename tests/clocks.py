"""A wall clock for tests of the pacer: time moves only when told, so nothing sleeps."""

from __future__ import annotations

import threading


class ManualClock:
    """`now()` is virtual; `wait` moves it on by the time asked (and yields the thread, so a
    test thread can call `stop`); `advance` is a step's own cost."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start
        self._lock = threading.Lock()
        self.waits: list[float] = []

    def now(self) -> float:
        with self._lock:
            return self.t

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.t += seconds

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        self.waits.append(seconds)
        self.advance(max(seconds, 0.0))
        return stop.wait(0.0005) if seconds > 0 else stop.is_set()
