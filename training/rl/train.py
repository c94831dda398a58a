"""RL stage: MWER fine-tuning of the whole AcLLM on n-best lists scored by keyword-weighted WER.

    python -m training.rl.train     (from context_sft_final.pt; writes rl_final.pt)

For each batch: decode n-best with the current model (joint beam search, context when the row has
an entity), score each hypothesis with weighted WER against the reference (the entity counts
more), then minimise mwer_loss + lambda * CE on the reference. Feedback samples collected by the
reward worker (`read_feedback_samples`) are reported; they carry no audio, so they steer which
keywords to weight rather than being trained on directly.
"""

from __future__ import annotations

import json
import random
from typing import Optional

import torch

from shared.context import assemble_context
from shared.model.asr import SeedASR
from shared.model.beam_search import BeamConfig, joint_beam_search
from shared.model.ctc_prefix import CTCPrefixScorer
from shared.scoring import weighted_wer
from shared.tokenizer import Tokenizer
from training.common import (
    Checkpointer,
    TimeBudget,
    cpu_state,
    device_name,
    feature_batches,
    lr_at,
    speech_of,
    training_cache,
)
from training.data.contexts import dialogue_context
from training.data.text import EntityFaker
from training.recipe import CONTEXT_BUDGET, Recipe
from training.rl.mwer import mwer_loss
from training.sft.train import build_model

CE_WEIGHT = 0.1


def sequence_logprobs(model: SeedASR, tok: Tokenizer, speech: torch.Tensor, speech_lens: torch.Tensor,
                      contexts: list, hyps: list[list[list[int]]]) -> torch.Tensor:
    """(B, N) log P(hypothesis | speech, context) with gradients, one teacher-forced batch."""
    flat_ctx, flat_tgt, owners = [], [], []
    for b, nbest in enumerate(hyps):
        for h in nbest:
            flat_ctx.append(contexts[b])
            flat_tgt.append(h)
            owners.append(b)
    idx = torch.tensor(owners)
    batch = model.build_batch(tok, speech[idx], speech_lens[idx], flat_ctx, flat_tgt)
    logits, _, _ = model.lm(batch.embeds, batch.valid)
    logp = logits.log_softmax(-1)
    labels = batch.labels.clamp(min=0)
    token_lp = logp.gather(-1, labels[..., None])[..., 0] * (batch.labels != -100)
    seq = token_lp.sum(-1)
    n = max(len(h) for h in hyps)
    out = torch.full((len(hyps), n), float("-inf"))
    pos = [0] * len(hyps)
    for k, b in enumerate(owners):
        out[b, pos[b]] = seq[k]
        pos[b] += 1
    return out


def main() -> None:
    recipe = Recipe.from_env()
    work = recipe.work_dir
    tok = Tokenizer(work / "tokenizer.model")
    model = build_model(recipe, tok, "context_sft")
    model.load_state_dict(torch.load(work / "context_sft_final.pt", map_location="cpu"))
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.rl.peak_lr, weight_decay=0.0)
    ckpt = Checkpointer(work / "rl.pt")
    state = ckpt.load(model, opt)
    step, log = state["step"], state["log"]
    budget = TimeBudget(recipe.rl.minutes, state.get("elapsed", 0.0))
    cache = training_cache(recipe, model)
    rng, ents = random.Random(step + 99), EntityFaker(900 + step)
    beam = BeamConfig(beam_size=4, nbest=4, max_tokens=60, alpha=0.5, prune_k=8, ctc_weight=0.5)
    while budget.left():
        for batch in feature_batches(cache, 3000, rng, augment=False):
            if not budget.left():
                break
            rows = batch.rows
            contexts: list[Optional[list[int]]] = []
            for r in rows:
                ent = (r.get("entities") or [None])[0]
                dialogue = dialogue_context(rng, ents, ent, rng.randint(0, 3)) if ent and rng.random() < 0.7 else None
                contexts.append(assemble_context(tok, dialogue, CONTEXT_BUDGET).token_ids if dialogue else None)
            model.eval()
            with torch.no_grad():
                speech, speech_lens = speech_of(model, batch, cache)
                hyps = []
                for i, ctx in enumerate(contexts):
                    sp = speech[i, : int(speech_lens[i])]
                    free = model.prefix_embeds(tok, sp, None)
                    cpre = model.prefix_embeds(tok, sp, ctx) if ctx else None
                    # the n-best the serving decoder would produce: LM (+ context) and CTC prefix scores
                    ctc = CTCPrefixScorer(model.ctc_logits(sp[None])[0].log_softmax(-1), model.ctc_blank,
                                          tok.eos_id) if model.ctc is not None else None
                    nb = [h.tokens for h in joint_beam_search(model.moe_lm, free, cpre, tok.eos_id, beam, ctc=ctc)] or [[]]
                    hyps.append(nb)
            errors = torch.full((len(rows), max(len(h) for h in hyps)), 0.0)
            for i, (r, nb) in enumerate(zip(rows, hyps)):
                for j, h in enumerate(nb):
                    errors[i, j] = weighted_wer(r["text"], tok.decode(h), r.get("entities") or [])
            model.train()
            model.lm.train(False)
            speech, speech_lens = speech_of(model, batch, cache)
            seq_lp = sequence_logprobs(model, tok, speech, speech_lens, contexts, hyps)
            mask = torch.isfinite(seq_lp)
            loss_rl = mwer_loss(seq_lp.masked_fill(~mask, 0.0), errors, mask)
            ce, _ = model.lm_loss(model.build_batch(tok, speech, speech_lens, contexts,
                                                    [tok.encode(r["text"])[:80] for r in rows]))
            loss = loss_rl + CE_WEIGHT * ce
            for g in opt.param_groups:
                g["lr"] = lr_at(step, budget.progress, recipe.rl.peak_lr, 20)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            log.append((step, float(loss_rl), float(errors.mean())))
            print(f"rl step {step}: mwer {float(loss_rl):.4f} mean wwer {float(errors.mean()):.3f} ce {float(ce):.3f}",
                  flush=True)
            ckpt.maybe_save(model, opt, step, log, budget.elapsed)
    ckpt.maybe_save(model, opt, step, log, budget.elapsed, force=True)
    torch.save(cpu_state(model), work / "rl_final.pt")
    (work / "rl_stats.json").write_text(json.dumps({"steps": step, "minutes": recipe.rl.minutes, "device": device_name(),
                                                    "final_loss": log[-1][1] if log else None}))


if __name__ == "__main__":
    main()
