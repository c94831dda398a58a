"""Joint beam search over context-conditioned and context-free scores.

Streams: the context-free prefix (instruction + speech) and, when context is given, the
context-conditioned prefix (instruction + context + speech). Both run as one LM batch of
(streams * beams) rows with a shared KV cache, left-padded to the same prefix length.
At each step a token's score is
    alpha * log P(y | x, c) + (1 - alpha) * log P(y | x)
restricted to the `prune_k` tokens the context-free stream ranks highest, so context can only
choose among what was plausibly said. alpha = 0 runs the context-free stream alone; alpha = 1
runs the context stream alone without pruning (plain context decoding). Greedy is beam_size 1.

Phrase biasing (shared/model/biasing.py), when given, adds its bonus to the pruned joint scores; without
a CTC scorer and with cfg.phrases_past_prune, the tokens that start or continue a phrase are never pruned.

A draft (the tokens an interim decoded from the turn so far) is followed while the search has one hypothesis: each
of its tokens that the full audio's joint score ranks first, `margin` nats ahead of the next, is taken without a
beam, its scores read from one teacher-forced pass of the draft; from the first token it does not confirm, the beam
search runs as usual. A stream's final then searches only the words the interim had not settled.

With a CTC prefix scorer (shared/model/ctc_prefix.py) each of the `prune_k` best candidates (and
</s>) also gets ctc_weight * (psi(h + c) - psi(h)), mixed with (1 - ctc_weight) * the LM score.
With both, the tokens that continue a biasing phrase join the CTC candidates at the LM score of the
prune boundary (or their own, if higher): the acoustics, not the LM's ranking, decide on them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional, TypeVar

import torch
import torch.nn.functional as F

from shared.model.biasing import Biasing, BiasState
from shared.model.ctc_prefix import CTCPrefixScorer, PrefixState
from shared.model.lexicon import WordLexicon, WordState
from shared.model.moe_lm import BeamCache, MoeLM


@dataclass
class BeamConfig:
    """One search's settings. The tuned numbers have no defaults here: a server takes them from its bundle
    (shared/decoding.py KNOBS, services/decoder/config.py), a training loop from its recipe; what defaults below is
    off (0) or a bound."""

    beam_size: int
    nbest: int
    alpha: float  # weight of the context-conditioned score
    prune_k: int  # candidates kept from the context-free ranking (>= beam_size)
    ctc_weight: float  # weight of CTC prefix scores when a CTC scorer is given
    max_tokens: int = 160
    bias_bonus: float = 0.0  # score per token that spells a biasing phrase (shared/model/biasing.py)
    oov_penalty: float = 0.0  # score per word outside the lexicon (shared/model/lexicon.py)
    word_lm_weight: float = 0.0  # shallow-fusion weight of the word n-gram LM (shared/model/word_lm.py)
    word_bonus: float = 0.0  # score per finished word while fusing the word LM
    # without a CTC scorer, the tokens that start or continue a biasing phrase escape the context-free pruning
    phrases_past_prune: bool = False
    # rank ended hypotheses by score per token and stop once beam_size have ended (Whisper's own ranking): raw
    # sums favour a transcript that ends early ("is" for a sentence of fifteen words)
    length_norm: bool = False
    # a draft's token is followed without a beam when the full scores rank it first by this many nats; 0 = drafts off
    draft_margin: float = 0.0


@dataclass
class Hypothesis:
    tokens: list[int]
    score: float  # joint log score of tokens + </s>


# Scores the next token of every live hypothesis: (parents (N,), last tokens (N,)) -> log-probs (S, N, V).
StepFn = Callable[[Optional[torch.Tensor], Optional[torch.Tensor]], torch.Tensor]


def _joint(logp: torch.Tensor, alpha: float, prune_k: int, eos_id: Optional[int] = None,
           extra: Optional[torch.Tensor] = None) -> torch.Tensor:
    """logp (S, N, V) -> joint scores (N, V). Stream 0 is context-free, stream 1 context-conditioned.

    Tokens outside the context-free top `prune_k` are cut; `eos_id` never is, so a hypothesis can
    always end (CTC scoring rules out every longer prefix once it outgrows the speech), nor are the
    tokens of `extra` (N, E): a decoder without a CTC head keeps the biasing phrases' tokens at their own
    joint score, since no acoustic score would lift them back in."""
    if logp.shape[0] == 1:
        return logp[0]
    free, ctx = logp[0], logp[1]
    keep = free.topk(min(prune_k, free.shape[-1]), dim=-1).indices
    allowed = torch.zeros_like(free, dtype=torch.bool).scatter_(-1, keep, True)
    if eos_id is not None:
        allowed[:, eos_id] = True
    if extra is not None:
        allowed.scatter_(-1, extra, True)
    return (alpha * ctx + (1 - alpha) * free).masked_fill(~allowed, float("-inf"))


CTCTables = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # psi, r_n, r_b, candidates


def _with_ctc(
    scores: torch.Tensor, ctc: CTCPrefixScorer, state: PrefixState, eos_id: int, cfg: BeamConfig,
    extra: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, torch.Tensor, CTCTables]:
    """LM scores (N, V) -> mixed LM + CTC scores (N, V), the candidate slot of every token and CTC tables.

    extra (N, E): more candidates (biasing-phrase tokens); a pruned one takes the LM score of the
    prune boundary, so only its CTC score and the phrase bonus can lift it."""
    n, vocab = scores.shape
    scores = scores.index_fill(1, torch.tensor([ctc.blank]), float("-inf"))  # the blank is never a token
    top = scores.topk(min(cfg.prune_k, vocab), dim=-1)
    parts = [top.indices, torch.full((n, 1), eos_id)]
    if extra is not None:
        extra = extra.masked_fill(extra == ctc.blank, eos_id)
        boundary = top.values.masked_fill(torch.isinf(top.values), float("inf")).min(-1).values  # (N,)
        own = scores.gather(1, extra)
        pruned = torch.isinf(own) & torch.isfinite(boundary)[:, None]
        # duplicates of kept tokens keep their own score, so every copy of a token scores the same
        scores = scores.scatter(1, extra, torch.where(pruned, boundary[:, None], own))
        parts.append(extra)
    cands = torch.cat(parts, 1)
    psi, r_n, r_b = ctc.score(state, cands)
    neg_inf = torch.tensor(float("-inf"))
    delta = psi - state.psi[:, None]
    delta = torch.where(torch.isnan(delta), neg_inf, delta)  # -inf - -inf: the prefix was already impossible
    lm = scores.gather(1, cands)
    mixed = torch.where(lm == neg_inf, neg_inf, (1 - cfg.ctc_weight) * lm + cfg.ctc_weight * delta)
    slot = torch.zeros(n, vocab, dtype=torch.long).scatter_(1, cands, torch.arange(cands.shape[1]).expand(n, -1))
    return torch.full_like(scores, float("-inf")).scatter_(1, cands, mixed), slot, (psi, r_n, r_b, cands)


def _with_lexicon(total: torch.Tensor, lexicon: WordLexicon, words: list[WordState], eos_id: int, k: int) -> torch.Tensor:
    """Totals (N, V) -> the same plus the lexicon's bonuses, worked out only for candidates that can
    still reach the top k (the rest -inf): no bonus exceeds `lexicon.max_bonus`, so a candidate whose
    total plus that bound is below the k-th best exact total cannot be picked. The search's choices are
    those of scoring every candidate; the lexicon's per-token Python loop runs on a few dozen instead of
    beams * prune_k of them."""
    flat, vocab = total.flatten(), total.shape[-1]
    finite = int(torch.isfinite(flat).sum())
    out = torch.full_like(flat, float("-inf"))
    upper, done, end = lexicon.max_bonus, 0, 2 * k
    while done < finite:
        # the best end + 1 only, not a sort of all N * V (Whisper's 51865-way rows made that most of a step)
        order = flat.topk(min(end + 1, finite)).indices
        chunk = order[done:end]
        out[chunk] = flat[chunk] + lexicon.bonuses_at(words, chunk // vocab, chunk % vocab, eos_id).to(flat.dtype)
        done, end = min(end, finite), 2 * end
        # more than k are scored by now, so the k-th best exact total exists
        if done < finite and float(flat[order[done]]) + upper < float(out.topk(k).values[-1]):
            break
    return out.view_as(total)


Prompt = TypeVar("Prompt")


def joint_streams(free: Prompt, ctx: Optional[Prompt], alpha: float) -> tuple[list[Prompt], float]:
    """The streams `search` runs, stream 0 context-free, and the alpha it mixes them with: the context-free one
    alone without context or at alpha <= 0, the context-conditioned one alone (scored as is) at alpha >= 1."""
    if ctx is None or alpha <= 0.0:
        return [free], 0.0
    if alpha >= 1.0:
        return [ctx], 0.0
    return [free, ctx], alpha


@dataclass
class Draft:
    """Tokens to follow (without their end), scored by one teacher-forced pass: scores(i) (S, 1, V) are the log-probs
    of the token after the first i, per stream; `seed(n)` makes the step function start after the first n: its first
    call (no parents) scores what follows them, as it would have scored them one step at a time."""

    tokens: list[int]
    margin: float
    scores: Callable[[int], torch.Tensor]
    seed: Callable[[int], None]


class SearchCancelled(Exception):
    """The caller's deadline passed or it went away: the search stopped early."""


def _confirms(total: torch.Tensor, token: int, margin: float) -> bool:
    """total (V,): the hypothesis's scores for its next token; True when `token` ranks first, `margin` ahead."""
    top = total.topk(2)
    return int(top.indices[0]) == token and float(top.values[0] - top.values[1]) >= margin


def _rank(hyp: Hypothesis, cfg: BeamConfig) -> float:
    """What ended hypotheses are ordered by: the joint score, per token with cfg.length_norm."""
    return hyp.score / max(1, len(hyp.tokens)) if cfg.length_norm else hyp.score


def search(step: StepFn, eos_id: int, cfg: BeamConfig, alpha: float, ctc: Optional[CTCPrefixScorer] = None,
           bias: Optional[Biasing] = None, lexicon: Optional[WordLexicon] = None,
           cancelled: Optional[Callable[[], bool]] = None, draft: Optional[Draft] = None) -> list[Hypothesis]:
    """Beam search driven by `step`; returns up to cfg.nbest hypotheses, best first. `cancelled` is
    asked before every step; when it says yes the search raises SearchCancelled. `draft`: tokens followed while
    the full scores confirm them (the module's docstring); not with CTC scores, which it would have to replay."""
    live_tokens: list[list[int]] = [[]]
    bias_states = [BiasState()]
    words = [lexicon.initial() if lexicon else WordState()]  # each live hypothesis's unfinished word
    live_scores = torch.zeros(1)
    finished: list[Hypothesis] = []
    parents: Optional[torch.Tensor] = None
    last: Optional[torch.Tensor] = None
    use_ctc = ctc is not None and cfg.ctc_weight > 0
    ctc_state = ctc.initial() if ctc is not None else None
    start = 0
    if draft is not None and not use_ctc:  # one hypothesis, the draft's first `start` tokens, while they are confirmed
        for token in draft.tokens[: cfg.max_tokens]:
            unpruned = bias.candidates(bias_states, eos_id) if bias and cfg.phrases_past_prune else None
            total = live_scores[:, None] + _joint(draft.scores(start), alpha, cfg.prune_k, eos_id, unpruned)
            if bias:
                total = total + bias.bonuses(bias_states, total.shape[-1])
            if lexicon:
                total = _with_lexicon(total, lexicon, words, eos_id, 2 * cfg.beam_size)
            if not _confirms(total[0], token, draft.margin):
                break
            live_tokens, live_scores = [live_tokens[0] + [token]], total[0, token : token + 1].clone()
            bias_states = [bias.advance(bias_states[0], token)] if bias else bias_states
            words = [lexicon.advance(words[0], token)] if lexicon else words
            start += 1
        draft.seed(start)  # the beam takes over: the step function's first scores are those after these tokens
    for t in range(start, cfg.max_tokens + 1):
        if cancelled is not None and cancelled():
            raise SearchCancelled(f"search cancelled after {t} steps")
        unpruned = bias.candidates(bias_states, eos_id) if bias and cfg.phrases_past_prune and not use_ctc else None
        scores = _joint(step(parents, last), alpha, cfg.prune_k, eos_id, unpruned)  # (N, V)
        if use_ctc and t < cfg.max_tokens:
            assert ctc is not None and ctc_state is not None
            extra = bias.candidates(bias_states, eos_id) if bias else None
            scores, slot, tables = _with_ctc(scores, ctc, ctc_state, eos_id, cfg, extra)
        if t == cfg.max_tokens:  # out of budget: force the end of every live hypothesis
            forced = torch.full_like(scores, float("-inf"))
            forced[:, eos_id] = 0.0
            scores = forced
        if bias:
            scores = scores + bias.bonuses(bias_states, scores.shape[-1])
        total = live_scores[:, None] + scores
        if lexicon:
            total = _with_lexicon(total, lexicon, words, eos_id, 2 * cfg.beam_size)
        vocab = scores.shape[-1]
        total = total.flatten()
        top = total.topk(min(2 * cfg.beam_size, int(torch.isfinite(total).sum()))).indices
        next_tokens: list[list[int]] = []
        next_scores: list[float] = []
        next_parents: list[int] = []
        next_bias: list[BiasState] = []
        next_words: list[WordState] = []
        for rank, flat in enumerate(top.tolist()):
            parent, token = divmod(flat, vocab)
            if token == eos_id:
                # an end ranked below the beam's width is not one the search would have kept (as Whisper's and
                # CTranslate2's searches do): counting it would end a length-normalised search on weak short
                # endings, e.g. before a sentence's final mark
                if rank < cfg.beam_size:
                    finished.append(Hypothesis(live_tokens[parent], float(total[flat])))
            elif len(next_tokens) < cfg.beam_size:
                next_tokens.append(live_tokens[parent] + [token])
                next_scores.append(float(total[flat]))
                next_parents.append(parent)
                if bias:
                    next_bias.append(bias.advance(bias_states[parent], token))
                if lexicon:
                    next_words.append(lexicon.advance(words[parent], token))
        finished.sort(key=lambda h: -_rank(h, cfg))
        if cfg.length_norm:  # a longer hypothesis may still rank first: wait for beam_size ended ones, as Whisper does
            done = len(finished) >= max(cfg.beam_size, cfg.nbest)
        else:
            done = len(finished) >= cfg.nbest and (not next_scores or max(next_scores) < finished[cfg.nbest - 1].score)
        if done or not next_tokens:
            break
        live_tokens, live_scores, bias_states, words = next_tokens, torch.tensor(next_scores), next_bias, next_words
        parents = torch.tensor(next_parents)
        last = torch.tensor([tk[-1] for tk in next_tokens])
        if use_ctc:
            psi, r_n, r_b, cands = tables
            ctc_state = CTCPrefixScorer.select(psi, r_n, r_b, cands, parents, slot[parents, last])
    if not finished:  # every continuation was ruled out: end the live hypotheses where they are
        finished = sorted((Hypothesis(tk, float(sc)) for tk, sc in zip(live_tokens, live_scores)),
                          key=lambda h: -_rank(h, cfg))
    return finished[: cfg.nbest]


class CachedStep:
    """Batched scorer with a KV cache: rows are stream-major (stream s, beam b) -> s * N + b.

    The prompts run once; every step runs only the new tokens, and the beams of a stream read its
    prompt's keys and values without copies (moe_lm.BeamCache)."""

    def __init__(self, lm: MoeLM, prefixes: list[torch.Tensor]) -> None:
        self.lm = lm
        length = max(p.shape[0] for p in prefixes)
        embeds = torch.stack([F.pad(p, (0, 0, length - p.shape[0], 0)) for p in prefixes])  # left pad
        valid = torch.stack([torch.arange(length) >= length - p.shape[0] for p in prefixes])
        self.streams = len(prefixes)
        logits, prefix_cache, _ = lm(embeds, valid, last_only=True)
        self.cache = BeamCache(prefix_cache, valid)
        self.first = logits[:, -1].log_softmax(-1)[:, None]  # (S, 1, V)
        self.n = 1

    def __call__(self, parents: Optional[torch.Tensor], last: Optional[torch.Tensor]) -> torch.Tensor:
        if parents is None or last is None:
            return self.first
        s, n_new = self.streams, parents.shape[0]
        rows = (torch.arange(s)[:, None] * self.n + parents[None, :]).flatten()
        tokens = last.repeat(s)[:, None]  # (S*N, 1)
        logits, self.cache = self.lm.step(self.lm.embed(tokens), self.cache.select(rows))
        self.n = n_new
        return logits.log_softmax(-1).view(s, n_new, -1)


class UncachedStep:
    """Reference scorer: every hypothesis of every stream re-run from scratch, one at a time."""

    def __init__(self, lm: MoeLM, prefixes: list[torch.Tensor]) -> None:
        self.lm, self.prefixes = lm, prefixes
        self.hyps: list[list[int]] = [[]]

    def _score(self, prefix: torch.Tensor, tokens: list[int]) -> torch.Tensor:
        seq = torch.cat([prefix, self.lm.embed(torch.tensor(tokens, dtype=torch.long))])[None]
        logits, _, _ = self.lm(seq, torch.ones(1, seq.shape[1], dtype=torch.bool))
        return logits[0, -1].log_softmax(-1)

    def __call__(self, parents: Optional[torch.Tensor], last: Optional[torch.Tensor]) -> torch.Tensor:
        if parents is not None and last is not None:
            self.hyps = [self.hyps[p] + [int(tk)] for p, tk in zip(parents.tolist(), last.tolist())]
        return torch.stack([torch.stack([self._score(p, h) for h in self.hyps]) for p in self.prefixes])


@torch.inference_mode()
def joint_beam_search(
    lm: MoeLM,
    free_prefix: torch.Tensor,
    ctx_prefix: Optional[torch.Tensor],
    eos_id: int,
    cfg: BeamConfig,
    cached: bool = True,
    ctc: Optional[CTCPrefixScorer] = None,
    bias: Optional[Biasing] = None,
    lexicon: Optional[WordLexicon] = None,
    cancelled: Optional[Callable[[], bool]] = None,
) -> list[Hypothesis]:
    """free_prefix / ctx_prefix: (L, D) prompt embeddings ending right before the transcript."""
    prefixes, alpha = joint_streams(free_prefix, ctx_prefix, cfg.alpha)
    step: StepFn = CachedStep(lm, prefixes) if cached else UncachedStep(lm, prefixes)
    return search(step, eos_id, cfg, alpha, ctc, bias, lexicon, cancelled)
