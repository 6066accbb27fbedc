"""Synthetic everyday sounds that fool a tonal-sweep siren detector (its hard negatives).

Used twice: the siren detector's training and evaluation (`robotaxi.training.siren_synth`
re-exports this module) and the simulated street of driving scenarios (a scenario's
`sensors.sounds`: music from a car alongside, birds by a park, a crowd at a corner).

Each family is a generator `(rng, n_samples) -> mono 16 kHz signal, unit RMS`, built from
what makes it *not* a siren while it shares something with one:

- ``chord``: several simultaneous notes (triads, sevenths) with harmonics, plucked or held,
  chords changing every 0.4–2 s — several tones at once;
- ``melody``: one voice with harmonics, vibrato (4.5–7 Hz) and sometimes portamento, notes
  on a scale in 250–1500 Hz — the closest to a siren: one tone that moves;
- ``car_stereo``: bass, chords, a lead and drums heard through a car body (low-passed);
- ``birdsong``: fast chirps and FM sweeps (20–250 ms), trills, mostly 1.5–8 kHz;
- ``babble``: 2–12 voices, fundamental 100–300 Hz with intonation, formants, syllables;
- ``applause``: dense random claps (short resonant noise bursts);
- ``keyboard``: typing: key clicks 4–12 per second with mechanical resonances;
- ``engine_horn``: engines revving (harmonic orders sweeping together) and car horns;
- ``beeper``: reversing beepers, truck alarms and crosswalk chirps (on/off tones);
- ``squeal``: brake and wheel squeal, a steady or gliding tone mostly above 1.5 kHz.

All of them are made here, by synthesis: they are not recordings (the benchmark says so).
Deterministic for the generator's state.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import scipy.signal

from robotaxi.config.sensors import SAMPLE_RATE_HZ
from robotaxi.core.types import FloatArray

FS = SAMPLE_RATE_HZ
Generator = Callable[[np.random.Generator, int], FloatArray]


def _unit(x: FloatArray) -> FloatArray:
    x = x - x.mean()
    return x / max(float(np.sqrt(np.mean(x * x))), 1e-12)


def _tone(f_hz: FloatArray, harmonics: FloatArray, phase0: float = 0.0) -> FloatArray:
    """A harmonic tone with instantaneous fundamental `f_hz` (per sample)."""
    phase = phase0 + 2 * np.pi * np.cumsum(f_hz) / FS
    out = np.zeros(len(f_hz))
    for k, amp in enumerate(harmonics, start=1):
        if amp == 0.0:
            continue
        alias = k * f_hz > 0.45 * FS  # drop what would fold back
        out += np.where(alias, 0.0, amp * np.sin(k * phase))
    return out


def _adsr(n: int, attack_s: float, decay_s: float, plucked: bool) -> FloatArray:
    t = np.arange(n) / FS
    env = np.minimum(t / max(attack_s, 1e-3), 1.0)
    if plucked:
        env *= np.exp(-t / max(decay_s, 1e-3))
    else:
        release = np.clip((n / FS - t) / 0.05, 0, 1)
        env *= release
    return env


def _midi_hz(note: float) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


_MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
_CHORDS = ([0, 4, 7], [0, 3, 7], [0, 4, 7, 10], [0, 3, 7, 10], [0, 4, 7, 11], [0, 5, 7])


def _harmonic_weights(rng: np.random.Generator, n: int) -> FloatArray:
    decay = rng.uniform(0.35, 0.85)
    w = decay ** np.arange(n)
    return np.asarray(w * rng.uniform(0.6, 1.0, size=n), dtype=np.float64)


def chord(rng: np.random.Generator, n: int) -> FloatArray:
    """Chords of 3–4 notes (piano-like plucks or held strings/organ), changing every 0.4–2 s."""
    out = np.zeros(n)
    pos = 0
    plucked = bool(rng.random() < 0.5)
    root_base = rng.uniform(48, 72)
    while pos < n:
        length = min(int(rng.uniform(0.4, 2.0) * FS), n - pos)
        root = root_base + float(rng.choice(_MAJOR)) + 12 * int(rng.integers(-1, 2))
        shape = _CHORDS[int(rng.integers(len(_CHORDS)))]
        seg = np.zeros(length)
        vib_hz, vib_depth = rng.uniform(4, 7), rng.uniform(0, 0.006)
        t = np.arange(length) / FS
        for step in shape:
            f0 = _midi_hz(root + step)
            f = f0 * (1 + vib_depth * np.sin(2 * np.pi * vib_hz * t + rng.uniform(0, 6.3)))
            seg += _tone(f, _harmonic_weights(rng, 8), rng.uniform(0, 6.3)) * rng.uniform(0.6, 1)
        seg *= _adsr(length, rng.uniform(0.003, 0.08), rng.uniform(0.4, 1.5), plucked)
        out[pos : pos + length] += seg
        pos += length
    return _unit(out)


def melody(rng: np.random.Generator, n: int) -> FloatArray:
    """One voice (sung, whistled, a violin or a flute): notes with vibrato and glides."""
    f = np.empty(n)
    env = np.empty(n)
    pos = 0
    tonic = rng.uniform(55, 80)  # MIDI: ≈ 200–830 Hz
    note = tonic
    glide = rng.uniform(0.0, 0.12)  # portamento share of each note
    vib_hz, vib_depth = rng.uniform(4.5, 7.0), rng.uniform(0.005, 0.03)
    while pos < n:
        length = min(int(rng.uniform(0.12, 0.7) * FS), n - pos)
        nxt = tonic + float(rng.choice(_MAJOR)) + 12 * int(rng.integers(0, 2))
        f_a, f_b = _midi_hz(note), _midi_hz(nxt)
        k = np.arange(length)
        g = max(int(glide * length), 1)
        seg_f = np.where(k < g, f_a + (f_b - f_a) * k / g, f_b)
        f[pos : pos + length] = seg_f
        env[pos : pos + length] = _adsr(length, rng.uniform(0.01, 0.06), 1.0, False)
        if rng.random() < 0.15:  # a breath
            env[pos : pos + length] *= np.arange(length) < 0.7 * length
        note = nxt
        pos += length
    t = np.arange(n) / FS
    f = f * (1 + vib_depth * np.sin(2 * np.pi * vib_hz * t))
    voice = _tone(f, _harmonic_weights(rng, int(rng.integers(1, 9)))) * env
    if rng.random() < 0.5:  # with a soft accompaniment
        voice += 0.4 * chord(rng, n)
    return _unit(voice)


def car_stereo(rng: np.random.Generator, n: int) -> FloatArray:
    """Pop music through a car body: bass line, chords, a lead and a beat, low-passed."""
    tempo = rng.uniform(1.5, 2.5)  # beats per second
    t = np.arange(n) / FS
    beat = np.floor(t * tempo).astype(int)
    roots = rng.uniform(36, 48) + rng.choice(_MAJOR, size=int(beat.max()) // 4 + 2)
    bass_f = np.array([_midi_hz(r) for r in roots])[beat // 4]
    bass = _tone(bass_f, np.array([1.0, 0.5, 0.3]))
    local = t * tempo - beat
    kick = np.sin(2 * np.pi * 55 * local) * np.exp(-local * 20)
    snare = rng.standard_normal(n) * np.exp(-((local + 0.5) % 1.0) * 25) * (beat % 2 == 1)
    music = bass + 0.8 * chord(rng, n) + 0.6 * melody(rng, n) + 1.2 * kick + 0.3 * snare
    cutoff = rng.uniform(600, 2500)  # the car's closed body and glass
    sos = scipy.signal.butter(4, cutoff, "low", fs=FS, output="sos")
    return _unit(scipy.signal.sosfilt(sos, music))


def birdsong(rng: np.random.Generator, n: int) -> FloatArray:
    """One to four birds: chirps (rising, falling, hooked), FM sweeps and trills."""
    out = np.zeros(n)
    for _ in range(int(rng.integers(1, 5))):
        centre = math.exp(rng.uniform(math.log(1500), math.log(7000)))
        pos = int(rng.uniform(0, 0.5) * FS)
        gain = rng.uniform(0.3, 1.0)
        while pos < n:
            if rng.random() < 0.3:  # a trill: the same short note repeated 10–30 times a second
                count, gap = int(rng.integers(5, 25)), rng.uniform(0.03, 0.1)
                dur = gap * rng.uniform(0.4, 0.8)
            else:
                count, gap = 1, 0.0
                dur = rng.uniform(0.02, 0.25)
            f_start = centre * math.exp(rng.uniform(-0.5, 0.5))
            f_end = f_start * math.exp(rng.uniform(-0.9, 0.9))
            m = max(int(dur * FS), 8)
            u = np.arange(m) / m
            shape = rng.integers(3)
            if shape == 0:
                f = f_start + (f_end - f_start) * u
            elif shape == 1:  # hooked
                f = f_start + (f_end - f_start) * np.sin(np.pi * u)
            else:  # FM warble
                f = f_start * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(40, 120) * u * dur))
            f = np.minimum(f, 0.45 * FS)
            note = _tone(f, np.array([1.0, rng.uniform(0, 0.3)])) * np.sin(np.pi * u) ** 2
            for _k in range(count):
                if pos + m >= n:
                    break
                out[pos : pos + m] += gain * note
                pos += int(max(gap, dur) * FS)
            pos += int(rng.exponential(0.25) * FS) + 1
    out += 0.02 * rng.standard_normal(n)
    return _unit(out)


def _formant_filter(x: FloatArray, formants: list[tuple[float, float]]) -> FloatArray:
    y = np.zeros_like(x)
    for f, bw in formants:
        b, a = scipy.signal.iirpeak(f, f / bw, fs=FS)
        y += scipy.signal.lfilter(b, a, x)
    return y


_VOWELS = [
    (730, 1090, 2440),
    (270, 2290, 3010),
    (300, 870, 2240),
    (530, 1840, 2480),
    (570, 840, 2410),
]


def _voice(rng: np.random.Generator, n: int) -> FloatArray:
    f0 = rng.uniform(100, 300)
    t = np.arange(n) / FS
    intonation = 1 + rng.uniform(0.05, 0.2) * np.sin(2 * np.pi * rng.uniform(0.2, 0.7) * t)
    f = f0 * intonation * (1 + 0.01 * np.sin(2 * np.pi * 5.5 * t))
    source = _tone(f, 1.0 / np.arange(1, 40))
    out = np.zeros(n)
    pos = 0
    while pos < n:  # syllables of 0.1–0.35 s, each with a vowel
        m = min(int(rng.uniform(0.1, 0.35) * FS), n - pos)
        vowel = _VOWELS[int(rng.integers(len(_VOWELS)))]
        seg = _formant_filter(
            source[pos : pos + m], [(vowel[0], 90), (vowel[1], 120), (vowel[2], 160)]
        )
        seg *= np.sin(np.pi * np.arange(m) / m) ** 0.7
        if rng.random() < 0.25:  # a pause or an unvoiced sound
            seg = 0.3 * rng.standard_normal(m) * np.hanning(m) * (rng.random() < 0.5)
        out[pos : pos + m] = seg
        pos += m
    return _unit(out)


def babble(rng: np.random.Generator, n: int) -> FloatArray:
    """A conversation or a crowd: 2–12 voices with formants over a 100–300 Hz fundamental."""
    voices = int(rng.integers(2, 13))
    out = sum(_voice(rng, n) * rng.uniform(0.3, 1.0) for _ in range(voices))
    if voices > 6:  # a cheering crowd: a broad roar under the voices
        sos = scipy.signal.butter(2, [300, 3000], "band", fs=FS, output="sos")
        out = out + 0.5 * math.sqrt(voices) * scipy.signal.sosfilt(sos, rng.standard_normal(n))
    return _unit(np.asarray(out))


def _bursts(
    rng: np.random.Generator,
    n: int,
    rate_hz: float,
    length_s: tuple[float, float],
    res_hz: tuple[float, float],
) -> FloatArray:
    out = np.zeros(n)
    t = 0.0
    while True:
        t += rng.exponential(1.0 / rate_hz)
        start = int(t * FS)
        if start >= n:
            break
        m = int(rng.uniform(*length_s) * FS) + 8
        burst = rng.standard_normal(m) * np.exp(-np.arange(m) / (m / 5))
        f = rng.uniform(*res_hz)
        b, a = scipy.signal.iirpeak(f, rng.uniform(2, 12), fs=FS)
        burst = scipy.signal.lfilter(b, a, burst) * rng.uniform(0.3, 1.0)
        stop = min(n, start + m)
        out[start:stop] += burst[: stop - start]
    return out


def applause(rng: np.random.Generator, n: int) -> FloatArray:
    """Clapping hands: resonant noise bursts, a few to hundreds per second, swelling."""
    rate = math.exp(rng.uniform(math.log(15), math.log(400)))
    x = _bursts(rng, n, rate, (0.005, 0.02), (600, 3500))
    t = np.arange(n) / FS
    swell = 1 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t + rng.uniform(0, 6.3))
    return _unit(x * swell)


def keyboard(rng: np.random.Generator, n: int) -> FloatArray:
    """Typing: key clicks at 4–12 per second (with bursts and pauses), clock-like ticks."""
    x = _bursts(rng, n, rng.uniform(4, 12), (0.004, 0.015), (1500, 6000))
    x += 0.5 * _bursts(rng, n, rng.uniform(2, 8), (0.01, 0.03), (300, 1200))  # the thock
    x += 0.01 * rng.standard_normal(n)
    return _unit(x)


def engine_horn(rng: np.random.Generator, n: int) -> FloatArray:
    """An engine revving (all orders sweep together) with horn blasts over it."""
    t = np.arange(n) / FS
    rev_hz = rng.uniform(0.1, 0.6)
    firing = rng.uniform(25, 60) * (
        1 + rng.uniform(0.5, 2.5) * (0.5 - 0.5 * np.cos(2 * np.pi * rev_hz * t))
    )
    engine = _tone(firing, rng.uniform(0.2, 1.0, size=40) / np.sqrt(np.arange(1, 41)))
    out = engine / 3.0
    pos = int(rng.uniform(0, 1.5) * FS)
    while pos < n:
        m = min(int(rng.uniform(0.15, 2.0) * FS), n - pos)
        f1 = rng.uniform(330, 520)
        f2 = f1 * rng.uniform(1.18, 1.3)
        k = np.arange(m) / FS
        horn = sum(
            np.sign(np.sin(2 * np.pi * f * k)) * 0.3 + np.sin(2 * np.pi * f * k) for f in (f1, f2)
        )
        out[pos : pos + m] += (
            rng.uniform(0.5, 3.0) * horn * np.clip(np.minimum(k, m / FS - k) / 0.02, 0, 1)
        )
        pos += m + int(rng.exponential(1.5) * FS)
    return _unit(out)


def beeper(rng: np.random.Generator, n: int) -> FloatArray:
    """Reversing beepers, truck alarms and crosswalk signals: on/off tones on one pitch."""
    t = np.arange(n) / FS
    kind = rng.integers(3)
    if kind == 0:  # reversing beeper
        f = np.full(n, rng.uniform(900, 3000))
        gate = np.mod(t * rng.uniform(1.0, 2.5), 1.0) < rng.uniform(0.3, 0.6)
        sig = _tone(f, np.array([1.0, 0.2, 0.3]))
    elif kind == 1:  # an alarm: two alternating tones with gaps, or a warble
        f1 = rng.uniform(700, 2500)
        f2 = f1 * rng.uniform(1.1, 1.6)
        rate = rng.uniform(1.5, 8.0)
        f = np.where(np.mod(t * rate, 1.0) < 0.5, f1, f2)
        gate = np.mod(t * rate * 0.5, 1.0) < rng.uniform(0.6, 1.0)
        sig = _tone(f, np.array([1.0, 0.3]))
    else:  # crosswalk: short chirps or ticks once or twice a second
        f = np.full(n, rng.uniform(800, 2800))
        gate = np.mod(t * rng.uniform(1.0, 10.0), 1.0) < rng.uniform(0.05, 0.25)
        sig = _tone(f, np.array([1.0, 0.5]))
    return _unit(sig * gate + 0.01 * rng.standard_normal(n))


def squeal(rng: np.random.Generator, n: int) -> FloatArray:
    """Brake and wheel squeal: a narrow tone (1–8 kHz), steady or gliding, on and off."""
    out = np.zeros(n)
    pos = int(rng.uniform(0, 1.0) * FS)
    while pos < n:
        m = min(int(rng.uniform(0.3, 3.0) * FS), n - pos)
        f0 = math.exp(rng.uniform(math.log(1000), math.log(8000)))
        k = np.arange(m) / FS
        f = (
            f0
            + rng.uniform(-300, 300) * k / max(m / FS, 1e-3)
            + f0 * 0.004 * np.sin(2 * np.pi * rng.uniform(3, 15) * k)
        )
        f = np.minimum(f, 0.45 * FS)
        env = np.clip(np.minimum(k, m / FS - k) / 0.05, 0, 1)
        out[pos : pos + m] += _tone(f, np.array([1.0, rng.uniform(0, 0.5)])) * env
        pos += m + int(rng.exponential(1.0) * FS)
    out += 0.05 * rng.standard_normal(n)
    return _unit(out)


FAMILIES: dict[str, Generator] = {
    "chord": chord,
    "melody": melody,
    "car_stereo": car_stereo,
    "birdsong": birdsong,
    "babble": babble,
    "applause": applause,
    "keyboard": keyboard,
    "engine_horn": engine_horn,
    "beeper": beeper,
    "squeal": squeal,
}


def family_clips(name: str, count: int, seconds: float, seed: int) -> list[FloatArray]:
    """`count` clips of one family, each its own "recording" (a seed of its own)."""
    generator = FAMILIES[name]
    n = round(seconds * FS)
    return [generator(np.random.default_rng([seed, i, _stable(name)]), n) for i in range(count)]


def _stable(name: str) -> int:
    return sum((i + 1) * ord(c) for i, c in enumerate(name))
