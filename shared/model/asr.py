"""The audio-conditioned LLM: audio encoder -> converter -> MoE LM, plus an auxiliary CTC head.

The encoder is a registry choice (`ASRConfig.encoder_type`, ENCODERS): `luise_conformer`, our LUISE
trained here from scratch on fbank frames, or `whisper`, OpenAI Whisper's encoder on its own log-mel
frames, started from pretrained weights (shared/model/whisper_encoder.py). So is the decoder
(`ASRConfig.decoder_type`, DECODERS): `moe_lm`, our decoder-only MoE LM reading the converted speech
in its prompt (below), or `whisper`, Whisper's text decoder upcycled to MoE, which reads the encoder's
frames through cross-attention (the converter passes them through) and the context as its
<|startofprev|> prompt (shared/model/whisper_search.py); it has no CTC head.

Prompt layout (token ids unless noted), identical for text pretraining, SFT and context SFT:
    <s> instruction [<ctx> context </ctx>] <speech> [speech embeddings] </speech> text </s>
Text pretraining fills the speech span with pseudo-speech (noised, repeated, blank-padded token
embeddings; training/lm/pretrain.py), so the LM has learned to read that span before it is frozen.
The CTC head sits on the converter output and is tied to the LM's token embeddings: it pulls every
speech position towards the embedding of the token spoken there (or of the blank), which is the
input the frozen LM learned to read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shared.model.conformer import ConformerConfig, ConformerEncoder
from shared.model.converter import Converter, ConverterConfig
from shared.model.moe_lm import LMConfig, MoeLM, load_balancing_loss
from shared.model.whisper_decoder import WhisperDecoder, WhisperDecoderConfig
from shared.model.whisper_encoder import WhisperEncoder, WhisperEncoderConfig
from shared.tokenizer import Tokenizer

INSTRUCTION_WITH_CONTEXT = "there are relevant contexts, transcribe the speech into text:"
INSTRUCTION_PLAIN = "transcribe the speech into text:"


EncoderConfig = Union[ConformerConfig, WhisperEncoderConfig]
DecoderConfig = Union[LMConfig, WhisperDecoderConfig]


@dataclass(frozen=True)
class EncoderKind:
    """One registry entry: its config class, how to build it, its input features, seconds per output frame."""

    config: type
    build: Callable[[Any], nn.Module]
    features: str  # "fbank" (shared/features.py fbank + normalize) or "whisper_mel" (whisper_log_mel)
    frame_s: float


ENCODERS: dict[str, EncoderKind] = {
    "luise_conformer": EncoderKind(ConformerConfig, ConformerEncoder, "fbank", 0.04),  # 4x subsampled 10 ms hops
    "whisper": EncoderKind(WhisperEncoderConfig, WhisperEncoder, "whisper_mel", 0.02),  # 2x
}


def encoder_kind(name: str) -> EncoderKind:
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder_type {name!r}; known: {sorted(ENCODERS)}")
    return ENCODERS[name]


DECODERS: dict[str, type] = {"moe_lm": LMConfig, "whisper": WhisperDecoderConfig}  # decoder_type -> its config


def decoder_config_class(name: str) -> type:
    if name not in DECODERS:
        raise ValueError(f"unknown decoder_type {name!r}; known: {sorted(DECODERS)}")
    return DECODERS[name]


def pad_to_window(samples: np.ndarray, window_s: float, sample_rate: int = 16_000) -> np.ndarray:
    """samples (N,) -> zero-padded to a whole number of window_s windows (as they are when window_s is 0 or
    they are longer than Whisper's 30 s). Whisper's decoder was trained on audio padded to 30 s: on
    unpadded short audio it does not find the end of the speech and repeats itself; a short window
    keeps most of the accuracy at a fraction of the encoder's cost (bundles/default/EVAL.md)."""
    if window_s <= 0 or len(samples) >= 30 * sample_rate:
        return samples
    window = int(window_s * sample_rate)
    need = max(1, -(-len(samples) // window)) * window
    return np.pad(samples, (0, need - len(samples))) if need > len(samples) else samples


@dataclass
class ASRConfig:
    encoder: EncoderConfig = field(default_factory=ConformerConfig)
    encoder_type: str = "luise_conformer"  # a key of ENCODERS
    converter: ConverterConfig = field(default_factory=ConverterConfig)
    lm: DecoderConfig = field(default_factory=LMConfig)
    decoder_type: str = "moe_lm"  # a key of DECODERS
    window_s: float = 0.0  # audio is zero-padded to whole windows of this length before encoding (0: never)
    encoder_layers: Optional[int] = None  # LUISE layer kept after probing; None keeps all
    ctc_weight: float = 1.0
    ctc_blank: int = 3  # the tokenizer's <pad>: CTC blank and the pseudo-speech filler

    @property
    def frame_s(self) -> float:
        """Seconds per speech position at the LM (encoder frame x converter splice), for word timings."""
        return encoder_kind(self.encoder_type).frame_s * self.converter.splice


class TiedCTCHead(nn.Module):
    """CTC logits of speech positions against the LM's unit-length token embeddings: (B, S, D) @ (V, D)^T * scale.

    Unit length because LM embeddings are small (init std 0.02) while the converter output is
    layer-normalised: raw dot products would start near zero and leave CTC stuck on its plateau.
    """

    def __init__(self) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(()))

    def forward(self, speech: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        return speech @ F.normalize(embeddings, dim=-1).t() * self.log_scale.exp()


@dataclass
class Batch:
    """Padded LM inputs: embeds (B, L, D), valid (B, L), labels (B, L) with -100 where not scored."""

    embeds: torch.Tensor
    valid: torch.Tensor
    labels: torch.Tensor


# What a process builds: the whole model, the encoder half (audio encoder, converter, and the LM's token
# embeddings that the tied CTC head reads) or the decoder half (the LM and CTC head; speech arrives converted).
HALVES = ("all", "encoder", "decoder")


class Absent(nn.Module):
    """Stands in for the half of the model a process does not load: no weights, a clear error if called."""

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what

    def forward(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError(f"this process loaded only one half of the model: it has no {self.what}")


class PassThrough(nn.Module):
    """The converter of a cross-attention decoder: encoder frames (B, T', D), lengths (B,) go through as they are."""

    def forward(self, enc: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return enc, lengths


class SeedASR(nn.Module):
    def __init__(
        self, cfg: ASRConfig, encoder: nn.Module, converter: nn.Module, lm: Union[MoeLM, WhisperDecoder],
        ctc: Optional[TiedCTCHead],
    ) -> None:
        super().__init__()
        self.cfg, self.encoder, self.converter, self.lm, self.ctc = cfg, encoder, converter, lm, ctc

    @property
    def moe_lm(self) -> MoeLM:
        """The decoder-only LM (decoder_type `moe_lm`), for what only it does: prompts of embeddings, its KV cache."""
        if not isinstance(self.lm, MoeLM):
            raise TypeError(f"decoder_type {self.cfg.decoder_type!r} has no decoder-only LM")
        return self.lm

    @classmethod
    def build(cls, cfg: ASRConfig, half: str = "all") -> SeedASR:
        """half: all | encoder (LM reduced to its embeddings) | decoder (no audio encoder or converter)."""
        if half not in HALVES:
            raise ValueError(f"half must be one of {HALVES}, got {half!r}")
        kind = encoder_kind(cfg.encoder_type)
        if not isinstance(cfg.encoder, kind.config):
            raise ValueError(f"encoder_type {cfg.encoder_type!r} needs a {kind.config.__name__}, "
                             f"got {type(cfg.encoder).__name__}")
        if not isinstance(cfg.lm, decoder_config_class(cfg.decoder_type)):
            raise ValueError(f"decoder_type {cfg.decoder_type!r} needs a {DECODERS[cfg.decoder_type].__name__}, "
                             f"got {type(cfg.lm).__name__}")
        if isinstance(cfg.lm, WhisperDecoderConfig):
            if cfg.ctc_weight > 0:
                raise ValueError("decoder_type 'whisper' has no CTC head: set ctc_weight to 0")
            lm = WhisperDecoder(cfg.lm) if half != "encoder" else Absent("decoder")
            if half == "decoder":
                return cls(cfg, Absent("audio encoder"), Absent("converter"), lm, None)  # type: ignore[arg-type]
            return cls(cfg, kind.build(cfg.encoder), PassThrough(), lm, None)  # type: ignore[arg-type]
        ctc = TiedCTCHead() if cfg.ctc_weight > 0 else None
        if half == "decoder":
            return cls(cfg, Absent("audio encoder"), Absent("converter"), MoeLM(cfg.lm), ctc)
        moe_lm = MoeLM(dataclasses.replace(cfg.lm, n_layers=0) if half == "encoder" else cfg.lm)
        return cls(cfg, kind.build(cfg.encoder), Converter(cfg.converter), moe_lm, ctc)

    def in_half(self, key: str, half: str) -> bool:
        """Whether the state-dict entry `key` belongs to what build(cfg, half) makes."""
        if half == "decoder":
            return not key.startswith(("encoder.", "converter."))
        if half == "encoder":  # the LM's embeddings stay for a tied CTC head
            return not key.startswith("lm.layers." if isinstance(self.cfg.lm, LMConfig) else "lm.")
        return True

    @property
    def frame_s(self) -> float:
        return self.cfg.frame_s

    @property
    def ctc_blank(self) -> int:
        return self.cfg.ctc_blank

    def ctc_logits(self, speech: torch.Tensor) -> torch.Tensor:
        """speech (B, S, D_lm) -> CTC logits (B, S, V) over the LM vocabulary (blank = cfg.ctc_blank)."""
        assert self.ctc is not None
        return self.ctc(speech, self.moe_lm.embed.weight)

    def encode(
        self, feats: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """feats (B, T, F) -> encoder out (B, T/4, D_enc), speech (B, S, D_lm), speech lens (B,), encoder lens (B,)."""
        enc, enc_lens = self.encoder(feats, lengths, n_layers=self.cfg.encoder_layers)
        assert isinstance(enc, torch.Tensor)
        speech, speech_lens = self.converter(enc, enc_lens)
        return enc, speech, speech_lens, enc_lens

    # ---- prompts -------------------------------------------------------------------------------
    @staticmethod
    def prompt_ids(tok: Tokenizer, context: Optional[Sequence[int]]) -> tuple[list[int], list[int]]:
        """Token ids before and after the speech span."""
        instr = tok.encode(INSTRUCTION_WITH_CONTEXT if context else INSTRUCTION_PLAIN)
        before = [tok.bos_id, *instr]
        if context:
            before += [tok.ctx_id, *context, tok.ctx_end_id]
        return before + [tok.speech_id], [tok.speech_end_id]

    def prefix_embeds(self, tok: Tokenizer, speech: Optional[torch.Tensor], context: Optional[Sequence[int]]) -> torch.Tensor:
        """One decoding prefix (L, D): prompt, context and speech (S, D), ready for generation."""
        before, after = self.prompt_ids(tok, context)
        emb, dev = self.moe_lm.embed, self.moe_lm.embed.weight.device
        parts = [emb(torch.tensor(before, device=dev))]
        if speech is not None:
            parts.append(speech)
        parts.append(emb(torch.tensor(after, device=dev)))
        return torch.cat(parts)

    def build_batch(
        self,
        tok: Tokenizer,
        speech: Optional[torch.Tensor],
        speech_lens: Optional[torch.Tensor],
        contexts: Sequence[Optional[Sequence[int]]],
        targets: Sequence[Sequence[int]],
    ) -> Batch:
        """Right-padded teacher-forcing batch; only target tokens (and </s>) carry labels."""
        seqs, labels, dev = [], [], self.moe_lm.embed.weight.device
        for i, (ctx, tgt) in enumerate(zip(contexts, targets)):
            sp = speech[i, : int(speech_lens[i])] if speech is not None and speech_lens is not None else None
            prefix = self.prefix_embeds(tok, sp, ctx)
            text = torch.tensor([*tgt, tok.eos_id], device=dev)
            seqs.append(torch.cat([prefix, self.moe_lm.embed(text[:-1])]))
            lab = torch.full((seqs[-1].shape[0],), -100, dtype=torch.long, device=dev)
            lab[prefix.shape[0] - 1 :] = text
            labels.append(lab)
        length = max(s.shape[0] for s in seqs)
        embeds = torch.stack([F.pad(s, (0, 0, 0, length - s.shape[0])) for s in seqs])
        valid = torch.stack([torch.arange(length, device=dev) < s.shape[0] for s in seqs])
        lab_t = torch.stack([F.pad(lb, (0, length - lb.shape[0]), value=-100) for lb in labels])
        return Batch(embeds, valid, lab_t)

    # ---- training ------------------------------------------------------------------------------
    def lm_loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy over labelled positions and the MoE load-balancing loss."""
        logits, _, routers = self.moe_lm(batch.embeds, batch.valid)
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.labels.reshape(-1), ignore_index=-100)
        moe = self.moe_lm.cfg.moe
        aux = load_balancing_loss(routers, moe.n_experts, moe.top_k) if moe else logits.new_zeros(())
        return ce, aux

    def ctc_loss(self, speech: torch.Tensor, speech_lens: torch.Tensor, targets: Sequence[Sequence[int]]) -> torch.Tensor:
        """Per-token CTC loss of the converter output (B, S, D_lm) against target ids."""
        logp = self.ctc_logits(speech).log_softmax(-1).transpose(0, 1)  # (S, B, V)
        flat = torch.tensor([t for tgt in targets for t in tgt], dtype=torch.long, device=speech.device)
        tlens = torch.tensor([len(t) for t in targets], dtype=torch.long, device=speech.device)
        return F.ctc_loss(logp, flat, speech_lens, tlens, blank=self.ctc_blank, zero_infinity=True)


class EncoderWithConverter(nn.Module):
    """What the encoder service runs (and what is exported to ONNX / TensorRT).

    feats (B, T, F), lengths (B,) -> speech (B, S, D_lm), speech_lens (B,), ctc_logp (B, S, V).
    """

    def __init__(self, model: SeedASR) -> None:
        super().__init__()
        self.model = model

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        _, speech, speech_lens, _ = self.model.encode(feats, lengths)
        if self.model.ctc is None:  # no CTC head: one column, the blank's (log 1), so no interim text
            ctc = speech.new_zeros(*speech.shape[:2], 1)
        else:
            ctc = self.model.ctc_logits(speech).log_softmax(-1)
        return speech, speech_lens, ctc
