"""Response latency of the cascade on synthetic questions, with the stage breakdown.

    from fullduplex.systems.cascade_bench import bench_cascade
    bench_cascade(detectors=("silence", "smart", "text"), n=20)

Each question is its own conversation, synthesized with one of the project's TTS voices and fed frame
by frame in the offline mode (processing time simulated, so numbers are what a live user would get
on this machine). Response latency = the first audible system frame - the true end of the question
audio. A second set of turns holds a mid-turn pause (the user stops for ``pause_s`` then goes on):
"early" counts replies that start talking inside that pause, "declared over" the pauses the turn
detector took for the end of the turn (the reply was then cancelled when the user went on, but a
faster LLM would have talked over the user): the cost of a faster turn detector.
"""

from __future__ import annotations

import os
import time

import numpy as np

QUESTIONS = [
    "What is the capital of France?", "How many legs does a spider have?", "Can you recommend a good book?",
    "What is the weather usually like in London?", "How do I boil an egg?", "Who wrote Romeo and Juliet?",
    "What is the tallest mountain in the world?", "Why is the sky blue?", "How far away is the moon?",
    "What should I cook for dinner tonight?", "Can you tell me a joke?", "What is the largest ocean?",
    "How do plants make their food?", "What time zone is New York in?", "Is coffee bad for you?",
    "What is a good name for a cat?", "How many days are in a leap year?", "What language is spoken in Brazil?",
    "How can I sleep better at night?", "What is the boiling point of water?",
]
PAUSED = [
    ("I would like to know", "the capital of France."), ("Could you tell me", "how to make pancakes?"),
    ("My favourite animal is", "the elephant, what is yours?"), ("I was wondering if", "you like music."),
    ("So the thing is", "I need a new phone."), ("What do you think about", "electric cars?"),
]
VOICES = ("flite-rms", "flite-awb", "festival-kal", "flite-kal16")


def _speech(text: str, voice: str, sr: int) -> np.ndarray:
    from fullduplex.audio import resample
    from fullduplex.engines import tts

    x, r, _ = tts.synthesize(text, voice)
    return resample(x, r, sr).astype(np.float32)


def _converse_until_reply(system, user: np.ndarray, max_wait_s: float = 40.0):
    """Feed user audio (then silence) until the reply starts.
    Returns (frames fed, turn timings or None, whether the detector declared a turn over too soon)."""
    F = system.frame_size
    user = np.concatenate([user, np.zeros(int(max_wait_s * system.sample_rate), np.float32)])
    system.reset()
    too_soon = False
    for k in range(len(user) // F):
        f = system.step(user[k * F:(k + 1) * F])
        too_soon |= any(e.get("was_declared_over") for e in f.info.get("events", []))
        if "turn" in f.info:
            return k + 1, f.info["turn"], too_soon
    return len(user) // F, None, too_soon


def _median(xs):
    xs = [x for x in xs if x is not None]
    return round(float(np.median(xs)), 3) if xs else None


def bench_detector(detector: str, n: int = 20, paused: bool = True, llm=None, max_tokens: int = 32,
                   pause_s: float = 0.6) -> dict:
    from .cascade import CascadeConfig, CascadeSystem

    system = CascadeSystem(CascadeConfig(turn_detector=detector, max_tokens=max_tokens), llm=llm)
    sr, F = system.sample_rate, system.frame_size
    lead = np.zeros(int(0.5 * sr), np.float32)
    rows = []
    for i, q in enumerate(QUESTIONS[:n]):
        user = np.concatenate([lead, _speech(q, VOICES[i % len(VOICES)], sr)])
        frames, turn, _ = _converse_until_reply(system, user)
        if turn is None:
            rows.append({"question": q, "reply": None})
            continue
        true_end = len(user) / sr
        rows.append({"question": q, "heard": turn.get("user_text"), "latency_s": round(frames * F / sr - true_end, 3),
                     **{k: turn.get(k) for k in ("eot_delay_s", "asr_s", "llm_ttft_s", "llm_first_sentence_s",
                                                 "tts_first_s", "turn_p", "turn_check_s")}})
    early, declared = [], []
    if paused:
        for i, (a, b) in enumerate(PAUSED):
            v = VOICES[i % len(VOICES)]
            first = np.concatenate([lead, _speech(a, v, sr)])
            user = np.concatenate([first, np.zeros(int(pause_s * sr), np.float32), _speech(b, v, sr)])
            frames, turn, too_soon = _converse_until_reply(system, user)
            early.append(turn is not None and frames * F / sr < len(user) / sr)
            declared.append(too_soon or early[-1])
    system.close()
    ok = [r for r in rows if r.get("latency_s") is not None]
    keys = ("latency_s", "eot_delay_s", "asr_s", "llm_ttft_s", "llm_first_sentence_s", "tts_first_s", "turn_check_s")
    return {"detector": detector, "questions": len(rows), "answered": len(ok),
            "median": {k: _median([r.get(k) for r in ok]) for k in keys},
            "early_in_pause": f"{sum(early)}/{len(early)}" if paused else None,
            "declared_over_in_pause": f"{sum(declared)}/{len(declared)}" if paused else None, "rows": rows}


def bench_cascade(detectors=("silence", "smart", "text"), n: int = 20, paused: bool = True, llm=None) -> dict:
    t0 = time.time()
    out = {"cpus": os.cpu_count(), "load_avg_start": [round(x, 2) for x in os.getloadavg()], "results": []}
    for d in detectors:
        out["results"].append(bench_detector(d, n=n, paused=paused, llm=llm))
    out["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    out["wall_s"] = round(time.time() - t0, 1)
    return out
