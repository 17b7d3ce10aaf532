"""What the two speakers say: a built-in generator of short exchanges with checkable answers.

Task families (answer checkable from the item JSON): arithmetic, spelling, counting, facts from a
small knowledge base, time and date. Plus small talk and story monologues (by either speaker) that
invite backchannels. Numbers are written as words so the text is exactly what the voices say.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen " \
        "sixteen seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> str:
    """0 <= n < 10000 as English words without hyphens ("forty two")."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " and " + number_words(rest))
    rest = n % 1000
    return number_words(n // 1000) + " thousand" + ("" if rest == 0 else " " + number_words(rest))


@dataclass
class Exchange:
    """One user turn and the assistant's reply. ``answer`` is the checkable part of the reply (or
    None). ``user_long`` marks a user monologue (the assistant backchannels during it)."""

    family: str
    user: list[str]
    assistant: list[str]
    answer: str | None = None
    user_long: bool = False
    interruptible: bool = False
    extra: dict = field(default_factory=dict)


CAPITALS = {"France": "Paris", "Japan": "Tokyo", "Italy": "Rome", "Spain": "Madrid", "Canada": "Ottawa",
            "Egypt": "Cairo", "Kenya": "Nairobi", "Peru": "Lima", "Norway": "Oslo", "Greece": "Athens",
            "Germany": "Berlin", "Ireland": "Dublin", "Portugal": "Lisbon", "Poland": "Warsaw"}
LEGS = {"a spider": "eight", "a dog": "four", "a bird": "two", "an ant": "six", "a horse": "four",
        "a chicken": "two", "a beetle": "six", "an octopus": "eight arms"}
PLANETS = [("Which planet is closest to the sun?", "Mercury is the planet closest to the sun."),
           ("What is the largest planet in our solar system?", "Jupiter is the largest planet."),
           ("Which planet is called the red planet?", "Mars is called the red planet."),
           ("Which planet has the famous rings?", "Saturn is the planet with the famous rings.")]
SPELL = "garden river apple window friend yellow planet music orange winter pencil rabbit".split()
DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
MONTHS = ("January February March April May June July August September October November "
          "December").split()
BACKCHANNELS = ["yeah", "right", "okay", "uh huh", "I see", "sure", "oh wow", "yes"]
# What a user says before a question and then stops to think: the sentence is not finished, so the
# pause after it is not the end of the turn, and the listener waits (synth.py draws the pause). A
# lead-in is an opener, sometimes the reason for asking, then a frame that says a question follows:
# about a thousand phrasings, so that a model learns what an unfinished sentence sounds like rather
# than a list of them. None of them is one of the evaluation suite's openers.
LEAD_IN_OPENERS = ["", "So, ", "Okay, so ", "Hmm, ", "Um, ", "Right, ", "Well, uh, ", "Oh, and ",
                   "Alright, ", "Now, "]
LEAD_IN_REASONS = ["I was looking at my notes this morning, and ", "this came up at work today, so ",
                   "my friend and I were arguing about this, and ", "I was reading something last night, and ",
                   "while I remember, ", "before we move on, ", "a colleague mentioned this, and ",
                   "I saw something on the news, so "]
LEAD_IN_FRAMES = ["what I wanted to know is", "my question is", "I was going to ask",
                  "I have been meaning to ask", "I need your help with something, which is", "the thing is",
                  "let me think, my question is", "I was wondering", "could you help me with",
                  "I keep forgetting", "I would like to find out", "here is what I need to know,"]


def lead_in(rng) -> str:
    """One lead-in: an opener, a reason half of the time, and a frame, e.g. "Hmm, while I remember, I
    was wondering"."""
    text = str(rng.choice(LEAD_IN_OPENERS)) + (str(rng.choice(LEAD_IN_REASONS)) if rng.random() < 0.5 else "") \
        + str(rng.choice(LEAD_IN_FRAMES))
    return text[0].upper() + text[1:]


def arithmetic(rng) -> Exchange:
    op = rng.choice(["plus", "minus", "times"])
    a, b = (int(rng.integers(2, 13)), int(rng.integers(2, 13))) if op == "times" else \
        (int(rng.integers(5, 90)), int(rng.integers(2, 60)))
    if op == "minus" and b > a:
        a, b = b, a
    r = {"plus": a + b, "minus": a - b, "times": a * b}[op]
    q = rng.choice(["What is {a} {op} {b}?", "Could you tell me what {a} {op} {b} is?", "Quick one, {a} {op} {b}?"])
    q = str(q).format(a=number_words(a), op=op, b=number_words(b))
    ans = f"{number_words(a).capitalize()} {op} {number_words(b)} is {number_words(r)}."
    return Exchange("arithmetic", [q], [ans], number_words(r), extra={"a": a, "b": b, "op": op, "result": r})


def spelling(rng) -> Exchange:
    w = str(rng.choice(SPELL))
    letters = ", ".join(c.upper() for c in w)
    return Exchange("spelling", [f"How do you spell the word {w}?"],
                    [f"The word {w} is spelled {letters}."], " ".join(w.upper()), extra={"word": w})


def counting(rng) -> Exchange:
    if rng.random() < 0.5:
        w = str(rng.choice(SPELL))
        return Exchange("counting", [f"How many letters are in the word {w}?"],
                        [f"The word {w} has {number_words(len(w))} letters."], number_words(len(w)),
                        extra={"word": w})
    a = int(rng.integers(1, 12))
    b = a + int(rng.integers(3, 7))
    seq = ", ".join(number_words(i) for i in range(a, b + 1))
    return Exchange("counting", [f"Can you count from {number_words(a)} to {number_words(b)}?"],
                    ["Sure.", f"{seq.capitalize()}."], seq.replace(",", ""), extra={"from": a, "to": b})


def fact(rng) -> Exchange:
    k = rng.integers(3)
    if k == 0:
        c = str(rng.choice(list(CAPITALS)))
        return Exchange("fact", [f"What is the capital of {c}?"], [f"The capital of {c} is {CAPITALS[c]}."],
                        CAPITALS[c])
    if k == 1:
        a = str(rng.choice(list(LEGS)))
        return Exchange("fact", [f"How many legs does {a} have?"], [f"{a.capitalize()} has {LEGS[a]}."], LEGS[a])
    q, ans = PLANETS[int(rng.integers(len(PLANETS)))]
    return Exchange("fact", [q], [ans], ans.split()[0])


def time_date(rng) -> Exchange:
    k = rng.integers(3)
    if k == 0:
        i = int(rng.integers(7))
        return Exchange("time", [f"What day comes after {DAYS[i]}?"],
                        [f"The day after {DAYS[i]} is {DAYS[(i + 1) % 7]}."], DAYS[(i + 1) % 7])
    if k == 1:
        i = int(rng.integers(12))
        return Exchange("time", [f"Which month comes before {MONTHS[i]}?"],
                        [f"The month before {MONTHS[i]} is {MONTHS[i - 1]}."], MONTHS[i - 1])
    h, d = int(rng.integers(1, 13)), int(rng.integers(1, 6))
    r = (h + d - 1) % 12 + 1
    return Exchange("time", [f"If it is {number_words(h)} o'clock now, what time will it be in "
                             f"{number_words(d)} hours?"],
                    [f"In {number_words(d)} hours it will be {number_words(r)} o'clock."], number_words(r))


SMALL_TALK = [
    (["Hi there, how are you today?"], ["Hi, I am doing well, thank you.", "How can I help you?"]),
    (["Good morning."], ["Good morning to you too.", "What would you like to talk about?"]),
    (["I had a long day at work."], ["Oh, I am sorry to hear that.", "I hope you can rest a little tonight."]),
    (["The weather is really nice today."], ["That sounds lovely.", "Maybe you can go for a walk later."]),
    (["Thank you, that was helpful."], ["You are welcome.", "I am glad I could help."]),
    (["Do you like music?"], ["I do, I enjoy hearing about the music people love.", "What do you listen to?"]),
]
HEROES = ["a little fox", "an old fisherman", "a young baker", "a curious cat", "a brave girl", "a tired robot"]
PLACES = ["near a quiet river", "in a small village", "at the edge of a forest", "on a windy hill", "by the sea"]
EVENTS = ["found a strange map", "heard music coming from the trees", "lost a favourite hat",
          "saw a light in the old tower", "met a talking bird"]
ENDINGS = ["In the end everyone had a good laugh about it.", "From that day on, the place felt like home.",
           "And that is how a small day became a story worth telling.", "Then it was time to go to bed."]
USER_DAYS = [["So this morning I went to the market.", "They had these huge red apples.",
              "I bought a whole bag of them.", "Then I walked home through the park.",
              "And I made an apple pie in the afternoon."],
             ["Last weekend we drove to the coast.", "The traffic was terrible at first.",
              "But the beach was almost empty.", "We stayed until the sun went down.",
              "It was really the best day of the summer."],
             ["My neighbour has a new puppy.", "It is tiny and very loud.", "Every morning it barks at the mailman.",
              "Yesterday it stole one of my shoes.", "I still have not found it."]]


def small_talk(rng) -> Exchange:
    u, a = SMALL_TALK[int(rng.integers(len(SMALL_TALK)))]
    return Exchange("smalltalk", list(u), list(a))


def story(rng) -> Exchange:
    hero, place, event = (str(rng.choice(x)) for x in (HEROES, PLACES, EVENTS))
    sents = [f"Once upon a time there was {hero} who lived {place}.",
             "Every day was much the same, and that was fine.",
             f"But one morning, {hero} {event}.",
             "At first nothing seemed to happen.",
             "Then, slowly, things began to change.",
             str(rng.choice(ENDINGS))]
    return Exchange("story", [str(rng.choice(["Can you tell me a short story?", "Tell me a story, please."]))],
                    sents, interruptible=True)


def user_story(rng) -> Exchange:
    sents = USER_DAYS[int(rng.integers(len(USER_DAYS)))]
    reply = str(rng.choice(["That sounds like a lovely day.", "What a story, thank you for telling me.",
                            "That sounds like a lot of fun."]))
    return Exchange("user_story", list(sents), [reply], user_long=True)


FAMILIES = {"arithmetic": arithmetic, "spelling": spelling, "counting": counting, "fact": fact,
            "time": time_date, "smalltalk": small_talk, "story": story, "user_story": user_story}
WEIGHTS = {"arithmetic": 2, "spelling": 1, "counting": 1, "fact": 2, "time": 1.5, "smalltalk": 1.5,
           "story": 1.2, "user_story": 1.0}
TASKS = ("arithmetic", "spelling", "counting", "fact", "time")


def exchange(rng, families: tuple[str, ...] | None = None, weights: dict[str, float] | None = None) -> Exchange:
    """One random exchange from the weighted families (or from ``families`` only); ``weights``
    replaces the default ``WEIGHTS``."""
    weights = weights or WEIGHTS
    names = [n for n in (families or weights) if weights[n] > 0]
    p = np.array([weights[n] for n in names], dtype=float)
    return FAMILIES[str(rng.choice(names, p=p / p.sum()))](rng)


def with_lead_in(rng, ex: Exchange) -> Exchange:
    """``ex`` with a lead-in said before its question as a phrase of its own; the question goes on
    the same sentence. ``extra["lead_in"]`` is the index of the lead-in in ``user``."""
    q = ex.user[-1]
    user = [*ex.user[:-1], lead_in(rng), q[0].lower() + q[1:]]
    return Exchange(ex.family, user, ex.assistant, ex.answer, ex.user_long, ex.interruptible,
                    {**ex.extra, "lead_in": len(user) - 2})


def interruption(rng) -> Exchange:
    """What a user says when cutting into the assistant, and the reply: a quick task."""
    ex = exchange(rng, TASKS)
    opener = str(rng.choice(["Sorry, wait.", "Hold on.", "Actually, wait."]))
    return Exchange(ex.family, [opener, *ex.user], ex.assistant, ex.answer, extra=ex.extra)
