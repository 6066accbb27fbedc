"""`robotaxi calibrate`: bad input (one line, exit 2, nothing written), the city settings it
writes and `load_config` merges under the user's, and a tiny run on the whole city."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import SHARED_DATA, needs_data
from inprocess_cli import RunCli
from robotaxi.config import city_settings, load_config, write_city_settings
from robotaxi.core.errors import ConfigError


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--city", "grid"], "no INRIX speeds for city 'grid'"),
        (["--city", "some/net.osm"], "no INRIX speeds for city 'some/net.osm'"),
        (["--city", "atlantis"], "no INRIX speeds for city 'atlantis'"),
        (["--periods", "AM,XX"], "unknown period(s) XX"),
        (["--periods", "AM,AM"], "names a period twice"),
        (["--min-scale", "0.9", "--start-scale", "0.5"], "scales must satisfy"),
        (["--scale", "2"], "raise --max-scale"),
        (["--window-min", "0"], "must be > 0"),
        (["--window-min", "240"], "cannot hold"),
        (["--max-runs", "0"], "--max-runs"),
        (["--max-teleport-share", "2"], "share of inserted vehicles"),
        (["--data-dir", "no/such/folder"], "INRIX speeds to calibrate against"),
        (["--traffic-model", "hybrid"], "invalid choice"),
        (["--known-good-scale", "-0.1"], "known good scale -0.1 must be > 0"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], expected: str, tmp_path: Path, cli_main: RunCli
) -> None:
    out = tmp_path / "out"
    proc = cli_main("calibrate", *args, "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 or proc.stderr.startswith("usage:")
    assert expected in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []  # no output folder, no scratch folder


def test_an_existing_or_impossible_out_is_refused(tmp_path: Path, cli_main: RunCli) -> None:
    data = ["--data-dir", str(SHARED_DATA)]
    out = tmp_path / "out"
    out.mkdir()
    (out / "calibration.json").write_text('{"kept": true}')
    proc = cli_main("calibrate", *data, "--out", str(out), cwd=tmp_path)
    if SHARED_DATA.is_dir():
        assert proc.returncode == 2 and "--overwrite" in proc.stderr
    assert (out / "calibration.json").read_text() == '{"kept": true}'
    a_file = tmp_path / "file"
    a_file.write_text("")
    proc = cli_main("calibrate", *data, "--out", str(a_file), cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    proc = cli_main("calibrate", *data, "--out", str(a_file / "sub"), cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "out"]


# --- the city's settings --------------------------------------------------------------------


def _table(model: str, scale: float) -> dict[str, object]:
    return {"traffic_model": model, "scale": scale, "table": [{"period": "AM"}]}


@pytest.fixture
def settings_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "cities"
    write_city_settings(
        "sf", "meso", {"world": {"background_scale": 0.3}}, _table("meso", 0.3), folder
    )
    write_city_settings(
        "sf", "micro", {"world": {"background_scale": 0.2}}, _table("micro", 0.2), folder
    )
    return folder


def test_city_settings_go_under_the_users_settings(settings_dir: Path, tmp_path: Path) -> None:
    def scale(overrides: dict[str, object], path: Path | None = None) -> float:
        config = load_config(path, overrides, city_settings_dir=settings_dir)
        return config.world.background_scale

    sf = {"map.city": "sf"}
    assert scale(sf | {"world.traffic_model": "meso"}) == 0.3
    assert scale(sf | {"world.traffic_model": "micro"}) == 0.2
    assert scale(sf) == 0.2  # the default model (micro)
    assert scale(sf | {"world.background_scale": 0.9}) == 0.9  # the command line wins
    user = tmp_path / "run.yaml"
    user.write_text("world:\n  background_scale: 0.7\n  traffic_model: meso\n")
    assert scale(sf, user) == 0.7  # the user's YAML wins
    assert scale({"map.city": "grid"}) == 1.0  # another city: untouched
    assert load_config(None, sf, city_settings_dir=None).world.background_scale == 1.0


def test_city_settings_keep_each_model_and_fall_back(settings_dir: Path, tmp_path: Path) -> None:
    assert city_settings("sf", "meso", settings_dir)["calibration"]["scale"] == 0.3
    assert city_settings("sf", "micro", settings_dir)["settings"] == {
        "world": {"background_scale": 0.2}
    }
    assert city_settings("grid", "meso", settings_dir) is None
    assert city_settings("../sf", "meso", settings_dir) is None
    # rewriting one model keeps the other
    write_city_settings(
        "sf", "meso", {"world": {"background_scale": 0.4}}, _table("meso", 0.4), settings_dir
    )
    assert city_settings("sf", "micro", settings_dir)["calibration"]["scale"] == 0.2
    assert city_settings("sf", "meso", settings_dir)["calibration"]["scale"] == 0.4
    text = (settings_dir / "sf.yaml").read_text()
    assert text.startswith("# sf: settings merged under") and yaml.safe_load(text)["city"] == "sf"
    # a city calibrated with one model only: the other model uses its entry
    only = tmp_path / "only"
    write_city_settings(
        "sf", "meso", {"world": {"background_scale": 0.5}}, _table("meso", 0.5), only
    )
    assert city_settings("sf", "micro", only)["calibration"]["traffic_model"] == "meso"
    assert (
        load_config(None, {"map.city": "sf"}, city_settings_dir=only).world.background_scale == 0.5
    )
    (only / "sf.yaml").write_text("traffic_models: [")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(None, {"map.city": "sf"}, city_settings_dir=only)


def test_the_last_calibration_whose_day_held_is_the_known_good_scale() -> None:
    """sf's tracked meso calibration held over its day: its scale brackets a new day search
    unless the user names one (0: none); micro was never calibrated over a day."""
    import argparse

    from robotaxi.cli.calibrate import register, settings_from_args

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())

    def settings(*args: str):  # type: ignore[no-untyped-def]
        return settings_from_args(parser.parse_args(["calibrate", "--city", "sf", *args]))

    tracked = city_settings("sf", "meso")
    assert tracked is not None and tracked["calibration"]["teleport_bound_met"] is True
    assert settings().known_good_scale == tracked["calibration"]["scale"]
    assert settings("--known-good-scale", "0.15").known_good_scale == 0.15
    assert settings("--known-good-scale", "0").known_good_scale is None
    assert settings("--traffic-model", "micro").known_good_scale is None


def test_the_tracked_sf_settings_are_valid() -> None:
    entry = city_settings("sf", "meso")
    assert entry is not None, "sf's tracked settings (config/cities/sf.yaml) are missing"
    assert entry["settings"]["world"]["background_demand"] == "planbayarea"
    assert 0 < entry["settings"]["world"]["background_scale"] <= 2
    assert {r["period"] for r in entry["calibration"]["table"]} >= {"AM", "MD", "PM"}


# --- a tiny calibration on the whole city ----------------------------------------------------


@needs_data
@pytest.mark.sumo
def test_a_tiny_calibration_of_the_whole_city(
    tmp_path: Path, city_cache: Path, cli_main: RunCli
) -> None:
    out = tmp_path / "calib"
    proc = cli_main(  # a relative --out: SUMO runs in folders of its own
        "calibrate", "--city", "sf", "--data-dir", str(SHARED_DATA), "--cache-dir", str(city_cache),
        "--out", "calib", "--periods", "PM", "--warmup-min", "5", "--window-min", "5",
        "--min-scale", "0.02", "--start-scale", "0.05", "--max-scale", "0.1",
        "--free-flow-scale", "0.02", "--max-runs", "2", "--day-runs", "2", "--day-hours", "0.5",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "calibration.json").read_text())
    assert (out / "calibration.png").stat().st_size > 10_000
    assert not (out / "runs").exists()  # SUMO's outputs are dropped unless --keep-runs
    assert [p.name for p in tmp_path.iterdir()] == ["calib"]  # no scratch folder left
    rows = {(r["facility_type"], r["period"]): r for r in report["table"]}
    assert set(rows) == {
        (ft, "PM") for ft in ("freeway", "major_arterial", "minor_arterial", "local")
    }
    assert all(r["inrix"] is not None and 0.4 < r["inrix"] < 1 for r in rows.values())
    assert all(r["simulated"] is not None and r["simulated"] > 0 for r in rows.values())
    assert report["windows"] == {"PM": {"warmup_from": "16:22", "measured": "16:27-16:32"}}
    # scales 0.05 then 0.1 (too little traffic at both): within the bounds, one run each
    scales = [c["scale"] for c in report["candidates"]]
    assert scales[0] == 0.05 and all(0.02 <= s <= 0.1 for s in scales) and len(scales) <= 2
    for c in report["candidates"]:
        assert c["inserted"] > 0 and c["teleports"] >= 0 and c["wall_s"] > 0
        assert c["periods"][0]["inserted"] == c["inserted"]
    assert report["scale"] in scales and report["traffic_model"] == "meso"
    # the day (here its first 30 min, nearly empty): one run at the windows' scale holds
    day = report["day"]
    assert day["hours"] == 0.5 and len(day["runs"]) == 1 and day["bound_met"]
    assert day["runs"][0]["scale"] == report["scale"] == day["chosen_scale"]
    assert day["runs"][0]["inserted"] > 0 and report["day_teleport_share"] == 0.0
    assert report["teleport_bound_met"] and "over the day" in proc.stdout
    assert "major arterial" in proc.stdout and "teleports" in proc.stdout
    # a log (not a terminal) says what each stage does as it begins
    assert "calibrating: PM: sampling and routing trips at scale 0.1 (0/" in proc.stderr
