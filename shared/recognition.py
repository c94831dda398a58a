"""Recognition steps shared by the services and the embedded server: encode, decode, segment,
word timing. Services wrap these in servicers; no transport code lives here."""

from __future__ import annotations

import dataclasses
import difflib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from shared.bundle import default_bundle_dir, load_bundle
from shared.engines import EncoderEngine, EncoderOutput, make_encoder_engine
from shared.features import encoder_features
from shared.model.asr import encoder_kind
from shared.model.beam_search import BeamConfig, SearchCancelled, joint_beam_search
from shared.model.biasing import PhraseBiasing
from shared.model.ctc_prefix import CTCPrefixScorer
from shared.model.lexicon import WordLexicon, load_words
from shared.model.phrase_correction import CorrectionConfig, correct_phrases
from shared.model.quantize import quantize_linears
from shared.model.word_lm import WORD_LM_FILE, WordLM


@dataclass
class Word:
    word: str
    start_s: float
    end_s: float


@dataclass
class NBestEntry:
    text: str
    score: float


class AsrCore:
    """A loaded bundle: the encoder engine for `encode`, the LM for `decode`. `warps`: the filterbank
    frequency warps each audio is encoded under (shared/features.py), the most confident kept."""

    def __init__(self, bundle_dir: Optional[str | Path] = None, engine: str = "auto", threads: int = 0,
                 warps: Sequence[float] = (1.0,), lm_int8: bool = False) -> None:
        if not warps or any(not 0.5 <= w <= 2.0 for w in warps):
            raise ValueError(f"filterbank warps must be a non-empty list of values in [0.5, 2], got {list(warps)}")
        self.warps = tuple(warps)
        self.bundle_dir = Path(bundle_dir) if bundle_dir else default_bundle_dir()
        if threads:
            torch.set_num_threads(threads)
        self.model, self.tok, self.meta = load_bundle(self.bundle_dir)
        self.engine: EncoderEngine = make_encoder_engine(engine, self.model, self.bundle_dir, threads)
        # the search's LM; the CTC head and prompt embeddings keep self.model's fp32 weights. Off unless
        # asked (services ask through SEEDASR_LM_INT8, default on), so library callers get the exact model
        self.lm = quantize_linears(self.model.lm) if lm_int8 else self.model.lm
        lexicon_file, word_lm_file = self.bundle_dir / "lexicon.txt", self.bundle_dir / WORD_LM_FILE
        self.lexicon = WordLexicon(load_words(lexicon_file) if lexicon_file.exists() else frozenset(),
                                   [self.tok.id_to_piece(i) for i in range(self.tok.vocab_size)],
                                   self.tok.special_ids, self.tok.eos_id,
                                   word_lm=WordLM(word_lm_file) if word_lm_file.exists() else None)
        self.lock = threading.Lock()  # torch intra-op threads already use the cores; serialize decodes

    # ---- encoder side --------------------------------------------------------------------------
    def encode(self, samples: np.ndarray) -> tuple[EncoderOutput, str, list[Word]]:
        """16 kHz float32 (N,) -> speech embeddings, CTC greedy text and its word timings.

        Test-time vocal tract length normalisation: the audio is encoded under each of self.warps (one
        batch) and the encoding whose CTC posteriors are surest (lowest mean entropy) is kept, so a voice
        unlike the training voices is read through the filterbank that makes it most familiar. A `whisper`
        encoder reads Whisper's own log-mel frames, unwarped: it was pretrained on real voices."""
        feats = encoder_features(samples, encoder_kind(self.model.cfg.encoder_type).features, self.warps)  # (K, T, F)
        if len(feats) == 1:
            out = self.engine.encode(feats[0])
        else:
            outs = self.engine.encode_batch(feats)
            out = outs[most_confident(outs)]
        text, words = self.ctc_greedy(out.ctc_logp)
        return out, text, words

    def ctc_greedy(self, ctc_logp: np.ndarray) -> tuple[str, list[Word]]:
        """ctc_logp (S, V) at the converter's rate -> greedy text and word timings."""
        blank = self.model.ctc_blank
        frame_s = self.model.frame_s
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
               cancelled: Optional[Callable[[], bool]] = None, wait_s: Optional[float] = None) -> list[NBestEntry]:
        """speech (S, D_lm) -> n-best, best first. Empty context_ids decodes context-free; bias_phrases
        (hotwords, rare context words) earn cfg.bias_bonus per token when spelled out whole; words outside
        the bundle's lexicon and the context cost cfg.oov_penalty (shared/model/lexicon.py); then
        correction_phrases may replace look-alike spans of the best text (shared/model/phrase_correction.py;
        it keeps its search score). `cancelled` stops the search (SearchCancelled) when the caller is gone;
        a decode that cannot start within `wait_s` (others hold the model) raises SearchCancelled too."""
        # A transcript has at most about one token per 80 ms speech position: this bounds runaway loops.
        cfg = dataclasses.replace(cfg, max_tokens=min(cfg.max_tokens, 10 + len(speech)))
        if not self.lock.acquire(timeout=-1 if wait_s is None else max(0.0, wait_s)):
            raise SearchCancelled(f"the model stayed busy for {wait_s:.1f} s")
        try:
            return self._decode(speech, context_ids, cfg, bias_phrases, correction_phrases, correction, cancelled)
        finally:
            self.lock.release()

    def _decode(self, speech: np.ndarray, context_ids: Sequence[int], cfg: BeamConfig, bias_phrases: Sequence[str],
                correction_phrases: Sequence[str], correction: Optional[CorrectionConfig],
                cancelled: Optional[Callable[[], bool]]) -> list[NBestEntry]:
        with torch.inference_mode():
            sp = torch.from_numpy(np.array(speech, dtype=np.float32))  # a writable copy
            free = self.model.prefix_embeds(self.tok, sp, None)
            ctx = self.model.prefix_embeds(self.tok, sp, list(context_ids)) if context_ids else None
            ctc, logp = None, None
            if self.model.ctc is not None:
                logp = self.model.ctc_logits(sp[None])[0].log_softmax(-1)  # (S, V), cheap next to the LM
            if logp is not None and cfg.ctc_weight > 0:
                ctc = CTCPrefixScorer(logp, self.model.ctc_blank, self.tok.eos_id)
            phrases = [self.tok.encode(p) for p in bias_phrases if p]
            bias = PhraseBiasing(phrases, cfg.bias_bonus) if phrases and cfg.bias_bonus > 0 else None
            # context words, and words spelled like them, are never out of the lexicon
            near = correction.min_similarity if correction is not None and correction.margin > 0 else 1.0
            lexicon = self.lexicon.for_request(cfg.oov_penalty, [*bias_phrases, *correction_phrases], near,
                                               cfg.word_lm_weight, cfg.word_bonus)
            hyps = joint_beam_search(self.lm, free, ctx, self.tok.eos_id, cfg, ctc=ctc, bias=bias,
                                     lexicon=lexicon if lexicon else None, cancelled=cancelled)
            nbest = [NBestEntry(self.tok.decode(h.tokens), h.score) for h in hyps]
            if nbest and logp is not None and correction is not None and correction_phrases:
                nbest[0].text = correct_phrases(nbest[0].text, correction_phrases, logp, self.tok.encode,
                                                self.model.ctc_blank, correction)
        return nbest


def most_confident(outputs: Sequence[EncoderOutput]) -> int:
    """Index of the encoding whose CTC posteriors have the lowest mean entropy per frame."""
    entropies = [float(-(np.exp(o.ctc_logp) * o.ctc_logp).sum(-1).mean()) for o in outputs]
    return int(np.argmin(entropies))


def align_words(text: str, anchors: list[Word], duration_s: float) -> list[Word]:
    """Word timings for `text`: words matching the CTC greedy words take their times, the rest are
    spread evenly between their matched neighbours."""
    words = text.split()
    if not words:
        return []
    times: list[Optional[tuple[float, float]]] = [None] * len(words)
    matcher = difflib.SequenceMatcher(a=[w.word for w in anchors], b=words, autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            a = anchors[block.a + k]
            times[block.b + k] = (a.start_s, a.end_s)
    out: list[Word] = []
    i = 0
    while i < len(words):
        if times[i] is not None:
            start, end = times[i]  # type: ignore[misc]
            out.append(Word(words[i], start, end))
            i += 1
            continue
        j = i
        while j < len(words) and times[j] is None:
            j += 1
        left = out[-1].end_s if out else 0.0
        right = times[j][0] if j < len(words) else duration_s  # type: ignore[index]
        step = max(right - left, 0.0) / (j - i)
        for k in range(i, j):
            out.append(Word(words[k], left + (k - i) * step, left + (k - i + 1) * step))
        i = j
    return out


def segment_audio(samples: np.ndarray, max_s: float, rate: int = 16_000, min_s: float = 1.5,
                  min_pause_s: float = 0.25, quiet_db: float = 35.0, keep_pause_s: float = 0.2,
                  keep_edge_s: float = 0.5) -> list[tuple[int, int]]:
    """Windows of at most max_s seconds to recognise one by one, without the silence the model reads badly.

    Long audio is cut in the middle of every pause (min_pause_s of 10 ms frames quieter than the
    loudest by quiet_db) once a window holds min_s of audio: the model trained on one sentence per
    utterance and reads one sentence per window best (long-form set: 47.6% WER, against 53.2% with
    windows filled up to max_s). Where no such pause comes within max_s (noise, fast speech),
    the window is cut at its quietest 100 ms in its last third, so a cut still lands between words.
    Short audio (<= max_s) is one window.

    The model trained on synthesised sentences with their engines' own silence (medians 0.01 s
    before, 0.14 s after) and reads extra silence badly, so windows shed it: a window keeps at most
    keep_pause_s of the pause at each cut (long-form set 47.6% -> 43.1%; kept 0.05 / 0.1 / 0.2 / 0.3 s /
    all on data/long_tune, a training voice: 23.7 / 24.5 / 22.7 / 24.5 / 26.2%), and at most keep_edge_s
    of the silence the audio starts or ends with (what a VAD-ended turn trails). data/tune, 60
    sentences as synthesised / with 0.6 s of silence after / before: kept all 20.4 / 27.7 / 24.9%,
    0.25 s 21.4 / 21.7 / 23.4%, 0.3 s 20.2 / 22.2 / 21.7%, 0.4 s 20.2 / 24.0 / 21.2%, 0.5 s 20.6 / 22.2 /
    21.9%. 0.5 s it is: espeak ends its sentences with up to 0.5 s of its own silence (held-out accents:
    31.7% WER with 0.5 s kept as with all, 34.6% with 0.3 s)."""
    n = len(samples)
    hop = rate // 100  # 10 ms energy frames
    power = samples.astype(np.float64) ** 2
    frame_power = power[: n // hop * hop].reshape(-1, hop).mean(1)
    quiet = frame_power < frame_power.max(initial=0.0) * 10 ** (-quiet_db / 10)
    limit = int(max_s * rate)
    windows, start = [], 0
    if n > limit:
        pause_centres = _pause_centres(quiet, int(min_pause_s * 100)) * hop
        energy = np.convolve(power, np.ones(hop * 10) / (hop * 10), mode="same")[::hop]
        while True:
            in_reach = pause_centres[(pause_centres >= start + min_s * rate) & (pause_centres <= start + limit)]
            if len(in_reach) and n - in_reach[0] >= min_s * rate:
                cut = int(in_reach[0])
            elif n - start > limit:
                lo, hi = start + limit * 2 // 3, start + limit
                cut = max((lo // hop + int(np.argmin(energy[lo // hop : hi // hop]))) * hop, start + hop)
            else:
                break
            windows.append((start, cut))
            start = cut
    windows.append((start, n))
    pause, edge = int(keep_pause_s * rate), int(keep_edge_s * rate)
    return [_shed_silence(quiet, hop, a, b, pause if a > 0 else edge, pause if b < n else edge) for a, b in windows]


def _shed_silence(quiet: np.ndarray, hop: int, start: int, end: int, keep_start: int, keep_end: int) -> tuple[int, int]:
    """Window [start, end) with at most keep_start / keep_end samples of the quiet frames at its edges."""
    def quiet_run(first: int, step: int) -> int:  # samples of quiet frames from frame `first` on, walking `step`
        f = first
        while 0 <= f < len(quiet) and quiet[f]:
            f += step
        return abs(f - first) * hop

    new_start = start + max(0, quiet_run(start // hop, 1) - keep_start)
    new_end = end - max(0, quiet_run(min(end // hop, len(quiet)) - 1, -1) - keep_end)
    return (new_start, new_end) if new_end > new_start else (start, end)


def _pause_centres(quiet: np.ndarray, min_frames: int) -> np.ndarray:
    """quiet (F,) bool per frame -> frame indices of the centres of quiet runs of at least min_frames."""
    edges = np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    keep = ends - starts >= min_frames
    return (starts[keep] + ends[keep]) // 2
