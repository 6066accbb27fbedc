"""The behaviour layer's parameters: one validated config, units in the field names."""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field


class BehaviourConfig(BaseModel):
    """Parameters of the behaviour layer (units in the names)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ev_yield_range_m: float = Field(default=80.0, gt=0, description="yield to an EV this close")
    ev_passed_margin_m: float = Field(default=12.0, ge=0, description="EV this far ahead → passed")
    ev_lost_resume_s: float = Field(default=2.0, ge=0, description="EV unseen this long → resume")
    ev_max_pull_over_m: float = Field(
        default=20.0, gt=0, description="most room allowed for reaching the kerb, m"
    )
    pull_over_m_per_m: float = Field(
        default=8.0, gt=0, description="distance along the lane per metre of lateral move, m/m"
    )
    ev_stop_before_s: float = Field(
        default=1.5, ge=0, description="be standing this long before the EV reaches us, s"
    )
    ev_release_below_mps: float = Field(
        default=0.2, ge=0, description="once the EV has passed, resume from at most this speed"
    )
    ev_release_above_mps: float = Field(
        default=3.0, ge=0, description="… or at once if still above this speed, m/s"
    )
    ev_resume_dwell_s: float = Field(
        default=1.0,
        ge=0,
        description="once stopped for an EV, stand this long before moving off (no jerk "
        "from braking straight into pulling away), s",
    )
    ev_max_decel_mps2: float = Field(
        default=4.0, gt=0, description="hardest braking to stop in time for an EV, m/s²"
    )
    audio_min_detect_s: float = Field(
        default=1.0, ge=0, description="siren heard continuously this long before acting, s"
    )
    audio_rising_db_per_s: float = Field(
        default=0.4, description="a level trend this steep counts as approaching, dB/s"
    )
    audio_release_s: float = Field(
        default=2.0, ge=0, description="siren lost or receding this long → end the caution, s"
    )
    audio_stop_detect_s: float = Field(
        default=1.0,
        ge=0,
        description="siren heard and approaching this long → stop at the kerb on audio, s",
    )
    audio_stop_decel_mps2: float = Field(
        default=2.5, gt=0, description="braking for a stop at the kerb on audio alone, m/s²"
    )
    audio_stop_side_max_rad: float = Field(
        default=math.radians(100.0),
        gt=0,
        description="a siren from the side counts as ahead (a side street to come) within this "
        "of our heading",
    )
    audio_junction_clear_m: float = Field(
        default=30.0, ge=0, description="an audio stop comes to rest this far past a stop line"
    )
    audio_rearm_s: float = Field(
        default=5.0,
        ge=0,
        description="after a caution ended for good (EV seen passing, or never seen), the "
        "siren must go unheard this long before a new one can start a caution, s",
    )
    audio_caution_max_s: float = Field(
        default=40.0, gt=0, description="heard but never seen this long → give up the caution, s"
    )
    caution_speed_mps: float = Field(
        default=5.0, gt=0, description="speed while a siren is heard but not seen, m/s"
    )
    caution_slowdown_mps: float = Field(
        default=1.5,
        gt=0,
        description="each tick aim at most this far below the current speed (gentle slowing)",
    )
    caution_kerb_fraction: float = Field(
        default=0.6, ge=0, le=1, description="share of the way to the kerb taken on audio alone"
    )
    caution_junction_hold_m: float = Field(
        default=80.0, ge=0, description="siren from a side street: hold before a line this near"
    )
    audio_ahead_sector_rad: float = Field(
        default=math.radians(40.0), gt=0, description="bearing within this of the road → ahead"
    )
    audio_behind_sector_rad: float = Field(
        default=math.radians(40.0), gt=0, description="… within this of the road behind → behind"
    )

    curb_margin_m: float = Field(default=0.5, ge=0, description="gap kept to the kerb, m")
    curb_approach_m: float = Field(
        default=40.0, gt=0, description="start moving to the kerb this far before a requested stop"
    )
    comfortable_decel_mps2: float = Field(default=2.0, gt=0)
    max_lateral_accel_mps2: float = Field(
        default=2.0, gt=0, description="bends are taken no faster than this allows, m/s²"
    )
    speed_preview_m: float = Field(
        default=40.0, gt=0, description="speed limits and bends this far ahead count, m"
    )
    yellow_max_decel_mps2: float = Field(
        default=3.0, gt=0, description="stop for yellow only below"
    )
    red_max_decel_mps2: float = Field(
        default=6.0, gt=0, description="past this a red line is run (already committed)"
    )
    stop_line_margin_m: float = Field(
        default=1.0, ge=0, description="front bumper stops this far before the line"
    )
    follow_range_m: float = Field(default=60.0, gt=0)
    merge_gap_time_s: float = Field(
        default=4.0,
        gt=0,
        description="traffic from behind must be this many seconds away to leave the kerb",
    )
    merge_gap_min_m: float = Field(default=10.0, ge=0)
    safe_stop_after_failures: int = Field(default=3, ge=1)
    pass_blockers: bool = Field(default=True, description="pass double-parked vehicles")
    blocker_speed_mps: float = Field(
        default=0.3, ge=0, description="a lead vehicle slower than this is standing, m/s"
    )
    blocker_wait_s: float = Field(
        default=3.0, ge=0, description="standing this long (seen) before it counts as a blocker"
    )
    blocker_line_clear_m: float = Field(
        default=50.0,
        ge=0,
        description="standing within this of the next stop line beyond it → queued at the "
        "line, not a blocker, m",
    )
    blocker_queue_gap_m: float = Field(
        default=20.0, ge=0, description="any vehicle this near ahead of it → a queue, m"
    )
    pass_standoff_m: float = Field(
        default=8.0, gt=0, description="wait this far behind a blocker (room to steer out), m"
    )
    steer_out_standoff: bool = Field(
        default=True,
        description="stop behind a standing vehicle or obstacle in our path where the car can "
        "still steer out round it (`planning.steer_out`), not at car following's 2 m",
    )
    standoff_slack_m: float = Field(
        default=0.5,
        ge=0,
        description="stop this much further back than the least room to steer out (where "
        "the stop ends varies by this much), m",
    )
    pass_min_gap_m: float = Field(
        default=6.0, ge=0, description="least bumper gap to traffic in the target lane, m"
    )
    pass_follower_headway_s: float = Field(
        default=1.2, ge=0, description="target-lane follower's time gap to our rear, at least, s"
    )
    pass_follower_ttc_s: float = Field(
        default=4.0, ge=0, description="target-lane follower's time to reach our rear, at least"
    )
    pass_leader_headway_s: float = Field(
        default=1.0, ge=0, description="our time gap to the target-lane leader, at least, s"
    )
    pass_return_gap_m: float = Field(
        default=6.0, ge=0, description="return to our lane once our rear is this far past it"
    )
    pass_abort_below_m: float = Field(
        default=1.2,
        ge=0,
        description="a gap that closes while we are less than this far over aborts the pass",
    )
    slow_lead_fraction: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="a cyclist slower than this share of the speed limit for "
        "`blocker_wait_s` is passed through a same-direction lane, never through the "
        "oncoming one",
    )
    narrow_road_user_m: float = Field(
        default=1.2,
        gt=0,
        description="a lead narrower than this is a cyclist (or another two-wheeler), m",
    )
    oncoming_pass: bool = Field(
        default=True,
        description="with no same-direction lane to the left, pass a standing vehicle through "
        "the oncoming lane when the oncoming traffic leaves a long enough gap",
    )
    oncoming_pass_wait_s: float = Field(
        default=8.0,
        ge=0,
        description="a vehicle must stand this long (seen) before we pass it through the "
        "oncoming lane: traffic that only halts moves on first, s",
    )
    oncoming_pass_max_length_m: float = Field(
        default=9.0,
        gt=0,
        description="no pass through the oncoming lane round a longer vehicle (a bus at its "
        "stop, a truck: they move on soon, hide what comes the other way and take long to "
        "pass), m",
    )
    oncoming_pass_accel_mps2: float = Field(
        default=2.0,
        gt=0,
        description="acceleration assumed when timing a pass (the motion planner's "
        "`PASS_ACCEL_MPS2`), m/s²",
    )
    oncoming_sight_m: float = Field(
        default=120.0,
        gt=0,
        description="how far along the oncoming lane the cameras can vouch that nobody comes "
        "(their reach); beyond, and behind the blocker, a car at the speed limit is assumed",
    )
    oncoming_pass_standoff_m: float = Field(
        default=18.0,
        gt=0,
        description="wait this far behind a vehicle we mean to pass through the oncoming lane, "
        "toward our lane's left edge: from there the view past it reaches far enough, m",
    )
    peek_below_mps: float = Field(
        default=6.0,
        ge=0,
        description="below this speed, drawing up behind a vehicle to pass through the "
        "oncoming lane, keep to our lane's left edge to see past it, m/s",
    )
    oncoming_gap_margin_s: float = Field(
        default=1.0,
        ge=0,
        description="an oncoming vehicle must still be this many seconds (at its speed) short "
        "of where we return to our lane when we get there, s",
    )
    occlusion_caution: bool = Field(
        default=True,
        description="slow past standing vehicles just right of our path, which hide the kerb",
    )
    occluded_pass_speed_mps: float = Field(
        default=7.0,
        gt=0,
        description="speed at the front of a standing vehicle that hides the kerb: from it "
        "a pedestrian stepping out 1.5 m from our path is stopped for at 6 m/s², m/s",
    )
    occluder_gap_m: float = Field(
        default=2.5,
        gt=0,
        description="a standing vehicle whose left side is this near our right side hides "
        "someone who could reach our path in about 2 s of walking, m",
    )
    occluder_min_length_m: float = Field(
        default=4.0, gt=0, description="shorter standing things hide nobody, m"
    )
    safe_stop_release_ticks: int = Field(default=10, ge=1)
