"""`robotaxi siren detect` on good and bad files, through the real entry point."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.io.wavfile

from robotaxi.cli.main import main
from robotaxi.sim.sensors.microphones import MicArrayConfig, SirenPattern
from robotaxi.training.siren import synth_scene


@pytest.fixture(scope="module")
def siren_scene():
    rng = np.random.default_rng(11)
    return synth_scene(
        rng,
        config=MicArrayConfig(negatives_dir=None),
        clips=[],
        duration_s=3.0,
        distance_m=40.0,
        pattern=SirenPattern.YELP,
        background_db=65.0,
        onset_s=0.8,
    )


def _write(path, rate, data):
    scipy.io.wavfile.write(path, rate, data)
    return str(path)


def test_detect_json_on_a_four_channel_recording(tmp_path, capsys, siren_scene):
    x = siren_scene.signal
    pcm = (x / np.abs(x).max() * 30000).T.astype(np.int16)
    path = _write(tmp_path / "street.wav", 16000, pcm)
    assert main(["siren", "detect", path, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["file"] == path and out["detected"] is True
    assert 0.8 < out["first_detection_s"] <= 1.8
    assert 0.0 <= out["max_probability"] <= 1.0
    assert out["windows"] and {"time_s", "probability", "bearing_deg"} <= set(out["windows"][0])


def test_detect_resamples_mono_44k(tmp_path, capsys, siren_scene):
    import scipy.signal

    mono = scipy.signal.resample_poly(siren_scene.signal[0], 441, 160)
    path = _write(tmp_path / "mono.wav", 44100, (mono / np.abs(mono).max()).astype(np.float32))
    assert main(["siren", "detect", path, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["detected"] is True and out["channels"] == 1
    assert "bearing_deg" not in out["windows"][0]


def test_detect_text_output(tmp_path, capsys):
    rng = np.random.default_rng(0)
    path = _write(
        tmp_path / "noise.wav", 16000, (rng.standard_normal(32000) * 3000).astype(np.int16)
    )
    assert main(["siren", "detect", path]) == 0
    out = capsys.readouterr().out
    assert "no siren" in out


def _bad_files(tmp_path):
    good = tmp_path / "good.wav"
    scipy.io.wavfile.write(good, 16000, np.zeros(16000, dtype=np.int16))
    raw = good.read_bytes()
    files = {
        "empty": b"",
        "text": b"this is not audio at all\n" * 40,
        "truncated": raw[: len(raw) // 2],
        "header only": raw[:30],
        "too short": None,
    }
    out = {}
    for name, content in files.items():
        path = tmp_path / f"{name.replace(' ', '_')}.wav"
        if content is None:
            scipy.io.wavfile.write(path, 16000, np.zeros(800, dtype=np.int16))
        else:
            path.write_bytes(content)
        out[name] = str(path)
    out["missing"] = str(tmp_path / "nope.wav")
    return out


def test_bad_files_exit_2_with_one_line_and_no_traceback(tmp_path, capsys):
    for name, path in _bad_files(tmp_path).items():
        for extra in ([], ["--json"]):
            code = main(["siren", "detect", path, *extra])
            captured = capsys.readouterr()
            assert code == 2, name
            assert "Traceback" not in captured.err, name
            lines = captured.err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("robotaxi: error:"), (name, lines)
            assert captured.out == "", name


def test_siren_without_subcommand_exits_2(capsys):
    assert main(["siren"]) == 2
