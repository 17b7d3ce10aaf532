"""Word ABX (`fullduplex eval abx`): the DTW distance, the error rates, and the command on TTS speech."""

import json

import numpy as np
import pytest

from fullduplex.cli import main
from fullduplex.eval.codec_abx import Token, abx_errors, dtw_distances, token_distances, word_frames

from eval_signals import have_voices


def test_dtw_forgives_a_slower_copy_and_not_another_sound():
    x, y = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    seqs = np.zeros((3, 4, 2))
    seqs[0, :2] = [x, y]              # x y
    seqs[1, :4] = [x, x, x, y]        # the same, slower
    seqs[2, :2] = [y, x]              # the other order
    lens = np.array([2, 4, 2])
    d = dtw_distances(seqs, lens, seqs, lens)
    assert d[0, 1] == pytest.approx(0.0) and d[1, 0] == pytest.approx(0.0)
    # y x against x y: every step of the cheapest path is a full mismatch (cosine distance 1)
    assert d[0, 2] == pytest.approx(1.0)
    assert np.allclose(np.diag(d), 0.0)


def _tokens(words, voices, carriers=2):
    return [Token(w, v, c, len(words) * carriers * vi + carriers * wi + c, 0.0, 0.16)
            for vi, v in enumerate(voices) for wi, w in enumerate(words) for c in range(carriers)]


def test_abx_is_zero_for_word_identity_and_chance_for_speaker_identity():
    words, voices = ["one", "two", "three"], ["a", "b", "c"]
    toks = _tokens(words, voices)
    rng = np.random.default_rng(0)
    # what was said (plus a little of who said it): every triplet right
    said = [np.tile(np.eye(3)[words.index(t.word)] * 5 + rng.normal(0, 0.1, 3), (2, 1)) for t in toks]
    res = abx_errors(token_distances(said, toks, 12.5), toks)
    assert res == {"across": 0.0, "within": 0.0}
    # only who said it: A and B are equally far from every X, so every triplet is a tie (50 %)
    who = [np.tile(np.eye(3)[voices.index(t.voice)], (2, 1)) for t in toks]
    res = abx_errors(token_distances(who, toks, 12.5), toks)
    assert res == {"across": 50.0, "within": 50.0}


def test_word_frames_takes_the_frames_a_word_overlaps():
    feats = np.arange(10)[:, None].astype(float)
    assert word_frames(feats, 0.10, 0.30, 12.5)[:, 0].tolist() == [1, 2, 3]   # frames of 80 ms: 1..3
    assert word_frames(feats, 0.20, 0.21, 12.5)[:, 0].tolist() == [2]
    assert word_frames(feats, 5.0, 5.2, 12.5)[:, 0].tolist() == [9]           # past the end: the last frame


@pytest.mark.skipif(not have_voices(), reason="flite voices not installed (scripts/install.sh)")
def test_eval_abx_command_ranks_a_spectrogram_above_chance(capsys):
    words = ["one", "two", "five", "nine", "Monday", "Friday"]
    assert main(["eval", "abx", "--voices", "flite-slt", "flite-rms", "--words", *words,
                 "--no-whisper", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    rows = {r["representation"]: r for r in res["rows"]}
    assert res["tokens"] == 6 * 3 * 2 and res["voices"] == ["flite-rms", "flite-slt"]
    assert set(rows) == {"log-mel (no learning)", "bundled: latent before quantization",
                         "bundled: codebook 1 (semantic)", "bundled: all 8 codebooks"}
    # a man's and a woman's voice: a plain spectrogram still tells most of these words apart
    assert rows["log-mel (no learning)"]["across"] < 35
    assert rows["log-mel (no learning)"]["within"] < 15
    for r in rows.values():
        assert 0 <= r["across"] <= 100 and 0 <= r["within"] <= 100


def test_eval_abx_refuses_what_it_cannot_measure(capsys):
    assert main(["eval", "abx", "--voices", "flite-slt", "no-such-voice", "--no-whisper"]) == 2
    assert "needs two installed voices" in capsys.readouterr().err
    assert main(["eval", "abx", "--words", "one", "one", "--no-whisper"]) == 2
    assert "at least two different words" in capsys.readouterr().err
