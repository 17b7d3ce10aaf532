"""Word tokens of a sentence as the engines and the alignments see them."""

from __future__ import annotations

import re

_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")


def words(text: str) -> list[str]:
    """The spoken words of ``text``: letters/digits with inner apostrophes, punctuation dropped."""
    return _WORD.findall(text)


def normalize(word: str) -> str:
    """Lowercase, letters/digits/apostrophes only: the form used to compare words."""
    return re.sub(r"[^a-z0-9']", "", word.lower())
