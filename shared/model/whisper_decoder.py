"""Whisper's text decoder, started from OpenAI's pretrained weights: what a pretrained decoder LM on
Whisper's encoder starts from (our own 7.6 M-parameter LM capped what Whisper's encoder could reach under it).

Pre-LayerNorm blocks of causal self-attention, cross-attention to the encoder's frames and an MLP;
learned positions; logits tied to the token embeddings.
    tokens (B, L), audio (B, T', D) from WhisperEncoder -> logits (B, L, vocab_size)
With `moe` set, each block's MLP is a routed Mixture-of-Experts upcycled from the pretrained MLP (every
expert starts as its copy, the router at random), so the decoder starts out computing what Whisper's does.
`load_ct2_decoder` copies the weights of a CTranslate2 Whisper model (shared/model/whisper_weights.py);
`WhisperTokens` reads the tokenizer that ships beside them; `greedy_decode` writes a transcript.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shared.model.lexicon import WORD_START
from shared.model.moe_lm import MoeConfig, MoeFeedForward
from shared.model.whisper_encoder import ct2_copier, padding_mask

# One (key, value) pair per block, each (B, H, L, D / H): self-attention over the tokens so far, or
# cross-attention over the audio frames.
KV = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class WhisperDecoderConfig:
    """Whisper base (multilingual) by default; tiny sizes are for tests."""

    vocab_size: int = 51865
    d_model: int = 512
    n_heads: int = 8
    n_layers: int = 6
    ff_mult: int = 4
    max_tokens: int = 448  # learned positions
    moe: Optional[MoeConfig] = None  # None: Whisper's dense MLPs


class WhisperDecoderBlock(nn.Module):
    def __init__(self, cfg: WhisperDecoderConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.n_heads = cfg.n_heads
        self.self_norm = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)  # Whisper's keys have no bias: their slices stay at zero from the weights
        self.self_out = nn.Linear(d, d)
        self.cross_norm = nn.LayerNorm(d)
        self.cross_q = nn.Linear(d, d)
        self.cross_kv = nn.Linear(d, 2 * d)
        self.cross_out = nn.Linear(d, d)
        self.ff_norm = nn.LayerNorm(d)
        hidden = cfg.ff_mult * d
        self.ff: nn.Module = (gelu_mlp(d, hidden) if cfg.moe is None
                              else MoeFeedForward(d, hidden, cfg.moe, expert=lambda: gelu_mlp(d, hidden)))

    def _heads(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """(B, T, n * D) -> (n, B, H, T, D / H)"""
        b, t, _ = x.shape
        return x.view(b, t, n, self.n_heads, -1).permute(2, 0, 3, 1, 4)

    def cross_keys(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """audio (B, T', D) -> this block's cross-attention keys and values, each (B, H, T', D / H)."""
        k, v = self._heads(self.cross_kv(audio), 2)
        return k, v

    def forward(self, x: torch.Tensor, audio_kv: tuple[torch.Tensor, torch.Tensor], audio_mask: Optional[torch.Tensor],
                past: Optional[tuple[torch.Tensor, torch.Tensor]] = None, self_mask: Optional[torch.Tensor] = None,
                cross_logits: Optional[list[torch.Tensor]] = None,
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor], Optional[torch.Tensor]]:
        """x (B, L, D) token states, audio_kv from cross_keys (batch B, or 1 for audio that every row reads),
        audio_mask (B, 1, 1, T') True where attended, or None; past: the self-attention keys and values of the tokens
        before x; self_mask (B, 1, L, L_past + L) True where a token may attend (None: causal) -> (B, L, D), the
        self-attention keys and values so far, router logits (B*L, E) or None (dense MLP). With cross_logits (a list)
        the cross-attention runs unfused and appends its scaled query-key logits (B, H, L, T') there: word timing
        aligns tokens to frames with them (shared/model/whisper_align.py)."""
        b, n, d = x.shape
        q, k, v = self._heads(self.qkv(self.self_norm(x)), 3)
        causal = self_mask
        if past is not None:
            k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
            if n > 1 and causal is None:  # new token i sees every cached one and the new ones up to itself
                causal = torch.ones(n, k.shape[2], dtype=torch.bool, device=x.device).tril(k.shape[2] - n)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=causal, is_causal=past is None and causal is None)
        x = x + self.self_out(att.transpose(1, 2).reshape(b, n, d))
        q = self._heads(self.cross_q(self.cross_norm(x)), 1)[0]  # (B, H, L, D / H)
        audio_k, audio_v = audio_kv
        if cross_logits is not None:
            logits = q @ audio_k.transpose(-1, -2) * q.shape[-1] ** -0.5  # (B, H, L, T')
            if audio_mask is not None:
                logits = logits.masked_fill(~audio_mask, float("-inf"))
            cross_logits.append(logits)
            att = logits.softmax(-1) @ audio_v
        elif audio_k.shape[0] == 1 and b > 1 and audio_mask is None:
            # every row reads the same audio (a beam search's hypotheses): their queries attend as one row of B * L,
            # so the audio's keys and values are read once, not copied per row
            folded = q.transpose(0, 1).reshape(1, self.n_heads, b * n, -1)
            att = F.scaled_dot_product_attention(folded, audio_k, audio_v).view(self.n_heads, b, n, -1).transpose(0, 1)
        else:
            att = F.scaled_dot_product_attention(q, audio_k.expand(b, -1, -1, -1), audio_v.expand(b, -1, -1, -1),
                                                 attn_mask=audio_mask)
        x = x + self.cross_out(att.transpose(1, 2).reshape(b, n, d))
        ff = self.ff(self.ff_norm(x))
        ff, router = ff if isinstance(ff, tuple) else (ff, None)
        return x + ff, (k, v), router


class WhisperDecoder(nn.Module):
    def __init__(self, cfg: WhisperDecoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.positions = nn.Parameter(torch.zeros(cfg.max_tokens, cfg.d_model))
        self.layers = nn.ModuleList(WhisperDecoderBlock(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model)
        # logits tied to the token embeddings, as a Linear so that an int8 copy (shared/model/quantize.py) covers
        # the 51865-way output layer too: it is most of a decoding step's cost
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.head.weight = self.embed.weight

    def audio_keys(self, audio: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """audio (B, T', D) -> every block's cross-attention keys and values: computed once per utterance,
        not once per decoded token."""
        return [cast(WhisperDecoderBlock, layer).cross_keys(audio) for layer in self.layers]

    def forward(self, tokens: torch.Tensor, audio: torch.Tensor, audio_lens: Optional[torch.Tensor] = None,
                audio_kv: Optional[KV] = None) -> torch.Tensor:
        """tokens (B, L), audio (B, T', D), audio_lens (B,) valid frames (None: all), audio_kv from audio_keys(audio)
        when already computed -> logits (B, L, V)."""
        mask = padding_mask(audio_lens, audio.shape[1]) if audio_lens is not None else None
        return self.run(tokens, audio_kv or self.audio_keys(audio), mask)[0]

    def run(self, tokens: torch.Tensor, audio_kv: KV, audio_mask: Optional[torch.Tensor] = None,
            past: Optional[KV] = None, last_only: bool = False, pad: Optional[torch.Tensor] = None,
            cross_logits: Optional[list[torch.Tensor]] = None, logits_from: int = 0,
            ) -> tuple[torch.Tensor, KV, list[torch.Tensor]]:
        """tokens (B, L) after the `past` ones (self-attention cache from an earlier run), audio_kv
        (B, H, T', D / H) per block -> logits (B, L, V) (B, 1, V with last_only: the output layer is most of a
        step's cost), the self-attention cache so far, router logits per MoE block (B*L, E), for the
        load-balancing loss. pad (B,): how many of each row's first tokens (the past's included) are left
        padding, so rows of different lengths run as one batch: no token attends to them, and positions count
        from each row's first real token. cross_logits: a list that gets each block's cross-attention logits
        (B, H, L, T'), in block order. logits_from: logits of the tokens from this one on only (B, L - logits_from, V):
        an int8 output layer quantizes its input per batch, so rows it need not score (a prompt's special tokens)
        would change the others' scores."""
        start = past[0][0].shape[2] if past else 0
        length = tokens.shape[1]
        if start + length > self.cfg.max_tokens:
            raise ValueError(f"{start + length} tokens, the decoder has {self.cfg.max_tokens} positions")
        self_mask: Optional[torch.Tensor] = None
        if pad is None:
            x = self.embed(tokens) + self.positions[start : start + length]
        else:
            query = torch.arange(start, start + length)[:, None]  # (L, 1)
            key = torch.arange(start + length)[None, :]  # (1, K)
            real = key[None] >= pad[:, None, None]  # (B, 1, K)
            # a padding token sees itself only: no row of the attention is empty (an all-masked row is NaN)
            self_mask = ((key <= query)[None] & (real | (key == query)[None]))[:, None]  # (B, 1, L, K)
            x = self.embed(tokens) + self.positions[(query.T - pad[:, None]).clamp(min=0)]
        cache: KV = []
        routers: list[torch.Tensor] = []
        for i, (layer, kv) in enumerate(zip(self.layers, audio_kv)):
            x, self_kv, router = layer(x, kv, audio_mask, past[i] if past else None, self_mask, cross_logits)
            cache.append(self_kv)
            if router is not None:
                routers.append(router)
        return self.head(self.norm(x[:, -1:] if last_only else x[:, logits_from:])), cache, routers


def gelu_mlp(d: int, hidden: int) -> nn.Sequential:
    """Whisper's MLP: (.., d) -> (.., d) through a GELU layer of `hidden` units."""
    return nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, d))


def load_ct2_decoder(decoder: WhisperDecoder, tensors: dict[str, np.ndarray]) -> None:
    """Copy CTranslate2 Whisper decoder variables (read_ct2(..., 'decoder/')) into decoder, in its dtype."""

    put = ct2_copier(tensors)

    with torch.no_grad():
        put(decoder.embed.weight, "decoder/embeddings/weight")
        put(decoder.positions, "decoder/position_encodings/encodings")
        for i, layer in enumerate(decoder.layers):
            assert isinstance(layer, WhisperDecoderBlock)
            p = f"decoder/layer_{i}"
            for norm, name in [(layer.self_norm, "self_attention"), (layer.cross_norm, "attention"), (layer.ff_norm, "ffn")]:
                put(norm.weight, f"{p}/{name}/layer_norm/gamma")
                put(norm.bias, f"{p}/{name}/layer_norm/beta")
            linears = [(layer.qkv, "self_attention/linear_0"), (layer.self_out, "self_attention/linear_1"),
                       (layer.cross_q, "attention/linear_0"), (layer.cross_kv, "attention/linear_1"),
                       (layer.cross_out, "attention/linear_2")]
            # upcycling: every expert starts as the pretrained MLP
            mlps = list(layer.ff.experts) if isinstance(layer.ff, MoeFeedForward) else [layer.ff]
            linears += [(mlp[j], f"ffn/linear_{j // 2}") for mlp in mlps for j in (0, 2)]  # type: ignore[index]
            for linear, name in linears:
                put(linear.weight, f"{p}/{name}/weight")
                put(linear.bias, f"{p}/{name}/bias")
        put(decoder.norm.weight, "decoder/layer_norm/gamma")
        put(decoder.norm.bias, "decoder/layer_norm/beta")


WHISPER_TOKENIZER_FILE = "whisper_tokenizer.json"  # in a bundle built from a user's checkpoint (else the package's)


class WhisperTokens:
    """Whisper's byte-level BPE (the tokenizer.json beside the weights) and its special tokens."""

    def __init__(self, tokenizer_json: Path) -> None:
        from tokenizers import Tokenizer  # faster-whisper's dependency; only this reader needs it

        self.tok = Tokenizer.from_file(str(tokenizer_json))
        self.eot = self._id("<|endoftext|>")
        space = self.tok.encode(" ", add_special_tokens=False).ids
        self.blank: Optional[int] = int(space[0]) if len(space) == 1 else None  # the bare space

    def _id(self, token: str) -> int:
        found = self.tok.token_to_id(token)
        if found is None:
            raise ValueError(f"the Whisper tokenizer has no {token}")
        return int(found)

    def encode(self, text: str, lead_space: bool = True) -> list[int]:
        """Token ids of text as it follows a space inside a transcript (Whisper writes " word", not "word"); without
        the space for a language written without spaces (a Chinese transcript starts with its first character)."""
        return list(self.tok.encode((" " if lead_space else "") + text.strip(), add_special_tokens=False).ids)

    def languages(self) -> dict[str, int]:
        """The model's language codes and their tokens (<|en|>, <|zh|>, ...): the tokens between <|startoftranscript|>
        and <|translate|>."""
        first, end = self._id("<|startoftranscript|>") + 1, self._id("<|translate|>")
        return {str(self.tok.id_to_token(i))[2:-2]: i for i in range(first, end)}

    def prompt(self, language: str = "en", previous: Optional[str] = None, max_previous: int = 223) -> list[int]:
        """The start of a transcript: start of transcript, language, transcribe, no timestamps. `previous` (the
        context) goes before them after <|startofprev|>, its last max_previous tokens (Whisper's limit: half its
        positions)."""
        head = [self._id(t) for t in ("<|startoftranscript|>", f"<|{language}|>", "<|transcribe|>", "<|notimestamps|>")]
        prev = self.encode(previous)[-max_previous:] if previous and previous.strip() else []
        return [self._id("<|startofprev|>"), *prev, *head] if prev else head

    def decode(self, ids: list[int]) -> str:
        return str(self.tok.decode([i for i in ids if i < self.eot])).strip()

    def token_bytes(self) -> list[bytes]:
        """The bytes each id spells (byte-level BPE: GPT-2's byte-to-character table read backwards); b"" for the
        special tokens (eot and after)."""
        printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
        codes = printable + [256 + n for n in range(256 - len(printable))]
        byte_of = {chr(c): b for b, c in zip(printable + [b for b in range(256) if b not in printable], codes)}
        spelled = [bytes(byte_of[ch] for ch in str(self.tok.id_to_token(i))) for i in range(self.eot)]
        return spelled + [b""] * (self.tok.get_vocab_size(with_added_tokens=True) - self.eot)

    def pieces(self) -> list[str]:
        """Each id's text as a word lexicon reads pieces (shared/model/lexicon.py): a leading space becomes the
        word-start mark; special tokens (eot and after) are empty. A byte that is part of a wider character
        reads as U+FFFD, neither a letter nor a word start."""
        texts = self.tok.decode_batch([[i] for i in range(self.eot)], skip_special_tokens=False)
        specials = self.tok.get_vocab_size(with_added_tokens=True) - self.eot
        return [WORD_START + t[1:] if t.startswith(" ") else t for t in texts] + [""] * specials


@torch.inference_mode()
def greedy_decode(decoder: WhisperDecoder, audio: torch.Tensor, prompt: list[int], eot: int,
                  max_new: int = 128) -> list[int]:
    """audio (1, T', D) -> the new token ids up to (not including) eot. The special tokens after eot
    (start of transcript, languages, tasks, timestamps) are never written."""
    tokens, audio_kv = list(prompt), decoder.audio_keys(audio)
    for _ in range(min(max_new, decoder.cfg.max_tokens - len(prompt))):
        logits = decoder(torch.tensor([tokens]), audio, audio_kv=audio_kv)[0, -1]  # (V,)
        logits[eot + 1 :] = float("-inf")
        nxt = int(logits.argmax())
        if nxt == eot:
            break
        tokens.append(nxt)
    return tokens[len(prompt) :]
