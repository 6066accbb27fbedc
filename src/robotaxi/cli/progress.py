"""Progress that also shows in a log file.

rich draws a live bar only on a terminal; written to a file (a run under `nohup`, a job on a
cluster, CI) its bar stays silent until the end. `LoggedProgress` is rich's `Progress` that,
when its console is not a terminal, also prints a plain line per task at most every
`every_s` seconds of wall time, and one when a task that has printed lines completes (a
task shorter than that prints nothing).
"""

from __future__ import annotations

import time
from typing import Any

from rich.progress import Progress, TaskID

LOG_EVERY_S = 30.0


class LoggedProgress(Progress):
    def __init__(
        self, *columns: Any, every_s: float = LOG_EVERY_S, unit: str = "", **kwargs: Any
    ) -> None:
        super().__init__(*columns, **kwargs)
        self.every_s = every_s
        self.unit = f" {unit}" if unit else ""
        self._last_line: dict[TaskID, float] = {}  # when each task last printed (or began)
        self._printed: set[TaskID] = set()
        self._finished: set[TaskID] = set()

    def update(self, task_id: TaskID, **kwargs: Any) -> None:
        super().update(task_id, **kwargs)
        if self.console.is_terminal or task_id in self._finished:
            return
        task = self._tasks[task_id]
        now = time.monotonic()
        last = self._last_line.setdefault(task_id, now)
        done = task.total is not None and task.completed >= task.total
        if now - last >= self.every_s or (done and task_id in self._printed):
            self._last_line[task_id] = now
            self._printed.add(task_id)
            total = f"/{task.total:.0f}" if task.total is not None else ""
            elapsed = time.strftime("%H:%M:%S", time.gmtime(task.elapsed or 0.0))
            self.console.print(
                f"{task.description}: {task.completed:.0f}{total}{self.unit} ({elapsed} elapsed)",
                markup=False,
                highlight=False,
            )
        if done:
            self._finished.add(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        task = self._tasks[task_id]
        self.update(task_id, completed=task.completed + advance)
