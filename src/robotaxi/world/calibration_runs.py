"""Background-only SUMO runs for calibration: a routes file in, edgeData and counts out.

One run is the `sumo` binary in a child process (not libsumo: it holds one simulation per
process, and a run here needs none of our per-step control), started with the same command
line as every other simulation of the city (`sumo_world.sumo_command`), plus an edgeData
output over the measured window and SUMO's statistics for inserted vehicles and teleports.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from robotaxi.config import WorldConfig
from robotaxi.core.errors import WorldError
from robotaxi.world.sumo_world import sumo_command
from robotaxi.world.traffic import sumo_env, sumo_home

_STEP = re.compile(rb"Step #(\d+(?:\.\d+)?)")
_TELEPORT = b"Teleporting vehicle"  # SUMO's warning as a car starts a teleport


@dataclass(frozen=True, slots=True)
class BackgroundRun:
    """What one background-only run did (simulation seconds from its start)."""

    edge_data: Path  # SUMO edgeData over [measure_begin_s, end_s)
    loaded: int  # vehicles read from the routes file up to end_s
    inserted: int  # vehicles that entered the network
    teleports: int  # jams SUMO resolved by teleporting a car (time-to-teleport)
    wall_s: float
    stopped_early: bool = False  # stopped once its teleports exceeded `max_teleports`

    @property
    def teleport_share(self) -> float:
        """Teleports per inserted vehicle."""
        return self.teleports / self.inserted if self.inserted else 0.0


def thin_routes(routes: Path, out: Path, keep_share: float, seed: int) -> int:
    """Copy a SUMO routes file keeping each vehicle with probability `keep_share`, decided by
    a hash of (seed, vehicle id): thinning a Poisson demand keeps it Poisson with the mean
    scaled, and a smaller share keeps a subset of a larger one's vehicles. Returns the
    vehicles kept. Expects one `<vehicle …>` … `</vehicle>` block per vehicle, as duarouter
    writes them."""
    if not 0.0 <= keep_share <= 1.0:
        raise WorldError(f"share of vehicles to keep must be in [0, 1], not {keep_share}")
    threshold = int(keep_share * 2**64)
    kept = 0
    salt = str(seed).encode()
    with routes.open("rb") as src, out.open("wb") as dst:
        skipping = False
        for line in src:
            stripped = line.lstrip()
            if stripped.startswith(b"<vehicle "):
                match = re.search(rb'id="([^"]*)"', stripped)
                vid = match.group(1) if match else b""
                digest = hashlib.blake2b(salt + b"\0" + vid, digest_size=8).digest()
                skipping = int.from_bytes(digest, "big") >= threshold
                kept += not skipping
                if skipping and stripped.rstrip().endswith(b"/>"):
                    skipping = False  # a vehicle on one line: drop just that line
                    continue
            if not skipping:
                dst.write(line)
            elif stripped.startswith(b"</vehicle>"):
                skipping = False
    return kept


def run_background(
    net_file: Path,
    route_files: list[Path],
    world: WorldConfig,
    *,
    seed: int,
    end_s: float,
    measure_begin_s: float,
    out_dir: Path,
    progress: Callable[[float], None] | None = None,
    max_teleports: int | None = None,
) -> BackgroundRun:
    """Run SUMO on background traffic alone from 0 to `end_s` and write edgeData (one
    interval, [measure_begin_s, end_s)) into `out_dir`. `progress(sim_s)` is called as
    SUMO reports its steps. With `max_teleports`, SUMO is stopped (SIGINT: it still writes
    its statistics) once more cars than that have teleported: a run that has already failed
    a teleport bound need not jam to its end."""
    if not 0 <= measure_begin_s < end_s:
        raise WorldError(f"measured window [{measure_begin_s}, {end_s}) s is empty")
    # SUMO runs inside out_dir (its outputs are named relative to it): every path absolute
    out_dir = out_dir.resolve()
    net_file = net_file.resolve()
    route_files = [p.resolve() for p in route_files]
    out_dir.mkdir(parents=True, exist_ok=True)
    edge_data = out_dir / "edgedata.xml"
    stats = out_dir / "stats.xml"
    additional = out_dir / "edgedata.add.xml"
    additional.write_text(
        f'<additional>\n    <edgeData id="calibration" file="{edge_data.name}" '
        f'begin="{measure_begin_s:.0f}" end="{end_s:.0f}" '
        f'freq="{end_s - measure_begin_s:.0f}" excludeEmpty="true"/>\n</additional>\n'
    )
    cmd = sumo_command(net_file, additional, route_files, world, seed, end_s=end_s)
    cmd[0] = str(sumo_home() / "bin" / "sumo")
    at = cmd.index("--no-step-log")
    del cmd[at : at + 2]
    cmd += ["--step-log.period", "60", "--statistic-output", str(stats)]
    if max_teleports is not None:  # the teleport warnings are counted in SUMO's log
        at = cmd.index("--no-warnings")
        del cmd[at : at + 2]
    started = time.perf_counter()
    log = out_dir / "sumo.log"
    stopped, teleported, read_to = False, 0, 0
    with log.open("wb") as err_fh, log.open("rb") as err_in:
        proc = subprocess.Popen(
            cmd, cwd=out_dir, env=sumo_env(), stdout=subprocess.PIPE, stderr=err_fh
        )
        assert proc.stdout is not None  # a pipe
        pending = b""
        while chunk := os.read(proc.stdout.fileno(), 4096):
            # SUMO's step log: "Step #123.00 (…)" lines ended by carriage returns
            *done, pending = re.split(rb"[\r\n]", pending + chunk)
            steps = [m.group(1) for line in done if (m := _STEP.match(line.strip()))]
            if steps and progress is not None:
                progress(float(steps[-1]))
            if steps and max_teleports is not None and not stopped:
                new = err_in.read()  # whole lines only: a warning cut here is read next time
                cut = new.rfind(b"\n") + 1
                teleported += new[:cut].count(_TELEPORT)
                read_to += cut
                err_in.seek(read_to)
                if teleported > max_teleports:
                    proc.send_signal(signal.SIGINT)
                    stopped = True
        code = proc.wait()
    if code != 0 or not stats.is_file() or not edge_data.is_file():
        err = log.read_text(errors="replace")
        errors = [ln for ln in err.splitlines() if "Error" in ln] or err.splitlines()[-1:]
        raise WorldError(f"SUMO background run failed: {errors[0] if errors else 'no output'}")
    wall = time.perf_counter() - started
    try:
        root = ET.parse(stats).getroot()
    except ET.ParseError as exc:
        raise WorldError(f"SUMO wrote unreadable statistics {stats}: {exc}") from None
    vehicles = root.find("vehicles")
    teleports = root.find("teleports")
    if vehicles is None or teleports is None:
        raise WorldError(f"SUMO's statistics {stats} have no vehicles/teleports")
    return BackgroundRun(
        edge_data=edge_data,
        loaded=int(vehicles.get("loaded", "0")),
        inserted=int(vehicles.get("inserted", "0")),
        teleports=int(teleports.get("total", "0")),
        wall_s=wall,
        stopped_early=stopped,
    )
