from fullduplex.systems.detok import Detokenizer
from fullduplex.systems.toy_tokenizer import toy_tokenizer


def test_pieces_skip_pad_epad_and_ungenerated():
    tok = toy_tokenizer(64, pad_id=3, epad_id=0)
    d = Detokenizer(tok, pad_id=3, epad_id=0)
    assert [d.piece(t) for t in (3, 0, -2, -1)] == ["", "", "", ""]
    assert d.piece(5) == tok.decode([5]) and d.piece(5).startswith(" ")
    assert Detokenizer(None, 3, 0).piece(5) == ""


def test_byte_level_pieces_wait_for_whole_characters():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    from fullduplex.lm.text import TextTokenizer

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    hf = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(sorted(alphabet))}, merges=[]))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    tok = TextTokenizer(hf=hf)
    ids = tok.encode("é!")  # "é" is two byte tokens
    assert len(ids) == 3
    d = Detokenizer(tok, pad_id=-10, epad_id=-11)
    assert [d.piece(i) for i in ids] == ["", "é", "!"]
