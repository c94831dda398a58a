"""CTC prefix scores for joint CTC / LM beam search (Watanabe et al., 2017, "Hybrid CTC/attention").

psi(h) is the log-probability that the CTC output starts with prefix h; psi(h + </s>) is the
probability that it is exactly h. The decoder adds lambda * (psi(h + c) - psi(h)) to the LM's
score of token c, which keeps hypotheses consistent with the acoustics: the LM can no longer drop,
repeat or paraphrase words the CTC head did not hear. Vectorised over (hypotheses, candidates);
one loop over speech positions per decoding step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

NEG_INF = float("-inf")


@dataclass
class PrefixState:
    """Per hypothesis: r_n / r_b (N, T) = log P(prefix, ending at t in a non-blank / blank), psi (N,)."""

    r_n: torch.Tensor
    r_b: torch.Tensor
    psi: torch.Tensor
    last: torch.Tensor  # (N,) last token of each prefix, -1 when empty


class CTCPrefixScorer:
    def __init__(self, logp: torch.Tensor, blank: int, eos: int) -> None:
        """logp (T, V) CTC log-probabilities of one utterance."""
        self.logp, self.blank, self.eos = logp, blank, eos
        self.t = logp.shape[0]

    def initial(self) -> PrefixState:
        r_b = self.logp[:, self.blank].cumsum(0)[None]  # the empty prefix: blanks only
        return PrefixState(torch.full_like(r_b, NEG_INF), r_b, torch.zeros(1), torch.full((1,), -1))

    def score(self, state: PrefixState, cands: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """cands (N, K) token ids -> psi (N, K) and the extended prefixes' r_n, r_b (T, N, K)."""
        n, k = cands.shape
        x = self.logp[:, cands.clamp(min=0)]  # (T, N, K)
        same = cands == state.last[:, None]  # repeating the last token needs a blank in between
        r_prev_n = state.r_n.t()[:, :, None].expand(-1, -1, k)
        phi = torch.logaddexp(state.r_b.t()[:, :, None], r_prev_n.masked_fill(same[None], NEG_INF))  # (T, N, K)
        r_n = torch.full((self.t, n, k), NEG_INF)
        r_b = torch.full((self.t, n, k), NEG_INF)
        empty = (state.last < 0)[:, None].expand(n, k)
        r_n[0] = torch.where(empty, x[0], torch.full_like(x[0], NEG_INF))
        psi = r_n[0].clone()
        blank = self.logp[:, self.blank]
        for t in range(1, self.t):
            r_n[t] = torch.logaddexp(r_n[t - 1], phi[t - 1]) + x[t]
            r_b[t] = torch.logaddexp(r_b[t - 1], r_n[t - 1]) + blank[t]
            psi = torch.logaddexp(psi, phi[t - 1] + x[t])
        ended = torch.logaddexp(state.r_n[:, -1], state.r_b[:, -1])[:, None].expand(n, k)
        psi = torch.where(cands == self.eos, ended, psi)
        return psi, r_n, r_b

    @staticmethod
    def select(psi: torch.Tensor, r_n: torch.Tensor, r_b: torch.Tensor, cands: torch.Tensor,
               parents: torch.Tensor, slots: torch.Tensor) -> PrefixState:
        """Keep the chosen (parent, candidate slot) pairs as the next step's prefixes."""
        return PrefixState(r_n[:, parents, slots].t().contiguous(), r_b[:, parents, slots].t().contiguous(),
                           psi[parents, slots], cands[parents, slots])
