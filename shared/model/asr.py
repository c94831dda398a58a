"""The audio-conditioned LLM: LUISE encoder -> converter -> MoE LM, plus an auxiliary CTC head.

Prompt layout (token ids unless noted), identical for text pretraining, SFT and context SFT:
    <s> instruction [<ctx> context </ctx>] <speech> [speech embeddings] </speech> text </s>
Text-only pretraining leaves the speech span empty, so the frozen LM already knows the format.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from shared.model.conformer import ConformerConfig, ConformerEncoder
from shared.model.converter import Converter, ConverterConfig
from shared.model.moe_lm import LMConfig, MoeLM, load_balancing_loss
from shared.tokenizer import Tokenizer

INSTRUCTION_WITH_CONTEXT = "there are relevant contexts, transcribe the speech into text:"
INSTRUCTION_PLAIN = "transcribe the speech into text:"


@dataclass
class ASRConfig:
    encoder: ConformerConfig = field(default_factory=ConformerConfig)
    converter: ConverterConfig = field(default_factory=ConverterConfig)
    lm: LMConfig = field(default_factory=LMConfig)
    encoder_layers: Optional[int] = None  # LUISE layer kept after probing; None keeps all
    ctc_weight: float = 0.3


@dataclass
class Batch:
    """Padded LM inputs: embeds (B, L, D), valid (B, L), labels (B, L) with -100 where not scored."""

    embeds: torch.Tensor
    valid: torch.Tensor
    labels: torch.Tensor


class SeedASR(nn.Module):
    def __init__(
        self, cfg: ASRConfig, encoder: ConformerEncoder, converter: Converter, lm: MoeLM, ctc: Optional[nn.Linear]
    ) -> None:
        super().__init__()
        self.cfg, self.encoder, self.converter, self.lm, self.ctc = cfg, encoder, converter, lm, ctc

    @classmethod
    def build(cls, cfg: ASRConfig) -> SeedASR:
        ctc = nn.Linear(cfg.encoder.d_model, cfg.lm.vocab_size + 1) if cfg.ctc_weight > 0 else None
        return cls(cfg, ConformerEncoder(cfg.encoder), Converter(cfg.converter), MoeLM(cfg.lm), ctc)

    @property
    def ctc_blank(self) -> int:
        return self.cfg.lm.vocab_size

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
        emb = self.lm.embed
        parts = [emb(torch.tensor(before))]
        if speech is not None:
            parts.append(speech)
        parts.append(emb(torch.tensor(after)))
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
        seqs, labels = [], []
        for i, (ctx, tgt) in enumerate(zip(contexts, targets)):
            sp = speech[i, : int(speech_lens[i])] if speech is not None and speech_lens is not None else None
            prefix = self.prefix_embeds(tok, sp, ctx)
            text = torch.tensor([*tgt, tok.eos_id])
            seqs.append(torch.cat([prefix, self.lm.embed(text[:-1])]))
            lab = torch.full((seqs[-1].shape[0],), -100, dtype=torch.long)
            lab[prefix.shape[0] - 1 :] = text
            labels.append(lab)
        length = max(s.shape[0] for s in seqs)
        embeds = torch.stack([F.pad(s, (0, 0, 0, length - s.shape[0])) for s in seqs])
        valid = torch.stack([torch.arange(length) < s.shape[0] for s in seqs])
        lab_t = torch.stack([F.pad(lb, (0, length - lb.shape[0]), value=-100) for lb in labels])
        return Batch(embeds, valid, lab_t)

    # ---- training ------------------------------------------------------------------------------
    def lm_loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy over labelled positions and the MoE load-balancing loss."""
        logits, _, routers = self.lm(batch.embeds, batch.valid)
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.labels.reshape(-1), ignore_index=-100)
        moe = self.cfg.lm.moe
        aux = load_balancing_loss(routers, moe.n_experts, moe.top_k) if moe else torch.zeros(())
        return ce, aux

    def ctc_loss(self, enc: torch.Tensor, enc_lens: torch.Tensor, targets: Sequence[Sequence[int]]) -> torch.Tensor:
        assert self.ctc is not None
        logp = self.ctc(enc).log_softmax(-1).transpose(0, 1)  # (T, B, V+1)
        flat = torch.tensor([t for tgt in targets for t in tgt], dtype=torch.long)
        tlens = torch.tensor([len(t) for t in targets], dtype=torch.long)
        return F.ctc_loss(logp, flat, enc_lens, tlens, blank=self.ctc_blank, zero_infinity=True)


class EncoderWithConverter(nn.Module):
    """What the encoder service runs (and what is exported to ONNX / TensorRT).

    feats (B, T, F), lengths (B,) -> speech (B, S, D_lm), speech_lens (B,), ctc_logp (B, T/4, V+1).
    """

    def __init__(self, model: SeedASR) -> None:
        super().__init__()
        self.model = model

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        enc, speech, speech_lens, _ = self.model.encode(feats, lengths)
        if self.model.ctc is None:
            ctc = torch.zeros(enc.shape[0], enc.shape[1], 1)
        else:
            ctc = self.model.ctc(enc).log_softmax(-1)
        return speech, speech_lens, ctc
