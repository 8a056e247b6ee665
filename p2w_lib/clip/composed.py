"""Composed text encoding: a prompt with one `*` whose token embedding is replaced by a pseudo
token (the mapper's output), run through CLIP's frozen text transformer.

Two things here go beyond the original code:
- every prompt in a batch may put `*` at its own position (the original assumes one position);
- exact context truncation: CLIP's text transformer is causal and pools at the end-of-text
  token, so positions after the last end-of-text token of the batch cannot change the result.
  We run only `max_eot + 1` positions instead of 77 (prompts are a handful of tokens).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

PLACEHOLDER = "*"


@dataclass(frozen=True)
class TextTower:
    """The pieces of an open_clip text transformer, wherever the model class keeps them."""

    token_embedding: nn.Embedding
    positional_embedding: torch.Tensor  # [ctx, W]
    transformer: nn.Module
    ln_final: nn.Module
    text_projection: torch.Tensor | nn.Module | None
    attn_mask: torch.Tensor | None  # [ctx, ctx] additive causal mask; None = bidirectional
    pool_type: str
    eos_id: int | None

    @property
    def is_causal(self) -> bool:
        return self.attn_mask is not None


def text_tower(model: nn.Module) -> TextTower:
    """View of `model`'s text tower (open_clip `CLIP` or `CustomTextCLIP`)."""
    if hasattr(model, "token_embedding") and hasattr(model, "transformer"):  # open_clip.CLIP
        tower = TextTower(
            model.token_embedding,
            model.positional_embedding,
            model.transformer,
            model.ln_final,
            model.text_projection,
            model.attn_mask,
            model.text_pool_type,
            getattr(model, "text_eos_id", None),
        )
    elif hasattr(getattr(model, "text", None), "token_embedding"):  # open_clip.CustomTextCLIP
        t = model.text
        if t.cls_emb is not None or t.use_pad_mask:
            raise ValueError(
                f"{type(model).__name__}: text towers with a class token or padding mask (CoCa-style) "
                "are not supported by pseudo-token composition."
            )
        tower = TextTower(
            t.token_embedding,
            t.positional_embedding,
            t.transformer,
            t.ln_final,
            t.text_projection,
            t.attn_mask,
            t.pool_type,
            t.eos_id,
        )
    else:
        raise TypeError(
            f"{type(model).__name__} has no open_clip text transformer (token_embedding + transformer); "
            "Hugging Face text towers are not supported."
        )
    if tower.pool_type not in ("argmax", "eos"):
        raise ValueError(
            f"text pool_type={tower.pool_type!r}: Pic2Word pools at the end-of-text token, "
            "which needs pool_type 'argmax' or 'eos'."
        )
    return tower


def placeholder_token_id(tokenizer) -> int:
    """BPE id of the stand-alone `*` (265 in CLIP's vocabulary)."""
    if not hasattr(tokenizer, "encode"):
        raise TypeError(f"{type(tokenizer).__name__}: expected an open_clip SimpleTokenizer with .encode()")
    ids = tokenizer.encode(PLACEHOLDER)
    if len(ids) != 1:
        raise ValueError(f"the tokenizer splits {PLACEHOLDER!r} into {len(ids)} tokens; it must be one token")
    return ids[0]


@dataclass(frozen=True)
class ComposedTokens:
    """Tokenised prompts with the placeholder and pooling positions of each row."""

    ids: torch.Tensor  # [B, L] token ids
    star_pos: torch.Tensor  # [B] position of `*`
    pool_pos: torch.Tensor  # [B] position of the end-of-text token


def warn_if_truncated(tokenizer, texts: list[str], ids: torch.Tensor) -> int:
    """Log a warning naming the texts that the tokenizer cut at the context length; returns how many.
    (A filled last position means the text reached the end of the context; `encode` says by how much.)"""
    full = (ids[:, -1] != 0).nonzero().flatten().tolist()
    encode = getattr(tokenizer, "encode", None)
    cut = [(texts[i], len(encode(texts[i])) + 2) for i in full] if encode else [(texts[i], None) for i in full]
    cut = [(t, n) for t, n in cut if n is None or n > ids.shape[1]]
    if cut:
        text, n = cut[0]
        log.warning(
            "%d text(s) longer than CLIP's %d-token context were cut, e.g. %r (%s tokens): the end is ignored",
            len(cut),
            ids.shape[1],
            text[:80],
            n or "over",
        )
    return len(cut)


def tokenize_prompts(model: nn.Module, tokenizer, prompts: list[str]) -> ComposedTokens:
    """Tokenise prompts that each contain `*` exactly once, as a word of its own."""
    if isinstance(prompts, str):
        raise TypeError("prompts must be a list of strings, not a single string")
    for p in prompts:
        n = p.count(PLACEHOLDER)
        if n != 1:
            raise ValueError(f"prompt {p!r} must contain the placeholder {PLACEHOLDER!r} exactly once (found {n})")
    ids = tokenizer(prompts)  # [B, L]
    warn_if_truncated(tokenizer, prompts, ids)
    star = ids == placeholder_token_id(tokenizer)  # [B, L]
    for p, count in zip(prompts, star.sum(dim=1).tolist()):
        if count != 1:
            raise ValueError(
                f"prompt {p!r}: {PLACEHOLDER!r} is not a token of its own after tokenisation; write it as a "
                f"separate word, e.g. 'a photo of * , is red' (not '*,'), and keep the prompt under the context length"
            )
    pool_pos = pool_positions(ids, text_tower(model))
    return ComposedTokens(ids=ids, star_pos=star.int().argmax(dim=-1), pool_pos=pool_pos)


def run_text_tower(
    model: nn.Module,
    ids: torch.Tensor,
    pool_pos: torch.Tensor,
    inject: tuple[torch.Tensor, torch.Tensor] | None = None,
    normalize: bool = True,
    truncate: bool = True,
) -> torch.Tensor:
    """Text features [B, D] of token ids [B, L], pooled at `pool_pos` [B].

    inject: optional (positions, embeddings [B, W]) written over the token embeddings before the
        positional embedding is added (Pic2Word's pseudo-token insertion). positions is [B], one
        position per row, or a bool mask [B, L] whose every marked position takes the row's
        embedding (LinCIR's captions, where several keyword spans share one pseudo token).
    truncate: run only `max(pool_pos) + 1` positions when the tower is causal (exact);
        False runs the full context (the reference the truncated path is tested against).
    """
    tower = text_tower(model)
    device = tower.token_embedding.weight.device
    ids = ids.to(device)  # [B, L]
    length = ids.shape[1]
    if truncate and tower.is_causal:
        length = int(pool_pos.max()) + 1  # later positions are invisible to the pooled one
    ids = ids[:, :length]
    rows = torch.arange(ids.shape[0], device=device)
    cast_dtype = tower.transformer.get_cast_dtype()

    x = tower.token_embedding(ids).to(cast_dtype)  # [B, L, W]
    if inject is not None:
        positions, values = inject
        values = values.to(device, cast_dtype)  # [B, W]
        # Out-of-place, so gradients reach the injected values (and nothing is written into CLIP).
        if positions.dtype == torch.bool:
            x = torch.where(positions[:, :length, None].to(device), values[:, None, :], x)  # [B, L, W]
        else:
            x = x.index_put((rows, positions.to(device)), values)
    x = x + tower.positional_embedding[:length].to(cast_dtype)  # [B, L, W]
    mask = tower.attn_mask[:length, :length] if tower.is_causal else None
    x = tower.transformer(x, attn_mask=mask)  # [B, L, W]
    x = tower.ln_final(x)
    feats = project(tower, x[rows, pool_pos.to(device)])  # [B, W] pooled -> [B, D]
    return F.normalize(feats, dim=-1) if normalize else feats


def project(tower: TextTower, pooled: torch.Tensor) -> torch.Tensor:
    """Pooled text states [B, W] -> embeddings [B, D] (a projection matrix, a module, or none)."""
    if isinstance(tower.text_projection, nn.Module):
        return tower.text_projection(pooled)
    if tower.text_projection is not None:
        return pooled @ tower.text_projection  # [B, D]
    return pooled


def run_text_tower_bucketed(
    model: nn.Module, ids: torch.Tensor, pool_pos: torch.Tensor, n_buckets: int = 4, normalize: bool = True
) -> torch.Tensor:
    """`run_text_tower` on length-sorted sub-batches, each truncated to its own longest prompt.

    Exact (every row is still pooled at its own end-of-text token behind a causal mask), and
    cheaper when prompt lengths vary: a batch of mostly short captions no longer pays for its
    longest one in every row.
    """
    if not text_tower(model).is_causal or n_buckets <= 1:
        return run_text_tower(model, ids, pool_pos, normalize=normalize)
    order = pool_pos.argsort()  # short prompts first
    out = None
    for chunk in order.chunk(n_buckets):
        feats = run_text_tower(model, ids[chunk], pool_pos[chunk], normalize=normalize)  # [b, D]
        if out is None:
            out = feats.new_empty(ids.shape[0], feats.shape[1])
        out = out.index_copy(0, chunk.to(feats.device), feats)  # out-of-place keeps autograd simple
    return out


def pool_positions(ids: torch.Tensor, tower: TextTower) -> torch.Tensor:
    """Position [B] of the end-of-text token that the tower pools at."""
    if tower.pool_type == "argmax":  # the end-of-text id is the largest id in CLIP's vocabulary
        return ids.argmax(dim=-1)
    return (ids == tower.eos_id).int().argmax(dim=-1)


def encode_composed_tokens(
    model: nn.Module,
    tokens: ComposedTokens,
    pseudo_tokens: torch.Tensor,
    normalize: bool = True,
    truncate: bool = True,
) -> torch.Tensor:
    """Run the text tower with `pseudo_tokens` [B, W] placed at each row's `*`."""
    width = text_tower(model).token_embedding.weight.shape[1]
    batch = tokens.ids.shape[0]
    if pseudo_tokens.shape != (batch, width):
        raise ValueError(
            f"pseudo_tokens has shape {tuple(pseudo_tokens.shape)}; expected "
            f"[{batch}, {width}] (one token of the text width per prompt)"
        )
    return run_text_tower(model, tokens.ids, tokens.pool_pos, (tokens.star_pos, pseudo_tokens), normalize, truncate)


def encode_composed(
    model: nn.Module,
    tokenizer,
    prompts: list[str],
    pseudo_tokens: torch.Tensor,
    normalize: bool = True,
) -> torch.Tensor:
    """Encode prompts containing `*` with `pseudo_tokens` [B, W] in place of `*`; returns [B, D].

    `model` is an open_clip CLIP, `tokenizer` its tokenizer, W its text width. Gradients flow to
    `pseudo_tokens`; CLIP's own parameters are not modified.
    """
    tokens = tokenize_prompts(model, tokenizer, prompts)
    return encode_composed_tokens(model, tokens, pseudo_tokens, normalize=normalize)
