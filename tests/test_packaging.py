"""What an installed `robotaxi` promises: a CLI parser that loads no heavy libraries, the
driving scenarios as package data, CommonRoad as an optional extra with a clear message, and
training code outside the runtime packages. No SUMO is started here."""

from __future__ import annotations

import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import pytest

from robotaxi.config.scenario import builtin_scenarios, load_scenario, scenario_names

# libraries the parser path must not load: each costs from tens of ms to seconds
HEAVY = ("numpy", "scipy", "matplotlib", "libsumo", "sumolib", "fastapi", "sqlalchemy", "rich")


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=120,
        check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["simulate"],
        ["map", "build"],
        ["drive"],
        ["serve"],
        ["siren"],
        ["siren", "detect"],
        ["siren", "eval"],
        ["siren", "train"],
    ],
)
def test_help_loads_no_heavy_library(argv: list[str], tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from robotaxi.cli.main import main\n"
        "try:\n"
        f"    main({[*argv, '--help']!r})\n"
        "except SystemExit as done:\n"
        "    assert done.code == 0, done.code\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    proc = _python(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "usage: robotaxi" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout


def test_builtin_scenarios_ship_inside_the_package() -> None:
    folder = builtin_scenarios()
    assert str(folder).startswith(str(files("robotaxi")))
    names = scenario_names()
    assert len(names) >= 10 and "pickup-stop" in names
    for name in names:
        spec = load_scenario(name)
        assert spec.name, name
        # a name and the path of its file give the same scenario
        assert load_scenario(str(folder / f"{name}.yaml")) == spec


def test_scenarios_are_found_from_any_directory(tmp_path: Path) -> None:
    code = "from robotaxi.cli.main import main\nraise SystemExit(main(['drive', '--list']))\n"
    proc = _python(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == scenario_names()


def test_a_scenario_folder_can_be_given(tmp_path: Path) -> None:
    (tmp_path / "quiet.yaml").write_text("name: quiet\nego: {route: [B1B2]}\n")
    assert scenario_names(tmp_path) == ["quiet"]
    assert load_scenario("quiet", tmp_path).name == "quiet"


@pytest.mark.parametrize("missing", ["commonroad", "commonroad_dc"])
def test_commonroad_without_its_extra_is_one_line_and_exit_2(missing: str, tmp_path: Path) -> None:
    """Without the extra, the adapter raises a named error that says how to install it, and
    the CLI turns it into one line on stderr with exit code 2."""
    code = (
        "import argparse, sys\n"
        f"sys.modules[{missing!r}] = None  # as if the extra were not installed\n"
        "from robotaxi.cli import main as cli\n"
        "def handler(args):\n"
        "    import robotaxi.sim.commonroad\n"
        "parser = argparse.ArgumentParser()\n"
        "parser.set_defaults(handler=handler)\n"
        "cli.build_parser = lambda: parser\n"
        "raise SystemExit(cli.main([]))\n"
    )
    proc = _python(code, tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "pip install robotaxi[commonroad]" in proc.stderr
    assert f"no module {missing}" in proc.stderr


def test_commonroad_missing_is_a_named_import_error(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "sys.modules['commonroad'] = None\n"
        "from robotaxi.core.errors import MissingExtraError\n"
        "try:\n"
        "    import robotaxi.sim.commonroad_lanes\n"
        "except MissingExtraError as exc:\n"
        "    assert isinstance(exc, ImportError) and exc.name.startswith('commonroad')\n"
        "    print('named')\n"
    )
    proc = _python(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "named"


def test_training_code_is_outside_the_runtime_packages() -> None:
    src = Path(__file__).resolve().parents[1] / "src" / "robotaxi"
    assert (src / "training" / "siren.py").is_file()
    assert not list((src / "autonomy").rglob("*train*.py"))
