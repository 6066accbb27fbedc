"""The heard half of the emergency-vehicle policy: whether a siren the microphones hear calls
for caution, and where it comes from relative to our road."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from robotaxi.autonomy.perception.siren import SirenEvidence
from robotaxi.autonomy.planning.behaviour.config import BehaviourConfig
from robotaxi.autonomy.planning.behaviour.policy import Tick


class SirenBearing(enum.StrEnum):
    """Where a siren is heard from, relative to the road we drive along."""

    AHEAD = "ahead"
    BEHIND = "behind"
    SIDE = "side"


@dataclass(slots=True)
class SirenLatch:
    """The audio caution's state.

    - `caution_since_s`: when the caution began (None: no caution);
    - `quiet_since_s`: since when the siren is lost or receding (None: heard, approaching);
    - `unheard_since_s`: since when the siren is not detected at all;
    - `armed`: whether a rising siren may start a caution;
    - `detected_for_s`: how long the siren has been detected without a break, as of now;
    - `bearing`, `bearing_from_road_rad`: where it is heard from, and its bearing from our
      road's heading (0–π).
    """

    caution_since_s: float | None = None
    quiet_since_s: float | None = None
    unheard_since_s: float | None = None
    armed: bool = True
    detected_for_s: float = 0.0
    bearing: SirenBearing | None = None
    bearing_from_road_rad: float | None = None


class SirenCaution:
    """Turns each tick's `SirenEvidence` into the caution latch (`hear`)."""

    def __init__(self, config: BehaviourConfig) -> None:
        self.config = config
        self.latch = SirenLatch()

    def hear(self, tick: Tick) -> bool:
        """Update the latch from the tick's siren evidence and return whether the caution is
        on (always off without microphones)."""
        siren, latch = tick.siren, self.latch
        caution = False
        if siren is not None:
            caution = self._caution(siren, tick.time_s)
            if siren.bearing_map_rad is not None:
                latch.bearing = self._bearing(siren, float(tick.path.heading_at(tick.s_ego)))
            elif not siren.detected:
                latch.bearing = None
                latch.bearing_from_road_rad = None
        return caution

    def disarm(self) -> None:
        """End the caution for good: the EV we heard has been seen go by, so its fading
        siren is no new threat (re-armed after `audio_rearm_s` unheard)."""
        self.latch.caution_since_s = None
        self.latch.armed = False

    def _caution(self, siren: SirenEvidence, time_s: float) -> bool:
        """Update the audio-only caution latch and return whether it is on.

        On: the siren has been detected for `audio_min_detect_s` and is approaching (level
        rising). Off: lost or receding for `audio_release_s`, or heard for
        `audio_caution_max_s` without an EV ever being seen (then re-armed only once the
        siren has gone unheard for `audio_rearm_s`). Disarmed after a seen EV has passed,
        for the same reason.
        """
        cfg, latch = self.config, self.latch
        heard = siren.detected
        latch.detected_for_s = siren.detected_for_s if heard else 0.0
        if heard:
            latch.unheard_since_s = None
        elif latch.unheard_since_s is None:
            latch.unheard_since_s = time_s
        trend = siren.level_trend_db_per_s
        rising = siren.approaching is True or (
            trend is not None and trend >= cfg.audio_rising_db_per_s
        )
        quiet = not heard or siren.approaching is False
        if quiet:
            latch.quiet_since_s = time_s if latch.quiet_since_s is None else latch.quiet_since_s
        else:
            latch.quiet_since_s = None
        quiet_long = (
            latch.quiet_since_s is not None and time_s - latch.quiet_since_s >= cfg.audio_release_s
        )
        if not latch.armed:
            # the same siren drops out now and then as it fades: wait for real silence
            if (
                latch.unheard_since_s is not None
                and time_s - latch.unheard_since_s >= cfg.audio_rearm_s
            ):
                latch.armed = True
            return False
        if latch.caution_since_s is None:
            if heard and siren.detected_for_s >= cfg.audio_min_detect_s and rising:
                latch.caution_since_s = time_s
            return latch.caution_since_s is not None
        if quiet_long:
            latch.caution_since_s = None
        elif time_s - latch.caution_since_s >= cfg.audio_caution_max_s:
            latch.caution_since_s = None
            latch.armed = False
        return latch.caution_since_s is not None

    def _bearing(self, siren: SirenEvidence, road_heading: float) -> SirenBearing | None:
        """Where the siren is heard from relative to our road: ahead, behind or side."""
        if siren.bearing_map_rad is None:
            return None
        rel = abs(math.remainder(siren.bearing_map_rad - road_heading, 2 * math.pi))
        self.latch.bearing_from_road_rad = rel
        if rel <= self.config.audio_ahead_sector_rad:
            return SirenBearing.AHEAD
        if rel >= math.pi - self.config.audio_behind_sector_rad:
            return SirenBearing.BEHIND
        return SirenBearing.SIDE
