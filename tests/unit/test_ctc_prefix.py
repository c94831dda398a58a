"""CTC prefix scores against brute force over every alignment, and LM + CTC search end to end."""

import itertools
import math

import torch
import torch.nn.functional as F

from shared.model.beam_search import BeamConfig, joint_beam_search
from shared.model.ctc_prefix import CTCPrefixScorer
from tests.unit.test_model import tiny_lm

BLANK, EOS = 0, 4


def brute_force(logp: torch.Tensor) -> dict[tuple[int, ...], float]:
    """Probability of every collapsed CTC output, summing all alignments."""
    out: dict[tuple[int, ...], float] = {}
    t, v = logp.shape
    for path in itertools.product(range(v), repeat=t):
        collapsed = tuple(s for i, s in enumerate(path) if s != BLANK and (i == 0 or s != path[i - 1]))
        out[collapsed] = out.get(collapsed, 0.0) + math.exp(float(sum(logp[i, s] for i, s in enumerate(path))))
    return out


def test_prefix_scores_match_brute_force() -> None:
    torch.manual_seed(0)
    logits = torch.randn(4, 5)
    logits[:, EOS] = float("-inf")  # T=4, tokens 1..3, blank 0; </s> is never a CTC label
    logp = logits.log_softmax(-1)
    outputs = brute_force(logp)
    scorer = CTCPrefixScorer(logp, BLANK, EOS)
    state = scorer.initial()
    prefix: tuple[int, ...] = ()
    for token in (2, 2, 1):
        cands = torch.tensor([[1, 2, 3, EOS]])
        psi, r_n, r_b = scorer.score(state, cands)
        for k, c in enumerate([1, 2, 3]):
            expected = sum(p for out, p in outputs.items() if out[: len(prefix) + 1] == prefix + (c,))
            assert math.isclose(math.exp(float(psi[0, k])), expected, rel_tol=1e-4, abs_tol=1e-12)
        assert math.isclose(math.exp(float(psi[0, 3])), outputs.get(prefix, 0.0), rel_tol=1e-4, abs_tol=1e-12)
        slot = [1, 2, 3].index(token)
        state = scorer.select(psi, r_n, r_b, cands, torch.tensor([0]), torch.tensor([slot]))
        prefix += (token,)
    full = -F.ctc_loss(logp[:, None], torch.tensor([2, 2]), torch.tensor([4]), torch.tensor([2]), reduction="sum")
    assert math.isclose(math.exp(float(full)), outputs[(2, 2)], rel_tol=1e-4)


def test_ctc_weight_one_follows_the_acoustics_and_cached_equals_uncached() -> None:
    """With all weight on CTC, the search returns what the CTC posteriors spell, whatever the LM says."""
    lm = tiny_lm()
    spelled = [7, 7, 12, 30]
    frames = [BLANK, 7, BLANK, 7, 12, 12, BLANK, 30, BLANK]
    logp = torch.full((len(frames), 50), -12.0)
    logp[torch.arange(len(frames)), torch.tensor(frames)] = 0.0
    logp = logp.log_softmax(-1)
    prefix = torch.randn(6, 32)
    cfg = BeamConfig(beam_size=3, nbest=2, max_tokens=12, prune_k=50, ctc_weight=1.0, alpha=0.5)
    scorer = CTCPrefixScorer(logp, BLANK, eos_id := 2)
    cached = joint_beam_search(lm, prefix, None, eos_id, cfg, ctc=scorer)
    assert cached[0].tokens == spelled
    mixed = BeamConfig(beam_size=3, nbest=2, max_tokens=12, prune_k=10, ctc_weight=0.5, alpha=0.5)
    a = joint_beam_search(lm, prefix, None, eos_id, mixed, ctc=scorer)
    b = joint_beam_search(lm, prefix, None, eos_id, mixed, cached=False, ctc=scorer)
    assert [h.tokens for h in a] == [h.tokens for h in b]
    assert all(math.isclose(x.score, y.score, rel_tol=1e-4) for x, y in zip(a, b))


def test_speech_shorter_than_any_long_prefix_still_yields_an_nbest() -> None:
    """Two frames of CTC posteriors rule out every prefix longer than two tokens; with context the
    context-free pruning hid </s>, and the search used to end with no hypothesis at all."""
    lm = tiny_lm()
    logp = torch.randn(2, 50).log_softmax(-1)
    free, ctx = torch.randn(6, 32), torch.randn(9, 32)
    cfg = BeamConfig(beam_size=3, nbest=2, max_tokens=10, prune_k=4, ctc_weight=0.5, alpha=0.5)
    for context in (None, ctx):
        hyps = joint_beam_search(lm, free, context, 2, cfg, ctc=CTCPrefixScorer(logp, BLANK, 2))
        assert hyps and all(len(h.tokens) <= 2 for h in hyps)
