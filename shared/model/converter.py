"""Converter between LUISE and the LM: frame splicing followed by a linear projection."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ConverterConfig:
    d_in: int = 144
    d_out: int = 256
    splice: int = 2  # encoder frames concatenated into one LM position


class Converter(nn.Module):
    def __init__(self, cfg: ConverterConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.proj = nn.Linear(cfg.d_in * cfg.splice, cfg.d_out)
        self.norm = nn.LayerNorm(cfg.d_out)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, D_enc), (B,) -> (B, ceil(T/k), D_lm), (B,)."""
        k = self.cfg.splice
        b, t, d = x.shape
        pad = (-t) % k
        x = F.pad(x, (0, 0, 0, pad))
        x = x.reshape(b, (t + pad) // k, d * k)
        return self.norm(self.proj(x)), torch.div(lengths + k - 1, k, rounding_mode="floor")
