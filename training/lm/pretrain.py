"""Text pretraining of the MoE LM, in the prompt format, so the frozen LM already reads context.

    python -m training.lm.pretrain            (uses training/recipe.py; resumes from its checkpoint)

Steps: build a text corpus from the train split (never dev sentences), train the SentencePiece
tokenizer on it, then train the LM on `<s> instruction [<ctx> context </ctx>] <speech> S </speech> text </s>`.
S is pseudo-speech made from the sentence itself (training/lm/examples.py). The LM thus learns to
read the speech span (and to fix its errors from language and context) before SFT freezes it; SFT's
tied CTC head pulls the real converter output towards the same embeddings. Nearly half the examples
carry a dialogue context that names an entity the sentence then says, usually garbled in the
pseudo-speech so that only the context can restore it; some carry only distractors.
In a continued run (`init.pt` from training/init_from_bundle.py) it goes on from the bundle's LM and
tokenizer; the stats record `copy_gain` (training/lm/examples.py), how much the LM copies from context.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch
from tqdm import tqdm

from shared.model.asr import INSTRUCTION_PLAIN, INSTRUCTION_WITH_CONTEXT, SeedASR
from shared.tokenizer import Tokenizer, train_tokenizer
from training.common import DEVICE, Checkpointer, TimeBudget, cpu_state, device_name, lr_at
from training.data.text import EntityFaker, sentence_stream
from training.lm.examples import copy_gain, text_batch, text_examples
from training.recipe import Recipe, model_config


def build_corpus(path: Path, n: int, seed: int = 7) -> list[str]:
    if path.exists():
        return path.read_text().splitlines()
    stream = sentence_stream(seed, dev=False)
    lines = [next(stream)[0] for _ in tqdm(range(n), desc="corpus")]
    lines += [INSTRUCTION_PLAIN, INSTRUCTION_WITH_CONTEXT] * 50
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return lines


def main() -> None:
    recipe = Recipe.from_env()
    work = recipe.work_dir
    init = work / "init.pt"
    if recipe.lm.minutes <= 0 and init.exists():  # no text training budgeted: SFT reads the bundle's LM as it is
        lm_state = {k[3:]: v for k, v in torch.load(init, map_location="cpu").items() if k.startswith("lm.")}
        torch.save({"lm": lm_state, "vocab_size": int(lm_state["embed.weight"].shape[0])}, work / "lm_final.pt")
        print("lm: no text training budgeted; the init bundle's LM goes to SFT unchanged")
        return
    corpus = build_corpus(work / "corpus.txt", recipe.lm_sentences)
    tok_file = work / "tokenizer.model"
    tok = Tokenizer(tok_file) if tok_file.exists() else train_tokenizer(corpus, work / "tokenizer", recipe.vocab_size)
    cfg = model_config(tok.vocab_size)
    model = SeedASR.build(cfg).to(DEVICE)
    lm = model.lm
    # continued training: go on from the bundle's LM (training/init_from_bundle.py)
    if init.exists():
        lm.load_state_dict({k[3:]: v for k, v in torch.load(init, map_location="cpu").items() if k.startswith("lm.")})
    opt = torch.optim.AdamW(lm.parameters(), lr=recipe.lm.peak_lr, weight_decay=0.01)
    ckpt = Checkpointer(work / "lm.pt")
    state = ckpt.load(lm, opt)
    step, log = state["step"], state["log"]
    rng, ents = random.Random(step), EntityFaker(1000 + step)
    budget = TimeBudget(recipe.lm.minutes, state.get("elapsed", 0.0))
    bar = tqdm(desc="lm", initial=step)
    lm.train()
    while budget.left():
        batch = text_batch(model, tok, text_examples(tok, corpus, rng, ents, recipe.lm_batch, recipe.entity_share), rng)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, budget.progress, recipe.lm.peak_lr, 200)
        ce, aux = model.lm_loss(batch)
        loss = ce + cfg.lm.moe.aux_loss_weight * aux if cfg.lm.moe else ce
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 10 == 0:
            log.append((step, float(ce)))
            bar.set_postfix(ce=f"{float(ce):.3f}", aux=f"{float(aux):.3f}")
        bar.update(1)
        ckpt.maybe_save(lm, opt, step, log, budget.elapsed)
    ckpt.maybe_save(lm, opt, step, log, budget.elapsed, force=True)
    torch.save({"lm": cpu_state(lm), "vocab_size": tok.vocab_size}, work / "lm_final.pt")
    stats = {"steps": step, "device": device_name(), "batch": recipe.lm_batch, "minutes": recipe.lm.minutes,
             "final_ce": log[-1][1] if log else None, "copy_gain": copy_gain(model, tok, random.Random(5), EntityFaker(5))}
    (work / "lm_stats.json").write_text(json.dumps(stats))
    print(f"lm: {step} steps, ce {log[-1][1] if log else float('nan'):.3f}, copy {stats['copy_gain']}")


if __name__ == "__main__":
    main()
