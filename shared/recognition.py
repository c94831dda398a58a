"""Recognition steps shared by the services and the embedded server: encode and decode (segmenting and
word timing, which need no model, are in shared/segments.py). Services wrap these in servicers; no
transport code lives here."""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from shared.bundle import default_bundle_dir, load_bundle, read_bundle
from shared.context import context_text
from shared.decoding import decoding_for
from shared.engines import EncoderEngine, EncoderOutput, engine_kind, make_encoder_engine
from shared.features import encoder_features
from shared.model.asr import HALVES, SeedASR, encoder_kind, pad_to_window
from shared.model.beam_search import BeamConfig, SearchCancelled
from shared.model.lexicon import WordLexicon, load_words
from shared.model.moe_lm import share_identical_experts
from shared.model.phrase_correction import CorrectionConfig
from shared.model.quantize import LINEAR_PRECISIONS, bf16_linears, quantize_linears
from shared.model.word_lm import WORD_LM_FILE, WordLM
from shared.segments import Word
from shared.settings import Settings
from shared.strategies import DECODING_STRATEGIES, DecodingStrategy, Loaded, NBestEntry, OutputConfig, Phrases, nbest_agreement

# the most tokens a second of audio is written with: fast speech runs 5-6 tokens a second in English, and about 15
# in Chinese, whose rarer characters take 2-3 byte tokens each
MAX_TOKENS_PER_AUDIO_S = 20.0

__all__ = ["AsrCore", "NBestEntry", "OutputConfig", "most_confident", "nbest_agreement"]


class AsrCore:
    """A loaded bundle: the encoder engine for `encode`, the LM for `decode`. `half` loads one side only
    (the encoder service: "encoder"; the decoder service: "decoder"); with an ONNX or TensorRT engine the
    audio encoder's torch weights are never read. `warps`: the filterbank frequency warps each audio is
    encoded under (shared/features.py), the most confident kept. `lm_int8`: the decoder's output layer in int8,
    and its blocks' linears in `lm_blocks` ("int8", "bf16" or "fp32"; without lm_int8 the whole LM stays fp32);
    `encoder_int8`: the ONNX engine runs the int8 encoder; `encoder_threads`: its intra-op threads (0: `threads`)."""

    def __init__(self, bundle_dir: Optional[str | Path] = None, engine: str = "auto", threads: int = 0,
                 warps: Sequence[float] = (1.0,), lm_int8: bool = False, half: str = "all",
                 lm_blocks: str = "int8", encoder_int8: bool = False, encoder_threads: int = 0) -> None:
        if not warps or any(not 0.5 <= w <= 2.0 for w in warps):
            raise ValueError(f"filterbank warps must be a non-empty list of values in [0.5, 2], got {list(warps)}")
        if half not in HALVES:
            raise ValueError(f"half must be one of {HALVES}, got {half!r}")
        if lm_blocks not in LINEAR_PRECISIONS:
            raise ValueError(f"lm_blocks must be one of {LINEAR_PRECISIONS}, got {lm_blocks!r}")
        self.warps, self.half = tuple(warps), half
        self.bundle_dir = Path(bundle_dir) if bundle_dir else default_bundle_dir()
        if threads:
            torch.set_num_threads(threads)
        # numpy's BLAS (the log-mel's filterbank product) on one thread: its idle threads spin on the cores the
        # encoder and decoder want, and cost a 10 s window's encode 98 -> 141 ms; its products here are small
        threadpool_limits(1, user_api="blas")
        self.cfg, self.tok, self.meta = read_bundle(self.bundle_dir)
        kind = engine_kind(engine, self.bundle_dir) if half != "decoder" else ""
        torch_encoder, runs_lm = kind == "torch", half != "encoder"
        load = "all" if torch_encoder and runs_lm else "encoder" if torch_encoder else "decoder" if runs_lm else ""
        self.model: Optional[SeedASR] = load_bundle(self.bundle_dir, load)[0] if load else None
        self.engine: Optional[EncoderEngine] = (
            make_encoder_engine(kind, self.model, self.bundle_dir, encoder_threads or threads, encoder_int8)
            if half != "decoder" else None)
        self.strategy: Optional[DecodingStrategy] = None
        if runs_lm:
            assert self.model is not None
            # the search's LM, in int8 in place: nothing here reads its fp32 linears again (the CTC head and prompt
            # embeddings use its embedding table, which stays fp32). Off unless asked (services ask through
            # SEEDASR_LM_INT8, default on), so library callers get the exact model
            share_identical_experts(self.model.lm)  # exact; before int8, which keeps the sharing
            self.lm = self.model.lm
            if lm_int8:
                if lm_blocks == "bf16":  # the router stays fp32: it picks the experts
                    bf16_linears(self.lm, skip=("head", "router"))
                self.lm = quantize_linears(self.lm, inplace=True, only=None if lm_blocks == "int8" else {"head"})
            self.strategy = DECODING_STRATEGIES[self.cfg.decoder_type](
                Loaded(self.bundle_dir, self.meta, self.model, self.lm, self.tok, self._lexicon))
        self.lock = threading.Lock()  # torch intra-op threads already use the cores; serialize decodes

    @property
    def lexicon(self) -> Optional[WordLexicon]:
        return self.strategy.lexicon if self.strategy is not None else None

    @classmethod
    def from_settings(cls, settings: Settings, half: str = "all") -> AsrCore:
        """The model as a process runs it, under its bundle's decoding defaults and the server's settings: the
        encoder and decoder services each load only their half."""
        decoding = decoding_for(settings)
        return cls(settings.model or None, settings.engine, settings.threads, decoding.warps, decoding.lm_int8, half,
                   decoding.lm_blocks, decoding.encoder_int8, settings.encoder_threads)

    def _lexicon(self, pieces: Sequence[str], special_ids: Iterable[int], eos_id: int) -> WordLexicon:
        """The bundle's word list and word LM (each optional) over the decoder's pieces."""
        lexicon_file, word_lm_file = self.bundle_dir / "lexicon.txt", self.bundle_dir / WORD_LM_FILE
        return WordLexicon(load_words(lexicon_file) if lexicon_file.exists() else frozenset(), pieces, special_ids,
                           eos_id, word_lm=WordLM(word_lm_file) if word_lm_file.exists() else None)

    # ---- encoder side --------------------------------------------------------------------------
    def encode(self, samples: np.ndarray, window_s: float = 0.0,
               cancelled: Optional[Callable[[], bool]] = None) -> tuple[EncoderOutput, str, list[Word]]:
        """16 kHz float32 (N,) -> speech embeddings, CTC greedy text and its word timings; the audio zero-padded to
        whole windows of window_s seconds (0: the model's window_s; a language's own, DecodingDefaults.window_for).
        `cancelled`: asked during the run, which stops when it says yes (EncodeCancelled; shared/engines.py).

        Test-time vocal tract length normalisation: the audio is encoded under each of self.warps (one
        batch) and the encoding whose CTC posteriors are surest (lowest mean entropy) is kept, so a voice
        unlike the training voices is read through the filterbank that makes it most familiar. A `whisper`
        encoder reads Whisper's own log-mel frames, unwarped: it was pretrained on real voices."""
        if self.engine is None:
            raise RuntimeError("this AsrCore loaded the decoder half only: it cannot encode")
        samples = pad_to_window(samples, window_s or self.cfg.window_s)
        feats = encoder_features(samples, encoder_kind(self.cfg.encoder_type).features, self.warps,
                                 self.cfg.encoder.n_mels)  # (K, T, F)
        if len(feats) == 1:
            out = self.engine.encode(feats[0], cancelled)
        else:
            outs = self.engine.encode_batch(feats, cancelled)
            out = outs[most_confident(outs)]
        text, words = self.ctc_greedy(out.ctc_logp)
        return out, text, words

    def ctc_greedy(self, ctc_logp: np.ndarray) -> tuple[str, list[Word]]:
        """ctc_logp (S, V) at the converter's rate -> greedy text and word timings (none without a CTC head:
        one column)."""
        if ctc_logp.shape[-1] == 1:
            return "", []
        blank = self.cfg.ctc_blank
        frame_s = self.cfg.frame_s
        best = ctc_logp.argmax(-1)
        pieces: list[tuple[int, int]] = []  # (token, frame)
        prev = -1
        for t, tokid in enumerate(best.tolist()):
            if tokid != prev and tokid != blank:
                pieces.append((tokid, t))
            prev = tokid
        words: list[Word] = []
        for tokid, t in pieces:
            piece = self.tok.id_to_piece(tokid)
            if tokid in self.tok.special_ids or piece.startswith("<0x"):
                continue
            if piece.startswith("\u2581") or not words:
                words.append(Word(piece.lstrip("\u2581"), t * frame_s, (t + 1) * frame_s))
            else:
                words[-1].word += piece
                words[-1].end_s = (t + 1) * frame_s
        words = [w for w in words if w.word]
        return " ".join(w.word for w in words), words

    # ---- decoder side --------------------------------------------------------------------------
    def decode(self, speech: np.ndarray, context_ids: Sequence[int], cfg: BeamConfig,
               bias_phrases: Sequence[str] = (), correction_phrases: Sequence[str] = (),
               correction: Optional[CorrectionConfig] = None,
               cancelled: Optional[Callable[[], bool]] = None, wait_s: Optional[float] = None,
               context: str = "", spellings: Sequence[str] = (), output: OutputConfig = OutputConfig(),
               draft: Sequence[int] = ()) -> list[NBestEntry]:
        """speech (S, D_lm) -> n-best, best first. Empty context_ids decodes context-free; bias_phrases
        (hotwords, rare context words) earn cfg.bias_bonus per token when spelled out whole; words outside
        the bundle's lexicon and the context cost cfg.oov_penalty (shared/model/lexicon.py); then
        correction_phrases may replace look-alike spans of the best text (shared/model/phrase_correction.py;
        it keeps its search score). `cancelled` stops the search (SearchCancelled) when the caller is gone;
        a decode that cannot start within `wait_s` (others hold the model) raises SearchCancelled too.
        context: the context as written, for a decoder that reads it as text (else it is read from context_ids);
        spellings: context words as written, which the transcript then spells the same way (shared/written.py);
        draft: an interim's decoder tokens for this audio, followed while the audio confirms them (a stream's final)."""
        if self.half == "encoder":
            raise RuntimeError("this AsrCore loaded the encoder half only: it cannot decode")
        # A transcript has at most about one token per 80 ms speech position, and MAX_TOKENS_PER_AUDIO_S per second
        # of the audio the window holds: this bounds runaway loops (Whisper's on a short interim went on for 150
        # tokens about nothing said, where the window's padding allowed 500).
        limit = 10 + len(speech)
        if output.audio_s > 0:
            limit = min(limit, 10 + math.ceil(MAX_TOKENS_PER_AUDIO_S * output.audio_s))
        cfg = dataclasses.replace(cfg, max_tokens=min(cfg.max_tokens, limit))
        if not self.lock.acquire(timeout=-1 if wait_s is None else max(0.0, wait_s)):
            raise SearchCancelled(f"the model stayed busy for {wait_s:.1f} s")
        threads = torch.get_num_threads()
        if output.threads and output.threads != threads:  # decodes hold the lock: only this one runs on them
            torch.set_num_threads(output.threads)
        assert self.strategy is not None
        try:
            return self.strategy.decode(speech, context_ids, context or context_text(self.tok, context_ids), cfg,
                                        Phrases(bias_phrases, correction_phrases, spellings), correction, cancelled, output,
                                        draft)
        finally:
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
            self.lock.release()

def most_confident(outputs: Sequence[EncoderOutput]) -> int:
    """Index of the encoding whose CTC posteriors have the lowest mean entropy per frame."""
    entropies = [float(-(np.exp(o.ctc_logp) * o.ctc_logp).sum(-1).mean()) for o in outputs]
    return int(np.argmin(entropies))
