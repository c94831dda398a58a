"""Two code paths that must agree: cached+batched vs one-at-a-time beam search, KV cache vs full
forward, joint search at alpha 0 / 1 vs single-stream decoding."""

import dataclasses

import torch

from shared.model.beam_search import BeamConfig, joint_beam_search
from shared.model.moe_lm import BeamCache, LMConfig, MoeConfig, MoeLM, load_balancing_loss


def tiny_lm(seed: int = 0) -> MoeLM:
    torch.manual_seed(seed)
    lm = MoeLM(LMConfig(vocab_size=50, d_model=32, n_layers=2, n_heads=2, ff_hidden=48, dropout=0.0,
                        moe=MoeConfig(n_experts=4, top_k=2)))
    # sharper distributions so the searches take different paths for different prefixes
    with torch.no_grad():
        lm.embed.weight.mul_(8)
    return lm.eval()


def test_load_balancing_loss_is_one_when_uniform_and_larger_when_skewed() -> None:
    uniform = [torch.zeros(64, 4)]
    skewed = [torch.tensor([[5.0, 0, 0, 0]]).repeat(64, 1)]
    assert abs(float(load_balancing_loss(uniform, 4, 2)) - 1.0) < 1e-5
    assert float(load_balancing_loss(skewed, 4, 2)) > 1.2


def test_moe_returns_router_logits_per_layer() -> None:
    lm = tiny_lm()
    _, _, routers = lm(torch.randn(2, 5, 32), torch.ones(2, 5, dtype=torch.bool))
    assert len(routers) == 2 and routers[0].shape == (10, 4)


def test_kv_cache_matches_full_forward_with_left_padding() -> None:
    lm = tiny_lm()
    x = torch.randn(2, 7, 32)
    valid = torch.ones(2, 7, dtype=torch.bool)
    valid[1, :3] = False  # row 1 is left-padded
    full, _, _ = lm(x, valid)
    part, cache, _ = lm(x[:, :5], valid[:, :5])
    step, _, _ = lm(x[:, 5:], valid, cache=cache)
    torch.testing.assert_close(step, full[:, 5:], atol=1e-4, rtol=1e-4)
    alone, _, _ = lm(x[1:, 3:], torch.ones(1, 4, dtype=torch.bool))
    torch.testing.assert_close(full[1, 3:], alone[0], atol=1e-4, rtol=1e-4)


def test_shared_prompt_beam_steps_match_full_forward() -> None:
    """Two streams (one left-padded), three beams each with their own tokens, two steps: the
    shared-prompt cache must give what running each row's whole sequence gives."""
    lm = tiny_lm()
    prompts = [torch.randn(4, 32), torch.randn(6, 32)]
    valid = torch.tensor([[False, False, True, True, True, True], [True] * 6])
    embeds = torch.stack([torch.cat([torch.zeros(2, 32), prompts[0]]), prompts[1]])
    _, prefix, _ = lm(embeds, valid)
    cache = BeamCache(prefix, valid)
    tokens = torch.tensor([[5, 7], [9, 7], [11, 13], [5, 6], [8, 8], [10, 12]])  # (S*N, steps), stream-major
    for t in range(tokens.shape[1]):
        logits, cache = lm.step(lm.embed(tokens[:, t : t + 1]), cache.select(torch.arange(6)))
        for row in range(6):
            seq = torch.cat([prompts[row // 3], lm.embed(tokens[row, : t + 1])])[None]
            full, _, _ = lm(seq, torch.ones(1, seq.shape[1], dtype=torch.bool))
            torch.testing.assert_close(logits[row], full[0, -1], atol=1e-4, rtol=1e-4)


def _texts(hyps):
    return [(h.tokens, round(h.score, 3)) for h in hyps]


def test_batched_cached_search_equals_one_at_a_time() -> None:
    lm = tiny_lm()
    free, ctx = torch.randn(6, 32), torch.randn(9, 32)
    cfg = BeamConfig(beam_size=3, nbest=3, max_tokens=6, alpha=0.4, prune_k=6, ctc_weight=0.5)
    for c in (None, ctx):
        fast = joint_beam_search(lm, free, c, eos_id=2, cfg=cfg, cached=True)
        slow = joint_beam_search(lm, free, c, eos_id=2, cfg=cfg, cached=False)
        assert _texts(fast) == _texts(slow)
        assert len(fast) >= 1


def test_greedy_is_beam_one() -> None:
    lm = tiny_lm()
    prefix = torch.randn(5, 32)
    greedy = BeamConfig(beam_size=1, nbest=1, max_tokens=6, alpha=0.5, prune_k=8, ctc_weight=0.5)
    hyp = joint_beam_search(lm, prefix, None, 2, greedy)[0]
    # greedy by hand
    tokens: list[int] = []
    for _ in range(6):
        seq = torch.cat([prefix, lm.embed(torch.tensor(tokens, dtype=torch.long))])[None]
        logits, _, _ = lm(seq, torch.ones(1, seq.shape[1], dtype=torch.bool))
        nxt = int(logits[0, -1].argmax())
        if nxt == 2:
            break
        tokens.append(nxt)
    assert hyp.tokens == tokens


def test_alpha_zero_is_context_free_and_alpha_one_is_context_only() -> None:
    lm = tiny_lm()
    free, ctx = torch.randn(6, 32), torch.randn(9, 32)
    base = BeamConfig(beam_size=3, nbest=3, max_tokens=6, prune_k=50, alpha=0.5, ctc_weight=0.5)
    free_only = joint_beam_search(lm, free, None, 2, base)
    ctx_only = joint_beam_search(lm, ctx, None, 2, base)
    at0 = joint_beam_search(lm, free, ctx, 2, BeamConfig(**{**base.__dict__, "alpha": 0.0}))
    at1 = joint_beam_search(lm, free, ctx, 2, BeamConfig(**{**base.__dict__, "alpha": 1.0}))
    assert _texts(at0) == _texts(free_only)
    assert _texts(at1) == _texts(ctx_only)
    mid = joint_beam_search(lm, free, ctx, 2, BeamConfig(**{**base.__dict__, "alpha": 0.5, "prune_k": 3}))
    assert mid and all(len(h.tokens) <= 6 for h in mid)


def test_pruning_keeps_only_tokens_the_context_free_pass_ranks_high() -> None:
    from shared.model.beam_search import _joint

    free = torch.log_softmax(torch.tensor([[[3.0, 2.0, 1.0, 0.0, -1.0]]]), -1)
    ctx = torch.log_softmax(torch.tensor([[[0.0, 0.0, 0.0, 0.0, 9.0]]]), -1)
    joint = _joint(torch.cat([free, ctx]), alpha=0.9, prune_k=2)
    assert torch.isinf(joint[0, 4]) and int(joint[0].argmax()) in (0, 1)


def test_tied_ctc_head_scores_speech_against_lm_embeddings() -> None:
    """A speech position equal to a token's (normalised) embedding scores that token highest."""
    from shared.model.asr import ASRConfig, SeedASR
    from shared.model.conformer import ConformerConfig
    from shared.model.converter import ConverterConfig

    torch.manual_seed(0)
    cfg = ASRConfig(encoder=ConformerConfig(d_model=16, n_heads=2, n_layers=1, subsample_channels=4),
                    converter=ConverterConfig(d_in=16, d_out=32, splice=2),
                    lm=LMConfig(vocab_size=40, d_model=32, n_layers=1, n_heads=2, ff_hidden=32))
    model = SeedASR.build(cfg)
    emb = model.lm.embed.weight.detach()
    speech = torch.nn.functional.layer_norm(emb[[7, 3, 21]], (32,))[None]  # (1, 3, D)
    assert model.ctc_logits(speech).argmax(-1).tolist() == [[7, 3, 21]]
    targets = [[7, 21]]
    loss = model.ctc_loss(speech, torch.tensor([3]), targets)
    loss.backward()
    assert model.lm.embed.weight.grad is not None and float(loss) > 0


def test_pseudo_speech_is_ctc_shaped_and_layer_normalised() -> None:
    import random

    from training.lm.examples import pseudo_speech

    torch.manual_seed(0)
    embed = torch.randn(60, 16) * 0.02
    out = pseudo_speech([10, 11, 12, 13], embed, blank=3, first_normal=9, rng=random.Random(1))
    assert out.shape[1] == 16 and 4 <= out.shape[0] <= 4 * 3 + 4 * 2 + 12
    assert torch.allclose(out.mean(-1), torch.zeros(out.shape[0]), atol=1e-5)
    assert torch.allclose(out.pow(2).mean(-1), torch.ones(out.shape[0]), atol=0.1)  # LayerNorm eps vs tiny embeddings


def test_garbled_spans_lose_most_of_their_tokens_and_the_rest_keep_them() -> None:
    import random

    from training.lm.examples import find_span, pseudo_ids

    rng, ids = random.Random(0), list(range(10, 30))
    kept_plain = kept_garbled = 0
    for _ in range(200):
        kept_plain += len(set(pseudo_ids(ids, 3, 9, 60, rng)) & set(ids))
        kept_garbled += len(set(pseudo_ids(ids, 3, 9, 60, rng, garbled=range(0, 20))) & set(ids))
    assert kept_plain / (200 * 20) > 0.7 and kept_garbled / (200 * 20) < 0.5
    assert find_span([5, 6, 7, 8], [7, 8]) == range(2, 4) and not find_span([5, 6], [9])


def test_shared_identical_experts_give_the_same_output_and_stay_shared_in_int8() -> None:
    """share_identical_experts: experts with equal weights run as one module (once per token), the output is
    the unshared block's; distinct experts stay apart; quantize_linears' copy keeps one int8 module per group."""
    from shared.model.moe_lm import MoeFeedForward, share_identical_experts
    from shared.model.quantize import int8_supported, quantize_linears

    torch.manual_seed(0)
    block = MoeFeedForward(16, 32, MoeConfig(n_experts=4, top_k=2)).eval()
    for e in (2, 3):  # experts 0 and 1 distinct, 2 and 3 copies of 1
        block.experts[e].load_state_dict(block.experts[1].state_dict())
    x = torch.randn(3, 7, 16)
    with torch.no_grad():
        want, logits = block(x)
        assert share_identical_experts(block) == (2, 4)
        got, shared_logits = block(x)
    assert block.groups == [[0], [1, 2, 3]] and block.experts[3] is block.experts[1]
    assert torch.equal(logits, shared_logits)
    assert torch.allclose(got, want, atol=1e-5)
    if int8_supported():
        quantized = quantize_linears(block)
        assert quantized.experts[3] is quantized.experts[1] is not quantized.experts[0]
        assert type(quantized.experts[1].up) is not torch.nn.Linear


def test_length_normalised_ranking_keeps_the_transcript_raw_sums_cut_short() -> None:
    """A toy decoder that may end at once (p 0.5) or say "a" four times and end (p 0.45 * 0.9^3 * 0.99): raw
    sums take the empty transcript, score per token the four words (length_norm, Whisper's own ranking)."""
    from shared.model.beam_search import search

    eos, vocab = 0, 12

    def step_fn():
        calls = []

        def step(parents: torch.Tensor | None, last: torch.Tensor | None) -> torch.Tensor:
            n = 1 if parents is None else parents.shape[0]
            t = len(calls)
            calls.append(t)
            p = torch.full((vocab,), 0.01 / (vocab - 2))  # the other tokens share 1%
            p[eos], p[1] = {0: (0.5, 0.49), 4: (0.99, 0.0)}.get(t, (0.001, 0.989))
            return (p / p.sum()).log().expand(1, n, vocab)

        return step

    raw = BeamConfig(beam_size=2, nbest=1, max_tokens=8, alpha=0.5, prune_k=8, ctc_weight=0.5)
    assert search(step_fn(), eos, raw, 0.0)[0].tokens == []
    normed = search(step_fn(), eos, dataclasses.replace(raw, length_norm=True), 0.0)
    assert normed[0].tokens == [1, 1, 1, 1]


def test_an_end_ranked_below_the_beam_width_does_not_end_the_search() -> None:
    """Greedy (beam 1): after "a" the sentence's mark (p 0.9) ranks above an end (p 0.07). The end is among the
    top 2 x beam candidates but outside the beam: counting it as ended (as the search once did) stopped a
    length-normalised search there and dropped the mark; Whisper's and CTranslate2's searches go on."""
    from shared.model.beam_search import search

    eos, vocab = 0, 6

    def step(parents: torch.Tensor | None, last: torch.Tensor | None) -> torch.Tensor:
        n = 1 if parents is None else parents.shape[0]
        p = torch.full((vocab,), 0.01)
        if last is None:
            p[1] = 0.95  # "a"
        elif int(last[0]) == 1:
            p[2], p[eos] = 0.9, 0.07  # "." then, less likely, the end
        else:
            p[eos] = 0.97
        return (p / p.sum()).log().expand(1, n, vocab)

    cfg = BeamConfig(beam_size=1, nbest=1, max_tokens=8, alpha=0.0, prune_k=8, ctc_weight=0.0, length_norm=True)
    assert search(step, eos, cfg, 0.0)[0].tokens == [1, 2]
