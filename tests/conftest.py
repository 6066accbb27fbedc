"""Shared fixtures: where the third-party data lives, a built grid city, the whole city built
once a run, the CLI in-process."""

from __future__ import annotations

import fcntl
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
def city_cache(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """A map cache with the whole city (`sf`) built in it, one for the whole run: xdist's
    workers share it, so the city's netconvert (≈11 s) runs once a run, not once a worker.
    It is built here only, under a lock, so no worker replaces a network another reads."""
    root = tmp_path_factory.getbasetemp()
    if worker_id != "master":
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
