"""Floor labels: where the user pauses or hesitates and where a turn ends, in the shards (tokenize), in the
training loss (``lm.hold_weight``) and in `eval-lm`'s turn-taking report."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from test_tokenize_lora import _tiny_codec, _word_tokenizer
from train_helpers import lm_cfg

from fullduplex.data.format import ASSISTANT, USER, Item, append_manifest, write_item
from fullduplex.lm.loss import text_weights
from fullduplex.train.lm_data import ShardWindows, split_rows
from fullduplex.train.lm_eval import evaluate_lm, floor_spans
from fullduplex.train.loop import train
from fullduplex.train.tokenize import FLOOR_VERSION, HESITATE, HOLD, TAKE, floor_labels, tokenize_dataset

PAD, EPAD, WORD = 3, 0, 7
FR = 12.5


def _stream(words_at: list[int], T: int = 40) -> torch.Tensor:
    """An assistant text stream of T frames with a word at each frame of ``words_at`` (EPAD before each)."""
    text = torch.full((T,), PAD)
    for f in words_at:
        text[f - 1], text[f] = EPAD, WORD
    return text


def test_floor_labels_mark_the_users_hesitations_and_the_gaps_before_replies():
    events = [
        {"type": "turn", "speaker": USER, "start": 0.1, "end": 1.0},
        {"type": "pause", "speaker": USER, "start": 0.42, "end": 0.9, "hesitation": True},  # frames 6..10 wholly inside
        {"type": "pause", "speaker": USER, "start": 0.2, "end": 0.3},  # too short to hold a whole frame
        {"type": "turn", "speaker": ASSISTANT, "start": 1.25, "end": 1.8},
        {"type": "pause", "speaker": ASSISTANT, "start": 1.5, "end": 1.6, "hesitation": True},  # not the user's
        {"type": "turn", "speaker": USER, "start": 1.9, "end": 2.0, "interrupted": True},  # cut off: no reply owed
        {"type": "turn", "speaker": USER, "start": 2.1, "end": 2.4},  # answered 2.5 s later: too late to count
        {"type": "turn", "speaker": ASSISTANT, "start": 4.9, "end": 5.5},
    ]
    text = _stream([16, 19, 35])  # the reply's first word at frame 16 (EPAD at 15)
    lab = floor_labels(events, text, 0.0, 40, FR, PAD)
    assert lab.dtype == torch.int8 and lab.shape == (40,)
    assert (lab == HESITATE).nonzero().flatten().tolist() == [6, 7, 8, 9, 10]
    assert (lab == TAKE).nonzero().flatten().tolist() == [13, 14, 15]  # the turn ends in frame 12; reply at 15
    assert int((lab != 0).sum()) == 8
    # a later window sees the same events shifted; frames from `frames` on (padding) stay 0
    later = floor_labels(events, _stream([9, 12]), 0.48, 40, FR, PAD)
    assert (later == HESITATE).nonzero().flatten().tolist() == [0, 1, 2, 3, 4]
    assert (later == TAKE).nonzero().flatten().tolist() == [7, 8]
    cut = floor_labels(events, text, 0.0, 8, FR, PAD)
    assert (cut == HESITATE).nonzero().flatten().tolist() == [6, 7] and int(cut[8:].abs().sum()) == 0
    # a reply that overlaps the end of the turn leaves no gap to label
    overlap = [events[0], {"type": "turn", "speaker": ASSISTANT, "start": 0.95, "end": 1.5}]
    assert int((floor_labels(overlap, _stream([12, 14]), 0.0, 40, FR, PAD) == TAKE).sum()) == 0


def test_floor_labels_hold_the_pauses_between_the_users_sentences_unless_the_assistant_speaks():
    events = [
        {"type": "turn", "speaker": USER, "start": 0.0, "end": 3.0},
        {"type": "pause", "speaker": USER, "start": 0.5, "end": 0.9},  # frames 7..10 wholly inside: HOLD
        {"type": "pause", "speaker": USER, "start": 1.3, "end": 1.8},  # the assistant says "mhm" in it: left out
        {"type": "backchannel", "speaker": ASSISTANT, "start": 1.45, "end": 1.7},
        {"type": "pause", "speaker": USER, "start": 2.0, "end": 2.6},  # frames 25..31, but a word at 30 (EPAD 29)
        {"type": "pause", "speaker": ASSISTANT, "start": 3.2, "end": 3.9},  # not the user's
    ]
    lab = floor_labels(events, _stream([20, 30]), 0.0, 50, FR, PAD)
    assert (lab == HOLD).nonzero().flatten().tolist() == [7, 8, 9, 10, 25, 26, 27, 28, 31]
    assert int((lab == HESITATE).sum()) == 0 and int((lab[12:25] != 0).sum()) == 0


def _dataset_with_a_hesitation(root):
    """One stereo 24 kHz item of 3 s: the user speaks, hesitates 0.8-1.4 s, ends at 1.9 s; the assistant replies at 2.2 s."""
    sr, n = 24_000, 72_000
    rng = np.random.default_rng(0)
    audio = (0.05 * rng.standard_normal((2, n))).astype(np.float32)
    words = [("there", (0.2, 0.7), USER), ("are", (1.4, 1.9), USER), ("hello", (2.2, 2.6), ASSISTANT)]
    events = [{"type": "turn", "speaker": USER, "start": 0.2, "end": 1.9},
              {"type": "pause", "speaker": USER, "start": 0.7, "end": 1.4, "hesitation": True},
              {"type": "turn", "speaker": ASSISTANT, "start": 2.2, "end": 2.6}]
    entry = write_item(root, "audio/000000.wav", Item(audio, words, {"events": events}))
    append_manifest(root, [entry])
    return root


def test_tokenize_writes_floor_labels_and_adds_them_to_older_shards(tmp_path):
    data = _dataset_with_a_hesitation(tmp_path / "ds")
    codec, tok = _tiny_codec(tmp_path / "codec"), _word_tokenizer(tmp_path / "tok.json")
    out = tmp_path / "shards"
    tokenize_dataset(str(data), str(codec), str(tok), str(out), segment_s=3.2, progress=False)
    path = out / "shard-00000.safetensors"
    made = {k: v.clone() for k, v in load_file(str(path)).items()}
    floor = made["floor"][0]
    assert made["floor"].shape == made["user_text"].shape
    assert (floor == HESITATE).nonzero().flatten().tolist() == list(range(9, 17))  # 0.72-1.36 s
    take = (floor == TAKE).nonzero().flatten().tolist()
    assert take[0] == 24 and made["codes"][0, 0, take[-1]] == EPAD and made["codes"][0, 0, take[-1] + 1] == 4  # hello
    # shards made before floor labels existed: training asks for a rerun, which adds them without re-encoding
    save_file({k: v for k, v in made.items() if k != "floor"}, str(path))
    with pytest.raises(ValueError, match="no floor labels.*rerun `fullduplex data tokenize`"):
        ShardWindows(out, 1, 0, floor=True)
    r = tokenize_dataset(str(data), str(codec), str(tok), str(out), segment_s=3.2, progress=False)
    assert r["floor_added"] == 1 and r["user_text_added"] == 0 and r["shards_written"] == 0
    again = load_file(str(path))
    assert torch.equal(again["floor"], made["floor"]) and torch.equal(again["codes"], made["codes"])
    w = ShardWindows(out, 1, 0, user_text=True, floor=True)
    codes, user, fl = split_rows(w.batch(0), True, True)
    assert torch.equal(codes[0], made["codes"][0].long()) and torch.equal(user[0, 0], made["user_text"][0].long())
    assert torch.equal(fl[0, 0], made["floor"][0].long())
    # labels of an older version (1: hesitations marked 1, no version in the file) are made again
    old = {**made, "floor": torch.where(made["floor"] == HESITATE, HOLD, made["floor"]).to(torch.int8)}
    save_file(old, str(path))
    with pytest.raises(ValueError, match="older version.*label them again"):
        ShardWindows(out, 1, 0, floor=True)
    assert "label them again" in ShardWindows(out, 1, 0).stale_floor()
    r = tokenize_dataset(str(data), str(codec), str(tok), str(out), segment_s=3.2, progress=False)
    assert r["floor_added"] == 1 and r["shards_written"] == 0
    assert torch.equal(load_file(str(path))["floor"], made["floor"])
    assert ShardWindows(out, 1, 0, floor=True).stale_floor() is None


def test_floor_spans_compound_each_frames_hazard():
    labels = torch.tensor([HOLD, 0, HOLD, HOLD, 0, TAKE, TAKE, HESITATE, 0, HOLD])
    hazard = torch.tensor([0.9, 0.9, 0.5, 0.5, 0.9, 0.2, 0.5, 0.4, 0.9, 0.9])
    spans = {k: [] for k in ("hold", "hesitate", "take", "hold_h", "hesitate_h", "take_h")}
    floor_spans(hazard, labels, spans)  # the spans at the first and the last frame are cut: left out
    assert spans["hold"] == pytest.approx([0.75]) and spans["take"] == pytest.approx([0.6])
    assert spans["hesitate"] == pytest.approx([0.4]) and spans["hesitate_h"] == pytest.approx([0.4])
    assert spans["hold_h"] == pytest.approx([0.5, 0.5]) and spans["take_h"] == pytest.approx([0.2, 0.5])


def _hold_shards(folder, windows: int = 8, frames: int = 16):
    """Random lm_debug shards whose text is PAD at the HOLD frames 5-9 and a TAKE span at 11-12."""
    g = torch.Generator().manual_seed(1)
    folder.mkdir(parents=True)
    text = torch.randint(4, 64, (windows, 1, frames), generator=g)
    text[:, :, ::3] = PAD
    text[:, :, 5:10] = PAD
    text[:, :, 11], text[:, :, 12] = PAD, EPAD
    codes = torch.cat([text, torch.randint(0, 32, (windows, 4, frames), generator=g)], 1).to(torch.int32)
    floor = torch.zeros(windows, frames, dtype=torch.int8)
    floor[:, 5:10], floor[:, 11:13] = HOLD, TAKE
    save_file({"codes": codes, "floor": floor, "item": torch.arange(windows, dtype=torch.int32)},
              str(folder / "shard-00000.safetensors"), metadata={"floor_labels": str(FLOOR_VERSION)})
    (folder / "tokenize.json").write_text(json.dumps({"num_codebooks": 2, "card": 32, "text_vocab": 64,
                                                      "pad_id": PAD, "epad_id": EPAD}))
    return folder


def test_floor_weights_make_the_model_wait_in_hesitations_and_answer_at_turn_ends(tmp_path):
    from fullduplex.lm.config import LMConfig

    cfg = LMConfig(text_card=64, existing_text_padding_id=PAD, existing_text_end_padding_id=EPAD, n_q=4, dep_q=2, delays=[0] * 5)
    targets = torch.tensor([[[WORD, PAD, PAD, WORD]]])
    frame_w = torch.tensor([[[1.0, 4.0, 1.0, 1.0]]])
    w = text_weights(targets, torch.ones_like(targets, dtype=torch.bool), cfg, 0.5, frame_w)
    assert w.tolist() == [[[1.0, 2.0, 0.5, 1.0]]]

    shards = _hold_shards(tmp_path / "shards")
    scores = {}
    for hw, tw in ((1.0, 1.0), (30.0, 1.0), (30.0, 30.0)):
        run = tmp_path / f"hw{hw}-{tw}"
        res = train(lm_cfg(run, shards, steps=25, ckpt_every=100, log_every=5,
                           **{"lm.hold_weight": hw, "lm.take_weight": tw}))
        assert res["finished"]
        scores[hw, tw] = evaluate_lm(run / "final", shards, progress=False, temp_text=1.0, top_k_text=0)["floor"]
    plain, held, both = scores[1.0, 1.0], scores[30.0, 1.0], scores[30.0, 30.0]
    assert plain["hold_pauses"] == held["hold_pauses"] == 8 and plain["turn_ends"] == 8
    # the same data and steps: weighting the hesitation frames lowers the chance of talking into them ...
    assert held["pause_taken"] < 0.7 * plain["pause_taken"]
    # ... and weighting the frames where replies begin keeps the model answering
    assert both["reply_on_time"] > held["reply_on_time"] + 0.1
    # the report follows the text sampling of generation: a PAD bonus or a lower temperature waits longer
    final = tmp_path / "hw1.0-1.0" / "final"
    bonus = evaluate_lm(final, shards, progress=False, temp_text=1.0, top_k_text=0, padding_bonus=2.0)["floor"]
    cold = evaluate_lm(final, shards, progress=False, temp_text=0.5, top_k_text=0)["floor"]
    assert bonus["pause_taken"] < plain["pause_taken"] and bonus["sampling"]["padding_bonus"] == 2.0
    assert cold["hold_hazard"] < plain["hold_hazard"]
