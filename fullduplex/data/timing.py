"""Turn-taking timing model, fitted to human numbers (shared/reference/evaluation.md §6).

- floor-transfer offset (FTO, next start - previous end): normal, mean 0.10 s, sd 0.25 s -> mode in
  0-200 ms, ~34 % overlapping transitions (humans: ~40 % of speaker changes overlap, median gap
  ~0.2 s); a hurried user shifts the assistant's replies earlier, a calm one later.
- within-turn pauses between sentences: log-normal, median 0.45 s; the listener does not take them.
- backchannels at the speaker's pauses: onset ~ N(0.12, 0.10) s after the pause starts
  (median onset near the partner's phrase end, mostly -0.5..+0.8 s).
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
    backchannel_prob: float = 0.4      # per within-turn pause of a long turn
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

    def backchannel_onset(self, rng) -> float:
        return float(max(0.0, rng.normal(self.backchannel_onset_mean_s, self.backchannel_onset_sd_s)))
