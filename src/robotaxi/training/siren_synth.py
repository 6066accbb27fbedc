"""Synthetic hard negatives for the siren detector (chord, melody, car stereo, birdsong,
babble, applause, keyboard, engine and horn, beeper, squeal).

The generators live in `robotaxi.sim.sensors.sound_synth`, since the simulated microphones
play them in driving scenarios too and `sim` may not import `training`; this module is
their name on the training side.
"""

from __future__ import annotations

from robotaxi.sim.sensors.sound_synth import (
    FAMILIES,
    FS,
    Generator,
    applause,
    babble,
    beeper,
    birdsong,
    car_stereo,
    chord,
    engine_horn,
    family_clips,
    keyboard,
    melody,
    squeal,
)

__all__ = [
    "FAMILIES",
    "FS",
    "Generator",
    "applause",
    "babble",
    "beeper",
    "birdsong",
    "car_stereo",
    "chord",
    "engine_horn",
    "family_clips",
    "keyboard",
    "melody",
    "squeal",
]
