"""Word alignments -> per-frame text stream (PAD=3, EPAD=0), with a character-level tokenizer."""
import pytest
import torch
from tokenizers import Tokenizer, decoders, models

from fullduplex.lm.text import TextTokenizer, num_frames, stream_to_text, text_stream

SPECIALS = ["<epad>", "<x1>", "<x2>", "<pad>"]  # ids 0..3: EPAD=0 and PAD=3 as in Kyutai's models
CHARS = list(" abcdefghijklmnopqrstuvwxyz")
P, E = 3, 0


@pytest.fixture(scope="module")
def tok():
    vocab = {t: i for i, t in enumerate(SPECIALS + CHARS)}
    t = Tokenizer(models.BPE(vocab=vocab, merges=[]))  # one token per character
    t.decoder = decoders.Fuse()
    return TextTokenizer(hf=t)


def ids(tok, s):
    return tok.encode(s)


def test_word_tokens_one_per_frame_with_epad_before(tok):
    # "hi" = " ", "h", "i" starts at 0.4 s = frame 5; its end 0.8 s = frame 10
    out = text_stream([("hi", (0.4, 0.8), "SPEAKER_MAIN")], tok, 12).tolist()
    assert out == [P, P, P, P, E, *ids(tok, " hi"), P, P, P, P]
    assert stream_to_text(out, tok) == " hi"


def test_word_at_frame_zero_has_no_epad(tok):
    out = text_stream([("ab", (0.0, 0.2), "SPEAKER_MAIN")], tok, 5).tolist()
    assert out == [*ids(tok, " ab"), P, P]


def test_next_word_too_close_drops_leftover_tokens(tok):
    words = [("hello", (0.0, 0.3), "SPEAKER_MAIN"), ("yo", (0.16, 0.4), "SPEAKER_MAIN")]  # frames 0 and 2
    out = text_stream(words, tok, 8).tolist()
    assert out == [*ids(tok, " h"), *ids(tok, " yo"), P, P, P]  # no EPAD: frame 1 holds a token
    shifted = text_stream(words, tok, 12, keep_and_shift=True).tolist()
    assert shifted == [*ids(tok, " hello"), *ids(tok, " yo"), P, P, P]


def test_words_in_the_same_frame_keep_the_last(tok):
    words = [("a", (0.0, 0.01), "SPEAKER_MAIN"), ("b", (0.02, 0.05), "SPEAKER_MAIN")]
    assert text_stream(words, tok, 3).tolist() == [*ids(tok, " b"), P]


def test_long_silence_is_pad_with_epad_before_the_next_word(tok):
    words = [("b", (3.0, 3.1), "SPEAKER_MAIN"), ("a", (0.0, 0.1), "SPEAKER_MAIN")]  # unsorted on purpose
    out = text_stream(words, tok, num_frames(4.0)).tolist()
    assert len(out) == 50
    assert out[:2] == ids(tok, " a") and out[36] == E and out[37:39] == ids(tok, " b")
    assert set(out[2:36]) == {P} and set(out[39:]) == {P}


def test_empty_none_other_speakers_and_zero_duration(tok):
    assert text_stream([], tok, 4).tolist() == [P] * 4
    assert text_stream(None, tok, 4).tolist() == [-1] * 4
    words = [("a", (0.0, 0.1), "SPEAKER_OTHER"), ("b", (0.1, 0.1), "SPEAKER_MAIN")]
    assert text_stream(words, tok, 4).tolist() == [P] * 4
    assert text_stream(words[:1], tok, 4, main_speaker=None).tolist() == [*ids(tok, " a"), P, P]
    # a word past the end of the segment never shows; the frame count is what the caller asks for
    assert text_stream([("a", (5.0, 5.2), "SPEAKER_MAIN")], tok, 4).tolist() == [P] * 4


def test_custom_pad_ids_and_tensor_type(tok):
    out = text_stream([("a", (0.2, 0.3), "SPEAKER_MAIN")], tok, 5, pad_id=7, epad_id=8)
    assert out.dtype == torch.long and out.tolist() == [7, 8, *ids(tok, " a"), 7]


def test_tokenizer_files(tmp_path, tok):
    tok.save(tmp_path / "tokenizer.json")
    again = TextTokenizer.load(tmp_path / "tokenizer.json")
    assert again.encode(" hello") == tok.encode(" hello") and again.vocab_size == len(SPECIALS + CHARS)
    with pytest.raises(ValueError, match="unknown tokenizer file"):
        (tmp_path / "vocab.txt").write_text("x")
        TextTokenizer.load(tmp_path / "vocab.txt")
    with pytest.raises(FileNotFoundError):
        TextTokenizer.load(tmp_path / "missing.model")


def test_echo_positions_are_content_words_the_user_said_before():
    from fullduplex.lm.text import echo_positions

    PAD, CAPITAL, FRANCE, THE, PARIS = 3, 10, 11, 12, 13
    content = torch.ones(20, dtype=torch.bool)
    content[[PAD, THE]] = False
    user = torch.tensor([[[THE, CAPITAL, FRANCE, PAD, PAD, PAD, PAD, PAD, PAD, PAD]]])
    text = torch.tensor([[[PAD, FRANCE, PAD, THE, CAPITAL, PAD, FRANCE, PARIS, PAD, -1]]])
    got = echo_positions(text, user, content)[0, 0].tolist()
    # frame 1: France before the user said it; 3: "the" is no content word; 7: Paris was never said
    assert got == [False, False, False, False, True, False, True, False, False, False]
    assert echo_positions(text, user, content, horizon=3)[0, 0].tolist()[4:7] == [True, False, False]


def test_content_tokens_of_the_bundled_tokenizer():
    from fullduplex.lm.smollm import load_smollm2_tokenizer
    from fullduplex.lm.text import content_token_ids

    tok = load_smollm2_tokenizer()
    content = content_token_ids(tok)
    assert all(content[i] for w in (" capital", " France", " Paris", " spelled") for i in tok.encode(w))
    assert not any(content[i] for w in (" the", " is", " What", ".", " 42", " R") for i in tok.encode(w))
