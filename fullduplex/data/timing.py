"""Turn-taking timing model, fitted to human numbers (shared/reference/evaluation.md §6).

- floor-transfer offset (FTO, next start - previous end): normal, mean 0.10 s, sd 0.25 s -> mode in
  0-200 ms, ~34 % overlapping transitions (humans: ~40 % of speaker changes overlap, median gap
  ~0.2 s); a hurried user shifts the assistant's replies earlier, a calm one later.
- within-turn pauses between sentences: log-normal, median 0.45 s; the listener does not take them.
- hesitations: before some questions the user says a lead-in ("hmm, I was going to ask") and
  stops to think, 0.4-1.4 s, mid-sentence; the listener waits for the question.
- backchannels at the speaker's pauses: onset ~ N(0.12, 0.10) s after the pause starts
  (median onset near the partner's phrase end, mostly -0.5..+0.8 s). Their rate is set per listener,
  per minute of the speaker's speech that a pause follows: the assistant 2.5, about 2 a minute of the
  user's floor (humans ~2/min per listener; the evaluation's M5 goal is 1-4), the user 8, so that the
  assistant learns to talk through them.
- interruptions: the user cuts into a long assistant turn; the assistant stops 0.15-0.4 s later.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TurnTaking:
    fto_mean_s: float = 0.1
    fto_sd_s: float = 0.25
    fto_min_s: float = -0.6
    fto_max_s: float = 1.2
    pause_median_s: float = 0.45
    pause_sigma: float = 0.35
    hesitation_prob: float = 0.3             # per question the user asks
    hesitation_s: tuple[float, float] = (0.4, 1.4)
    backchannel_per_min: float = 2.5         # the assistant's, in the user's long turns (see backchannel_chance)
    user_backchannel_per_min: float = 8.0    # the user's, in the assistant's long turns
    backchannel_onset_mean_s: float = 0.12
    backchannel_onset_sd_s: float = 0.10
    interruption_prob: float = 0.5     # per interruptible (long) assistant turn
    stop_delay_s: tuple[float, float] = (0.15, 0.4)

    def fto(self, rng, shift_s: float = 0.0) -> float:
        x = rng.normal(self.fto_mean_s + shift_s, self.fto_sd_s)
        return float(min(self.fto_max_s, max(self.fto_min_s, x)))

    def pause(self, rng) -> float:
        import numpy as np

        return float(min(1.5, self.pause_median_s * np.exp(rng.normal(0, self.pause_sigma))))

    def hesitation(self, rng) -> float:
        return float(rng.uniform(*self.hesitation_s))

    def backchannel_chance(self, listener_is_user: bool, speech_s: float) -> float:
        """Chance of a backchannel at a pause that follows ``speech_s`` seconds of the speaker's
        speech: the listener's rate times that stretch, so the expected count is the rate per minute
        of the speech before pauses, however long the sentences are."""
        per_min = self.user_backchannel_per_min if listener_is_user else self.backchannel_per_min
        return min(1.0, per_min * speech_s / 60.0)

    def backchannel_onset(self, rng) -> float:
        return float(max(0.0, rng.normal(self.backchannel_onset_mean_s, self.backchannel_onset_sd_s)))
