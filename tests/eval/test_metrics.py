"""Metrics on constructed two-channel signals whose answer is known."""

import numpy as np
import pytest

from fullduplex.eval import metrics
from fullduplex.eval.analysis import analyze
from fullduplex.eval.rules import fdb_backchannel, fdb_takeover

from eval_signals import SR, place

VAD_HOP = 512 / SR  # silero's window at 16 kHz


def _turn_item(speech, reply_offset):
    q, _ = speech["question"]
    r, _ = speech["reply"]
    t_ue = 1.0 + len(q) / SR
    n = int((t_ue + 7.0) * SR)
    user = place(n, (1.0, q))
    out = place(n, (t_ue + reply_offset, r))
    meta = {"scenario": "S1", "lead_s": 0.5, "user_turn_end": t_ue}
    return meta, user, out, t_ue


def test_reply_200ms_after_turn_end(speech):
    meta, user, out, _ = _turn_item(speech, 0.2)
    an = analyze(out, user)
    vals, dbg = metrics.item_metrics(meta, an, [])
    onset_in_clip = next(i for i in range(len(speech["reply"][0])) if abs(speech["reply"][0][i]) > 1e-3) / SR
    assert vals["M1"] == 1 and vals["M3"] == 0
    assert abs(vals["M2"] - (0.2 + onset_in_clip)) <= VAD_HOP + 0.03  # silero pads onsets by 30 ms
    assert abs(vals["M2"] - 0.2) <= 0.07
    assert vals["FDB.turn_tor"] == 1 and vals["FDB.turn_latency"] >= 0
    assert not an.invalid
    assert vals["M1.speech_s"] > 3.0  # the whole reply (two sentences) falls in the 5 s window


def test_reply_cut_after_a_word_is_short(speech):
    """A reply that stops after its first word is scored as a backchannel, not a turn (M1 0), like
    silence would be; M1.speech_s tells the two apart."""
    meta, user, out, t_ue = _turn_item(speech, 0.2)
    r, ws = speech["reply"]
    n_keep = int((t_ue + 0.2 + ws[0].end + 0.05) * SR)  # "Sure", then silence
    out[n_keep:] = 0.0
    vals, _ = metrics.item_metrics(meta, analyze(out, user), [])
    assert vals["M1"] == 0
    assert 0.1 < vals["M1.speech_s"] < 0.8


def test_talking_over_turn_end_is_negative_and_premature(speech):
    meta, user, out, _ = _turn_item(speech, -1.0)
    an = analyze(out, user)
    vals, _ = metrics.item_metrics(meta, an, [])
    assert vals["M2"] == pytest.approx(-1.0, abs=0.07)
    assert vals["M3"] == 1
    assert vals["FDB.turn_latency"] == 0.0  # FDB clips it: the weakness M2/M3 expose


def _barge_item(speech, stop_after):
    """System talks from 1 s; the user barges in at 3 s; the system stops ``stop_after`` s later
    (None: never stops)."""
    r, _ = speech["reply"]
    q, _ = speech["question"]
    b_s = 3.0
    n = int(12.0 * SR)
    sys_audio = np.concatenate([r, r])
    if stop_after is not None:
        sys_audio = sys_audio[: int((b_s - 1.0 + stop_after) * SR)]
    out = place(n, (1.0, sys_audio))
    user = place(n, (b_s, q))
    meta = {"scenario": "S4", "lead_s": 0.5, "barge_in": [b_s, b_s + len(q) / SR], "keywords": ["capital", "france"]}
    return meta, user, out


def test_never_stops_yield_rate_zero(speech):
    meta, user, out = _barge_item(speech, None)
    vals, dbg = metrics.item_metrics(meta, analyze(out, user), [])
    assert vals["M8"] == 0
    assert vals["M9"] > 1.0
    assert dbg["M8"]["speaking_at_barge_in"]


def test_stops_quickly_yields(speech):
    meta, user, out = _barge_item(speech, 0.3)
    vals, _ = metrics.item_metrics(meta, analyze(out, user), [])
    assert vals["M8"] == 1
    assert vals["M9"] == pytest.approx(0.3, abs=0.1)


def test_echo_of_input_is_invalid(speech):
    q, _ = speech["question"]
    user = place(int(6 * SR), (1.0, q))
    echo = np.concatenate([np.zeros(int(0.08 * SR), np.float32), 0.5 * user])[: len(user)]
    assert analyze(echo, user, asr=False).invalid
    r, _ = speech["reply"]
    assert not analyze(place(len(user), (3.0, r)), user, asr=False).invalid


def test_backchannels_counted(speech):
    s, _ = speech["story"]
    y, _ = speech["yeah"]
    d = len(s) / SR
    starts = [1.0, 1.0 + d + 0.6, 1.0 + 2 * (d + 0.6)]
    n = int((starts[-1] + d + 3.0) * SR)
    user = place(n, *[(t, s) for t in starts])
    out = place(n, (starts[0] + d + 0.1, y), (starts[1] + d + 0.1, y))
    ipus = [[t, t + d] for t in starts]
    an = analyze(out, user)
    vals, _ = metrics.item_metrics({"scenario": "S3", "lead_s": 0.5}, an, ipus)
    assert [e.kind for e in an.episodes] == ["backchannel", "backchannel"]
    assert vals["M5"][0] == 2
    assert vals["M6"] == 0                   # FDB: no takeover
    assert vals["M7"] == [2, 2]              # both right after a user phrase end


def test_fdb_rules():
    assert fdb_takeover([]) == 0
    assert fdb_takeover([["yeah", 1.0, 1.3]]) == 0
    assert fdb_takeover([["a", 0, 0.1], ["b", 0.1, 0.2], ["c", 0.2, 0.3], ["d", 0.3, 0.4]]) == 1
    assert fdb_takeover([["well", 0.0, 0.2], ["okay", 1.0, 1.2]]) == 1
    assert fdb_backchannel([[0, 0.5], [2, 6]], []) == (1, 1)       # > 3 s segment ends the scan
    assert fdb_backchannel([[0, 0.5], [2, 2.4]], [["mhm", 2.0, 2.3]]) == (0, 2)


def test_answer_matching_normalises_numbers_and_needs_order():
    from fullduplex.eval.text import contains_answer

    assert contains_answer("The answer is 42.", "forty two")
    assert contains_answer("That makes one thousand two hundred and five", "1,205")
    assert contains_answer("Sure, it is Paris!", "paris")
    assert not contains_answer("It is forty three.", "forty two")
    assert not contains_answer("two forty", "forty two")
    assert not contains_answer("", "paris") and not contains_answer("paris", "")


def test_answer_in_text_stream_and_in_speech(speech):
    """M20 reads the text stream after the turn end, M20.spoken the ASR of the reply (which says Paris)."""
    meta, user, out, t_ue = _turn_item(speech, 0.2)
    meta = dict(meta, answer="Paris")
    focus = [[t_ue - metrics.PREMATURE_S, t_ue + metrics.RELEVANCE_WINDOW_S]]
    right = [{"start": t_ue + 0.3, "text": " Sure. The capital"}, {"start": t_ue + 1.0, "text": " is Paris."}]
    vals, dbg = metrics.item_metrics(meta, analyze(out, user, right, focus=focus), [])
    assert vals["M20"] == 1 and vals["M20.spoken"] == 1, dbg["M20"]
    early = [{"start": t_ue - 2.0, "text": " Paris"}, {"start": t_ue + 1.0, "text": " is Rome."}]
    vals, _ = metrics.item_metrics(meta, analyze(out, user, early, focus=focus), [])
    assert vals["M20"] == 0  # before the question ended it does not count
    vals, _ = metrics.item_metrics(meta, analyze(out, user, [], focus=focus), [])
    assert vals["M20"] is None  # no text stream: not scored
    wrong = dict(meta, answer="Berlin")
    vals, _ = metrics.item_metrics(wrong, analyze(out, user, right, focus=focus), [])
    assert vals["M20"] == 0 and vals["M20.spoken"] == 0


def test_question_words_said_back_tell_hearing_from_knowing(speech):
    """M20.heard: the share of the words a right reply takes from the question ("capital", "France")
    that the text stream says after the turn end, right answer or not."""
    from fullduplex.eval.text import question_words

    q, reply = "What is the capital of France?", "The capital of France is Paris."
    assert question_words(q, reply) == {"capital", "france"}
    assert question_words("What is 5 plus eight?", "Five plus eight is thirteen.") == {"five", "plu", "eight"}
    meta, user, out, t_ue = _turn_item(speech, 0.2)
    meta = dict(meta, answer="Paris", text=q, reply=reply)
    focus = [[t_ue - metrics.PREMATURE_S, t_ue + metrics.RELEVANCE_WINDOW_S]]

    def heard(stream):
        vals, _ = metrics.item_metrics(meta, analyze(out, user, stream, focus=focus), [])
        return vals["M20"], vals["M20.heard"]

    assert heard([{"start": t_ue + 0.3, "text": " The capital of France"}, {"start": t_ue + 1.0, "text": " is Rome."}]) \
        == (0, 1.0)                                                       # heard, answered wrong
    assert heard([{"start": t_ue + 0.3, "text": " The capital of Spain is Madrid."}]) == (0, 0.5)
    assert heard([{"start": t_ue + 0.3, "text": " Once upon a time"}]) == (0, 0.0)
    assert heard([{"start": t_ue - 2.0, "text": " capital France"}, {"start": t_ue + 1.0, "text": " yes"}]) == (0, 0.0)
    vals, _ = metrics.item_metrics(dict(meta, reply="Paris."), analyze(out, user, [{"start": t_ue, "text": " x"}],
                                                                        focus=focus), [])
    assert vals["M20.heard"] is None                                      # nothing to say back: not scored


def test_heard_by_chance_scores_each_text_against_another_question():
    from fullduplex.eval.run import heard_by_chance

    qa = [("What is the capital of France?", "The capital of France is Paris."),
          ("How do you spell the word river?", "The word river is spelled R, I, V, E, R."),
          ("What day comes after Monday?", "The day after Monday is Tuesday.")]
    echo = [(r, q, r) for q, r in qa]                    # a model that says each reply back
    assert heard_by_chance(echo) < 0.2                   # ... says little of the next question
    babble = [("the word", q, r) for q, r in qa]          # the same words whatever it hears
    assert heard_by_chance(babble) == pytest.approx((0 + 1 / 3 + 0) / 3)
    assert heard_by_chance(echo[:1]) is None


def test_repeated_runs_pool_their_values_and_resample_items_with_all_their_runs():
    from fullduplex.eval.aggregate import BY_ID, aggregate, summarize

    m1 = BY_ID["M1"]
    single = summarize(m1, [[0], [1], [1], [0], [None]])
    assert single["value"] == 0.5 and single["n"] == 4 and "items" not in single
    # every item answered once in two runs: the rate is certain, whichever items are drawn
    disagree = summarize(m1, [[0, 1], [1, 0], [0, 1], [1, 0]])
    assert disagree["value"] == 0.5 and disagree["n"] == 8 and disagree["items"] == 4
    assert disagree["ci"] == [0.5, 0.5]
    # runs that agree: the items decide, and the CI is as wide as for the items alone
    agree = summarize(m1, [[0, 0], [1, 1], [0, 0], [1, 1]])
    alone = summarize(m1, [[0], [1], [0], [1]])
    assert agree["ci"] == alone["ci"] and agree["ci"][1] - agree["ci"][0] >= 0.5
    runs = aggregate({"x": [{"M1": 1, "M13.label": "respond"}, {"M1": 0}], "y": [{"M1": 1}, {"M1": None}]})
    assert runs["M1"]["value"] == pytest.approx(2 / 3, abs=1e-4) and runs["M1"]["items"] == 2
    assert runs["M13.labels"] == {"respond": 1}
    # a ratio metric's value is [numerator, denominator], with one run or several
    one = aggregate({"x": {"M5": [3, 1.0]}, "y": {"M5": [1, 0.5]}})["M5"]
    assert one["value"] == pytest.approx(4 / 1.5, abs=1e-4) and one["n"] == 2 and "items" not in one
    two = aggregate({"x": [{"M5": [3, 1.0]}, {"M5": [0, 1.0]}], "y": [{"M5": [1, 0.5]}, {"M5": None}]})["M5"]
    assert two["value"] == pytest.approx(4 / 2.5, abs=1e-4) and two["n"] == 3 and two["items"] == 2
