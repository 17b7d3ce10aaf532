"""Scenario items S1-S10 (evaluation.md §9.2), synthesized with the project's TTS and content.

Each builder returns one or two :class:`ScenarioItem` (an item and its clean twin): 16 kHz mono user
audio and its ``meta`` (event times in seconds from the start of input.wav). Item ``k`` of scenario
``S`` with seed ``s`` depends only on (S, s, k).

Meta fields used by the metrics: ``scenario``, ``lead_s`` (leading silence: windows ignore [0, lead)),
``user_turns`` [[start, end, text]], ``user_turn_end`` (S1, S10), ``pause`` [s, e] (S2),
``barge_in`` [s, e] and ``keywords`` (S4), ``overlap`` [s, e] and ``clean_twin`` (S5-S7),
``pair``/``style`` (S10).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fullduplex.audio import resample
from fullduplex.data import content
from fullduplex.engines import tts

from . import effects
from .text import keywords

SR = effects.SR
OVERLAP_BACKCHANNELS = ["yeah", "right", "okay", "uh huh", "mm hmm"]
SIDE_TALK = ["Honey, can you grab the keys from the kitchen?", "Just a second, I am on a call.",
             "Put it on the table, please.", "No, the blue one, next to the door.",
             "Can you turn the music down a little?"]
BACKGROUND = ["Did anyone see where I left my glasses this morning?", "The train was late again today.",
              "We should order some more coffee for the office.", "I think the meeting moved to three."]
PAUSE_OPENERS = ["So I was thinking about my trip next week, and I wanted to ask you",
                 "Before I forget, there is something I wanted to ask, and it is",
                 "My daughter asked me something at dinner and I was not sure, so tell me",
                 "I have been wondering about this all afternoon, and maybe you know"]


@dataclass
class ScenarioItem:
    id: str
    audio: np.ndarray  # float32 [T] at 16 kHz
    meta: dict = field(default_factory=dict)


class _Voices:
    """TTS at 16 kHz with a per-item user voice (falls back to the next voice if alignment fails)."""

    def __init__(self, rng):
        names = [v for v in tts.DIALOGUE_USERS if tts.is_installed(tts.VOICES[v])]
        if not names:
            raise tts.EngineNotInstalled("no TTS voice installed; run scripts/install.sh")
        self.order = [str(v) for v in rng.permutation(names)]
        self.voice = self.order[0]

    def say(self, text: str, rate=1.0, pitch=1.0, gain_db=0.0, voice: str | None = None):
        tried = [voice] if voice else [self.voice] + [v for v in self.order if v != self.voice]
        err = None
        for v in tried:
            try:
                a, sr, ws = tts.synthesize(text, v, rate=rate, pitch=pitch, gain_db=gain_db)
                if voice is None:
                    self.voice = v
                return resample(a, sr, SR), ws
            except RuntimeError as e:
                err = e
        raise RuntimeError(f"could not synthesize {text!r}: {err}")


class _Track:
    """Snippets placed on the user channel, with their turns and words."""

    def __init__(self):
        self.parts: list[tuple[float, np.ndarray]] = []
        self.turns: list[list] = []
        self.words: list[list] = []

    def place(self, t: float, audio: np.ndarray, words, text: str, turn: bool = True) -> float:
        self.parts.append((t, audio))
        end = t + len(audio) / SR
        if turn:
            self.turns.append([round(t, 3), round(end, 3), text])
            self.words += [[w.word, round(t + w.start, 3), round(t + w.end, 3)] for w in words]
        return end

    def render(self, duration: float) -> np.ndarray:
        out = np.zeros(int(np.ceil(duration * SR)), np.float32)
        for t, a in self.parts:
            i = int(round(t * SR))
            n = min(len(a), len(out) - i)
            out[i:i + n] += a[:n]
        return np.clip(out, -1, 1)


def _meta(sid, idx, seed, cfg, track, duration, voice, **kw) -> dict:
    m = {"scenario": sid, "index": idx, "seed": seed, "sample_rate": SR, "duration": round(duration, 3),
         "lead_s": cfg.lead_s, "voice": voice, "user_turns": track.turns, "user_words": track.words}
    m.update(kw)
    return m


def _question(rng) -> content.Exchange:
    return content.exchange(rng, content.TASKS)


def s1_turn_end(rng, idx, seed, cfg) -> list[ScenarioItem]:
    v, tr = _Voices(rng), _Track()
    ex = _question(rng)
    sents = ([str(rng.choice(["I have a question for you.", "Okay, here is one.", "Let me ask you something."]))]
             if rng.random() < 0.5 else []) + ex.user
    t = cfg.lead_s
    for s in sents:
        a, ws = v.say(s)
        t = tr.place(t, a, ws, s) + 0.25
    t_ue = tr.turns[-1][1]
    dur = t_ue + cfg.turn_tail_s
    return [ScenarioItem(f"S1_{idx:03d}", tr.render(dur),
                         _meta("S1", idx, seed, cfg, tr, dur, v.voice, user_turn_end=t_ue,
                               text=" ".join(sents), keywords=keywords(" ".join(ex.user)),
                               answer=ex.answer, reply=" ".join(ex.assistant)))]


def s2_pause(rng, idx, seed, cfg) -> list[ScenarioItem]:
    v, tr = _Voices(rng), _Track()
    ex = _question(rng)
    first = str(rng.choice(PAUSE_OPENERS))
    q = ex.user[-1]
    second = q[0].lower() + q[1:]
    pause = float(rng.uniform(*cfg.pause_s))
    a1, w1 = v.say(first)
    a2, w2 = v.say(second)
    p_s = tr.place(cfg.lead_s, a1, w1, first)
    p_e = p_s + pause
    t_ue = tr.place(p_e, a2, w2, second)
    dur = t_ue + cfg.turn_tail_s
    return [ScenarioItem(f"S2_{idx:03d}", tr.render(dur),
                         _meta("S2", idx, seed, cfg, tr, dur, v.voice, pause=[round(p_s, 3), round(p_e, 3)],
                               user_turn_end=round(t_ue, 3), text=f"{first} ... {second}"))]


def s3_backchannel(rng, idx, seed, cfg) -> list[ScenarioItem]:
    v, tr = _Voices(rng), _Track()
    target = float(rng.uniform(*cfg.monologue_s))
    sents: list[str] = []
    days = [list(d) for d in content.USER_DAYS]
    order = rng.permutation(len(days))
    k = 0
    t = cfg.lead_s
    while t - cfg.lead_s < target:
        if not sents:
            sents = days[order[k % len(days)]]
            k += 1
        s = sents.pop(0)
        a, ws = v.say(s)
        t = tr.place(t, a, ws, s) + float(rng.uniform(*cfg.monologue_pause_s))
    t_ue = tr.turns[-1][1]
    dur = t_ue + cfg.turn_tail_s
    return [ScenarioItem(f"S3_{idx:03d}", tr.render(dur),
                         _meta("S3", idx, seed, cfg, tr, dur, v.voice, user_turn_end=t_ue))]


def _barge(rng, idx, seed, cfg, sid: str) -> list[ScenarioItem]:
    """S4-S7: a request for a long answer, then an overlap 5-7 s after the request ends."""
    v, tr = _Voices(rng), _Track()
    ctx = str(rng.choice(["Can you tell me a short story?", "Tell me a story, please.",
                          "Could you tell me a long story about a little fox?"]))
    a, ws = v.say(ctx)
    t_end = tr.place(cfg.lead_s, a, ws, ctx)
    b_s = t_end + float(rng.uniform(*cfg.barge_delay_s))
    clean = _Track()
    clean.place(cfg.lead_s, a, ws, ctx)
    extra: dict = {"context_text": ctx}
    if sid == "S4":
        ex = content.interruption(rng)
        text = " ".join(ex.user)
        ao, wo = v.say(text)
        extra.update(keywords=keywords(" ".join(ex.user[1:])), overlap_text=text)
    elif sid == "S5":
        text = str(rng.choice(OVERLAP_BACKCHANNELS))
        ao, wo = v.say(text)
        extra.update(overlap_text=text)
    elif sid == "S6":
        text = str(rng.choice(SIDE_TALK))
        ao, wo = v.say(text)
        ao = effects.side_talk(ao)
        extra.update(overlap_text=text)
    else:
        text = str(rng.choice(BACKGROUND))
        other = next((o for o in v.order if o != v.voice), v.voice)
        ao, wo = v.say(text, voice=other)
        ao = effects.background_speech(ao)
        extra.update(overlap_text=text, overlap_voice=other)
    tr.place(b_s, ao, wo, text, turn=(sid in ("S4", "S5")))
    b_e = b_s + (wo[-1].end if wo else len(ao) / SR)
    dur = b_e + (cfg.barge_tail_s if sid == "S4" else cfg.overlap_tail_s)
    key = "barge_in" if sid == "S4" else "overlap"
    iid = f"{sid}_{idx:03d}"
    extra[key] = [round(b_s, 3), round(b_e, 3)]
    items = [ScenarioItem(iid, tr.render(dur), _meta(sid, idx, seed, cfg, tr, dur, v.voice, **extra))]
    if sid != "S4":
        items[0].meta["clean_twin"] = iid + "_clean"
        twin = dict(extra, twin_of=iid)
        items.append(ScenarioItem(iid + "_clean", clean.render(dur),
                                  _meta(sid, idx, seed, cfg, clean, dur, v.voice, clean=True, **twin)))
    return items


def s4_barge_in(rng, idx, seed, cfg):
    return _barge(rng, idx, seed, cfg, "S4")


def s5_user_backchannel(rng, idx, seed, cfg):
    return _barge(rng, idx, seed, cfg, "S5")


def s6_side_talk(rng, idx, seed, cfg):
    return _barge(rng, idx, seed, cfg, "S6")


def s7_background(rng, idx, seed, cfg):
    return _barge(rng, idx, seed, cfg, "S7")


def s8_silence_noise(rng, idx, seed, cfg) -> list[ScenarioItem]:
    """Even items: digital silence with a -60 dBFS noise floor; odd items: babble at -30 dBFS."""
    n = int(cfg.noise_s * SR)
    tr = _Track()
    if idx % 2 == 0:
        x = (rng.standard_normal(n) * effects.db(-60)).astype(np.float32)
        kind = "silence"
    else:
        v = _Voices(rng)
        clips = [v.say(str(rng.choice(content.USER_DAYS[i % 3])), voice=vo)[0]
                 for i, vo in enumerate(v.order[:4])]
        x = effects.babble(clips, n, -30.0, rng)
        kind = "babble"
    return [ScenarioItem(f"S8_{idx:03d}", x, _meta("S8", idx, seed, cfg, tr, n / SR, None, noise=kind))]


S10_STYLES = {"hurried": dict(rate=1.35, pitch=1.1, gain_db=3.0), "calm": dict(rate=0.8, pitch=0.92, gain_db=-8.0),
              "loud": dict(rate=1.0, pitch=1.0, gain_db=6.0), "soft": dict(rate=1.0, pitch=1.0, gain_db=-14.0)}


def s10_paralinguistic(rng, idx, seed, cfg) -> list[ScenarioItem]:
    """The same request said two ways: even pairs hurried vs calm, odd pairs loud vs soft."""
    v = _Voices(rng)
    ex = _question(rng)
    text = " ".join(ex.user)
    pair = ("hurried", "calm") if idx % 2 == 0 else ("loud", "soft")
    items = []
    for style in pair:
        tr = _Track()
        a, ws = v.say(text, **S10_STYLES[style])
        t_ue = tr.place(cfg.lead_s, a, ws, text)
        dur = t_ue + cfg.turn_tail_s
        iid = f"S10_{idx:03d}_{style}"
        items.append(ScenarioItem(iid, tr.render(dur), _meta(
            "S10", idx, seed, cfg, tr, dur, v.voice, user_turn_end=round(t_ue, 3), style=style,
            style_params=S10_STYLES[style], pair=f"S10_{idx:03d}", pair_axis="rate" if idx % 2 == 0 else "loudness",
            text=text, keywords=keywords(text))))
    return items


BUILDERS = {"S1": s1_turn_end, "S2": s2_pause, "S3": s3_backchannel, "S4": s4_barge_in,
            "S5": s5_user_backchannel, "S6": s6_side_talk, "S7": s7_background, "S8": s8_silence_noise,
            "S10": s10_paralinguistic}


def build(sid: str, idx: int, seed: int, cfg) -> list[ScenarioItem]:
    if sid not in BUILDERS:
        raise ValueError(f"unknown scenario {sid!r}; known: {', '.join(BUILDERS)}")
    rng = np.random.default_rng([seed, int(sid[1:]), idx])
    return BUILDERS[sid](rng, idx, seed, cfg)
