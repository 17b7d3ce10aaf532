"""Paralinguistic variation: the user's speaking style and the assistant's matching reply style.

A hurried user gets a brisk reply (faster, a little earlier); a quiet, slow user a calm one
(slower, softer, a little later). The labels go into the item JSON so a model's behaviour can be
checked against them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class Style:
    label: str
    rate: float      # speaking-rate factor
    pitch: float     # factor on the voice's F0
    gain_db: float   # loudness relative to -20 dBFS RMS

    def to_json(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def user_style(rng) -> Style:
    kind = str(rng.choice(["neutral", "hurried", "calm"], p=[0.5, 0.25, 0.25]))
    if kind == "hurried":
        return Style(kind, rng.uniform(1.2, 1.4), rng.uniform(1.0, 1.2), rng.uniform(0, 4))
    if kind == "calm":
        return Style(kind, rng.uniform(0.75, 0.88), rng.uniform(0.85, 1.0), rng.uniform(-12, -6))
    return Style(kind, rng.uniform(0.92, 1.08), rng.uniform(0.9, 1.1), rng.uniform(-3, 3))


def assistant_style(user: Style) -> tuple[Style, float]:
    """The assistant's reply style and the shift (s) of its reply onsets, following the user's."""
    label = {"hurried": "brisk", "calm": "calm"}.get(user.label, "neutral")
    rate = 1.0 + 0.7 * (user.rate - 1.0)
    pitch = {"brisk": 1.04, "calm": 0.96}.get(label, 1.0)
    shift = {"brisk": -0.08, "calm": 0.15}.get(label, 0.0)
    return Style(label, rate, pitch, 0.5 * user.gain_db), shift
