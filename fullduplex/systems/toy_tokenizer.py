"""A made-up syllable vocabulary, so an untrained LM's text stream reads as something in tests and demos."""

from __future__ import annotations

from ..lm.text import TextTokenizer

_ONSETS = "b d f g k l m n p r s t v z".split()
_VOWELS = "a e i o u".split()


def toy_tokenizer(vocab_size: int, pad_id: int = 3, epad_id: int = 0) -> TextTokenizer:
    """A word-level tokenizer of ``vocab_size`` ids: " ba", " be", ... and <pad>/<epad> at their ids."""
    from tokenizers import Tokenizer, models

    syllables = [" " + o + v for o in _ONSETS for v in _VOWELS]
    vocab: dict[str, int] = {}
    for i in range(vocab_size):
        if i == pad_id:
            tok = "<pad>"
        elif i == epad_id:
            tok = "<epad>"
        else:
            tok = syllables[i % len(syllables)] + ("" if i < len(syllables) else str(i // len(syllables)))
        vocab[tok] = i
    hf = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    return TextTokenizer(hf=hf)
