"""Synthetic two-channel conversations: content (content.py) x timing (timing.py) x style (prosody.py).

    fullduplex data synth --out DIR --hours 1 --seed 0 --jobs 2 [--shard I/N]
        [--timing KEY=VALUE ...] [--weight FAMILY=W ...]

``--timing`` changes fields of the turn-taking model (timing.py) and ``--weight`` how often each
task family is drawn (content.py); DIR/synth.json keeps the config, and a resume must match it.

Item ``k`` of seed ``s`` depends only on (s, k) and the config: the same command gives the same files on any
machine, and shards (k % N == I) can run anywhere and be merged (merge.py).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fullduplex.audio import resample
from fullduplex.engines import tts

from . import content
from .format import ASSISTANT, SAMPLE_RATE, USER, Item, append_manifest, read_manifest, write_item
from .prosody import Style, assistant_style, user_style
from .shard import Shard, manifest_name
from .timing import TurnTaking

log = logging.getLogger(__name__)
FADE_S = 0.03


@dataclass
class SynthConfig:
    seed: int = 0
    min_item_s: float = 40.0
    max_item_s: float = 80.0
    assistant_voice: str = tts.DEFAULT_ASSISTANT
    user_voices: tuple[str, ...] = tts.DIALOGUE_USERS
    timing: TurnTaking = field(default_factory=TurnTaking)
    weights: dict[str, float] = field(default_factory=lambda: dict(content.WEIGHTS))  # task family -> weight

    def to_json(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def with_settings(cls, timing: list[str] = (), weights: list[str] = (), assistant_voice: str | None = None,
                      user_voices: list[str] = ()) -> "SynthConfig":
        """The default config with ``timing`` fields (``KEY=VALUE``, a range as ``LOW,HIGH``),
        task-family ``weights`` (``FAMILY=W``), the assistant's voice and the users' voices replaced."""
        cfg = cls()
        for v in ([assistant_voice] if assistant_voice else []) + list(user_voices):
            if v not in tts.VOICES:
                raise ValueError(f"unknown voice {v!r}; known voices: {', '.join(tts.VOICES)}")
            if not tts.is_installed(tts.VOICES[v]):
                raise ValueError(f"voice {v} needs the '{tts.VOICES[v].engine}' engine, which is not installed; "
                                 "run scripts/install.sh")
        if assistant_voice:
            cfg.assistant_voice = assistant_voice
        if user_voices:
            cfg.user_voices = tuple(dict.fromkeys(user_voices))
            if set(cfg.user_voices) == {cfg.assistant_voice}:
                raise ValueError("--user-voice: the users need a voice other than the assistant's")
        fields = [f.name for f in dataclasses.fields(TurnTaking)]
        for kv in timing:
            key, value = _split(kv, "--timing")
            if key not in fields:
                raise ValueError(f"--timing {kv}: unknown key {key!r}; known: {', '.join(fields)}")
            default = getattr(cfg.timing, key)
            try:
                parsed = tuple(float(x) for x in value.split(",")) if isinstance(default, tuple) else float(value)
            except ValueError:
                raise ValueError(f"--timing {kv}: {value!r} is not a number") from None
            if isinstance(default, tuple) and (len(parsed) != 2 or parsed[0] > parsed[1]):
                raise ValueError(f"--timing {kv}: give a range as LOW,HIGH, e.g. {key}=0.1,0.25")
            setattr(cfg.timing, key, parsed)
        for kv in weights:
            key, value = _split(kv, "--weight")
            if key not in content.FAMILIES:
                raise ValueError(f"--weight {kv}: unknown family {key!r}; known: {', '.join(content.FAMILIES)}")
            try:
                cfg.weights[key] = float(value)
            except ValueError:
                raise ValueError(f"--weight {kv}: {value!r} is not a number") from None
            if cfg.weights[key] < 0:
                raise ValueError(f"--weight {kv}: a weight cannot be negative")
        if not any(w > 0 for w in cfg.weights.values()):
            raise ValueError("--weight: at least one task family needs a positive weight")
        return cfg


def _split(kv: str, flag: str) -> tuple[str, str]:
    key, sep, value = kv.partition("=")
    if not sep or not key or not value:
        raise ValueError(f"{flag} {kv!r}: write KEY=VALUE")
    return key.strip(), value.strip()


class _Timeline:
    """Snippets placed on two channels, plus their words and events (times in seconds)."""

    def __init__(self):
        self.snippets: dict[str, list[tuple[float, np.ndarray]]] = {ASSISTANT: [], USER: []}
        self.words: list = []
        self.events: list[dict] = []
        self.busy_until = {ASSISTANT: 0.0, USER: 0.0}

    def place(self, spk: str, t: float, audio: np.ndarray, words) -> float:
        self.snippets[spk].append((t, audio))
        self.words += [(w.word, (round(t + w.start, 3), round(t + w.end, 3)), spk) for w in words]
        end = t + len(audio) / SAMPLE_RATE
        self.busy_until[spk] = max(self.busy_until[spk], end)
        return end

    def render(self, tail_s: float) -> np.ndarray:
        end = max(self.busy_until.values()) + tail_s
        out = np.zeros((2, int(math.ceil(end * SAMPLE_RATE))), np.float32)
        for ch, spk in enumerate((ASSISTANT, USER)):
            for t, a in self.snippets[spk]:
                i = int(round(t * SAMPLE_RATE))
                out[ch, i:i + len(a)] += a
        return np.clip(out, -1, 1)


def _plan(rng, target_s: float, cfg: SynthConfig) -> list[content.Exchange]:
    """Exchanges until the estimated spoken time reaches ``target_s`` (~3.3 words/s + gaps)."""
    exs, est = [], 0.0
    if rng.random() < 0.6:
        exs.append(content.small_talk(rng))
    while est < target_s:
        exs.append(content.exchange(rng, weights=cfg.weights))
        if exs[-1].family in content.TASKS and cfg.timing.hesitation_prob > 0 \
                and rng.random() < cfg.timing.hesitation_prob:
            exs[-1] = content.with_lead_in(rng, exs[-1])
        if exs[-1].interruptible and rng.random() < cfg.timing.interruption_prob:
            exs[-1].extra["interruption"] = content.interruption(rng)
        est = sum(len(" ".join(e.user + e.assistant).split()) / 3.3 + 0.6 * len(e.user + e.assistant) for e in exs)
    return exs


def _synthesize(texts: list[str], voice: str, style: Style) -> dict[str, tuple[np.ndarray, list]]:
    uniq = sorted(set(texts))
    res = tts.synthesize_many(uniq, voice, style.rate, style.pitch, style.gain_db)
    return {t: (resample(a, sr, SAMPLE_RATE), ws) for t, (a, sr, ws) in zip(uniq, res)}


def _cut(audio: np.ndarray, words, stop_s: float):
    """Audio and words of an utterance the speaker abandons at ``stop_s`` (short fade out)."""
    n = int(stop_s * SAMPLE_RATE)
    a = audio[:n].copy()
    f = min(len(a), int(FADE_S * SAMPLE_RATE))
    a[len(a) - f:] *= np.linspace(1, 0, f, dtype=np.float32)
    kept = [w for w in words if w.start < stop_s - 0.05]
    kept = [type(w)(w.word, w.start, min(w.end, stop_s)) for w in kept]
    return a, kept


def render_item(index: int, cfg: SynthConfig) -> Item:
    """Conversation number ``index`` of seed ``cfg.seed``."""
    rng = np.random.default_rng([cfg.seed, index])
    tt = cfg.timing
    target = rng.uniform(cfg.min_item_s, cfg.max_item_s)
    exs = _plan(rng, target, cfg)
    u_style = user_style(rng)
    a_style, shift = assistant_style(u_style)
    bcs = {spk: [str(b) for b in rng.choice(content.BACKCHANNELS, 3, replace=False)] for spk in (ASSISTANT, USER)}
    texts = {ASSISTANT: list(bcs[ASSISTANT]), USER: list(bcs[USER])}
    for e in exs:
        texts[USER] += e.user
        texts[ASSISTANT] += e.assistant
        if "interruption" in e.extra:
            texts[USER] += e.extra["interruption"].user
            texts[ASSISTANT] += e.extra["interruption"].assistant
    speech = {ASSISTANT: _synthesize(texts[ASSISTANT], cfg.assistant_voice, a_style)}
    installed = [v for v in cfg.user_voices if tts.is_installed(tts.VOICES[v]) and v != cfg.assistant_voice]
    if not installed:
        raise tts.EngineNotInstalled("no user voice is installed; run scripts/install.sh")
    user_voice = None
    for v in rng.permutation(installed):  # a voice whose words cannot be aligned is replaced by the next
        try:
            speech[USER] = _synthesize(texts[USER], str(v), u_style)
            user_voice = str(v)
            break
        except RuntimeError as err:
            log.info("item %d: voice %s skipped (%s)", index, v, err)
    if user_voice is None:
        raise RuntimeError(f"item {index}: no user voice could be synthesized with word timings")

    tl = _Timeline()
    other = {ASSISTANT: USER, USER: ASSISTANT}

    def turn(spk, sents, start, family, backchannels=False, interrupt=None, hesitation_at=None):
        """Place one turn; returns its end time (or, if interrupted, the interrupter's start). The
        speaker hesitates after sentence ``hesitation_at``."""
        t = max(start, tl.busy_until[spk] + 0.1)
        t0 = t
        for k, s in enumerate(sents):
            audio, ws = speech[spk][s]
            dur = len(audio) / SAMPLE_RATE
            if interrupt is not None and k == min(len(sents) - 1, interrupt[0]):
                t_int = t + interrupt[1] * dur
                stop = t_int + rng.uniform(*tt.stop_delay_s)
                a, kept = _cut(audio, ws, stop - t)
                tl.place(spk, t, a, kept)
                tl.events.append({"type": "turn", "speaker": spk, "start": round(t0, 3), "end": round(stop, 3),
                                  "family": family, "text": " ".join(sents[:k + 1]), "interrupted": True})
                tl.events.append({"type": "interruption", "speaker": other[spk], "start": round(t_int, 3),
                                  "stop": round(stop, 3), "reaction_s": round(stop - t_int, 3)})
                return t_int
            t = tl.place(spk, t, audio, ws)
            if k < len(sents) - 1:
                hesitates = k == hesitation_at  # mid-sentence: the listener does not backchannel either
                p = tt.hesitation(rng) if hesitates else tt.pause(rng)
                if backchannels and not hesitates and rng.random() < tt.backchannel_chance(spk == ASSISTANT, dur):
                    bc = str(rng.choice(bcs[other[spk]]))
                    b_audio, b_ws = speech[other[spk]][bc]
                    onset = tt.backchannel_onset(rng)
                    p = max(p, onset + 0.5 * len(b_audio) / SAMPLE_RATE)
                    b_end = tl.place(other[spk], t + onset, b_audio, b_ws)
                    tl.events.append({"type": "backchannel", "speaker": other[spk], "start": round(t + onset, 3),
                                      "end": round(b_end, 3), "text": bc})
                tl.events.append({"type": "pause", "speaker": spk, "start": round(t, 3), "end": round(t + p, 3),
                                  **({"hesitation": True} if hesitates else {})})
                t += p
        tl.events.append({"type": "turn", "speaker": spk, "start": round(t0, 3), "end": round(t, 3),
                          "family": family, "text": " ".join(sents)})
        return t

    def last_dur(spk, sents):
        return len(speech[spk][sents[-1]][0]) / SAMPLE_RATE

    tasks = []
    t = rng.uniform(0.3, 1.0)
    prev = None  # (speaker, sentences) of the turn that just ended
    for e in exs:
        if prev is not None:
            t += max(tt.fto(rng), -0.5 * last_dur(*prev))
        t = turn(USER, e.user, t, e.family, backchannels=e.user_long, hesitation_at=e.extra.get("lead_in"))
        t_a = t + max(tt.fto(rng, shift), -0.5 * last_dur(USER, e.user))
        inter = e.extra.get("interruption")
        tasks.append({"family": e.family, "question": " ".join(e.user), "answer": e.answer,
                      "reply_start": round(t_a, 3)})
        if inter is None:
            t = turn(ASSISTANT, e.assistant, t_a, e.family, backchannels=len(e.assistant) >= 3)
            prev = (ASSISTANT, e.assistant)
            continue
        where = (int(rng.integers(1, len(e.assistant))), float(rng.uniform(0.3, 0.8)))
        t_int = turn(ASSISTANT, e.assistant, t_a, e.family, backchannels=True, interrupt=where)
        t = turn(USER, inter.user, t_int, inter.family)
        t_r = t + max(tt.fto(rng, shift), -0.5 * last_dur(USER, inter.user))
        tasks.append({"family": inter.family, "question": " ".join(inter.user), "answer": inter.answer,
                      "reply_start": round(t_r, 3), "after_interruption": True})
        t = turn(ASSISTANT, inter.assistant, t_r, inter.family)
        prev = (ASSISTANT, inter.assistant)

    audio = tl.render(tail_s=rng.uniform(0.5, 1.0))
    meta = {
        "events": sorted(tl.events, key=lambda ev: ev["start"]),
        "voices": {ASSISTANT: cfg.assistant_voice, USER: user_voice},
        "prosody": {ASSISTANT: a_style.to_json(), USER: u_style.to_json()},
        "tasks": tasks,
        "seed": cfg.seed, "index": index, "source": "synth",
    }
    return Item(audio, sorted(tl.words, key=lambda w: w[1][0]), meta)


def _item_path(index: int) -> str:
    return f"audio/{index:06d}.wav"


def _work(args) -> dict:
    index, cfg, out = args
    return write_item(out, _item_path(index), render_item(index, cfg))


def _init_worker():
    os.environ["OMP_NUM_THREADS"] = "1"


CONFIG_NAME = "synth.json"
# timing fields added since a folder may have been made, with the behaviour it was made with
ADDED_TIMING = {"hesitation_prob": 0.0, "hesitation_s": [0.4, 1.4]}


def _check_config(out: Path, cfg: SynthConfig) -> None:
    """Store the config a folder is made with; refuse to add items made with another one."""
    path, want = out / CONFIG_NAME, cfg.to_json()
    if path.exists():
        have = json.loads(path.read_text())
        have["timing"] = {**ADDED_TIMING, **have.get("timing", {})}
        if have != want:
            diff = sorted(k for k in set(have) | set(want) if k != "timing" and have.get(k) != want.get(k))
            diff += [f"timing.{k}" for k in sorted(want["timing"]) if have["timing"].get(k) != want["timing"][k]]
            raise ValueError(f"{out} was synthesized with another config ({', '.join(diff)} differ, see "
                             f"{path}); use a new --out folder, or the same --seed, --timing and --weight")
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(want, indent=1))
    tmp.replace(path)


def num_items(hours: float, cfg: SynthConfig) -> int:
    return max(1, int(math.ceil(hours * 3600 / ((cfg.min_item_s + cfg.max_item_s) / 2))))


def run_synth(out: str, hours: float, seed: int = 0, jobs: int = 1, shard: Shard | None = None,
              cfg: SynthConfig | None = None, progress: bool = True) -> dict:
    """Write a synthetic dataset (or one shard of it) to ``out``; resumes a partial run.

    Returns {"items", "hours", "manifest"} for what this call's manifest holds.
    """
    from tqdm import tqdm

    cfg = cfg or SynthConfig()
    cfg.seed = seed
    shard = shard or Shard(0, 1)
    Path(out).mkdir(parents=True, exist_ok=True)
    _check_config(Path(out), cfg)
    mname = manifest_name(shard)
    done = {e["path"] for e in read_manifest(out, mname)} if (Path(out) / mname).exists() else set()
    todo = [k for k in shard.indices(num_items(hours, cfg)) if _item_path(k) not in done]
    bar = tqdm(total=len(todo), unit="item", disable=not progress, desc="synth")
    args = [(k, cfg, out) for k in todo]
    if jobs <= 1:
        results = map(_work, args)
    else:
        import multiprocessing as mp

        pool = mp.get_context("fork").Pool(jobs, initializer=_init_worker)
        results = pool.imap_unordered(_work, args)
    try:
        for entry in results:
            append_manifest(out, [entry], mname)
            bar.update(1)
    finally:
        bar.close()
        if jobs > 1:
            pool.close()
            pool.join()
    entries = read_manifest(out, mname)
    return {"items": len(entries), "hours": round(sum(e["duration"] for e in entries) / 3600, 4),
            "manifest": str(Path(out) / mname)}
