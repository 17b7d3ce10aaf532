"""The text side of the LM: a tokenizer wrapper and the word alignments -> per-frame text stream.

The text stream has one token per 80 ms frame (12.5 Hz), as Kyutai's fine-tuning builds it:

    frames   0    1    2     3      4      5    6    7
    tokens  PAD  PAD  EPAD  " hel" "lo"   PAD  EPAD " world"

* every frame starts as PAD; a word that starts at s seconds puts its tokens (the word tokenized
  on its own, no BOS) one per frame from frame floor(s * 12.5);
* the frame just before a word's first token becomes EPAD if it was PAD ("a word comes next");
* frames after a word's tokens up to int(end * 12.5) stay PAD;
* if the next word starts before all tokens of the previous one were placed, the leftover tokens are
  dropped (``keep_and_shift=True`` queues them instead);
* words of zero or negative duration are dropped; with ``main_speaker`` set only that speaker's
  words are kept;
* no alignments at all (None) gives the zero token -1 everywhere: no text input, no text loss.
"""

from __future__ import annotations

import math
from collections import deque
from pathlib import Path
from typing import Sequence

import torch

Alignment = tuple[str, tuple[float, float], str]  # (word, (start_s, end_s), speaker)

# Words that carry no content of their own: what a reply repeats from any question ("what", "is", "the")
# rather than from this one. Content words are the rest (``content_token_ids``; the evaluation's
# keyword rules, eval/text.py).
FUNCTION_WORDS = frozenset("""a an the and or but if then so to of in on at by for with from about as into over after before
is are was were be been being am do does did have has had i you he she it we they me my your our their this that
these those what which who whom how when where why can could would should will shall may might must not no yes
please tell know just there here some any one its it's i'm let me us up out okay oh wait hold actually sorry
quick like""".split())

FRAME_RATE = 12.5
MAIN_SPEAKER = "SPEAKER_MAIN"


class TextTokenizer:
    """A sentencepiece ``.model`` or a Hugging Face ``tokenizers`` JSON behind one small interface."""

    def __init__(self, sp=None, hf=None, path: Path | None = None):
        if (sp is None) == (hf is None):
            raise ValueError("give exactly one of a sentencepiece processor or a tokenizers.Tokenizer")
        self.sp, self.hf, self.path = sp, hf, path

    @classmethod
    def load(cls, path: str | Path) -> "TextTokenizer":
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no tokenizer at {path}")
        if path.suffix == ".model":
            import sentencepiece

            return cls(sp=sentencepiece.SentencePieceProcessor(model_file=str(path)), path=path)
        if path.suffix == ".json":
            from tokenizers import Tokenizer

            return cls(hf=Tokenizer.from_file(str(path)), path=path)
        raise ValueError(f"unknown tokenizer file {path.name}: use a sentencepiece .model or a tokenizers .json")

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size() if self.sp is not None else self.hf.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        """Token ids of text, without BOS/EOS."""
        if self.sp is not None:
            return list(self.sp.encode(text))
        return self.hf.encode(text, add_special_tokens=False).ids

    def encode_word(self, word: str) -> list[int]:
        """Ids of one word as it appears after a space (sentencepiece adds its own word-start marker)."""
        word = word.strip()
        return self.encode(word) if self.sp is not None else self.encode(" " + word)

    def decode(self, ids: Sequence[int]) -> str:
        ids = [int(i) for i in ids]
        return self.sp.decode(ids) if self.sp is not None else self.hf.decode(ids, skip_special_tokens=False)

    def save(self, path: str | Path) -> None:
        """Write the tokenizer file (``tokenizer.json`` for tokenizers; sentencepiece: a copy of its model)."""
        path = Path(path)
        if self.hf is not None:
            self.hf.save(str(path))
        else:
            path.write_bytes(self.sp.serialized_model_proto())


def text_stream(alignments: Sequence[Alignment] | None, tokenizer: TextTokenizer, num_frames: int, *,
                frame_rate: float = FRAME_RATE, pad_id: int = 3, epad_id: int = 0, zero_id: int = -1,
                main_speaker: str | None = MAIN_SPEAKER, keep_and_shift: bool = False) -> torch.Tensor:
    """Word alignments [(word, (start_s, end_s), speaker)] (times relative to the segment) -> long [num_frames]."""
    if alignments is None:
        return torch.full((num_frames,), zero_id, dtype=torch.long)
    words = sorted(alignments, key=lambda a: a[1][0])
    if main_speaker is not None:
        words = [a for a in words if a[2] == main_speaker]
    words = [a for a in words if a[1][0] < a[1][1]]
    tokenized = [(tokenizer.encode_word(w), (float(s), float(e))) for w, (s, e), _ in words]

    out = [pad_id] * num_frames
    pending: deque[int] = deque()
    i, last_end = 0, -1
    for t in range(num_frames):
        # every word starting before the end of frame t is taken now; without keep_and_shift the latest wins
        while i < len(tokenized) and tokenized[i][1][0] * frame_rate < t + 1:
            toks, (_, end) = tokenized[i]
            last_end = int(end * frame_rate)
            pending = pending + deque(toks) if keep_and_shift else deque(toks)
            i += 1
        if pending:
            if t > 0 and out[t - 1] == pad_id:
                out[t - 1] = epad_id
            out[t] = pending.popleft()
        elif t <= last_end:
            out[t] = pad_id
    return torch.tensor(out, dtype=torch.long)


def num_frames(duration_s: float, frame_rate: float = FRAME_RATE) -> int:
    """Frames covering ``duration_s`` seconds: ceil(duration * frame_rate)."""
    return math.ceil(duration_s * frame_rate)


def stream_to_text(tokens: Sequence[int], tokenizer: TextTokenizer, pad_id: int = 3, epad_id: int = 0) -> str:
    """Readable text of a text stream: special ids (PAD, EPAD, negative) dropped, the rest decoded."""
    ids = [int(t) for t in tokens if int(t) >= 0 and int(t) not in (pad_id, epad_id)]
    return tokenizer.decode(ids)


def content_token_ids(tokenizer: TextTokenizer) -> torch.Tensor:
    """A bool [vocab] lookup: True for the ids that decode to (part of) a content word, at least two
    letters and not one of ``FUNCTION_WORDS``; False for punctuation, digits, spaces and special tokens."""
    keep = torch.zeros(tokenizer.vocab_size, dtype=torch.bool)
    for i in range(tokenizer.vocab_size):
        w = tokenizer.decode([i]).strip().lower()
        keep[i] = len(w) >= 2 and w.isalpha() and w not in FUNCTION_WORDS
    return keep


def word_ids(tokenizer: TextTokenizer | None, cfg) -> torch.Tensor:
    """The lookup ``echo_positions`` reads: :func:`content_token_ids` of the tokenizer; for an LM
    without one (a test model), every text id of ``cfg`` (an LMConfig) but PAD and EPAD."""
    if tokenizer is not None:
        return content_token_ids(tokenizer)
    keep = torch.ones(cfg.text_card, dtype=torch.bool)
    keep[[cfg.existing_text_padding_id, cfg.existing_text_end_padding_id]] = False
    return keep


def echo_positions(text: torch.Tensor, user_text: torch.Tensor, content: torch.Tensor,
                   horizon: int = 100) -> torch.Tensor:
    """Where the text stream says back a word the user said: text and user_text [B, 1, T] (the two
    speakers' text streams) -> bool [B, 1, T], True where ``text`` holds a content token (``content``,
    from :func:`content_token_ids`) that ``user_text`` holds in the ``horizon`` frames before (8 s at
    100). In "What is the capital of France?" / "The capital of France is Paris." that is " capital"
    and " France": the words a reply can only say right by hearing this question."""
    t, u = text[:, 0].long(), user_text[:, 0].long()
    T = t.shape[-1]
    ok = content.to(t.device)
    said = (t >= 0) & (t < len(ok)) & ok[t.clamp(0, len(ok) - 1)]
    same = t[:, :, None] == u[:, None, :]                                    # [B, T (text), T (user)]
    lag = torch.arange(T, device=t.device)[:, None] - torch.arange(T, device=t.device)[None, :]
    before = (lag > 0) & (lag <= horizon)
    return (said & (same & before).any(-1))[:, None]
