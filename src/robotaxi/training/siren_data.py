"""The siren detector's labelled audio: negative classes (real and synthetic) and real sirens.

Every siren-free sound belongs to one *class*, the unit a leave-one-class-out evaluation
holds out whole:

- real: the eight ESC-10 classes of ../shared/data/audio/esc10 (40 clips of 5 s each; ESC-10's
  rain and the street recording ``rain.wav`` are one class) and the three other street
  recordings of ../shared/data/audio/negatives (car horn, car engine, train), one class each;
- synthetic (`siren_synth.FAMILIES`): chords, melodies, car stereo, birdsong, babble,
  applause, keyboards, engines and horns, beepers, brake squeal — made here, not recorded.

The 50 real ambulance clips are grouped by recording (`SAME_RECORDING`: cuts of one source)
and the groups dealt into `SIREN_FOLDS` folds by the SHA-1 of their first name, so a
recording is held out whole.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robotaxi.core.errors import DataNotFoundError
from robotaxi.core.types import FloatArray
from robotaxi.sim.sensors.microphones import load_clip_16k
from robotaxi.training.siren_synth import FAMILIES, family_clips

SIREN_FOLDS = 5
SYNTH_CLIP_S = 5.0
STREET_CLASSES = {"car-horn.wav": "car_horn", "car_engine.wav": "car_engine", "train.wav": "train"}
# cuts of the same source recording (same peak-frequency track): never split
SAME_RECORDING: tuple[tuple[str, ...], ...] = (
    ("sound_1.wav", "sound_34.wav"),
    ("sound_19.wav", "sound_21.wav"),
    ("sound_2.wav", "sound_23.wav", "sound_31.wav", "sound_35.wav"),
    ("sound_24.wav", "sound_3.wav", "sound_32.wav", "sound_36.wav"),
    ("sound_28.wav", "sound_30.wav", "sound_8.wav"),
    ("sound_4.wav", "sound_6.wav"),
)


@dataclass(frozen=True, slots=True)
class Clip:
    """One recording (or one synthetic take): its name and its 16 kHz signal (ch×n) as
    read from the file, before any scaling."""

    name: str
    signal: FloatArray


@dataclass(frozen=True, slots=True)
class NegativeClass:
    name: str
    real: bool  # recorded (True) or synthesised here (False)
    clips: tuple[Clip, ...]

    def unit_mono(self) -> list[FloatArray]:
        """The clips as mono, zero-mean, unit-RMS signals (for mixing at a chosen level)."""
        return [unit_mono(c.signal) for c in self.clips]


@dataclass(frozen=True, slots=True)
class SirenRecording:
    """Real ambulance clips of one source recording, and the fold that holds it out."""

    fold: int
    clips: tuple[Clip, ...]


def unit_mono(x: FloatArray) -> FloatArray:
    m = np.asarray(x, dtype=np.float64)
    m = m.mean(axis=0) if m.ndim == 2 else m
    m = m - m.mean()
    return np.asarray(m / max(float(np.sqrt(np.mean(m * m))), 1e-9))


def real_negative_classes(data_dir: Path) -> list[NegativeClass]:
    """ESC-10 by category (+ rain.wav into rain) and the other street recordings; [] when
    ../shared/data/audio is absent. Raises DataNotFoundError when esc10/ lacks meta.csv."""
    audio = Path(data_dir) / "audio"
    if not audio.is_dir():
        return []
    by_class: dict[str, list[Clip]] = {}
    esc = audio / "esc10"
    if esc.is_dir():
        meta = esc / "meta.csv"
        if not meta.is_file():
            raise DataNotFoundError(f"{meta} is missing (it names each clip's class)")
        with meta.open(newline="") as handle:
            rows = sorted(csv.DictReader(handle), key=lambda r: r["filename"])
        for row in rows:
            path = esc / "audio" / row["filename"]
            by_class.setdefault(row["category"], []).append(
                Clip(f"esc10/{row['filename']}", load_clip_16k(path))
            )
    negatives = audio / "negatives"
    if negatives.is_dir():
        for path in sorted(negatives.glob("*.wav")):
            cls = "rain" if path.name == "rain.wav" else STREET_CLASSES.get(path.name, path.stem)
            by_class.setdefault(cls, []).append(Clip(f"negatives/{path.name}", load_clip_16k(path)))
    return [NegativeClass(name, True, tuple(clips)) for name, clips in sorted(by_class.items())]


def synthetic_negative_classes(clips_per_family: int, seed: int = 0) -> list[NegativeClass]:
    """One class per synthetic family, `clips_per_family` takes of SYNTH_CLIP_S each."""
    out = []
    for name in FAMILIES:
        takes = family_clips(name, clips_per_family, SYNTH_CLIP_S, seed)
        clips = tuple(Clip(f"synthetic/{name}#{i}", x[None, :]) for i, x in enumerate(takes))
        out.append(NegativeClass(f"synthetic:{name}", False, clips))
    return out


def negative_classes(
    data_dir: Path | None, *, clips_per_family: int = 24, seed: int = 0
) -> list[NegativeClass]:
    real = real_negative_classes(data_dir) if data_dir is not None else []
    return real + synthetic_negative_classes(clips_per_family, seed)


def siren_recordings(data_dir: Path | None) -> list[SirenRecording]:
    """The real ambulance clips grouped by source recording, each group given a fold."""
    if data_dir is None:
        return []
    folder = Path(data_dir) / "audio" / "ambulance"
    if not folder.is_dir():
        return []
    names = sorted(p.name for p in folder.glob("*.wav"))
    grouped = {n for g in SAME_RECORDING for n in g}
    groups = [tuple(sorted(g)) for g in SAME_RECORDING if all(n in names for n in g)]
    groups += [(n,) for n in names if n not in grouped]
    ranked = sorted(groups, key=lambda g: hashlib.sha1(g[0].encode()).hexdigest())
    return [
        SirenRecording(
            i % SIREN_FOLDS, tuple(Clip(f"ambulance/{n}", load_clip_16k(folder / n)) for n in g)
        )
        for i, g in enumerate(ranked)
    ]
