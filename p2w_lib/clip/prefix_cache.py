"""Composed text encoding that computes each distinct prompt prefix once.

Behind CLIP's causal mask, the positions before `*` (start token, `a photo of`) never see the
pseudo token: their hidden states, and so their keys and values in every layer, are the same
for every image and every step. `PrefixCachedText` computes them once per distinct prefix and
then runs the transformer only over the positions from `*` to the end-of-text token, each
attending to the cached prefix keys/values plus the causal part of its own suffix. Exact up to
float rounding (tested against the full-context path in tests/test_prefix_cache.py).

Training (`a photo of *`, 6 tokens) then runs 2 positions instead of 6; evaluation prompts
such as `a {domain} of *` share one cache entry per domain.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from p2w_lib.clip.composed import ComposedTokens, project, text_tower

# Per layer: keys and values of the prefix positions, each [H, P, hd].
PrefixKV = list[tuple[torch.Tensor, torch.Tensor]]


def supports_prefix_cache(model: nn.Module) -> bool:
    """True for open_clip causal text towers built of self-attention ResidualAttentionBlocks."""
    try:
        tower = text_tower(model)
    except (TypeError, ValueError):
        return False
    blocks = getattr(tower.transformer, "resblocks", None)
    if not tower.is_causal or blocks is None or not getattr(tower.transformer, "batch_first", True):
        return False
    return all(
        isinstance(getattr(b, "attn", None), nn.MultiheadAttention)
        and not hasattr(b, "ln_1_kv")
        and b.attn._qkv_same_embed_dim
        for b in blocks
    )


def _heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    b, length, width = x.shape
    return x.view(b, length, n_heads, width // n_heads).transpose(1, 2)  # [B, H, L, hd]


def _qkv(block: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    attn = block.attn
    q, k, v = F.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)  # 3 x [B, L, W]
    return _heads(q, attn.num_heads), _heads(k, attn.num_heads), _heads(v, attn.num_heads)


def _block(block: nn.Module, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q: torch.Tensor, mask) -> torch.Tensor:
    """The residual block's output for queries q over keys/values k, v (already including x's own)."""
    # Written out: for a handful of positions this beats the fused CPU kernel's fixed cost.
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2) + mask  # [B, H, S, P+S]
    out = scores.softmax(dim=-1) @ v  # [B, H, S, hd]
    out = out.transpose(1, 2).reshape(x.shape)  # [B, S, W]
    x = x + block.ls_1(block.attn.out_proj(out))
    return x + block.ls_2(block.mlp(block.ln_2(x)))


class PrefixCachedText:
    """Encode composed prompts with each distinct prefix's keys/values computed once.

    The cache belongs to one frozen model; build a new one for other weights.
    """

    def __init__(self, model: nn.Module):
        if not supports_prefix_cache(model):
            raise ValueError(
                f"{type(model).__name__}: prefix caching needs an open_clip causal text transformer "
                "of self-attention blocks; use composed.encode_composed_tokens instead"
            )
        self.tower = text_tower(model)
        self.blocks = list(self.tower.transformer.resblocks)
        self._cache: dict[tuple[int, ...], PrefixKV] = {}

    def __len__(self) -> int:
        return len(self._cache)

    def _embed(self, ids: torch.Tensor, start: int) -> torch.Tensor:
        dtype = self.tower.transformer.get_cast_dtype()
        pos = self.tower.positional_embedding[start : start + ids.shape[1]]  # [L, W]
        return self.tower.token_embedding(ids).to(dtype) + pos.to(dtype)  # [B, L, W]

    @torch.no_grad()
    def prefix_kv(self, prefix: tuple[int, ...]) -> PrefixKV:
        """Keys and values of `prefix` (token ids, start token included) in every layer, cached."""
        if prefix not in self._cache:
            ids = torch.tensor([prefix], device=self.tower.token_embedding.weight.device)  # [1, P]
            x = self._embed(ids, 0)  # [1, P, W]
            mask = self.tower.attn_mask[: len(prefix), : len(prefix)].to(x.dtype)
            kv = []
            for block in self.blocks:
                q, k, v = _qkv(block, x)  # [1, H, P, hd]
                kv.append((k[0], v[0]))
                x = _block(block, x, k, v, q, mask)
            self._cache[prefix] = kv
        return self._cache[prefix]

    def _suffix_mask(self, n_prefix: int, n_suffix: int, dtype, device) -> torch.Tensor:
        causal = torch.full((n_suffix, n_suffix), float("-inf"), device=device).triu(1)  # [S, S]
        return torch.cat([torch.zeros(n_suffix, n_prefix, device=device), causal], dim=1).to(dtype)  # [S, P+S]

    def _encode_group(
        self, prefix: tuple[int, ...], ids: torch.Tensor, pool: torch.Tensor, pseudo: torch.Tensor
    ) -> torch.Tensor:
        """Pooled, unprojected features [b, W] of rows [b, L] that all start with `prefix`."""
        kv, star = self.prefix_kv(prefix), len(prefix)
        suffix = ids[:, star : int(pool.max()) + 1]  # [b, S]; rows shorter than S are padded after their end
        head = pseudo.to(self.tower.transformer.get_cast_dtype())[:, None]  # [b, 1, W]: the pseudo token replaces `*`
        head = head + self.tower.positional_embedding[star].to(head.dtype)
        x = torch.cat([head, self._embed(suffix[:, 1:], star + 1)], dim=1)  # [b, S, W]
        mask = self._suffix_mask(star, suffix.shape[1], x.dtype, x.device)
        b, rows, at = x.shape[0], torch.arange(x.shape[0], device=x.device), (pool.to(x.device) - star)
        for i, (block, (k_pre, v_pre)) in enumerate(zip(self.blocks, kv)):
            q, k, v = _qkv(block, x)  # [b, H, S, hd]
            k = torch.cat([k_pre.to(k.dtype).expand(b, -1, -1, -1), k], dim=2)  # [b, H, P+S, hd]
            v = torch.cat([v_pre.to(v.dtype).expand(b, -1, -1, -1), v], dim=2)
            if i == len(self.blocks) - 1:  # the last layer's output is read at the end-of-text token only
                if bool((at == at[0]).all()):  # one prompt length (training): slices, cheaper than gathers
                    j = int(at[0])
                    x = _block(block, x[:, j : j + 1], k, v, q[:, :, j : j + 1], mask[j : j + 1])  # [b, 1, W]
                else:
                    x = _block(block, x[rows, at][:, None], k, v, q[rows, :, at][:, :, None], mask[at][:, None, None])
                return self.tower.ln_final(x)[:, 0]  # [b, W]
            x = _block(block, x, k, v, q, mask)
        raise AssertionError("a text transformer without layers")

    @staticmethod
    def _groups(ids: torch.Tensor, star_pos: torch.Tensor) -> dict[tuple[int, ...], list[int]]:
        """Rows by prefix (ids before `*`); a training batch repeats one prompt, so test that first."""
        star = int(star_pos[0])
        if bool((star_pos == star).all()) and bool((ids[:, :star] == ids[:1, :star]).all()):
            return {tuple(ids[0, :star].tolist()): list(range(ids.shape[0]))}
        groups: dict[tuple[int, ...], list[int]] = {}
        for row, (prefix_ids, s) in enumerate(zip(ids.tolist(), star_pos.tolist())):
            groups.setdefault(tuple(prefix_ids[:s]), []).append(row)
        return groups

    def encode(self, tokens: ComposedTokens, pseudo_tokens: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Like `composed.encode_composed_tokens`: features [B, D] with `pseudo_tokens` [B, W] at each `*`."""
        device = self.tower.token_embedding.weight.device
        ids, star_pos, pool_pos = tokens.ids.to(device), tokens.star_pos.to(device), tokens.pool_pos.to(device)
        groups = self._groups(ids, star_pos)
        if len(groups) == 1:
            out = self._encode_group(next(iter(groups)), ids, pool_pos, pseudo_tokens)  # [B, W]
        else:
            out = None
            for prefix, rows in groups.items():
                idx = torch.tensor(rows, device=device)
                pooled = self._encode_group(prefix, ids[idx], pool_pos[idx], pseudo_tokens[idx])  # [b, W]
                if out is None:
                    out = pooled.new_empty(ids.shape[0], pooled.shape[1])
                out = out.index_copy(0, idx, pooled)  # out-of-place keeps autograd simple
        out = project(self.tower, out)  # [B, D]
        return F.normalize(out, dim=-1) if normalize else out
