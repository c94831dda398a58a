"""SFT and context SFT of the AcLLM.

    python -m training.sft.train --stage sft           # encoder + converter (+ tied CTC) train, LM frozen
    python -m training.sft.train --stage context_sft   # from SFT: (context, speech, text) triples mixed
                                                       # with plain SFT data; the LM trains at a low rate

Both stages use the one prompt format of shared/model/asr.py, so context SFT needs no format change.
Context SFT also trains the LM on a few text-only examples per step whose entity is garbled in the
pseudo-speech and named in the context (training/lm/examples.py): real speech alone gives too few
entity-in-context examples for the LM to learn to copy.
"""

from __future__ import annotations

import argparse
import json
import random
from typing import Any

import torch
from tqdm import tqdm

from shared.context import assemble_context
from shared.model.asr import SeedASR
from shared.tokenizer import Tokenizer
from training.common import (
    DEVICE,
    Checkpointer,
    TimeBudget,
    cpu_state,
    device_name,
    encoder_trainable,
    feature_batches,
    lr_at,
    speech_of,
    training_cache,
)
from training.data.contexts import dialogue_context
from training.data.text import EntityFaker
from training.lm.examples import copy_gain, text_batch, text_examples
from training.recipe import CONTEXT_BUDGET, Recipe, model_config

LM_LR_SCALE = 0.5  # LM learning rate relative to the encoder's during context SFT


def build_model(recipe: Recipe, tok: Tokenizer, stage: str) -> SeedASR:
    work = recipe.work_dir
    cfg = model_config(tok.vocab_size, recipe.encoder_type, recipe.converter_layers)
    probe_file = work / "probe.json"
    if probe_file.exists():
        cfg.encoder_layers = int(json.loads(probe_file.read_text())["best_layer"])
    model = SeedASR.build(cfg)
    if stage == "sft" and (work / "init.pt").exists():  # continued training (training/init_from_bundle.py)
        model.load_state_dict(torch.load(work / "init.pt", map_location="cpu"))
        if (work / "lm_final.pt").exists():  # the LM went on with text training first
            model.lm.load_state_dict(torch.load(work / "lm_final.pt", map_location="cpu")["lm"])
    elif stage == "sft":
        model.lm.load_state_dict(torch.load(work / "lm_final.pt", map_location="cpu")["lm"])
        ssl = work / "ssl2_final.pt"
        if ssl.exists():
            model.encoder.load_state_dict(torch.load(ssl, map_location="cpu"))
    else:
        model.load_state_dict(torch.load(work / "sft_final.pt", map_location="cpu"))
    return model


def contexts_for(rows: list[dict], tok: Tokenizer, rng: random.Random, ents: EntityFaker, stage: str,
                 no_context_share: float) -> list:
    """Context SFT: a share of rows goes without context (plain SFT, so context-free decoding keeps what
    SFT taught it); of the rest, entity rows get their entity in context 3 times in 4, else distractors only."""
    out: list = []
    with_context = 1.0 - no_context_share
    for row in rows:
        if stage == "sft":
            out.append(None)
            continue
        entity = (row.get("entities") or [None])[0]
        r = rng.random()
        if entity and r < 0.75 * with_context:
            ctx = dialogue_context(rng, ents, entity, rng.randint(0, 4))
        elif r < with_context:
            ctx = dialogue_context(rng, ents, None, rng.randint(1, 4))
        else:
            ctx = None
        out.append(assemble_context(tok, ctx, CONTEXT_BUDGET).token_ids if ctx else None)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", choices=["sft", "context_sft"], required=True)
    args = ap.parse_args()
    recipe = Recipe.from_env()
    work, stage = recipe.work_dir, args.stage
    budget_cfg = recipe.sft if stage == "sft" else recipe.context_sft
    tok = Tokenizer(work / "tokenizer.model")
    model = build_model(recipe, tok, stage).to(DEVICE)
    lm_params = list(model.lm.parameters())
    for p in lm_params:
        p.requires_grad = stage == "context_sft"
    # lr scale 0: a pretrained encoder stays as it is; encoder_tuned_layers: only its top blocks train
    encoder_params = encoder_trainable(recipe, model)
    trained = {id(p) for p in encoder_params}
    for p in model.encoder.parameters():
        p.requires_grad = id(p) in trained
    other = [p for n, p in model.named_parameters() if not n.startswith(("lm.", "encoder."))]
    groups: list[dict[str, Any]] = [{"params": other, "lr_scale": 1.0}]
    if encoder_params:
        groups.append({"params": encoder_params, "lr_scale": recipe.encoder_lr_scale})
    if stage == "context_sft":
        # Context SFT tunes the LM too, at a lower rate, so it learns to trust context over doubtful speech.
        groups.append({"params": lm_params, "lr_scale": LM_LR_SCALE})
    opt = torch.optim.AdamW(groups, lr=budget_cfg.peak_lr, weight_decay=0.01)
    ckpt = Checkpointer(work / f"{stage}.pt")
    state = ckpt.load(model, opt)
    step, log = state["step"], state["log"]
    budget = TimeBudget(budget_cfg.minutes, state.get("elapsed", 0.0))
    cache = training_cache(recipe, model)
    corpus = [row["text"] for row in cache.rows]  # sentences of the copy examples
    rng, ents = random.Random(step + 11), EntityFaker(500 + step)
    bar = tqdm(desc=stage, initial=step)
    model.train()
    model.lm.train(stage == "context_sft")  # a frozen LM runs without dropout
    model.encoder.train(recipe.encoder_lr_scale > 0)
    while budget.left():
        for batch in feature_batches(cache, budget_cfg.max_frames, rng, augment=True):
            if not budget.left():
                break
            batch = batch.to(DEVICE)
            targets = [tok.encode(r["text"])[:80] for r in batch.rows]
            speech, speech_lens = speech_of(model, batch, cache)
            contexts = contexts_for(batch.rows, tok, rng, ents, stage, recipe.no_context_share)
            lm_batch = model.build_batch(tok, speech, speech_lens, contexts, targets)
            ce, aux = model.lm_loss(lm_batch)
            ctc = model.ctc_loss(speech, speech_lens, targets) if model.ctc is not None else ce.new_zeros(())
            loss = ce + model.cfg.ctc_weight * ctc
            copy_ce = ce.new_zeros(())
            if stage == "context_sft":
                examples = text_examples(tok, corpus, rng, ents, recipe.copy_examples, recipe.entity_share)
                copy = text_batch(model, tok, examples, rng)
                copy_ce, copy_aux = model.lm_loss(copy)
                loss = loss + copy_ce
                if model.cfg.lm.moe:
                    loss = loss + model.cfg.lm.moe.aux_loss_weight * (aux + copy_aux)
            for g in opt.param_groups:
                g["lr"] = g["lr_scale"] * lr_at(step, budget.progress, budget_cfg.peak_lr, 300)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 5.0)
            opt.step()
            step += 1
            log.append((step, float(ce), float(ctc), float(copy_ce)))
            bar.update(1)
            bar.set_postfix(ce=f"{float(ce):.3f}", ctc=f"{float(ctc):.3f}", copy=f"{float(copy_ce):.3f}")
            ckpt.maybe_save(model, opt, step, log, budget.elapsed)
    ckpt.maybe_save(model, opt, step, log, budget.elapsed, force=True)
    torch.save(cpu_state(model), work / f"{stage}_final.pt")
    gain = {"copy_gain": copy_gain(model, tok, random.Random(5), EntityFaker(5))} if stage == "context_sft" else {}
    (work / f"{stage}_stats.json").write_text(json.dumps({"steps": step, "minutes": budget_cfg.minutes, "device": device_name(),
                                                          "final_ce": log[-1][1] if log else None, **gain}))


if __name__ == "__main__":
    main()
