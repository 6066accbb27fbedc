"""Shared fixtures: where the third-party data lives, a built grid city, the whole city built
once a run, the CLI in-process; the order in which xdist's workers get the test files."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Tests that need ../shared/data skip only when that folder is absent (never in CI).
needs_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"shared data folder {SHARED_DATA} is absent"
)


@pytest.fixture(scope="session")
def map_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("maps")


@pytest.fixture(scope="session")
def city_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A map cache with the whole city (`sf`) built in it, one for the whole run: xdist's
    workers share it, so the city's netconvert (≈11 s) runs once a run, not once a worker.
    It is built here only, under a lock, so no worker replaces a network another reads."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above each worker's own
    cache = root / "city-maps"
    cache.mkdir(exist_ok=True)
    if SHARED_DATA.is_dir():
        from robotaxi.map import build_network

        with (root / "city-maps.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            build_network("sf", SHARED_DATA, cache)
    return cache


@pytest.fixture(scope="session")
def grid_map(map_cache: Path):
    from robotaxi.map import build_network, load_map

    return load_map(build_network("grid", SHARED_DATA, map_cache))


@pytest.fixture(scope="session")
def grid_graph(grid_map):
    from robotaxi.map import RoutingGraph

    return RoutingGraph(grid_map)


@pytest.fixture
def cli_main(capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """`cli_main(*args, cwd=…)` runs the `robotaxi` command in this process (inprocess_cli.py)."""
    from inprocess_cli import in_process_runner

    return in_process_runner(capfd, monkeypatch)


# The files that take longest (seconds of one process on this 2-core machine, as measured),
# longest first. `make test` hands whole files to xdist's workers in collection order
# (`--no-loadscope-reorder`): these start first and the many short files fill the gaps at the
# end, rather than a one-test file of a minute and a half starting last while the other
# worker idles (xdist's own order puts the files with most tests first).
LONGEST_FIRST = (
    "test_drive.py",  # 295
    "test_calibrate_cli.py",  # 125
    "test_drive_harder.py",  # 115
    "test_sweep.py",  # 95
    "test_sf_city_e2e.py",  # 75
    "test_remote_assistance_scenario.py",  # 55
    "test_remote_assistance_lane.py",  # 55
    "test_service_autonomy.py",  # 55
    "test_autonomy_own_yield.py",  # 50
    "test_siren_scene_sounds.py",  # 50
    "test_service_browser.py",  # 45
    "test_commonroad_interactive_peers.py",  # 45
    "test_pass_solid_centre_line.py",  # 40
    "test_map_city.py",  # 35
    "test_remote_assistance_pass.py",  # 35
    "test_simulate_e2e.py",  # 30
    "test_service_restart.py",  # 30
    "test_meso_fleet.py",  # 30
    "test_fusion_scenario.py",  # 30
    "test_service_accessibility.py",  # 25
    "test_commonroad_peers.py",  # 20
    "test_service_vehicle_events.py",  # 17
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: k for k, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: else as collected
