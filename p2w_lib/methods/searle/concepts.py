"""SEARLE's concepts and concept phrases, with an offline substitute for their source.

SEARLE (miccunifi/SEARLE) regularises each pseudo token with phrases about concepts the image
shows: `image_concepts_association.py` ranks Open Images' class names against the image with CLIP
(each name embedded in a set of template sentences, the embeddings averaged), and
`gpt_phrases_generation.py` has GPT-Neo continue "a photo of {concept} that" many times per
concept. The loss then asks that a phrase with its concept replaced by the pseudo token embed like
the phrase itself.

Neither the class list nor a language model can be fetched here, so this module states a
substitute, a **deviation** named in the README:
- concepts: the content words (keywords.py's rule, determiners excluded) that at least
  `min_count` distinct captions of the training list use;
- phrases: up to `per_concept` distinct captions of the same list that contain the concept,
  drawn at random; captions are used as text only, never paired with their images;
- templates: our own generic sentences (a photo, a drawing, a sketch ... of a {}), in the spirit
  of the original's list, not a copy of it.
The association (top-k concepts per image by cosine against the template-averaged concept
embedding) follows the original.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from p2w_lib.clip.backbone import FrozenClip
from p2w_lib.clip.composed import (
    PLACEHOLDER,
    placeholder_token_id,
    pool_positions,
    text_tower,
)
from p2w_lib.clip.features import caption_embeddings
from p2w_lib.methods.lincir.keywords import is_keyword, words

TEMPLATES = (
    "a photo of a {}",
    "a picture of a {}",
    "an image of a {}",
    "a close-up photo of a {}",
    "a drawing of a {}",
    "a sketch of a {}",
    "a painting of a {}",
    "a rendering of a {}",
    "there is a {} in this image",
    "a {}",
    "{}",
)
DETERMINERS = frozenset("a an the this these those some any no every each all another such".split())


def content_words(caption: str) -> list[str]:
    """The caption's distinct concept candidates: keyword words of three letters or more, no determiners."""
    return sorted({w for w in words(caption) if is_keyword(w) and w not in DETERMINERS and len(w) >= 3})


def mask_concept(phrase: str, concept: str, first_only: bool) -> str:
    """`phrase` (normalised by keywords.words) with `concept` replaced by `*`: its first occurrence
    (OTI's regulariser) or every one (phi's, whose token then goes at the first only: token_at_first). Whole words only, where the original's str.replace
    could also hit inside a longer word."""
    out, done = [], False
    for w in words(phrase):
        hit = w == concept and not (first_only and done)
        out.append(PLACEHOLDER if hit else w)
        done = done or hit
    return " ".join(out)


@dataclass(frozen=True)
class MaskedTexts:
    ids: torch.Tensor  # [P, L]
    star: torch.Tensor  # [P, L] bool: the pseudo token's positions
    pool_pos: torch.Tensor  # [P]


@dataclass(frozen=True)
class ConceptPhrases:
    """V concepts and their P phrases, flat: phrases of concept c are rows offset[c] .. offset[c] + count[c]."""

    concepts: list[str]  # [V]
    phrases: list[str]  # [P]
    offset: torch.Tensor  # [V]
    count: torch.Tensor  # [V]
    targets: torch.Tensor  # [P, D] unnormalised CLIP embeddings of the phrases
    first: MaskedTexts  # concept's first occurrence masked (OTI's regulariser)
    # phi's regulariser: every occurrence replaced by the placeholder word, but the token goes only at the
    # first; later ones stay the literal placeholder word, as the original's encode_with_pseudo_tokens does
    every: MaskedTexts


def _tokenize_masked(clip: FrozenClip, texts: list[str]) -> MaskedTexts:
    ids = clip.tokenizer(texts)  # [P, L]
    star = ids == placeholder_token_id(clip.tokenizer)  # [P, L]
    return MaskedTexts(ids, star, pool_positions(ids, text_tower(clip.model)))


def concept_vocabulary(captions: Sequence[str], min_count: int) -> tuple[list[str], list[str]]:
    """(the distinct captions, normalised; the concepts: content words that `min_count` of them use)."""
    distinct = sorted({" ".join(words(c)) for c in captions})
    uses = Counter(w for c in distinct for w in content_words(c))
    concepts = sorted(w for w, n in uses.items() if n >= min_count)
    if not concepts:
        raise ValueError(
            f"no content word is used by {min_count} or more distinct captions; lower searle.min_concept_count"
        )
    return distinct, concepts


def concept_examples(captions: Sequence[str], min_count: int, n: int, seed: int = 0) -> list[tuple[str, int, str, str]]:
    """(concept, phrases available, one phrase, that phrase masked as OTI masks it) for `n` random concepts."""
    distinct, concepts = concept_vocabulary(captions, min_count)
    rng = random.Random(seed)
    out = []
    for concept in sorted(rng.sample(concepts, min(n, len(concepts)))):
        having = [c for c in distinct if concept in content_words(c)]
        phrase = rng.choice(having)
        out.append((concept, len(having), phrase, mask_concept(phrase, concept, first_only=True)))
    return out


def _pick_phrases(distinct: list[str], concepts: list[str], per_concept: int, seed: int) -> tuple[list[str], list[int]]:
    """Up to `per_concept` phrases per concept, drawn at random; returns (phrases, concept of each)."""
    wanted = set(concepts)
    having: dict[str, list[str]] = {c: [] for c in concepts}
    for c in distinct:
        for w in set(content_words(c)) & wanted:
            having[w].append(c)
    rng = random.Random(seed)
    phrases, owner = [], []
    for i, concept in enumerate(concepts):
        picked = having[concept] if len(having[concept]) <= per_concept else rng.sample(having[concept], per_concept)
        phrases += picked
        owner += [i] * len(picked)
    return phrases, owner


def concept_phrases(
    clip: FrozenClip, captions: Sequence[str], min_count: int, per_concept: int, seed: int = 0
) -> ConceptPhrases:
    """The concepts of `captions` and their phrases (see the module docstring), embedded and masked once.
    A phrase whose concept falls past CLIP's context length is dropped (it cannot teach the token)."""
    distinct, concepts = concept_vocabulary(captions, min_count)
    phrases, owner = _pick_phrases(distinct, concepts, per_concept, seed)
    first = _tokenize_masked(clip, [mask_concept(p, concepts[o], True) for p, o in zip(phrases, owner)])
    keep = first.star.any(dim=1)  # [P]
    first = MaskedTexts(first.ids[keep], first.star[keep], first.pool_pos[keep])
    phrases, owner = [p for p, k in zip(phrases, keep.tolist()) if k], [o for o, k in zip(owner, keep.tolist()) if k]
    kept = sorted(set(owner))  # a concept whose every phrase was cut is dropped
    row = {old: new for new, old in enumerate(kept)}
    concepts, owner = [concepts[i] for i in kept], [row[o] for o in owner]
    count = torch.bincount(torch.tensor(owner, dtype=torch.long), minlength=len(concepts))  # [V]
    return ConceptPhrases(
        concepts=concepts,
        phrases=phrases,
        offset=torch.cumsum(count, 0) - count,
        count=count,
        targets=caption_embeddings(clip, phrases),
        first=first,
        every=token_at_first(
            _tokenize_masked(clip, [mask_concept(p, concepts[o], False) for p, o in zip(phrases, owner)])
        ),
    )


def token_at_first(masked: MaskedTexts) -> MaskedTexts:
    """The same texts with the pseudo token's position kept only at each row's first placeholder.
    SEARLE's `train_phi.py` writes `$` for every occurrence of the concept, and its
    `encode_with_pseudo_tokens` puts the token at the first `$` only (NOTES: the published model)."""
    star = masked.star & (torch.cumsum(masked.star.int(), dim=1) == 1)  # [P, L]
    return MaskedTexts(masked.ids, star, masked.pool_pos)


@torch.no_grad()
def concept_embeddings(clip: FrozenClip, concepts: Sequence[str]) -> torch.Tensor:
    """Each concept's normalised embedding, averaged over TEMPLATES and normalised again [V, D]."""
    texts = [t.format(c) for c in concepts for t in TEMPLATES]
    feats = torch.cat(
        [clip.encode_text(texts[i : i + 512], normalize=True).float().cpu() for i in range(0, len(texts), 512)]
    )  # [V * T, D]
    return F.normalize(feats.view(len(concepts), len(TEMPLATES), -1).mean(dim=1), dim=-1)  # [V, D]


def top_concepts(image_feats: torch.Tensor, concept_feats: torch.Tensor, k: int) -> torch.Tensor:
    """The k concepts most similar to each image, best first [N, k] (k capped at V)."""
    sims = F.normalize(image_feats.float(), dim=-1) @ concept_feats.T  # [N, V]
    return sims.topk(min(k, concept_feats.shape[0]), dim=1).indices
