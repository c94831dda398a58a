"""MWER loss over n-best lists (the RL stage of Seed-ASR).

    L = sum_i P_hat(y_i | x, c) * (W(y_i, y*) - W_bar) + lambda * L_CE

P_hat renormalises the n-best sequence likelihoods, W is WER or keyword-weighted WER, W_bar the
mean W of the list. Pure functions; the loop lives in training/rl/train.py.
"""

from __future__ import annotations

import torch


def mwer_loss(seq_logprobs: torch.Tensor, errors: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """seq_logprobs (B, N) log P(y_i | x, c); errors (B, N) W(y_i, y*); mask (B, N) valid hypotheses.

    Returns the mean over the batch of sum_i P_hat_i * (W_i - W_bar).
    """
    if mask is None:
        mask = torch.ones_like(errors, dtype=torch.bool)
    logits = seq_logprobs.masked_fill(~mask, float("-inf"))
    p_hat = logits.softmax(-1)
    count = mask.sum(-1, keepdim=True).clamp(min=1)
    mean_err = (errors * mask).sum(-1, keepdim=True) / count
    return (p_hat * (errors - mean_err) * mask).sum(-1).mean()


def read_feedback_samples(source: str) -> list[dict]:
    """RL samples written by the reward worker: a JSONL path (embedded) or a redis:// URL (mesh)."""
    if source.startswith("redis://"):
        from shared.reward_store import RedisRewardStore

        return list(RedisRewardStore(source).samples())
    import json
    from pathlib import Path

    path = Path(source)
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
