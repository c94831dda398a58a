"""Converter between the audio encoder and the LM: frame splicing followed by a linear projection, then
optionally a few transformer blocks at the LM's width.

The blocks are for a frozen pretrained encoder (Whisper, recipe encoder_lr_scale 0): with nothing of the
encoder trained, a linear map alone must turn its frames into the token-embedding-like positions the
frozen LM reads; blocks over the spliced positions give that map context, and they run after the cached
encoder outputs (training/common.py EncoderOutputCache), so training stays cheap. n_layers 0 is the
paper's converter, and what every bundle before the option holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from shared.model.whisper_encoder import WhisperBlock, WhisperEncoderConfig, padding_mask


@dataclass
class ConverterConfig:
    d_in: int = 144
    d_out: int = 256
    splice: int = 2  # encoder frames concatenated into one LM position
    n_layers: int = 0  # transformer blocks after the projection (pre-LN, Whisper's block at width d_out)
    n_heads: int = 4
    ff_mult: int = 4


class Converter(nn.Module):
    def __init__(self, cfg: ConverterConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.proj = nn.Linear(cfg.d_in * cfg.splice, cfg.d_out)
        self.norm = nn.LayerNorm(cfg.d_out)
        block = WhisperEncoderConfig(d_model=cfg.d_out, n_heads=cfg.n_heads, ff_mult=cfg.ff_mult)
        self.blocks = nn.ModuleList(WhisperBlock(block) for _ in range(cfg.n_layers))
        self.out_norm = nn.LayerNorm(cfg.d_out) if cfg.n_layers else None

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, D_enc), (B,) -> (B, ceil(T/k), D_lm), (B,)."""
        k = self.cfg.splice
        b, t, d = x.shape
        # zero past each length: an encoder's padded frames are not zeros (its final LayerNorm), and the last
        # position of a length that splice does not divide would read them, where alone it reads zero padding
        valid = torch.arange(t, device=x.device)[None, :] < lengths[:, None]  # (B, T)
        x = x * valid[:, :, None].to(x.dtype)
        pad = (-t) % k
        x = F.pad(x, (0, 0, 0, pad))
        x = x.reshape(b, (t + pad) // k, d * k)
        out_lens = torch.div(lengths + k - 1, k, rounding_mode="floor")
        x = self.norm(self.proj(x))
        if self.out_norm is not None:
            mask = padding_mask(out_lens, x.shape[1])
            for block in self.blocks:
                x = block(x, mask)
            x = self.out_norm(x)
        return x, out_lens
