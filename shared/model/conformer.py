"""LUISE encoder: a Conformer (conv subsampling, rotary attention, macaron FFN, conv module)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ConformerConfig:
    n_mels: int = 80
    d_model: int = 144
    n_heads: int = 4
    n_layers: int = 6
    ff_mult: int = 4
    conv_kernel: int = 15
    dropout: float = 0.1
    rope_base: float = 10_000.0
    subsample_channels: int = 64


def subsampled_lengths(lengths: torch.Tensor) -> torch.Tensor:
    """Frame count after two stride-2 convolutions (kernel 3, padding 1): T -> ceil(ceil(T/2)/2)."""
    return torch.div(torch.div(lengths + 1, 2, rounding_mode="floor") + 1, 2, rounding_mode="floor")


def rotary(x: torch.Tensor, positions: torch.Tensor, base: float) -> torch.Tensor:
    """Rotate (B, H, T, Dh) by positions (B, T) or (T,)."""
    dh = x.shape[-1]
    inv = 1.0 / (base ** (torch.arange(0, dh, 2, device=x.device, dtype=torch.float32) / dh))
    ang = positions.to(torch.float32).unsqueeze(-1) * inv  # (..., T, Dh/2)
    if ang.dim() == 3:
        ang = ang.unsqueeze(1)  # (B, 1, T, Dh/2)
    cos, sin = ang.cos(), ang.sin()
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return out.flatten(-2)


class ConvSubsampling(nn.Module):
    """(B, T, F) -> (B, ceil(T/4), D)."""

    def __init__(self, n_mels: int, d_model: int, channels: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1),
            nn.SiLU(),
        )
        self.out = nn.Linear(channels * ((((n_mels + 1) // 2) + 1) // 2), d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x.unsqueeze(1))  # (B, D, T/4, F/4)
        b, c, t, f = x.shape
        return self.out(x.transpose(1, 2).reshape(b, t, c * f))


class FeedForward(nn.Module):
    def __init__(self, d: int, mult: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(d), nn.Linear(d, d * mult), nn.SiLU(), nn.Dropout(dropout), nn.Linear(d * mult, d)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class RotarySelfAttention(nn.Module):
    def __init__(self, cfg: ConformerConfig) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.n_heads, self.base, self.dropout = cfg.n_heads, cfg.rope_base, cfg.dropout

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        """x (B, T, D); key_mask (B, T) True where valid."""
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm(x)).view(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        pos = torch.arange(t, device=x.device)
        q, k = rotary(q, pos, self.base), rotary(k, pos, self.base)
        mask = key_mask[:, None, None, :]  # (B, 1, 1, T)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class ConvModule(nn.Module):
    def __init__(self, cfg: ConformerConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.norm = nn.LayerNorm(d)
        self.pointwise_in = nn.Conv1d(d, 2 * d, 1)
        self.depthwise = nn.Conv1d(d, d, cfg.conv_kernel, padding=cfg.conv_kernel // 2, groups=d)
        self.depth_norm = nn.LayerNorm(d)
        self.pointwise_out = nn.Conv1d(d, d, 1)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """x (B, T, D); valid (B, T). Padded frames are zeroed so they never leak into the conv."""
        y = self.norm(x).masked_fill(~valid.unsqueeze(-1), 0.0).transpose(1, 2)
        y = F.glu(self.pointwise_in(y), dim=1)
        y = self.depthwise(y).transpose(1, 2)
        y = F.silu(self.depth_norm(y)).transpose(1, 2)
        return self.dropout(self.pointwise_out(y).transpose(1, 2))


class ConformerBlock(nn.Module):
    def __init__(self, cfg: ConformerConfig) -> None:
        super().__init__()
        self.ff1 = FeedForward(cfg.d_model, cfg.ff_mult, cfg.dropout)
        self.attn = RotarySelfAttention(cfg)
        self.conv = ConvModule(cfg)
        self.ff2 = FeedForward(cfg.d_model, cfg.ff_mult, cfg.dropout)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        x = x + 0.5 * self.drop(self.ff1(x))  # macaron: half-step FFN on both sides
        x = x + self.drop(self.attn(x, valid))
        x = x + self.conv(x, valid)
        x = x + 0.5 * self.drop(self.ff2(x))
        return self.norm(x)


class ConformerEncoder(nn.Module):
    def __init__(self, cfg: ConformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.subsample = ConvSubsampling(cfg.n_mels, cfg.d_model, cfg.subsample_channels)
        self.layers = nn.ModuleList(ConformerBlock(cfg) for _ in range(cfg.n_layers))

    def forward(
        self, feats: torch.Tensor, lengths: torch.Tensor, n_layers: int | None = None, return_all: bool = False
    ) -> tuple[torch.Tensor | list[torch.Tensor], torch.Tensor]:
        """feats (B, T, F), lengths (B,) -> hidden (B, T/4, D), lengths (B,).

        `n_layers` stops early (the probed layer kept after SSL); `return_all` returns every layer's output.
        """
        x = self.subsample(feats)
        out_lens = subsampled_lengths(lengths)
        valid = torch.arange(x.shape[1], device=x.device)[None, :] < out_lens[:, None]
        hidden = []
        for layer in self.layers[: n_layers or len(self.layers)]:
            x = layer(x, valid)
            hidden.append(x)
        return (hidden if return_all else x), out_lens
