"""Joint beam search (shared/model/beam_search.py: `search`) over a Whisper-style decoder.

The context-free stream starts from Whisper's plain transcript prompt, the context-conditioned one
from the same prompt after <|startofprev|> and the context text (WhisperTokens.prompt). Each stream
keeps its own self-attention cache (the prompts differ in length, so in positions); both read the
audio's cross-attention keys, computed once. Whisper's special tokens after <|endoftext|> (start of
transcript, languages, tasks, timestamps) are never written, and a transcript never starts with a
bare space.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from typing import Optional

import torch

from shared.languages import spaced
from shared.model.beam_search import BeamConfig, Draft, Hypothesis, StepFn, joint_streams, search
from shared.model.biasing import Biasing
from shared.model.lexicon import WordLexicon
from shared.model.phrase_correction import TextScorer
from shared.model.whisper_decoder import KV, WhisperDecoder, WhisperTokens


def allowed_logp(logits: torch.Tensor, eot: int, first: bool, blank: Optional[int]) -> torch.Tensor:
    """logits (N, V) -> log-probs (N, V) over the transcript tokens and eot only (the rest -inf); at the
    first step the bare-space token `blank` is ruled out too."""
    logits = logits.float().clone()
    logits[:, eot + 1 :] = float("-inf")
    if first and blank is not None:
        logits[:, blank] = float("-inf")
    return logits.log_softmax(-1)


class WhisperStep:
    """StepFn with a KV cache: the streams run as one batch, rows stream-major (stream s, beam b), the shorter
    prompts left-padded (WhisperDecoder.run's pad). audio (T', D) is one utterance. draft: tokens run after the
    prompts in the same pass, for the search to follow (`self.draft`, beam_search.Draft)."""

    def __init__(self, decoder: WhisperDecoder, audio: torch.Tensor, prompts: list[list[int]], eot: int,
                 blank: Optional[int], audio_kv: Optional[KV] = None, draft: Sequence[int] = (),
                 margin: float = 0.0) -> None:
        self.decoder, self.eot, self.blank, self.streams = decoder, eot, blank, len(prompts)
        self.audio_kv = audio_kv or decoder.audio_keys(audio[None])  # (1, H, T', D / H) per block
        self.longest = longest = max(len(p) for p in prompts)
        pad = [longest - len(p) for p in prompts]
        self.pad: Optional[torch.Tensor] = torch.tensor(pad) if any(pad) else None  # (S,); None: no mask needed
        self.batch = torch.tensor([[eot] * (longest - len(p)) + p + list(draft) for p in prompts])  # (S, L + P)
        logits, self.cache, _ = decoder.run(self.batch, self.audio_kv, last_only=not draft, pad=self.pad,
                                            logits_from=longest - 1)
        self.rows = 1  # hypotheses in the cache, per stream
        self.draft: Optional[Draft] = None
        self.draft_logits = logits  # (S, P + 1, V): after the prompt and after each draft token, read as followed
        if draft:  # the search seeds the first scores where it leaves the draft (_seed)
            self.draft = Draft(list(draft), margin, self._draft_scores, self._seed)
        else:
            self.first = allowed_logp(logits[:, -1], eot, True, blank)[:, None]  # (S, 1, V)

    def _draft_scores(self, i: int) -> torch.Tensor:
        return allowed_logp(self.draft_logits[:, i], self.eot, i == 0, self.blank)[:, None]  # (S, 1, V)

    def _seed(self, n: int) -> None:
        """The search goes on after the draft's first n tokens: the last of them (or of the prompts) runs again on
        the cache before it, so that the first scores come from a batch of one row per stream, as a search's first
        step's do (the int8 output layer quantizes its input per batch: the draft's batch scores differ a little)."""
        keep = self.longest + n - 1
        past = [(k[:, :, :keep], v[:, :, :keep]) for k, v in self.cache]
        logits, self.cache, _ = self.decoder.run(self.batch[:, keep : keep + 1], self.audio_kv, None, past, pad=self.pad)
        self.first = allowed_logp(logits[:, -1], self.eot, n == 0, self.blank)[:, None]  # (S, 1, V)
        self.rows, self.draft_logits = 1, logits[:, :0]  # the draft's scores are read no more

    def __call__(self, parents: Optional[torch.Tensor], last: Optional[torch.Tensor]) -> torch.Tensor:
        if parents is None or last is None:
            return self.first
        n, s = parents.shape[0], self.streams
        rows = (torch.arange(s)[:, None] * self.rows + parents[None]).flatten()  # (S * N,) stream-major
        past = [(k[rows], v[rows]) for k, v in self.cache]
        pad = self.pad.repeat_interleave(n) if self.pad is not None else None
        logits, self.cache, _ = self.decoder.run(last.repeat(s)[:, None], self.audio_kv, None, past, pad=pad)
        self.rows = n
        return allowed_logp(logits[:, -1], self.eot, False, self.blank).view(s, n, -1)  # (S, N, V)


class UncachedWhisperStep:
    """Reference scorer: every hypothesis of every stream re-run from its prompt, one at a time."""

    def __init__(self, decoder: WhisperDecoder, audio: torch.Tensor, prompts: list[list[int]], eot: int,
                 blank: Optional[int]) -> None:
        self.decoder, self.audio, self.prompts, self.eot, self.blank = decoder, audio[None], prompts, eot, blank
        self.hyps: list[list[int]] = [[]]

    def _score(self, prompt: list[int], tokens: list[int]) -> torch.Tensor:
        logits = self.decoder(torch.tensor([prompt + tokens]), self.audio)
        return allowed_logp(logits[:, -1], self.eot, not tokens, self.blank)[0]

    def __call__(self, parents: Optional[torch.Tensor], last: Optional[torch.Tensor]) -> torch.Tensor:
        if parents is not None and last is not None:
            self.hyps = [self.hyps[p] + [int(tk)] for p, tk in zip(parents.tolist(), last.tolist())]
        return torch.stack([torch.stack([self._score(p, h) for h in self.hyps]) for p in self.prompts])


@torch.inference_mode()
def whisper_beam_search(
    decoder: WhisperDecoder,
    audio: torch.Tensor,
    tokens: WhisperTokens,
    context: Optional[str],
    cfg: BeamConfig,
    cached: bool = True,
    bias: Optional[Biasing] = None,
    cancelled: Optional[Callable[[], bool]] = None,
    audio_kv: Optional[KV] = None,
    lexicon: Optional[WordLexicon] = None,
    language: str = "en",
    draft: Sequence[int] = (),
) -> list[Hypothesis]:
    """audio (T', D) encoder frames, audio_kv its decoder.audio_keys(audio[None]) when the caller has them;
    context: the context text (None or empty: context-free decoding).
    Scores alpha * log P(y | x, c) + (1 - alpha) * log P(y | x) as `joint_beam_search` does; no CTC
    prefix scores (this decoder has no CTC head). `lexicon` reads Whisper's pieces (WhisperTokens.pieces): its
    out-of-lexicon penalty and word-LM fusion apply as in `joint_beam_search`. draft: transcript tokens (no end, no
    specials) the search follows while the full scores put each first by cfg.draft_margin nats (beam_search.Draft;
    the cached scorer only, and not at a margin of 0)."""
    prompts, alpha = joint_streams(tokens.prompt(language), tokens.prompt(language, previous=context) if context else None,
                                   cfg.alpha)
    room = decoder.cfg.max_tokens - max(len(p) for p in prompts) - 1
    # no CTC head to score a biasing phrase's tokens back in: they escape the pruning at their joint score
    cfg = dataclasses.replace(cfg, max_tokens=max(0, min(cfg.max_tokens, room)), phrases_past_prune=True)
    if not cached or cfg.draft_margin <= 0:
        draft = ()
    draft = list(itertools.takewhile(lambda t: 0 <= t < tokens.eot, draft))[: cfg.max_tokens]
    if cached:
        cached_step = WhisperStep(decoder, audio, prompts, tokens.eot, tokens.blank, audio_kv, draft, cfg.draft_margin)
        return search(cached_step, tokens.eot, cfg, alpha, None, bias, lexicon, cancelled, cached_step.draft)
    step: StepFn = UncachedWhisperStep(decoder, audio, prompts, tokens.eot, tokens.blank)
    return search(step, tokens.eot, cfg, alpha, None, bias, lexicon, cancelled)


@torch.inference_mode()
def identify_language(decoder: WhisperDecoder, audio_kv: KV, tokens: WhisperTokens,
                      candidates: Sequence[str]) -> dict[str, float]:
    """audio_kv: decoder.audio_keys(audio (1, T', D)) -> each candidate language's probability among `candidates`,
    as Whisper's detect_language: the decoder's first step after <|startoftranscript|>, over the language tokens.
    Restricted to the languages a deployment expects: over all 99, an English synthetic voice can read as Thai."""
    ids = tokens.languages()
    codes = [c for c in dict.fromkeys(candidates) if c in ids] or list(ids)
    last, _, _ = decoder.run(torch.tensor([[tokens.prompt()[0]]]), audio_kv, last_only=True)
    probs = last[0, -1, [ids[c] for c in codes]].float().softmax(-1)  # (len(codes),)
    return {c: float(p) for c, p in zip(codes, probs)}


def whisper_text_scorer(decoder: WhisperDecoder, audio_kv: KV, tokens: WhisperTokens,
                        context: Optional[str] = None, rows_per_run: int = 8, language: str = "en") -> TextScorer:
    """audio_kv: decoder.audio_keys(audio (1, T', D)) -> a scorer of texts: log P(text </s> | audio, context) by
    the decoder, teacher-forced (what phrase correction weighs its variants by when there is no CTC head). The
    prompt runs once; each text runs from its cache. Texts that encode to nothing or outgrow the decoder's
    positions score -inf."""
    prompt = tokens.prompt(language, previous=context)
    lead = spaced(language)  # a language written without spaces starts its text with no space
    with torch.inference_mode():
        last, prompt_cache, _ = decoder.run(torch.tensor([prompt]), audio_kv, last_only=True)
        first = allowed_logp(last[:, -1], tokens.eot, False, None)[0]  # (V,): the text's first token

    @torch.inference_mode()
    def score(texts: list[str]) -> torch.Tensor:
        out = torch.full((len(texts),), float("-inf"))
        rows: list[tuple[int, list[int]]] = []
        for i, text in enumerate(texts):
            ids = tokens.encode(text, lead_space=lead) if text.strip() else []
            if ids and len(prompt) + len(ids) + 1 <= decoder.cfg.max_tokens:
                rows.append((i, [*ids, tokens.eot]))
        for start in range(0, len(rows), rows_per_run):  # (rows, L, V) logits: a few rows at a time
            chunk = rows[start : start + rows_per_run]
            n, length = len(chunk), max(len(r) for _, r in chunk)
            batch = torch.tensor([r + [tokens.eot] * (length - len(r)) for _, r in chunk])  # right-padded
            past = [(k.expand(n, -1, -1, -1), v.expand(n, -1, -1, -1)) for k, v in prompt_cache]
            total = first[batch[:, 0]]
            if length > 1:
                logits = decoder.run(batch[:, :-1], audio_kv, None, past)[0]  # (N, L - 1, V); causal: padding comes after
                logp = allowed_logp(logits.flatten(0, 1), tokens.eot, False, None).view_as(logits)
                picked = logp.gather(-1, batch[:, 1:, None])[..., 0]  # (N, L - 1)
                scored = torch.arange(length - 1)[None, :] < torch.tensor([len(r) - 1 for _, r in chunk])[:, None]
                total = total + torch.where(scored, picked, torch.zeros(())).sum(1)
            out[[i for i, _ in chunk]] = total
        return out

    return score
