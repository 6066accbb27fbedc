"""Roof microphone array: what four microphones hear of the sirens around the car, tick by tick.

Output units are sound pressure in pascals (float32, 16 kHz), one row per microphone.
Every emergency vehicle with its siren on is a moving point source whose waveform is a
closed-form function of *source* time, so the phase stays continuous across ticks however
the ticks are cut. Each microphone receives it at the retarded time t − r(t)/c, which gives
the per-microphone propagation delay and the Doppler shift of the relative motion; the level
falls as 1/r with a small air absorption, and the road reflects a second, image path.

The background is recorded street sound from ``../shared/data/audio/negatives`` (when that
folder exists) mixed with synthetic traffic noise (hum, engine orders, tyres, wind, crowd
babble) and sound events (horns, reversing beepers, brake squeal, car music), scaled to a
chosen level — and so to a chosen SNR at a reference distance (`background_db_for_snr`).
A scenario may add its own siren-free sounds (`SceneSounds`: music from a car alongside,
birds by a park, a crowd at a corner), point sources made by `sound_synth`.

Vehicle frame of the array: x forward, y left, z up, metres from the car's reference point.
"""

from __future__ import annotations

import enum
import math
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import scipy.io.wavfile
import scipy.signal

from robotaxi.config.scenario import SoundSpec
from robotaxi.config.sensors import SAMPLE_RATE_HZ, MicArrayConfig
from robotaxi.core.errors import ConfigError, DataNotFoundError
from robotaxi.core.types import AgentState, FloatArray, Pose, SirenState

P_REF_PA = 20e-6  # 0 dB SPL
Float32Array = npt.NDArray[np.float32]


def db_spl_to_pa(level_db: float) -> float:
    """RMS sound pressure (Pa) of a level in dB SPL."""
    return P_REF_PA * 10.0 ** (level_db / 20.0)


def pa_to_db_spl(rms_pa: float) -> float:
    return 20.0 * math.log10(max(rms_pa, 1e-12) / P_REF_PA)


# --- configuration ----------------------------------------------------------------------


def siren_rms_at(distance_m: float, config: MicArrayConfig) -> float:
    """RMS pressure (Pa) of a siren heard at `distance_m` (1/r and air absorption)."""
    r = max(distance_m, 1.0)
    loss_db = config.air_absorption_db_per_km * r / 1000.0
    return db_spl_to_pa(config.siren_level_db_spl_at_1m - loss_db) / r


def snr_db_at(distance_m: float, config: MicArrayConfig) -> float:
    """Broadband siren-to-background ratio (dB) for a siren at `distance_m`."""
    return 20.0 * math.log10(
        siren_rms_at(distance_m, config) / db_spl_to_pa(config.background_level_db_spl)
    )


def background_db_for_snr(snr_db: float, distance_m: float, config: MicArrayConfig) -> float:
    """Background level (dB SPL) that gives broadband `snr_db` for a siren at `distance_m`."""
    return pa_to_db_spl(siren_rms_at(distance_m, config)) - snr_db


# --- siren voices -----------------------------------------------------------------------


class SirenPattern(enum.StrEnum):
    WAIL = "wail"  # slow rise and fall, period ≈ 3–6 s
    YELP = "yelp"  # the same sweep, fast: ≈ 3–5 sweeps per second
    HI_LO = "hi-lo"  # two alternating tones


@dataclass(frozen=True, slots=True)
class SirenVoice:
    """One siren's sound: a periodic instantaneous frequency f(u) and a harmonic spectrum.

    For WAIL/YELP f(u) rises linearly from `f_lo_hz` to `f_hi_hz` over `rise_fraction` of
    the period and falls back over the rest; for HI_LO it holds `f_lo_hz` then `f_hi_hz`,
    half a period each. `harmonics` are relative amplitudes of harmonics 1, 2, 3, ...
    """

    pattern: SirenPattern
    f_lo_hz: float
    f_hi_hz: float
    period_s: float
    rise_fraction: float = 0.5
    harmonics: tuple[float, ...] = (1.0, 0.5, 0.33, 0.25)
    offset_s: float = 0.0  # where in its cycle the siren is at source time 0

    def frequency_hz(self, u: FloatArray) -> FloatArray:
        """Instantaneous fundamental frequency at source times `u` (s)."""
        x = np.mod(np.asarray(u, dtype=np.float64) + self.offset_s, self.period_s) / self.period_s
        lo, hi = self.f_lo_hz, self.f_hi_hz
        if self.pattern is SirenPattern.HI_LO:
            return np.where(x < 0.5, lo, hi)
        r = self.rise_fraction
        return np.where(x < r, lo + (hi - lo) * x / r, hi - (hi - lo) * (x - r) / (1.0 - r))

    def cycles(self, u: FloatArray) -> FloatArray:
        """Phase in cycles, ∫ f du from the cycle start: exact, so continuous at any cut."""
        t = np.asarray(u, dtype=np.float64) + self.offset_s
        period = self.period_s
        n = np.floor(t / period)
        s = t - n * period  # time into the current period
        lo, hi = self.f_lo_hz, self.f_hi_hz
        per_period = period * (lo + hi) / 2.0
        if self.pattern is SirenPattern.HI_LO:
            half = period / 2.0
            within = np.where(s < half, lo * s, lo * half + hi * (s - half))
        else:
            t_rise = self.rise_fraction * period
            t_fall = period - t_rise
            up = lo * s + (hi - lo) * s * s / (2.0 * t_rise)
            d = s - t_rise
            down = (lo + hi) / 2.0 * t_rise + hi * d - (hi - lo) * d * d / (2.0 * t_fall)
            within = np.where(s < t_rise, up, down)
        # keep the large integer part separate from the fraction: float64 stays exact for hours
        whole = np.mod(n * np.mod(per_period, 1.0), 1.0)
        return whole + within

    def waveform(self, u: FloatArray, sample_rate_hz: int = SAMPLE_RATE_HZ) -> FloatArray:
        """Unit-RMS pressure waveform at source times `u` (harmonics above 0.45·fs dropped)."""
        phase = 2.0 * np.pi * self.cycles(u)
        f_top = max(self.f_lo_hz, self.f_hi_hz) * 1.1  # Doppler headroom
        out = np.zeros_like(phase)
        power = 0.0
        for k, amp in enumerate(self.harmonics, start=1):
            if k * f_top > 0.45 * sample_rate_hz:
                break
            out += amp * np.sin(k * phase)
            power += amp * amp / 2.0
        return out / math.sqrt(power)


def random_voice(rng: np.random.Generator, pattern: SirenPattern | None = None) -> SirenVoice:
    """A plausible US siren (Federal/Whelen-like ranges) with random parameters."""
    if pattern is None:
        pattern = SirenPattern(rng.choice([p.value for p in SirenPattern], p=[0.45, 0.4, 0.15]))
    n_harm = int(rng.integers(2, 6))
    decay = rng.uniform(0.3, 0.9)
    odd_only = bool(rng.random() < 0.4)  # square-ish drivers carry odd harmonics
    harmonics = tuple(
        0.0 if (odd_only and k % 2 == 0 and k > 1) else float(decay ** (k - 1))
        for k in range(1, n_harm + 1)
    )
    if pattern is SirenPattern.WAIL:
        lo, hi = rng.uniform(500, 800), rng.uniform(1200, 1700)
        period, rise = rng.uniform(3.0, 6.5), rng.uniform(0.4, 0.65)
    elif pattern is SirenPattern.YELP:
        lo, hi = rng.uniform(550, 800), rng.uniform(1200, 1700)
        period, rise = rng.uniform(0.18, 0.4), rng.uniform(0.35, 0.65)
    else:
        lo = rng.uniform(550, 800)
        hi = lo * rng.uniform(1.25, 1.45)
        period, rise = rng.uniform(0.9, 1.6), 0.5
    return SirenVoice(
        pattern=pattern,
        f_lo_hz=float(lo),
        f_hi_hz=float(hi),
        period_s=float(period),
        rise_fraction=float(rise),
        harmonics=harmonics,
        offset_s=float(rng.uniform(0.0, period)),
    )


def voice_for(agent_id: str, seed: int = 0, pattern: SirenPattern | None = None) -> SirenVoice:
    """The voice of one emergency vehicle: fixed for its id and the seed (stable hashing)."""
    rng = np.random.default_rng([zlib.crc32(agent_id.encode()), seed])
    return random_voice(rng, pattern)


# --- sources ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EmergencySource:
    """A siren at the start of a tick, moving at constant velocity during it (map frame).

    `siren_on_since_s` is the source time its siren started (None: long before).
    `extra_loss_db` adds a path loss, e.g. diffraction round a building corner.
    """

    source_id: str
    x: float
    y: float
    vx: float = 0.0
    vy: float = 0.0
    voice: SirenVoice | None = None
    siren_on_since_s: float | None = None
    extra_loss_db: float = 0.0

    @classmethod
    def from_agent(cls, agent: AgentState, **kwargs: object) -> EmergencySource:
        return cls(
            source_id=agent.agent_id,
            x=agent.x,
            y=agent.y,
            vx=agent.speed * math.cos(agent.heading),
            vy=agent.speed * math.sin(agent.heading),
            **kwargs,  # type: ignore[arg-type]
        )


def mic_world_positions(ego: Pose, config: MicArrayConfig) -> FloatArray:
    """Microphone positions in the map frame, n_mics×3 (m)."""
    local = config.mic_xy()
    c, s = math.cos(ego.heading), math.sin(ego.heading)
    out = local.copy()
    out[:, 0] = ego.x + c * local[:, 0] - s * local[:, 1]
    out[:, 1] = ego.y + s * local[:, 0] + c * local[:, 1]
    return out


def render_sources(
    sources: Sequence[EmergencySource],
    ego: Pose,
    t0_s: float,
    n_samples: int,
    config: MicArrayConfig,
    *,
    ego_speed_mps: float = 0.0,
    seed: int = 0,
) -> FloatArray:
    """Siren pressure at every microphone for samples t0 + k/fs, k < n (n_mics×n, Pa).

    Pure: the same arguments give the same samples, and consecutive calls join without a
    phase jump because each voice is a closed-form function of source time.
    """
    fs = config.sample_rate_hz
    c = config.speed_of_sound_mps
    dt = np.arange(n_samples, dtype=np.float64) / fs
    mics = mic_world_positions(ego, config)
    ego_v = (ego_speed_mps * math.cos(ego.heading), ego_speed_mps * math.sin(ego.heading))
    out = np.zeros((config.n_mics, n_samples), dtype=np.float64)
    amp_1m = db_spl_to_pa(config.siren_level_db_spl_at_1m)
    for src in sources:
        voice = src.voice or voice_for(src.source_id, seed)
        # the direct path and its reflection off the road (image source below the ground)
        paths = [(config.source_height_m, 1.0)]
        if config.ground_reflection > 0:
            paths.append((-config.source_height_m, config.ground_reflection))
        for m in range(config.n_mics):
            mx = mics[m, 0] + ego_v[0] * dt
            my = mics[m, 1] + ego_v[1] * dt
            for z, coefficient in paths:
                # retarded (source) time u: t − u = |source(u) − mic(t)| / c, by fixed-point
                # iteration from u = t; two steps leave an error of order (v/c)³
                u = dt.copy()
                for _ in range(3):
                    sx = src.x + src.vx * u
                    sy = src.y + src.vy * u
                    r = np.sqrt((sx - mx) ** 2 + (sy - my) ** 2 + (z - mics[m, 2]) ** 2)
                    r = np.maximum(r, 1.0)
                    u = dt - r / c
                u = t0_s + u
                loss_db = config.air_absorption_db_per_km * r / 1000.0 + src.extra_loss_db
                gain = coefficient * amp_1m / r * 10.0 ** (-loss_db / 20.0)
                wave_m = voice.waveform(u, fs) * gain
                if src.siren_on_since_s is not None:
                    wave_m *= np.clip((u - src.siren_on_since_s) / 0.01, 0.0, 1.0)  # 10 ms ramp
                out[m] += wave_m
    return out


# --- recorded clips ---------------------------------------------------------------------


def read_wav(path: Path) -> tuple[int, FloatArray]:
    """A WAV file as (sample rate, channels×samples float64 in [-1, 1]).

    Raises DataNotFoundError for a missing file and ConfigError for one that is empty,
    not a WAV file, cut short (fewer samples than its header declares) or holds no samples.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ConfigError(f"{path}: empty file, expected a WAV recording")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", scipy.io.wavfile.WavFileWarning)
            rate, data = scipy.io.wavfile.read(path, mmap=False)
    except Exception as exc:  # scipy raises ValueError, EOFError, struct.error, ...
        raise ConfigError(f"{path}: not a readable WAV file ({exc})") from None
    if any("prematurely" in str(w.message) for w in caught):
        raise ConfigError(f"{path}: truncated WAV file (fewer samples than its header declares)")
    data = np.asarray(data)
    if data.size == 0:
        raise ConfigError(f"{path}: the WAV file holds no samples")
    if rate <= 0:
        raise ConfigError(f"{path}: invalid sample rate {rate} Hz")
    if data.dtype == np.uint8:
        x = (data.astype(np.float64) - 128.0) / 128.0
    elif np.issubdtype(data.dtype, np.integer):
        x = data.astype(np.float64) / float(np.iinfo(data.dtype).max)
    else:
        x = data.astype(np.float64)
    x = x.reshape(len(x), -1).T  # channels × samples
    if not np.all(np.isfinite(x)):
        raise ConfigError(f"{path}: the WAV file holds non-finite samples")
    return int(rate), np.ascontiguousarray(x)


def resample_to(x: FloatArray, rate_hz: int, target_hz: int = SAMPLE_RATE_HZ) -> FloatArray:
    """Resample channels×samples with a polyphase filter (scipy.signal.resample_poly)."""
    if rate_hz <= 0:
        raise ConfigError(f"invalid sample rate {rate_hz} Hz")
    if rate_hz == target_hz:
        return x
    g = math.gcd(int(rate_hz), int(target_hz))
    return scipy.signal.resample_poly(x, target_hz // g, rate_hz // g, axis=-1)


def load_clip_16k(path: Path) -> FloatArray:
    """A WAV file as channels×samples at 16 kHz."""
    rate, x = read_wav(path)
    return resample_to(x, rate)


def negative_clips(config: MicArrayConfig) -> list[FloatArray]:
    """The recorded siren-free clips (mono, 16 kHz, unit RMS), or [] when the folder is absent."""
    folder = config.negatives_dir
    if folder is None or not Path(folder).is_dir():
        return []
    names = config.negative_files or tuple(p.name for p in sorted(Path(folder).glob("*.wav")))
    clips = []
    for name in names:
        x = load_clip_16k(Path(folder) / name).mean(axis=0)
        x = x - x.mean()
        clips.append(x / max(float(np.sqrt(np.mean(x * x))), 1e-9))
    return clips


# --- background -------------------------------------------------------------------------


def _harmonic_sum(phase: FloatArray, weights: FloatArray) -> FloatArray:
    """Σ_k weights[:, k−1]·sin(k·phase) for k = 1…K, row by row (phase: rows×samples).

    One sine and one cosine per row instead of K sines: the Chebyshev recurrence
    sin(kφ) = 2·cos φ·sin((k−1)φ) − sin((k−2)φ) gives every harmonic exactly (rounding
    aside, ~1e-13 relative), at a fraction of the cost of evaluating K sines."""
    s_prev = np.zeros_like(phase)
    s_k = np.sin(phase)
    two_cos = 2.0 * np.cos(phase)
    total = weights[:, :1] * s_k
    for k in range(1, weights.shape[1]):
        s_prev, s_k = s_k, two_cos * s_k - s_prev
        total += weights[:, k : k + 1] * s_k
    return total


class _ColouredNoise:
    """White noise through an IIR filter, streamed (filter state kept), with slow swells."""

    def __init__(
        self,
        rng: np.random.Generator,
        sos: FloatArray,
        channels: int,
        swell_hz: float,
        swell_depth: float,
    ) -> None:
        self.rng = rng
        self.sos = sos
        self.zi = np.zeros((sos.shape[0], channels, 2))
        self.channels = channels
        self.swell_hz = swell_hz
        self.swell_depth = swell_depth
        self.swell_phase = rng.uniform(0, 2 * np.pi, size=3)
        self.t = 0.0
        # normalise to unit RMS after filtering
        probe = scipy.signal.sosfilt(sos, np.random.default_rng(1).standard_normal(16_000 * 4))
        self.norm = 1.0 / float(np.sqrt(np.mean(probe[4000:] ** 2)))

    def render(self, n: int, fs: int) -> FloatArray:
        white = self.rng.standard_normal((self.channels, n))
        y, self.zi = scipy.signal.sosfilt(self.sos, white, axis=-1, zi=self.zi)
        t = self.t + np.arange(n) / fs
        self.t += n / fs
        ratios = (1.0, 1.618, 2.718)
        swell = (
            sum(
                np.sin(2 * np.pi * self.swell_hz * k * t + p)
                for k, p in zip(ratios, self.swell_phase, strict=True)
            )
            / 3.0
        )
        env = np.exp(self.swell_depth * swell)
        return y * self.norm * env


@dataclass
class _Event:
    kind: str
    start_s: float
    duration_s: float
    gain: float
    params: dict[str, float] = field(default_factory=dict)
    delays: tuple[int, ...] = ()


SYNTH_MIX = {"hum": 0.35, "engine": 0.1, "tyre": 0.3, "wind": 0.1, "babble": 0.15}


class StreetBackground:
    """Siren-free street sound for the array, streamed: call `render(n)` tick after tick.

    Components (power shares of the background level, `SYNTH_MIX` or `mix`): recorded
    clips, traffic hum (< 250 Hz), engine orders (harmonics of 20–90 Hz up to 2.5 kHz),
    tyre/road noise (300–2500 Hz), wind (< 200 Hz, independent per microphone), crowd
    babble; plus sparse events louder than the bed: horns, reversing beepers, brake squeal,
    car music. Deterministic for a seed.
    """

    def __init__(
        self,
        config: MicArrayConfig,
        *,
        seed: int | None = None,
        clips: list[FloatArray] | None = None,
        level_db_spl: float | None = None,
        mix: dict[str, float] | None = None,
    ) -> None:
        """`mix` overrides the synthetic components' power shares (keys of `SYNTH_MIX`)."""
        self.config = config
        if mix is not None and set(mix) - set(SYNTH_MIX):
            raise ConfigError(f"unknown background components {sorted(set(mix) - set(SYNTH_MIX))}")
        total = sum((mix or SYNTH_MIX).values())
        if total <= 0:
            raise ConfigError("background mix shares must add up to more than 0")
        self.mix = {
            k: v / total for k, v in {**dict.fromkeys(SYNTH_MIX, 0.0), **(mix or SYNTH_MIX)}.items()
        }
        self.fs = config.sample_rate_hz
        self.n = config.n_mics
        self.rng = np.random.default_rng(config.seed if seed is None else seed)
        self.level_pa = db_spl_to_pa(
            config.background_level_db_spl if level_db_spl is None else level_db_spl
        )
        self.clips = negative_clips(config) if clips is None else clips
        self.t = 0.0
        fs = self.fs
        rng = self.rng
        self.hum = _ColouredNoise(
            rng, scipy.signal.butter(2, 250, "low", fs=fs, output="sos"), 1, 0.07, 0.5
        )
        self.tyre = _ColouredNoise(
            rng,
            scipy.signal.butter(2, [300, 2500], "band", fs=fs, output="sos"),
            1 + self.n,  # row 0 from one direction, the others diffuse (independent per mic)
            0.11,
            0.7,
        )
        self.wind = _ColouredNoise(
            rng, scipy.signal.butter(2, 180, "low", fs=fs, output="sos"), self.n, 0.3, 0.8
        )
        self.babble_voices = [
            (rng.uniform(90, 240), rng.uniform(0, 1000), rng.uniform(3, 5.5)) for _ in range(6)
        ]
        # engines idling or cruising nearby: firing frequency 20–90 Hz, orders up to 2.5 kHz
        self.engines = [
            (
                rng.uniform(20, 90),
                rng.uniform(0, 1000),
                rng.uniform(0.03, 0.15),
                rng.uniform(0.3, 1.0, size=40),
            )
            for _ in range(2)
        ]
        self.babble_filter = _ColouredNoise(
            rng, scipy.signal.butter(2, [250, 3000], "band", fs=fs, output="sos"), 1, 0.2, 0.4
        )
        self.clip_index = 0
        self.clip_pos = 0
        self.clip_gain = 1.0
        self.clip_left = 0
        self.clip_delays = np.zeros(self.n, dtype=int)
        # the far-field bed arrives from somewhere: per-component directions, fixed per seed
        self.bed_delays = {k: self._random_delays() for k in ("hum", "tyre", "babble", "engine")}
        self.bed_tails = {k: np.zeros(int(d.max())) for k, d in self.bed_delays.items()}
        self.events: list[_Event] = []
        self.next_event_s = self._draw_gap()
        self.self_noise_pa = db_spl_to_pa(config.mic_self_noise_db_spl)

    def _draw_gap(self) -> float:
        rate = self.config.event_rate_per_min / 60.0
        return float(self.rng.exponential(1.0 / rate)) if rate > 0 else math.inf

    def _shares(self) -> dict[str, float]:
        rec = self.config.recorded_share if self.clips else 0.0
        return {"rec": rec, **{k: v * (1.0 - rec) for k, v in self.mix.items()}}

    def render(self, n_samples: int) -> FloatArray:
        """The next `n_samples` of background at every microphone (n_mics×n, Pa)."""
        fs, n = self.fs, n_samples
        shares = self._shares()
        t = self.t + np.arange(n) / fs
        out = np.zeros((self.n, n))
        # common far-field bed (identical at every mic but for sub-ms offsets: ignored)
        out += math.sqrt(shares["hum"]) * self._arrive("hum", self.hum.render(n, fs)[0])
        tyre = self.tyre.render(n, fs)
        out += math.sqrt(shares["tyre"] * 0.5) * (self._arrive("tyre", tyre[0]) + tyre[1:])
        out += math.sqrt(shares["wind"]) * self.wind.render(n, fs)
        out += math.sqrt(shares["babble"]) * self._arrive("babble", self._babble(t))
        out += math.sqrt(shares["engine"]) * self._arrive("engine", self._engines(t))
        if shares["rec"] > 0:
            out += math.sqrt(shares["rec"]) * self._recorded(n)
        out *= self.level_pa
        out += self._events(t)
        out += self.self_noise_pa * self.rng.standard_normal((self.n, n))
        self.t += n / fs
        return out

    def _random_delays(self) -> npt.NDArray[np.int64]:
        """Integer sample delays per microphone of a far-field sound from a random azimuth."""
        az = self.rng.uniform(-np.pi, np.pi)
        xy = self.config.mic_xy()[:, :2]
        lead = xy @ np.array([math.cos(az), math.sin(az)]) / self.config.speed_of_sound_mps
        delay = np.rint((lead.max() - lead) * self.fs).astype(np.int64)
        return delay

    def _arrive(self, name: str, x: FloatArray) -> FloatArray:
        """The mono stream `x` as heard at each microphone (fixed per-mic delays, streamed)."""
        delays, tail = self.bed_delays[name], self.bed_tails[name]
        full = np.concatenate([tail, x])
        n, k = len(x), len(tail)
        if k:
            self.bed_tails[name] = full[-k:]
        return np.stack([full[k - d : k - d + n] for d in delays])

    def _engines(self, t: FloatArray) -> FloatArray:
        """Engine orders: harmonics of a slowly wandering firing frequency (steady lines)."""
        w = 2 * np.pi * 0.05
        phases = np.empty((len(self.engines), len(t)))
        weights = np.zeros((len(self.engines), max(len(e[3]) for e in self.engines)))
        for i, (f0, offset, drift, gains) in enumerate(self.engines):
            # f0·(1 + drift·sin(2π·0.05·t)), integrated
            phases[i] = 2 * np.pi * f0 * (t - drift / w * np.cos(w * (t + offset)))
            n_orders = min(len(gains), int(2500 / (f0 * (1 + drift))))
            weights[i, :n_orders] = gains[:n_orders] / np.sqrt(np.arange(1, n_orders + 1))
        total = _harmonic_sum(phases, weights).sum(axis=0)
        return total / math.sqrt(max(sum(len(e[3]) for e in self.engines) * 0.1, 1.0))

    def _babble(self, t: FloatArray) -> FloatArray:
        voices = np.array(self.babble_voices)  # rows: f0, offset, syllable rate
        f0, offset, syll_hz = voices[:, 0:1], voices[:, 1:2], voices[:, 2:3]
        # intonation: f0·(1 + 0.15·sin(2π·0.4·t)), integrated; syllables: 3–5.5 Hz gating
        contour = np.cos(2 * np.pi * 0.4 * (t + offset))
        phase = 2 * np.pi * f0 * (t - 0.15 / (2 * np.pi * 0.4) * contour)
        gate = np.clip(np.sin(2 * np.pi * syll_hz * (t + offset)), 0, None) ** 2
        orders = 1.0 / np.arange(1, 12)
        voice = _harmonic_sum(phase, np.broadcast_to(orders, (len(voices), len(orders))))
        total = (voice * gate).sum(axis=0)
        noise = self.babble_filter.render(len(t), self.fs)[0]
        mix = total / math.sqrt(len(self.babble_voices) * 0.5) + 0.5 * noise
        return mix / 1.1

    def _recorded(self, n: int) -> FloatArray:
        out = np.zeros((self.n, n))
        filled = 0
        while filled < n:
            if self.clip_left <= 0:  # new segment: another clip, place, gain and direction
                self.clip_index = int(self.rng.integers(len(self.clips)))
                clip = self.clips[self.clip_index]
                self.clip_pos = int(self.rng.integers(len(clip)))
                self.clip_left = int(self.rng.uniform(4, 12) * self.fs)
                self.clip_gain = 10 ** (self.rng.uniform(-6, 6) / 20)
                self.clip_delays = self._random_delays()
            clip = self.clips[self.clip_index]
            take = min(n - filled, self.clip_left, len(clip) - self.clip_pos)
            for m in range(self.n):
                idx = (self.clip_pos + np.arange(take) - self.clip_delays[m]) % len(clip)
                out[m, filled : filled + take] = clip[idx] * self.clip_gain
            filled += take
            self.clip_left -= take
            self.clip_pos = (self.clip_pos + take) % len(clip)
        return out

    def _events(self, t: FloatArray) -> FloatArray:
        t_end = float(t[-1]) if len(t) else self.t
        while self.next_event_s <= t_end:
            self.events.append(self._new_event(self.next_event_s))
            self.next_event_s += self._draw_gap()
        out = np.zeros((self.n, len(t)))
        keep = []
        for ev in self.events:
            if ev.start_s + ev.duration_s < float(t[0]):
                continue
            keep.append(ev)
            for m in range(self.n):
                local = t - ev.start_s - ev.delays[m] / self.fs  # a direction: small offsets
                active = (local >= 0) & (local < ev.duration_s)
                if active.any():
                    out[m] += self._event_signal(ev, local) * active
        self.events = keep
        return out

    def _new_event(self, start: float) -> _Event:
        rng = self.rng
        kind = str(rng.choice(["horn", "beeper", "squeal", "music"], p=[0.45, 0.15, 0.2, 0.2]))
        level_db = rng.uniform(-6.0, 10.0)  # relative to the background bed
        gain = self.level_pa * 10 ** (level_db / 20)
        delays = tuple(int(d) for d in self._random_delays())
        if kind == "horn":
            f = rng.uniform(330, 520)
            params = {"f1": f, "f2": f * rng.uniform(1.18, 1.3)}
            duration = rng.uniform(0.15, 1.8)
        elif kind == "beeper":
            params = {"f1": rng.uniform(900, 1300), "rate": rng.uniform(1.0, 2.5)}
            duration = rng.uniform(2.0, 8.0)
        elif kind == "squeal":
            params = {"f1": rng.uniform(1500, 4000), "drift": rng.uniform(-300, 300)}
            duration = rng.uniform(0.4, 2.5)
        else:
            params = {"tempo": rng.uniform(2.0, 6.0), "seed": float(rng.integers(1 << 30))}
            duration = rng.uniform(3.0, 12.0)
        return _Event(kind, start, duration, gain, params, delays)

    @staticmethod
    def _event_signal(ev: _Event, local: FloatArray) -> FloatArray:
        p = ev.params
        fade = np.clip(np.minimum(local, ev.duration_s - local) / 0.02, 0, 1)
        if ev.kind == "horn":
            sig = sum(
                (np.sign(np.sin(2 * np.pi * p[f] * local)) * 0.3 + np.sin(2 * np.pi * p[f] * local))
                for f in ("f1", "f2")
            )
        elif ev.kind == "beeper":
            gate = (np.mod(local * p["rate"], 1.0) < 0.5).astype(float)
            sig = np.sin(2 * np.pi * p["f1"] * local) * gate
        elif ev.kind == "squeal":
            # a slow linear glide of `drift` Hz over the event
            phase = 2 * np.pi * (p["f1"] * local + p["drift"] * local**2 / (2 * ev.duration_s))
            sig = np.sin(phase) + 0.3 * np.sin(2 * phase)
        else:  # music: a note sequence from a pentatonic scale with harmonics
            note_len = 1.0 / p["tempo"]
            idx = np.floor(local / note_len).astype(int)
            scale = np.array([0, 2, 4, 7, 9, 12, 14, 16])
            rng = np.random.default_rng(int(p["seed"]))
            notes = 220.0 * 2 ** (scale[rng.integers(len(scale), size=int(idx.max()) + 2)] / 12)
            f = notes[np.clip(idx, 0, None)]
            phase = 2 * np.pi * f * local
            sig = sum(np.sin(k * phase) * 0.6 ** (k - 1) for k in range(1, 6))
            sig = sig + 0.5 * np.sin(2 * np.pi * 55.0 * local)
        return sig * fade * ev.gain / 1.2


# --- a scenario's own sounds -------------------------------------------------------------

SOUND_FAMILY = {  # a scenario's sound kind → its `sound_synth` generator
    "music": "melody",
    "chord": "chord",
    "car_stereo": "car_stereo",
    "birdsong": "birdsong",
    "crowd": "babble",
    "applause": "applause",
    "keyboard": "keyboard",
    "beeper": "beeper",
    "squeal": "squeal",
}
SCENE_SOUND_LOOP_S = 20.0  # each sound is one take this long, looped


class SceneSounds:
    """A scenario's siren-free point sources at the array (`SoundSpec`), streamed.

    Each sound is one synthetic take (`sound_synth`, deterministic for its seed and kind)
    looped, at its level 1 m away, falling as 1/r (at least 1 m) to each microphone with its
    propagation delay; the geometry is taken once per call (a tick), where the source is at
    the start of it — fixed in the world, or riding along with the car."""

    def __init__(self, sounds: Sequence[SoundSpec], config: MicArrayConfig) -> None:
        from robotaxi.sim.sensors.sound_synth import FAMILIES

        self.config = config
        self.sounds = tuple(sounds)
        n = round(SCENE_SOUND_LOOP_S * config.sample_rate_hz)
        self.takes = [
            FAMILIES[SOUND_FAMILY[s.kind]](
                np.random.default_rng([s.seed, zlib.crc32(s.kind.encode()), i]), n
            )
            for i, s in enumerate(self.sounds)
        ]

    def render(self, ego: Pose, start_sample: int, n_samples: int) -> FloatArray:
        """Pressure at every microphone for samples start … start + n (n_mics×n, Pa)."""
        cfg = self.config
        fs, c = cfg.sample_rate_hz, cfg.speed_of_sound_mps
        out = np.zeros((cfg.n_mics, n_samples))
        if not self.sounds or n_samples <= 0:
            return out
        mics = mic_world_positions(ego, cfg)
        cos_h, sin_h = math.cos(ego.heading), math.sin(ego.heading)
        k = start_sample + np.arange(n_samples)
        t = k / fs
        for spec, take in zip(self.sounds, self.takes, strict=True):
            on = t >= spec.start_s
            if spec.duration_s is not None:
                on &= t < spec.start_s + spec.duration_s
            if not on.any():
                continue
            if spec.offset_m is not None:
                ox, oy = spec.offset_m
                sx, sy = ego.x + ox * cos_h - oy * sin_h, ego.y + ox * sin_h + oy * cos_h
            elif spec.xy_m is not None:
                sx, sy = spec.xy_m
            else:
                raise ConfigError(f"sound {spec.kind!r} has neither xy_m nor offset_m")
            amp = db_spl_to_pa(spec.level_db_spl_at_1m)
            for m in range(cfg.n_mics):
                r = max(
                    math.sqrt(
                        (sx - mics[m, 0]) ** 2
                        + (sy - mics[m, 1]) ** 2
                        + (cfg.source_height_m - mics[m, 2]) ** 2
                    ),
                    1.0,
                )
                delay = round(r / c * fs)
                out[m] += take[(k - delay) % len(take)] * (amp / r) * on
        return out


# --- the sensor -------------------------------------------------------------------------


class MicrophoneArray:
    """The roof array as a streaming sensor: one call per simulation tick.

    `hear(ego, emergency, time_s, dt_s)` returns float32 n_mics×round(dt·fs) samples of
    what the microphones record during [time_s, time_s + dt_s). `emergency` holds
    `AgentState`s (only those with the siren on are heard; a siren switched on between
    ticks starts at the tick it is first seen) or `EmergencySource`s.
    """

    def __init__(
        self,
        config: MicArrayConfig | None = None,
        *,
        background: bool = True,
        sounds: Sequence[SoundSpec] = (),
    ) -> None:
        """`sounds`: the scenario's own siren-free sources (`SceneSounds`)."""
        self.config = config or MicArrayConfig()
        self.background = StreetBackground(self.config) if background else None
        self.scene = SceneSounds(sounds, self.config) if sounds else None
        self._on_since: dict[str, float] = {}

    def hear(
        self,
        ego: Pose,
        emergency: Sequence[AgentState | EmergencySource],
        time_s: float,
        dt_s: float,
        *,
        ego_speed_mps: float = 0.0,
    ) -> Float32Array:
        fs = self.config.sample_rate_hz
        # sample indices from absolute time: consecutive ticks tile the stream exactly
        start, end = round(time_s * fs), round((time_s + dt_s) * fs)
        n = max(end - start, 0)
        sources = []
        for item in emergency:
            if isinstance(item, EmergencySource):
                sources.append(item)
                continue
            if item.siren is not SirenState.ON:
                self._on_since.pop(item.agent_id, None)
                continue
            since = self._on_since.setdefault(item.agent_id, time_s)
            sources.append(EmergencySource.from_agent(item, siren_on_since_s=since))
        out = render_sources(
            sources,
            ego,
            start / fs,
            n,
            self.config,
            ego_speed_mps=ego_speed_mps,
            seed=self.config.seed,
        )
        if self.background is not None:
            out += self.background.render(n)
        if self.scene is not None:
            out += self.scene.render(ego, start, n)
        return out.astype(np.float32)
