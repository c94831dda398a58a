"""Whisper's audio encoder as a LUISE alternative, started from OpenAI's pretrained weights.

Two convolutions (the second stride 2) over Whisper's log-mel frames, sinusoidal positions sliced
to the input length (no padding to 30 s), pre-LayerNorm transformer blocks with a key-padding mask
so that a batch encodes each utterance as it would alone, a final LayerNorm.
    feats (B, T, n_mels) at 100 frames/s -> (B, ceil(T/2), d_model) at 50 frames/s.
`load_ct2_encoder` copies the weights of a CTranslate2 Whisper model (shared/model/whisper_weights.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class WhisperEncoderConfig:
    """Whisper base by default; tiny sizes are for tests."""

    n_mels: int = 80
    d_model: int = 512
    n_heads: int = 8
    n_layers: int = 6
    ff_mult: int = 4
    # positions after the stride-2 conv: 60 s, the gateway's longest window; Whisper was pretrained on the
    # first 1500 (30 s), the rest continue its sinusoid formula
    max_frames: int = 3000
    dropout: float = 0.0


def whisper_lengths(lengths: torch.Tensor) -> torch.Tensor:
    """Frame count after the stride-2 conv (kernel 3, padding 1): T -> floor((T - 1) / 2) + 1."""
    return torch.div(lengths - 1, 2, rounding_mode="floor") + 1


def padding_mask(lengths: torch.Tensor, t: int) -> Optional[torch.Tensor]:
    """lengths (B,) of a padded (B, T, D) batch -> attention mask (B, 1, 1, T), True where attended; None for
    one utterance, which has no padding to hide (and keeps the fast attention path)."""
    if len(lengths) == 1:
        return None
    valid = torch.arange(t, device=lengths.device)[None, :] < lengths[:, None]  # (B, T)
    return valid[:, None, None, :]


def sinusoids(length: int, channels: int, max_timescale: float = 10_000.0) -> torch.Tensor:
    """Whisper's position table (length, channels): sin half then cos half."""
    increment = np.log(max_timescale) / (channels // 2 - 1)
    inv = torch.exp(-increment * torch.arange(channels // 2, dtype=torch.float32))
    scaled = torch.arange(length, dtype=torch.float32)[:, None] * inv[None, :]
    return torch.cat([scaled.sin(), scaled.cos()], dim=1)


class WhisperBlock(nn.Module):
    def __init__(self, cfg: WhisperEncoderConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.n_heads, self.dropout = cfg.n_heads, cfg.dropout
        self.attn_norm = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)  # Whisper's key has no bias: its slice stays at zero from the weights
        self.attn_out = nn.Linear(d, d)
        self.ff_norm = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, cfg.ff_mult * d), nn.GELU(), nn.Linear(cfg.ff_mult * d, d))

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        """x (B, T, D), mask (B, 1, 1, T) True where attended, or None for one unpadded utterance."""
        b, t, d = x.shape
        q, k, v = self.qkv(self.attn_norm(x)).view(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        x = x + self.attn_out(att.transpose(1, 2).reshape(b, t, d))
        return x + self.ff(self.ff_norm(x))


class WhisperEncoder(nn.Module):
    def __init__(self, cfg: WhisperEncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.conv1 = nn.Conv1d(cfg.n_mels, cfg.d_model, 3, padding=1)
        self.conv2 = nn.Conv1d(cfg.d_model, cfg.d_model, 3, stride=2, padding=1)
        # saved with the weights: the pretrained table is the formula rounded to float16, and the encoder's
        # outputs follow those exact values (0.03 apart at the top layer with the float32 formula)
        self.positions: torch.Tensor
        self.register_buffer("positions", sinusoids(cfg.max_frames, cfg.d_model))
        self.layers = nn.ModuleList(WhisperBlock(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model)

    @property
    def d_model(self) -> int:
        return self.cfg.d_model

    def forward(
        self, feats: torch.Tensor, lengths: torch.Tensor, n_layers: Optional[int] = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """feats (B, T, n_mels), lengths (B,) -> (B, T', D), lengths (B,) with T' = ceil(T / 2).

        n_layers keeps the first blocks only (the final LayerNorm still applies)."""
        hidden, out_lens = self.lower(feats, lengths, n_layers or len(self.layers))
        return self.norm(hidden), out_lens

    def lower(self, feats: torch.Tensor, lengths: torch.Tensor, n_layers: int) -> tuple[torch.Tensor, torch.Tensor]:
        """feats (B, T, n_mels), lengths (B,) -> the residual stream (B, T', D) after the first n_layers blocks
        (no final LayerNorm), lengths (B,): what a cache keeps when only the blocks above are trained."""
        x = F.gelu(self.conv1(feats.transpose(1, 2)))  # (B, D, T)
        # zero past each length, as the conv's own padding is for an utterance alone: the stride-2 conv reads one
        # frame past the end
        in_valid = torch.arange(x.shape[2], device=x.device)[None, :] < lengths[:, None]  # (B, T)
        x = F.gelu(self.conv2(x * in_valid[:, None, :].to(x.dtype))).transpose(1, 2)  # (B, T', D)
        t = x.shape[1]
        x = x + self.positions[:t].to(x.dtype)  # (T', D); longer input is windowed by the caller
        out_lens = whisper_lengths(lengths)
        return self._blocks(x, out_lens, 0, n_layers), out_lens

    def upper(self, hidden: torch.Tensor, lengths: torch.Tensor, start: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The rest of `forward` from `lower(..., start)`'s output: hidden (B, T', D), lengths (B,) of those
        frames -> (B, T', D) after blocks start.. and the final LayerNorm, lengths (B,)."""
        return self.norm(self._blocks(hidden, lengths, start, len(self.layers))), lengths

    def _blocks(self, x: torch.Tensor, lengths: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        mask = padding_mask(lengths, x.shape[1])
        for layer in self.layers[start:stop]:
            x = layer(x, mask)
        return x


def ct2_copier(tensors: dict[str, np.ndarray]) -> Callable[[torch.Tensor | nn.Module, str], None]:
    """put(param, name): copy the CTranslate2 variable `name` into param, in param's dtype, shapes checked."""

    def put(param: torch.Tensor | nn.Module, name: str) -> None:
        assert isinstance(param, torch.Tensor)
        value = torch.from_numpy(tensors[name].astype(np.float32))
        if value.shape != param.shape:
            raise ValueError(f"{name}: shape {tuple(value.shape)} does not fit {tuple(param.shape)}")
        param.data.copy_(value)

    return put


def load_ct2_encoder(encoder: WhisperEncoder, tensors: dict[str, np.ndarray]) -> None:
    """Copy CTranslate2 Whisper encoder variables (read_ct2(..., 'encoder/')) into encoder, in its dtype."""
    put = ct2_copier(tensors)

    with torch.no_grad():
        for conv in ("conv1", "conv2"):
            put(getattr(encoder, conv).weight, f"encoder/{conv}/weight")
            put(getattr(encoder, conv).bias, f"encoder/{conv}/bias")
        for i, layer in enumerate(encoder.layers):
            assert isinstance(layer, WhisperBlock)
            p = f"encoder/layer_{i}"
            pairs = [(layer.attn_norm, "self_attention/layer_norm"), (layer.ff_norm, "ffn/layer_norm")]
            for norm, name in pairs:
                put(norm.weight, f"{p}/{name}/gamma")
                put(norm.bias, f"{p}/{name}/beta")
            linears = [(layer.qkv, "self_attention/linear_0"), (layer.attn_out, "self_attention/linear_1"),
                       (layer.ff[0], "ffn/linear_0"), (layer.ff[2], "ffn/linear_1")]
            for linear, name in linears:
                put(linear.weight, f"{p}/{name}/weight")
                put(linear.bias, f"{p}/{name}/bias")
        put(encoder.norm.weight, "encoder/layer_norm/gamma")
        put(encoder.norm.bias, "encoder/layer_norm/beta")
        table = torch.from_numpy(tensors["encoder/position_encodings/encodings"].astype(np.float32))
        if table.shape[1] != encoder.cfg.d_model:
            raise ValueError(f"position table width {table.shape[1]} does not fit d_model {encoder.cfg.d_model}")
        n = min(len(table), encoder.cfg.max_frames)
        encoder.positions[:n] = table[:n]  # past the pretrained 1500 the formula's values stay
