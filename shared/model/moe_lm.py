"""Decoder-only LM whose feed-forward blocks are top-k routed Mixture-of-Experts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from shared.model.conformer import rotary


@dataclass
class MoeConfig:
    n_experts: int = 4
    top_k: int = 2
    aux_loss_weight: float = 0.01


@dataclass
class LMConfig:
    vocab_size: int = 2000
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    ff_hidden: int = 768
    dropout: float = 0.1
    rope_base: float = 10_000.0
    moe: Optional[MoeConfig] = field(default_factory=MoeConfig)


# One (key, value) pair per layer, each (B, H, T_past, Dh).
KVCache = list[tuple[torch.Tensor, torch.Tensor]]


def load_balancing_loss(router_logits: list[torch.Tensor], n_experts: int, top_k: int) -> torch.Tensor:
    """Switch-style auxiliary loss: n_experts * sum_i f_i * P_i, averaged over layers.

    router_logits: per layer (N_tokens, n_experts). f_i is the share of routing slots sent to
    expert i, P_i the mean router probability of expert i. Equals 1.0 for perfectly uniform routing.
    """
    if not router_logits:
        return torch.zeros(())
    losses = []
    for logits in router_logits:
        probs = logits.float().softmax(-1)
        chosen = probs.topk(top_k, dim=-1).indices
        share = F.one_hot(chosen, n_experts).float().sum(1).mean(0) / top_k
        losses.append(n_experts * (share * probs.mean(0)).sum())
    return torch.stack(losses).mean()


class Expert(nn.Module):
    def __init__(self, d: int, hidden: int) -> None:
        super().__init__()
        self.gate = nn.Linear(d, hidden, bias=False)
        self.up = nn.Linear(d, hidden, bias=False)
        self.down = nn.Linear(hidden, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class MoeFeedForward(nn.Module):
    """Routes every token to its top-k experts; returns (output (B, T, D), router logits (B*T, E)).

    `expert` builds one expert (default: a SwiGLU Expert(d, hidden)); a decoder upcycled from a pretrained
    one passes its own MLP's shape, so that every expert can start as a copy of that MLP."""

    def __init__(self, d: int, hidden: int, moe: MoeConfig, expert: Optional[Callable[[], nn.Module]] = None) -> None:
        super().__init__()
        self.moe = moe
        self.router = nn.Linear(d, moe.n_experts, bias=False)
        self.experts = nn.ModuleList((expert or (lambda: Expert(d, hidden)))() for _ in range(moe.n_experts))
        # expert indices that run as one module (share_identical_experts); each on its own unless shared
        self.groups: list[list[int]] = [[e] for e in range(moe.n_experts)]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = x.reshape(-1, x.shape[-1])
        logits = self.router(flat)
        weights, chosen = logits.topk(self.moe.top_k, dim=-1)  # (N, k)
        weights = weights.softmax(-1)
        out = torch.zeros_like(flat)
        for group in self.groups:
            hit = chosen == group[0] if len(group) == 1 else torch.isin(chosen, torch.tensor(group))  # (N, k)
            rows = hit.any(-1).nonzero()[:, 0]
            if rows.numel():  # a token routed to two slots of one shared module runs it once, weights summed
                gate = (weights[rows] * hit[rows]).sum(-1, keepdim=True)
                out.index_add_(0, rows, self.experts[group[0]](flat[rows]) * gate)
        return out.view_as(x), logits

    def share_identical_experts(self) -> int:
        """Experts whose weights are equal become one module that runs once per token for all the routing slots
        it fills (exact: an upcycled MoE before fine-tuning has every expert a copy of the pretrained MLP, so top-2
        routing paid for two identical MLPs). For inference: a state dict of shared tensors cannot be saved as
        safetensors. Call it before quantize_linears (shared/model/quantize.py), whose copy keeps the sharing.
        Returns the number of distinct experts."""
        self.groups = []
        for e, expert in enumerate(self.experts):
            twin = next((g for g in self.groups if _same_weights(self.experts[g[0]], expert)), None)
            if twin is None:
                self.groups.append([e])
            else:
                twin.append(e)
                self.experts[e] = self.experts[twin[0]]
        return len(self.groups)


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def share_identical_experts(model: nn.Module) -> tuple[int, int]:
    """share_identical_experts on every MoE block of model -> (distinct experts, experts) over all blocks."""
    blocks = [m for m in model.modules() if isinstance(m, MoeFeedForward)]
    return sum(b.share_identical_experts() for b in blocks), sum(len(b.experts) for b in blocks)


class DenseFeedForward(nn.Module):
    def __init__(self, d: int, hidden: int) -> None:
        super().__init__()
        self.ff = Expert(d, hidden)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.ff(x), None


class DecoderLayer(nn.Module):
    def __init__(self, cfg: LMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.attn_norm = nn.RMSNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.ff_norm = nn.RMSNorm(cfg.d_model)
        self.ff: nn.Module = (
            MoeFeedForward(cfg.d_model, cfg.ff_hidden, cfg.moe) if cfg.moe else DenseFeedForward(cfg.d_model, cfg.ff_hidden)
        )
        self.drop = nn.Dropout(cfg.dropout)

    def _qkv(self, x: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, T, D) -> rotated q, k and v, each (B, H, T, Dh)."""
        b, t, d = x.shape
        h = self.cfg.n_heads
        q, k, v = self.qkv(self.attn_norm(x)).view(b, t, 3, h, d // h).permute(2, 0, 3, 1, 4)
        return rotary(q, positions, self.cfg.rope_base), rotary(k, positions, self.cfg.rope_base), v

    def _finish(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Residual attention output y (B, H, T, Dh), then the feed-forward block."""
        b, t, d = x.shape
        x = x + self.drop(self.proj(y.transpose(1, 2).reshape(b, t, d)))
        ff, router_logits = self.ff(self.ff_norm(x))
        return x + self.drop(ff), router_logits

    def forward(
        self,
        x: torch.Tensor,
        positions: torch.Tensor,
        mask: torch.Tensor,
        past: Optional[tuple[torch.Tensor, torch.Tensor]],
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor], Optional[torch.Tensor]]:
        """x (B, T, D); positions (B, T); mask (B, 1, T, T_past + T) True where attending is allowed."""
        q, k, v = self._qkv(x, positions)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.cfg.dropout if self.training else 0.0)
        x, router_logits = self._finish(x, y)
        return x, (k, v), router_logits

    def step(
        self,
        x: torch.Tensor,
        positions: torch.Tensor,
        prefix: tuple[torch.Tensor, torch.Tensor],
        prefix_valid: torch.Tensor,
        generated: Optional[tuple[torch.Tensor, torch.Tensor]],
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One decoding step of S*N rows (stream-major) that share their stream's prompt.

        x (S*N, 1, D); positions (S*N, 1); prefix k/v (S, H, Lp, Dh); prefix_valid (S, Lp);
        generated k/v (S*N, H, t, Dh) or None. Returns x and the generated k/v with this step's.
        """
        q, k, v = self._qkv(x, positions)
        if generated is not None:
            k, v = torch.cat([generated[0], k], dim=2), torch.cat([generated[1], v], dim=2)
        y = _shared_prefix_attention(q, prefix, prefix_valid, (k, v))
        x, _ = self._finish(x, y)
        return x, (k, v)


def _shared_prefix_attention(
    q: torch.Tensor, prefix: tuple[torch.Tensor, torch.Tensor], prefix_valid: torch.Tensor,
    generated: tuple[torch.Tensor, torch.Tensor],
) -> torch.Tensor:
    """Attention of q (S*N, H, 1, Dh) over its stream's prompt (S, H, Lp, Dh) and its own generated
    keys (S*N, H, t, Dh), one softmax over both, without copying the prompt per beam -> (S*N, H, 1, Dh)."""
    (pk, pv), (gk, gv) = prefix, generated
    s, rows, h, dh, t = pk.shape[0], q.shape[0], q.shape[1], q.shape[-1], gk.shape[2]
    n, lp = rows // s, pk.shape[2]
    q = q * dh**-0.5
    by_stream = q.reshape(s, n, h, dh).transpose(1, 2)  # (S, H, N, Dh)
    att_prefix = (by_stream @ pk.transpose(-1, -2)).masked_fill(~prefix_valid[:, None, None, :], float("-inf"))
    att_generated = (q @ gk.transpose(-1, -2)).reshape(s, n, h, t).transpose(1, 2)  # (S, H, N, t)
    weights = torch.cat([att_prefix, att_generated], -1).softmax(-1)  # (S, H, N, Lp + t)
    from_prefix = (weights[..., :lp] @ pv).transpose(1, 2).reshape(rows, h, 1, dh)
    w_generated = weights[..., lp:].transpose(1, 2).reshape(rows, h, 1, t)
    return from_prefix + w_generated @ gv


class MoeLM(nn.Module):
    def __init__(self, cfg: LMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.RMSNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.head.weight = self.embed.weight  # tied: fewer parameters for a small model
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(
        self,
        embeds: torch.Tensor,
        key_valid: torch.Tensor,
        positions: Optional[torch.Tensor] = None,
        cache: Optional[KVCache] = None,
        last_only: bool = False,
    ) -> tuple[torch.Tensor, KVCache, list[torch.Tensor]]:
        """embeds (B, T, D); key_valid (B, T_past + T) marks real (non-pad) keys.

        Returns logits (B, T, V) (or (B, 1, V) for the last position with `last_only`), the
        updated cache and router logits per MoE layer.
        """
        b, t, _ = embeds.shape
        past_len = cache[0][0].shape[2] if cache else 0
        if positions is None:
            positions = (key_valid.long().cumsum(-1) - 1).clamp(min=0)[:, past_len:]
        causal = torch.ones(t, past_len + t, dtype=torch.bool, device=embeds.device).tril(past_len)
        mask = causal[None, None] & key_valid[:, None, None, :]
        # A fully padded query row would give NaN; let it see itself (its output is ignored).
        keys = torch.arange(past_len + t, device=embeds.device)
        mask = mask | (keys[None, :] == (keys[past_len:])[:, None])[None, None]
        x = embeds
        new_cache: KVCache = []
        routers: list[torch.Tensor] = []
        for i, layer in enumerate(self.layers):
            x, kv, router = layer(x, positions, mask, cache[i] if cache else None)
            new_cache.append(kv)
            if router is not None:
                routers.append(router)
        if last_only:
            x = x[:, -1:]
        return self.head(self.norm(x)), new_cache, routers

    def step(self, embeds: torch.Tensor, cache: BeamCache) -> tuple[torch.Tensor, BeamCache]:
        """Beam-search step: embeds (S*N, 1, D) of each row's last token -> logits (S*N, V), cache."""
        generated = cache.generated
        done = generated[0][0].shape[2] if generated else 0
        streams = cache.prefix_valid.shape[0]
        start = cache.prefix_valid.sum(-1) + done  # (S,) position of this token in every stream
        positions = start.repeat_interleave(embeds.shape[0] // streams)[:, None]
        x, new_generated = embeds, []
        for i, layer in enumerate(self.layers):
            assert isinstance(layer, DecoderLayer)
            x, kv = layer.step(x, positions, cache.prefix[i], cache.prefix_valid, generated[i] if generated else None)
            new_generated.append(kv)
        return self.head(self.norm(x[:, 0])), BeamCache(cache.prefix, cache.prefix_valid, new_generated)


@dataclass
class BeamCache:
    """Beam-search KV cache: the prompt's keys and values once per stream, the generated tokens' per row.

    The beams of a stream share its prompt (instruction, context, speech), so selecting beams only
    reorders the few generated positions. prefix: per layer (S, H, Lp, Dh); prefix_valid (S, Lp);
    generated: per layer (S*N, H, t, Dh), rows stream-major, or None before the first token.
    """

    prefix: KVCache
    prefix_valid: torch.Tensor
    generated: Optional[KVCache] = None

    def select(self, rows: torch.Tensor) -> BeamCache:
        """Keep generated rows `rows` (S*N_new,), in that order."""
        generated = reorder_cache(self.generated, rows) if self.generated else None
        return BeamCache(self.prefix, self.prefix_valid, generated)


def reorder_cache(cache: KVCache, index: torch.Tensor) -> KVCache:
    """Select beams: every (B, H, T, Dh) tensor -> (len(index), H, T, Dh)."""
    return [(k.index_select(0, index), v.index_select(0, index)) for k, v in cache]
