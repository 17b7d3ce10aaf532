"""Text tokens -> text pieces as the model produces them, one session at a time.

PAD/EPAD and negative ids are skipped. Byte-level tokenizers can split one character over several
tokens; a piece is held back until it decodes to whole characters.
"""

from __future__ import annotations

from ..lm.text import TextTokenizer

_REPLACEMENT = "\ufffd"


class Detokenizer:
    def __init__(self, tokenizer: TextTokenizer | None, pad_id: int, epad_id: int, max_pending: int = 4):
        self.tok, self.skip, self.max_pending = tokenizer, {pad_id, epad_id}, max_pending
        self.pending: list[int] = []

    def reset(self) -> None:
        self.pending = []

    def piece(self, token: int) -> str:
        """The text that token adds ("" for PAD/EPAD, held-back bytes or no tokenizer)."""
        if token < 0 or token in self.skip or self.tok is None:
            return ""
        if self.tok.sp is not None:
            return self.tok.sp.id_to_piece(int(token)).replace("\u2581", " ")
        self.pending.append(int(token))
        text = self.tok.decode(self.pending)
        if text.endswith(_REPLACEMENT) and len(self.pending) < self.max_pending:
            return ""
        self.pending = []
        return text
