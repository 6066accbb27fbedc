"""Shared fixtures: where the third-party data lives, a built grid city, the CLI in-process."""

from __future__ import annotations

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
