"""Word lists and text rules for the lexical metrics: keywords (M11, M13), backchannel cues
(CANDOR "Backbiter", evaluation.md §6), repair phrases (M13), answer matching and the
question's words said back (M20)."""

from __future__ import annotations

import re

from fullduplex.lm.text import FUNCTION_WORDS

BC_CUES = set("a ah alright awesome cool dope e exactly god gotcha huh hmm mhm mm mmm nice oh okay really right "
              "sick sucks sure uh um wow yeah yep yes yup uhhuh mmhmm".split())
BC_PROHIBITED_START = set("and but i i'm it it's like so that that's we we're well you you're".split())
REPAIR = ["sorry", "repeat", "what was that", "pardon", "say that again", "didn't catch", "come again"]
STOP = FUNCTION_WORDS


def tokens(text: str) -> list[str]:
    """Lower-case word tokens (apostrophes kept, hyphens split)."""
    return re.findall(r"[a-z0-9']+", text.lower().replace("-", " "))


def stem(w: str) -> str:
    """A crude suffix stripper: enough to match 'legs'/'leg', 'spelled'/'spell'."""
    for suf in ("ing", "ed", "es", "s"):
        if len(w) > len(suf) + 2 and w.endswith(suf):
            return w[: -len(suf)]
    return w


def content_words(text: str) -> set[str]:
    return {stem(t) for t in tokens(text) if t not in STOP}


def keywords(text: str) -> list[str]:
    """Content-word stems of a request (the words a relevant answer likely repeats)."""
    return sorted(content_words(text))


def is_cue_backchannel(words: list[str]) -> bool:
    """CANDOR rule: <= 3 words, > 50 % cue words, not starting with a prohibited word."""
    toks = [t for w in words for t in tokens(w)]
    if not toks or len(toks) > 3 or toks[0] in BC_PROHIBITED_START:
        return False
    return sum(t in BC_CUES for t in toks) / len(toks) > 0.5


def has_repair(text: str) -> bool:
    low = " ".join(tokens(text))
    return any(r in low for r in REPAIR)


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if (a or b) else 0.0


def spoken_tokens(text: str) -> list[str]:
    """:func:`tokens` with numerals written out ("42" -> "forty two", "1,000" -> "one thousand") and
    "and" dropped inside numbers' words, so that ASR digits and the content's number words compare."""
    from fullduplex.data.content import number_words

    out: list[str] = []
    for t in tokens(re.sub(r"(?<=\d),(?=\d{3})", "", text)):
        out.extend(number_words(int(t)).split() if t.isdigit() and int(t) < 10_000 else [t])
    return [t for t in out if t != "and"]


def question_words(question: str, reply: str) -> set[str]:
    """The content words a right reply takes from the question ("What is the capital of France?",
    "The capital of France is Paris." -> {capital, france}): what a reply says back when it heard
    the question, whatever it then answers. Numbers compare as words (:func:`spoken_tokens`)."""
    def words(t: str) -> set[str]:
        return {stem(w) for w in spoken_tokens(t) if w not in STOP}
    return words(question) & words(reply)


def heard_share(text: str, question: str, reply: str) -> float | None:
    """The share of :func:`question_words` that ``text`` says (None when the two share no word)."""
    want = question_words(question, reply)
    if not want:
        return None
    said = {stem(w) for w in spoken_tokens(text)}
    return len(want & said) / len(want)


def contains_answer(text: str, answer: str) -> bool:
    """Whether the answer's words occur in text, contiguous and in order (see :func:`spoken_tokens`)."""
    a, t = spoken_tokens(answer), spoken_tokens(text)
    return bool(a) and any(t[i:i + len(a)] == a for i in range(len(t) - len(a) + 1))
