"""The spoken greeting: espeak-ng's WAV is real sound, names are made safe, renders are cached."""

from __future__ import annotations

import io
import subprocess
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from robotaxi.service import speech
from robotaxi.service.speech import (
    GreetingVoice,
    SpeechUnavailableError,
    greeting_text,
    speakable_name,
    with_true_sizes,
)


def samples(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data)) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2
        frames = w.readframes(w.getnframes())
        assert len(frames) == 2 * w.getnframes()  # the header's sizes match the data
        return np.frombuffer(frames, dtype="<i2").astype(float), w.getframerate()


@pytest.mark.parametrize(
    ("name", "spoken"),
    [
        ("Ada Lovelace", "Ada Lovelace"),
        ("  Zoë   O'Brien-Smith ", "Zoë O'Brien-Smith"),
        ("Dr. Who", "Dr. Who"),
        ("李小龍", "李小龍"),
        ("-v de --stdout", "v de stdout"),  # never an option: letters only reach espeak-ng
        ("<speak>Bob</speak>", "speak Bob speak"),  # no markup (and espeak-ng gets no -m)
        ("Eve; rm -rf /", "Eve rm rf"),
        ("\x00\x1b[31mMal\nlory", "31mMal lory"),  # controls gone; text via stdin anyway
        ("!!!", ""),
        ("x" * 100, "x" * speech.MAX_NAME_CHARS),
    ],
)
def test_names_are_reduced_to_what_can_be_read_aloud(name: str, spoken: str) -> None:
    assert speakable_name(name) == spoken


def test_greeting_text() -> None:
    assert greeting_text("Ada") == "Hey there, Ada!"
    assert greeting_text("???") == "Hey there!"


def test_the_greeting_is_a_real_wav_with_sound() -> None:
    voice = GreetingVoice()
    assert voice.available, "espeak-ng is needed here (CI installs it: .ci/run)"
    data = voice.wav("Ada")
    x, rate = samples(data)
    duration_s = len(x) / rate
    assert 0.5 < duration_s < 5.0  # "Hey there, Ada!" at 150 words a minute
    rms = float(np.sqrt(np.mean(x**2)))
    assert rms > 500  # of 32768: speech, not silence
    loud = np.abs(x) > 2000
    assert 0.1 < loud.mean() < 0.9  # sound and pauses, not noise or a constant
    # a longer name takes longer to say
    longer, _ = samples(voice.wav("Ada Augusta King, Countess of Lovelace"))
    assert len(longer) > 1.5 * len(x)


def test_each_name_is_rendered_once(monkeypatch: pytest.MonkeyPatch) -> None:
    voice = GreetingVoice()
    runs: list[list[str]] = []
    real_run = subprocess.run

    def counted(command: list[str], **kwargs: Any) -> Any:
        runs.append(command)
        assert "shell" not in kwargs and kwargs["input"].startswith(b"Hey there, ")
        return real_run(command, **kwargs)

    monkeypatch.setattr(speech.subprocess, "run", counted)
    first = voice.wav("Grace")
    assert voice.wav("Grace") == first and voice.wav("  Grace ") == first
    voice.wav("Linus")
    assert len(runs) == 2 and voice.renders == 2
    assert all(isinstance(c, list) and c[0].endswith("espeak-ng") for c in runs)


def test_without_espeak_ng_it_says_so(tmp_path: Path) -> None:
    voice = GreetingVoice(tmp_path / "no-espeak-ng")
    assert not voice.available
    with pytest.raises(SpeechUnavailableError, match="espeak-ng"):
        voice.wav("Ada")
    assert not GreetingVoice(search=False).available


def test_placeholder_sizes_are_fixed() -> None:
    header = b"RIFF" + (0x7FFFF000).to_bytes(4, "little") + b"WAVE"
    fmt = b"fmt " + (16).to_bytes(4, "little") + bytes(16)
    body = b"data" + (0x7FFFF000).to_bytes(4, "little") + bytes(10)
    fixed = with_true_sizes(header + fmt + body)
    assert int.from_bytes(fixed[4:8], "little") == len(fixed) - 8
    assert int.from_bytes(fixed[40:44], "little") == 10
    with pytest.raises(SpeechUnavailableError):
        with_true_sizes(b"not a wav")
