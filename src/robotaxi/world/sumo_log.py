"""What SUMO's mesoscopic model only tells in its warnings: which cars it teleported.

In meso, SUMO counts its teleports (`--statistic-output`, and at run time the statistics
parameter `stats.teleports.total`) but does not report them through TraCI/libsumo's
"starting teleport" list (measured with SUMO 1.28: a background day with 1,201 teleports by
08:30 reported none there). Which car it was is only in the warning SUMO writes
("Teleporting vehicle 'x'; waited too long, from edge 'e':2 …, time=t."). So in meso the
world turns SUMO's warnings on, writes them to a file (`--error-log`), keeps them off the
console while SUMO steps (`QuietStderr`: libsumo runs in our process and writes warnings to
its standard error), and reads the teleports back from the file (`teleports_in_log`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

# "Warning: Teleporting vehicle 'v0'; waited too long, from edge 'A0A1':2 to edge …, time=324.44."
# (micro: "…; waited too long (jam), lane='e_0', time=…")
_TELEPORT = re.compile(
    r"Teleporting vehicle '(?P<vid>[^']+)'; (?P<why>[^,]*),"
    r"(?: from edge '(?P<edge>[^']*)'| lane='(?P<lane>[^']*)')?.*?time=(?P<t>\d+(?:\.\d+)?)"
)


@dataclass(frozen=True, slots=True)
class LoggedTeleport:
    """One teleport SUMO warned about: when, which car, the edge it left, why."""

    time_s: float
    vehicle: str
    edge: str
    cause: str


def teleports_in_log(path: Path) -> list[LoggedTeleport]:
    """Every teleport SUMO's warnings file holds, in order; [] if there is no file."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    found = []
    for match in _TELEPORT.finditer(text):
        edge = match["edge"]
        if edge is None and match["lane"] is not None:
            edge = match["lane"].rsplit("_", 1)[0]
        found.append(
            LoggedTeleport(float(match["t"]), match["vid"], edge or "", match["why"].strip())
        )
    return found


class QuietStderr:
    """Send this process's standard error (file descriptor 2) to /dev/null inside the block:
    for libsumo's warnings, which it writes there besides its `--error-log` file."""

    def __init__(self) -> None:
        self._null = os.open(os.devnull, os.O_WRONLY)
        self._saved: int | None = None

    def __enter__(self) -> None:
        self._saved = os.dup(2)
        os.dup2(self._null, 2)

    def __exit__(self, *exc: object) -> None:
        if self._saved is not None:
            os.dup2(self._saved, 2)
            os.close(self._saved)
            self._saved = None

    def close(self) -> None:
        os.close(self._null)
