"""Text pretraining of the MoE LM, in the prompt format, so the frozen LM already reads context.

    python -m training.lm.pretrain            (uses training/recipe.py; resumes from its checkpoint)

Steps: build a text corpus from the train split (never dev sentences), train the SentencePiece
tokenizer on it, then train the LM on `<s> instruction [<ctx> context </ctx>] <speech> S </speech> text </s>`.
S is pseudo-speech made from the sentence itself: its token embeddings repeated 1-3 times with
blank (<pad>) embeddings between them, some tokens substituted or dropped, Gaussian noise added,
then layer-normalised like the converter's output. The LM thus learns to read the speech span (and
to fix its errors from language and context) before SFT freezes it; SFT's tied CTC head pulls the
real converter output towards the same embeddings. Half the examples carry a dialogue context that
names an entity the sentence then says; some carry only distractors.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch
from tqdm import tqdm

from shared.context import assemble_context
from shared.model.asr import INSTRUCTION_PLAIN, INSTRUCTION_WITH_CONTEXT, SeedASR
from shared.tokenizer import Tokenizer, train_tokenizer
from training.common import DEVICE, Checkpointer, TimeBudget, cpu_state, device_name, lr_at
from training.data.contexts import dialogue_context
from training.data.text import EntityFaker, entity_sentence, sentence_stream
from training.recipe import CONTEXT_BUDGET, Recipe, model_config

REPEATS = (1, 1, 1, 2, 2, 3)  # positions per token: about 80 ms speech positions per BPE piece


def pseudo_speech(ids: list[int], embed: torch.Tensor, blank: int, first_normal: int, rng: random.Random) -> torch.Tensor:
    """Token ids -> (S, D) pseudo-speech: CTC-like repeats and blanks, substitutions, deletions, noise."""
    sub_rate, del_rate = rng.uniform(0.0, 0.25), rng.uniform(0.0, 0.08)
    vocab = embed.shape[0]
    seq = [blank] * rng.randint(0, 6)
    for t in ids:
        if rng.random() < del_rate:
            continue
        if rng.random() < sub_rate:
            t = rng.randrange(first_normal, vocab)
        seq += [blank] * rng.choice((0, 0, 1, 1, 2)) + [t] * rng.choice(REPEATS)
    seq += [blank] * rng.randint(1, 6)
    x = embed[torch.tensor(seq, device=embed.device)]
    rms = x.detach().pow(2).mean().sqrt()
    x = x + torch.randn_like(x) * rms * rng.uniform(0.2, 1.0)
    return torch.nn.functional.layer_norm(x, x.shape[-1:])


def build_corpus(path: Path, n: int, seed: int = 7) -> list[str]:
    if path.exists():
        return path.read_text().splitlines()
    stream = sentence_stream(seed, dev=False)
    lines = [next(stream)[0] for _ in tqdm(range(n), desc="corpus")]
    lines += [INSTRUCTION_PLAIN, INSTRUCTION_WITH_CONTEXT] * 50
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return lines


def text_examples(tok: Tokenizer, corpus: list[str], rng: random.Random, ents: EntityFaker, n: int):
    """n (context ids | None, target ids) pairs in the three flavours described above."""
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.5:
            sent, entity, _ = entity_sentence(ents, rng)
            ctx = dialogue_context(rng, ents, entity, rng.randint(0, 4))
        elif r < 0.6:
            sent = rng.choice(corpus)
            ctx = dialogue_context(rng, ents, None, rng.randint(1, 4))
        else:
            sent, ctx = rng.choice(corpus), None
        ids = assemble_context(tok, ctx, CONTEXT_BUDGET).token_ids if ctx else None
        out.append((ids, tok.encode(sent)[:60]))
    return out


def main() -> None:
    recipe = Recipe.from_env()
    work = recipe.work_dir
    corpus = build_corpus(work / "corpus.txt", recipe.lm_sentences)
    tok_file = work / "tokenizer.model"
    tok = Tokenizer(tok_file) if tok_file.exists() else train_tokenizer(corpus, work / "tokenizer", recipe.vocab_size)
    cfg = model_config(tok.vocab_size)
    model = SeedASR.build(cfg).to(DEVICE)
    lm = model.lm
    opt = torch.optim.AdamW(lm.parameters(), lr=recipe.lm.peak_lr, weight_decay=0.01)
    ckpt = Checkpointer(work / "lm.pt")
    state = ckpt.load(lm, opt)
    step, log = state["step"], state["log"]
    rng, ents = random.Random(step), EntityFaker(1000 + step)
    budget = TimeBudget(recipe.lm.minutes, state.get("elapsed", 0.0))
    bar = tqdm(desc="lm", initial=step)
    lm.train()
    first_normal = max(tok.special_ids) + 1  # substitutions in pseudo-speech draw ordinary tokens only
    while budget.left():
        contexts, targets = zip(*text_examples(tok, corpus, rng, ents, recipe.lm_batch))
        spans = [pseudo_speech(t, lm.embed.weight, cfg.ctc_blank, first_normal, rng) for t in targets]
        lens = torch.tensor([len(sp) for sp in spans])
        speech = torch.nn.utils.rnn.pad_sequence(spans, batch_first=True)
        batch = model.build_batch(tok, speech, lens, contexts, targets)
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
             "final_ce": log[-1][1] if log else None}
    (work / "lm_stats.json").write_text(json.dumps(stats))
    print(f"lm: {step} steps, ce {log[-1][1] if log else float('nan'):.3f}")


if __name__ == "__main__":
    main()
