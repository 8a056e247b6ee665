"""Which words of a caption LinCIR replaces by its pseudo token: a documented rule, not a tagger.

LinCIR's training (navervision/lincir, `loader.py`) tags each lower-cased caption with spaCy's
`en_core_web_sm` and takes every maximal run of determiners, adjectives, nouns and proper nouns as
one keyword ("a photo of a green dress" -> "a photo", "a green dress"); each run becomes one `$`
("$ of $"). No such tagger installs offline from the package registries (spaCy's models ship from
GitHub, NLTK's tagger data likewise), so this module states the rule instead, as a **deviation**:

- a word is a keyword unless it belongs to a closed class that spaCy tags as something else:
  prepositions, conjunctions, pronouns (possessives included, as spaCy tags them), auxiliaries
  and common verbs, adverbs and particles, numerals, and punctuation;
- a word of five letters or more ending in "-ing" is a verb ("riding", "wearing"), except the
  nouns in `ING_NOUNS` ("clothing", "building");
- "that" is a relative pronoun (captions say "a toptee that has ..."), not a determiner.

Where the original replaces keyword strings with `str.replace` (which can also hit inside a longer
word), runs are replaced token by token here. When a caption has no keyword, the original puts `$`
in place of one random word, and an empty caption becomes "a photo of $"; so does this module.
"""

from __future__ import annotations

import random
import re

ADPOSITIONS = frozenset(
    "of with in on at by for from to into onto over under near behind beside besides between above below across "
    "through throughout around against without within along among amid toward towards about after before during "
    "like upon off up down out inside outside underneath beneath via per except past since until till".split()
)
CONJUNCTIONS = frozenset("and or but nor so yet while whereas because if although though than as whether".split())
PRONOUNS = frozenset(
    "i you he she it we they me him her us them my your his its our their mine yours hers ours theirs myself "
    "yourself himself herself itself ourselves themselves that which who whom whose what".split()
)
VERBS = frozenset(
    "is are was were be been being am 's 're has have had having do does did done can could will would shall "
    "should may might must get gets got make makes made look looks looked show shows showed appear appears "
    "appeared seem seems seemed become becomes became change changed replace replaced add added remove removed "
    "turn turns turned put puts let lets go goes went take takes took give gives gave hold holds held".split()
)
ADVERBS = frozenset(
    "not n't very more less most least too also just only there here then now again still even "
    "rather quite really almost instead".split()
)
NUMERALS = frozenset("one two three four five six seven eight nine ten eleven twelve twenty hundred".split())
CLOSED_CLASSES = ADPOSITIONS | CONJUNCTIONS | PRONOUNS | VERBS | ADVERBS | NUMERALS
ING_NOUNS = frozenset(
    "thing something nothing anything everything building clothing painting drawing ceiling "
    "evening morning ring string spring swing wing king sibling pudding wedding".split()
)

_TOKEN = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*|n't|'[a-z]+|[^\sa-z0-9]")


def words(caption: str) -> list[str]:
    """The caption lower-cased and split into words and punctuation marks."""
    return _TOKEN.findall(caption.lower())


def is_keyword(word: str) -> bool:
    """True for the words spaCy would tag DET, ADJ, NOUN or PROPN (under the rule above)."""
    if word in CLOSED_CLASSES or not re.match(r"[a-z]", word):  # punctuation and numbers break a run
        return False
    return not (len(word) >= 5 and word.endswith("ing") and word not in ING_NOUNS)


def keyword_runs(caption: str) -> list[str]:
    """The caption's keywords: each maximal run of keyword words, in order (repeats kept)."""
    runs, current = [], []
    for word in words(caption):
        if is_keyword(word):
            current.append(word)
        elif current:
            runs.append(" ".join(current))
            current = []
    if current:
        runs.append(" ".join(current))
    return runs


def mask_keywords(caption: str, placeholder: str = "*", rng: random.Random | None = None) -> str:
    """The caption with every keyword run replaced by one `placeholder`.

    rng: picks the word to replace when the caption has no keyword (the original's fallback);
    a fixed default keeps the masking a pure function of the caption.
    """
    tokens = [w for w in words(caption) if w != placeholder]  # the original strips its own `$` first
    if not tokens:
        return f"a photo of {placeholder}"
    out: list[str] = []
    for word in tokens:
        if not is_keyword(word):
            out.append(word)
        elif not out or out[-1] != placeholder:
            out.append(placeholder)
    if placeholder not in out:  # no keyword: one random word stands for the token
        out[(rng or random.Random(0)).randrange(len(out))] = placeholder
    return " ".join(out)
